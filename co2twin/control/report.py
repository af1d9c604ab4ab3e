"""The comparison as data: one KPI table for several controllers, as rows, JSON or CSV."""
from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cosim.atomic import atomic_path
from .runner import ControlResult

__all__ = ["kpi_table", "as_json", "write_csv", "csv_text"]


def kpi_table(results: Sequence[ControlResult]) -> tuple[list[str], list[dict[str, Any]]]:
    """``(controllers, rows)``: one row per KPI (per signal for per-signal KPIs) with its unit,
    the threshold if the case has one, and each controller's value and verdict."""
    names = [r.controller for r in results]
    rows: dict[str, dict[str, Any]] = {}
    for r in results:
        for label, value, unit in r.rows():
            row = rows.setdefault(label, {"kpi": label, "unit": unit, "threshold": "",
                                          "values": {}, "ok": {}})
            row["values"][r.controller] = value
        for v in r.verdicts:
            row = rows.setdefault(v.label, {"kpi": v.label, "unit": "", "threshold": "",
                                            "values": {}, "ok": {}})
            row["threshold"] = v.bound_text
            row["ok"][r.controller] = v.ok
            row["values"].setdefault(r.controller, v.value)
    return names, list(rows.values())


def as_json(results: Sequence[ControlResult]) -> dict[str, Any]:
    """Case, controllers, and per controller its KPIs, verdicts, pass/fail and wall time
    (NaN and infinities as null, so the output is strict JSON)."""
    if not results:
        return {}
    case = results[0].case
    return _safe({
        "case": case.name, "source": case.source, "objective": case.spec.objective.model_dump(),
        "controllers": {
            r.controller: {
                "passed": r.passed, "kpis": r.kpis, "wall_s": r.wall_s,
                "verdicts": [{"kpi": v.kpi, "signal": v.key, "value": v.value, "min": v.min,
                              "max": v.max, "ok": v.ok} for v in r.verdicts],
                "warnings": r.warnings,
                **({"solver": r.solver} if r.solver else {}),
            } for r in results
        },
    })


def csv_text(results: Sequence[ControlResult]) -> str:
    """The KPI table as CSV: kpi, unit, threshold, then value and pass/fail per controller."""
    names, rows = kpi_table(results)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["kpi", "unit", "threshold"] + [c for n in names for c in (n, f"{n} ok")])
    for row in rows:
        cells = [row["kpi"], row["unit"], row["threshold"]]
        for n in names:
            value = row["values"].get(n)
            ok = row["ok"].get(n)
            cells += ["" if value is None else repr(float(value)), "" if ok is None else str(ok).lower()]
        writer.writerow(cells)
    return buffer.getvalue()


def write_csv(results: Sequence[ControlResult], path: str | Path) -> Path:
    """Write :func:`csv_text` to ``path`` atomically (never half a file)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(csv_text(results), encoding="utf-8")
    return path


def _safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value

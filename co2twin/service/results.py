"""An experiment's executions as a DataFrame, and as JSON, CSV or Parquet for the API."""
from __future__ import annotations

import io
import json
import math
from typing import Any
from collections.abc import Sequence

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .db import KEY_SIGNALS, executions, experiments
from .errors import Invalid, NotFound, Refused

__all__ = ["read_frame", "as_json", "as_csv", "as_parquet", "FORMATS", "MEDIA_TYPES"]

FORMATS = ("json", "csv", "parquet")
MEDIA_TYPES = {"json": "application/json", "csv": "text/csv; charset=utf-8",
               "parquet": "application/vnd.apache.parquet"}


def read_frame(engine: Engine, experiment_id: int, *, signals: str | Sequence[str] | None = None,
               since: float | None = None, limit: int = 1_000_000) -> pd.DataFrame:
    """Rows of an experiment indexed by ``time_s`` (after ``since``), with a ``datetime``
    column and one column per signal: the key signals (``None``), every recorded one
    (``"all"``), or those named. Units in ``attrs["units"]``."""
    e, x = experiments.c, executions.c
    with engine.connect() as conn:
        exp = conn.execute(sa.select(e.id, e.units, e.name, e.status).where(
            e.id == experiment_id)).first()
        if exp is None:
            raise NotFound(f"experiment {experiment_id}: no such experiment")
        units: dict[str, str] = json.loads(exp.units) if exp.units else {}
        count_query = sa.select(sa.func.count()).select_from(executions).where(
            x.experiment_id == experiment_id)
        if since is not None:
            count_query = count_query.where(x.time_s > since)
        count = conn.execute(count_query).scalar_one()
        if count > limit:
            raise Refused(f"experiment {experiment_id}: {count:,} rows; expected at most "
                          f"{limit:,} per request: ask for a later 'since'")
        key = signals is None
        columns = [x.time_s, x.datetime] + ([x[c] for c in KEY_SIGNALS] if key else [x.signals])
        query = sa.select(*columns).where(x.experiment_id == experiment_id).order_by(x.time_s)
        if since is not None:
            query = query.where(x.time_s > since)
        rows = conn.execute(query).all()
    if key:
        names = [sig for sig, _ in KEY_SIGNALS.values()]
        data = {name: [r[i + 2] for r in rows] for i, name in enumerate(names)}
        present = [n for n in names if n in units or any(v is not None for v in data[n])]
        data = {n: data[n] for n in present}
        units = {n: units.get(n, KEY_SIGNALS_UNITS[n]) for n in present}
    else:
        decoded = [json.loads(r[2]) for r in rows]
        wanted = list(units) if signals == "all" else list(signals or [])
        unknown = [s for s in wanted if s not in units]
        if unknown:
            raise Invalid(f"signals: {', '.join(map(repr, unknown[:5]))} not recorded in "
                          f"experiment {experiment_id}; recorded: {', '.join(list(units)[:20])}...")
        data = {s: [d.get(s) for d in decoded] for s in wanted}
        units = {s: units[s] for s in wanted}
    frame = pd.DataFrame(data, index=pd.Index([float(r[0]) for r in rows], name="time_s"),
                         dtype=float)
    frame.insert(0, "datetime", pd.to_datetime([r[1] for r in rows]))
    frame.attrs["units"] = units
    frame.attrs["experiment"] = {"id": experiment_id, "name": exp.name, "status": exp.status}
    return frame


KEY_SIGNALS_UNITS = {sig: unit for sig, unit in KEY_SIGNALS.values()}


def _number(value: Any) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def as_json(frame: pd.DataFrame) -> dict[str, Any]:
    """Columns as lists (NaN as null): ``time_s``, ``datetime``, ``signals``, ``units``."""
    return {
        "experiment": frame.attrs.get("experiment", {}),
        "time_s": [float(t) for t in frame.index],
        "datetime": [t.isoformat() + "Z" for t in frame["datetime"]]
        if "datetime" in frame else None,
        "signals": {c: [_number(v) for v in frame[c].tolist()]
                    for c in frame.columns if c != "datetime"},
        "units": frame.attrs.get("units", {}),
    }


def as_csv(frame: pd.DataFrame) -> str:
    """CSV with a header of signal names (units: the JSON or Parquet form, or the experiment)."""
    return str(frame.to_csv(date_format="%Y-%m-%dT%H:%M:%S.%fZ"))


def as_parquet(frame: pd.DataFrame) -> bytes:
    """Parquet with co2twin's metadata (units) under the schema key ``co2twin``, as
    ``cosim.read_results`` reads it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=True)
    meta = {"units": {"time_s": "s", **frame.attrs.get("units", {})}, "events": [],
            "scenario": {}, "run": {"experiment": frame.attrs.get("experiment", {})}}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                           b"co2twin": json.dumps(meta).encode()})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()

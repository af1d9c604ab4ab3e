"""What a sweep's results say about uncertainty: KPI intervals, percentile bands, sensitivity indices.

:func:`summarise` is called by :func:`co2twin.sweep.run_sweep` on the merged KPI table; it writes
``bands.png`` / ``bands.parquet`` and ``sensitivity.csv`` into the sweep's folder when the spec
asks for them, and returns the figures for ``summary.json``.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any
from collections.abc import Mapping, Sequence

from cosim.atomic import atomic_path

if TYPE_CHECKING:
    import pandas as pd

    from .sweep_spec import SweepSpec

__all__ = ["summarise", "kpi_intervals", "kpi_units", "sensitivity", "percentile_bands", "plot_bands",
           "worst_balances", "band_figure", "flag_counts"]

#: columns of a sweep's KPI table that are not KPIs
_NOT_KPIS = ("variant", "group")


def _kpi_columns(kpis: pd.DataFrame) -> list[str]:
    return [c for c in kpis.columns if c not in _NOT_KPIS and not c.startswith("set:")]


def _label(p: float) -> str:
    return f"p{p:g}"


def kpi_intervals(kpis: pd.DataFrame, percentiles: Sequence[float] = (5, 50, 95)) -> dict[str, Any]:
    """Each KPI's percentiles over the rows of ``kpis`` (NaN rows left out), and its mean."""
    import numpy as np

    out: dict[str, Any] = {}
    for column in _kpi_columns(kpis):
        values = kpis[column].to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        if not len(values):
            continue
        row = {_label(p): float(v) for p, v in zip(percentiles, np.percentile(values, percentiles),
                                                   strict=True)}
        row["mean"] = float(values.mean())
        row["n"] = len(values)
        out[column] = row
    return out


def sensitivity(spec: SweepSpec, kpis: pd.DataFrame) -> pd.DataFrame:
    """SALib's Sobol (first and total order) or Morris indices of the chosen KPIs, per group.

    The inputs are the distributions' probabilities (each sampled in [0, 1] and mapped through its
    quantile function), so Morris' ``mu_star`` is per unit of probability; Sobol's indices do not
    depend on that scale.
    """
    import numpy as np
    import pandas as pd

    problem = spec.problem()
    x = spec.unit_samples()
    per = spec.n_per_group
    rows = []
    for group in range(spec.n_groups):
        part = kpis.iloc[group * per:(group + 1) * per]
        for kpi in spec.sensitivity or []:
            base = {"group": group, "kpi": kpi}
            if kpi not in part.columns:  # a KPI whose signals the scenario does not record
                rows += [{**base, "parameter": name, "note": "KPI not computed for this scenario"}
                         for name in problem["names"]]
                continue
            y = part[kpi].to_numpy(dtype=float)
            if not np.isfinite(y).all():
                rows += [{**base, "parameter": name, "note": "KPI not finite in every variant"}
                         for name in problem["names"]]
                continue
            rows += _indices(spec.sampling, problem, x, y, spec.seed, base)
    return pd.DataFrame(rows)


def _indices(method: str, problem: dict[str, Any], x: Any, y: Any, seed: int,
             base: dict[str, Any]) -> list[dict[str, Any]]:
    import numpy as np

    names = problem["names"]
    if np.ptp(y) == 0:  # a KPI that does not move has no variance to share out
        return [{**base, "parameter": n, "note": "KPI constant over the samples"} for n in names]
    if method == "sobol":
        from SALib.analyze import sobol

        res = sobol.analyze(problem, y, calc_second_order=False, seed=seed)
        return [{**base, "parameter": n, "S1": float(res["S1"][i]), "S1_conf": float(res["S1_conf"][i]),
                 "ST": float(res["ST"][i]), "ST_conf": float(res["ST_conf"][i])}
                for i, n in enumerate(names)]
    from SALib.analyze import morris

    res = morris.analyze(problem, x, y, seed=seed)
    return [{**base, "parameter": n, "mu_star": float(res["mu_star"][i]),
             "mu_star_conf": float(res["mu_star_conf"][i]), "sigma": float(res["sigma"][i])}
            for i, n in enumerate(names)]


def percentile_bands(out: Path, signals: Sequence[str], percentiles: Sequence[float],
                     per_group: int | None = None) -> pd.DataFrame:
    """Per time, the percentiles of each signal over the variants, from the chunks' signal files;
    with ``per_group`` (variants per group), over each group's variants separately.

    Memory: one signal of every variant at once (variants x kept rows x 8 bytes).
    """
    import numpy as np
    import pandas as pd
    import pyarrow.dataset as ds

    files = sorted(str(p) for p in out.glob("signals/chunk=*/part.parquet"))
    dataset = ds.dataset(files, format="parquet")
    frames = []
    for signal in signals:
        table = dataset.to_table(columns=["variant", "time", signal]).to_pandas()
        wide = table.pivot(index="variant", columns="time", values=signal)
        groups = (wide.index.to_numpy() // per_group if per_group
                  else np.zeros(len(wide), dtype=int))
        for group in np.unique(groups):
            rows = wide.to_numpy(dtype=float)[groups == group]
            q = np.nanpercentile(rows, percentiles, axis=0)
            frame = pd.DataFrame(q.T, index=wide.columns, columns=[_label(p) for p in percentiles])
            frame.insert(0, "group", int(group))
            frame.insert(0, "signal", signal)
            frames.append(frame.rename_axis("time").reset_index())
    bands = pd.concat(frames, ignore_index=True)
    return bands[["signal", "group", "time", *(_label(p) for p in percentiles)]]


def kpi_units(spec: SweepSpec, names: Sequence[str]) -> dict[str, str]:
    """The unit of each KPI column (``time_outside_limits_s``, ``loop_iae[pi]`` ...): the
    plant's KPIs' from :data:`co2twin.kpi.KPI_UNITS`, a loop's from its controller's signals."""
    from .kpi import KPI_UNITS

    loops = [n for n in names if n.startswith(("loop_iae[", "loop_travel["))]
    signals = _units(spec, [f"{n[n.index('[') + 1:-1]}.{'error' if n.startswith('loop_iae') else 'output'}"
                            for n in loops]) if loops else {}
    units: dict[str, str] = {}
    for name in names:
        base, _, inner = name.partition("[")
        if name in loops:
            controller = inner[:-1]
            unit = signals.get(f"{controller}.error" if base == "loop_iae" else f"{controller}.output")
            units[name] = "" if unit is None else f"{unit} s" if base == "loop_iae" else unit
        elif base in _SECONDS_PER_SIGNAL:
            units[name] = "s"
        else:
            units[name] = KPI_UNITS.get(base, "")
    return units


#: the KPIs that are a mapping signal (or controller) -> seconds (``outside_limits[reactor.cell_voltage]``)
_SECONDS_PER_SIGNAL = ("outside_limits", "limits_not_evaluated", "flagged", "loop_saturated_s")


def _units(spec: SweepSpec, signals: Sequence[str]) -> dict[str, str]:
    """The unit of each signal as the base scenario's simulation declares it (controllers'
    signals take the units of what they measure and drive)."""
    from .scenario import _close, build, parse_scenario

    sim = build(parse_scenario(spec.scenario_data, source=spec.source, base_dir=spec.base_dir))
    try:
        return {s: sim.unit(s) for s in signals if s in sim.signals}
    finally:
        _close(sim.components.values())


def plot_bands(bands: pd.DataFrame, path: Path, *, title: str,
               group_labels: Sequence[str] | None = None,
               units: Mapping[str, str] | None = None) -> Path:
    """:func:`band_figure` written to ``path`` (PNG)."""
    fig = band_figure(bands, title=title, group_labels=group_labels, units=units)
    import matplotlib.pyplot as plt  # after band_figure has chosen the Agg backend

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return path


def band_figure(bands: pd.DataFrame, *, title: str, group_labels: Sequence[str] | None = None,
                units: Mapping[str, str] | None = None) -> Any:
    """One panel per signal (labelled with its unit from ``units``): the outer percentiles as
    shaded bands, the middle one as a line; one colour per group, none used twice (a grid of
    4 x 4 sizes has 16 groups: the default cycle of 10 would give two groups one colour)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [c for c in bands.columns if c.startswith("p")]
    signals = list(dict.fromkeys(bands["signal"]))
    groups = sorted(set(bands["group"]))
    span = float(bands["time"].max() - bands["time"].min())
    scale, unit = (3600.0, "h") if span > 7200 else (60.0, "min") if span > 120 else (1.0, "s")
    fig, axes = plt.subplots(len(signals), 1, figsize=(7, 2.2 * len(signals) + 0.6), sharex=True,
                             squeeze=False)
    several = len(groups) > 1
    colours = dict(zip(groups, _group_colours(len(groups)), strict=True))
    handles: list[Any] = []
    for ax, signal in zip(axes[:, 0], signals, strict=True):
        for g in groups:
            colour = colours[g]
            name = group_labels[g] if group_labels and len(groups) > 1 else ""
            part = bands[(bands["signal"] == signal) & (bands["group"] == g)]
            t = part["time"].to_numpy() / scale
            for k in range(len(labels) // 2):
                low, high = labels[k], labels[-1 - k]
                ax.fill_between(t, part[low], part[high], alpha=0.2 + 0.15 * k, color=colour,
                                linewidth=0, label=f"{name} {low}-{high}".strip())
            if len(labels) % 2:
                mid = labels[len(labels) // 2]
                line, = ax.plot(t, part[mid], color=colour, linewidth=1.2, label=f"{name} {mid}".strip())
                if several and ax is axes[0, 0]:
                    handles.append((line, name))
        ax.set_ylabel(f"{signal} [{units[signal]}]" if units and units.get(signal) else signal, fontsize=8)
        if not several:
            ax.legend(fontsize=6, loc="best")
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel(f"time [{unit}]")
    if several:  # one entry per group beside the panels: per band and panel it would cover them
        title += f"\nshaded {labels[0]}-{labels[-1]}" + (f", line {labels[len(labels) // 2]}"
                                                          if len(labels) % 2 else "")
        fig.legend([h for h, _ in handles], [n for _, n in handles], fontsize=6,
                   loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _group_colours(n: int) -> list[Any]:
    """``n`` distinct colours: matplotlib's default cycle up to 10, tab20 up to 20, else
    evenly spaced along turbo."""
    import matplotlib

    if n <= 10:
        return [f"C{i}" for i in range(n)]
    if n <= 20:
        return [matplotlib.colormaps["tab20"](i) for i in range(n)]
    return [matplotlib.colormaps["turbo"](i / (n - 1)) for i in range(n)]


def worst_balances(out: Path) -> dict[str, Any]:
    """Each balance's worst relative residual over every variant, and that variant."""
    import numpy as np
    import pandas as pd

    files = sorted(out.glob("balances/chunk=*/part.parquet"))
    if not files:
        return {}
    table = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    worst: dict[str, Any] = {}
    for column in table.columns:
        if column == "variant":
            continue
        values = table[column].to_numpy(dtype=float)
        if not len(values) or np.isnan(values).all():
            continue
        i = int(np.nanargmax(values))
        worst[column] = {"worst": float(values[i]), "variant": int(table["variant"].iloc[i])}
    return worst


def _group_labels(groups: Sequence[dict[str, Any]]) -> list[str]:
    """``current=3.0, area_cm2=25`` for a legend; ``group 2`` when one would not fit (the
    summary's ``kpi_intervals_by_group`` says what each group set)."""
    texts = [", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in g.items()) for g in groups]
    return texts if max(map(len, texts), default=0) <= 40 else [f"group {i}" for i in range(len(texts))]


def flag_counts(kpis: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per flag time KPI (:data:`co2twin.kpi.FLAG_TIME_KPIS`, and each controller's
    ``loop_saturated_s[<name>]``) that any variant raised: how many variants raised it, the
    longest, and the first such variant."""
    from .kpi import FLAG_TIME_KPIS

    out: dict[str, dict[str, Any]] = {}
    loops = [c for c in kpis.columns if str(c).startswith("loop_saturated_s[")]
    for name in [*FLAG_TIME_KPIS, *loops]:
        if name not in kpis.columns:
            continue
        values = kpis[name].to_numpy(dtype=float)
        raised = values > 0.0
        if raised.any():
            first = int(kpis["variant"].to_numpy()[raised.argmax()])
            out[name] = {"variants": int(raised.sum()), "max_s": float(values[raised].max()),
                         "first_variant": first}
    return out


def summarise(spec: SweepSpec, kpis: pd.DataFrame, out: Path,
              records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The sweep's summary: counts, KPI intervals (overall, and per group when sampled), the
    sensitivity indices and the percentile bands the spec asks for (files in ``out``)."""
    summary: dict[str, Any] = {
        "name": spec.name, "variants": len(kpis), "chunks": len(records),
        "chunk_size": spec.chunk_size, "groups": spec.n_groups,
        "samples_per_group": spec.n_per_group, "sampling": spec.sampling,
        "peak_rss_mb_per_worker": max((r.get("peak_rss_mb", math.nan) for r in records), default=None),
        "kpi_intervals": kpi_intervals(kpis, spec.percentiles),
        "balances": worst_balances(out),
        "flags": flag_counts(kpis),
    }
    summary["kpi_units"] = kpi_units(spec, list(summary["kpi_intervals"]))
    if spec.n_groups > 1 and spec.n_per_group > 1:
        summary["kpi_intervals_by_group"] = [
            {"group": int(g), "set": spec.groups[int(g)],
             "intervals": kpi_intervals(part, spec.percentiles)}
            for g, part in kpis.groupby("group")]
    if spec.sensitivity:
        table = sensitivity(spec, kpis)
        with atomic_path(out / "sensitivity.csv") as tmp:
            table.to_csv(tmp, index=False, float_format="%.6g")
        summary["sensitivity"] = {"method": spec.sampling, "file": "sensitivity.csv",
                                  "indices": table.to_dict(orient="records")}
    if spec.bands:
        by_group = spec.n_groups > 1 and spec.n_per_group > 1
        bands = percentile_bands(out, spec.bands, spec.percentiles,
                                 per_group=spec.n_per_group if by_group else None)
        with atomic_path(out / "bands.parquet") as tmp:
            bands.to_parquet(tmp, index=False)
        labels = _group_labels(spec.groups)
        what = f"{spec.n_per_group:,} samples per group" if by_group else f"{len(kpis):,} variants"
        plot_bands(bands, out / "bands.png", title=f"{spec.name}: percentiles over {what}",
                   group_labels=labels, units=_units(spec, spec.bands))
        summary["bands"] = {"plot": "bands.png", "table": "bands.parquet", "signals": spec.bands,
                            "percentiles": spec.percentiles}
    return summary

"""Stacked time-series plots of recorded signals: a PNG, and an interactive HTML beside it.

Each panel shows one signal with what it was asked to do and what it must not
do: the set point it follows (dashed), its operating limits (dotted red, the
time outside them shaded), and the run's events as numbered vertical lines
listed under the plot. A last panel shows when any flag was raised (an actuator
saturated, an estimate bounded, a model outside its training envelope). Files
are written atomically; the HTML (plotly) has plotly.js inside, so it opens
without a network.
"""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from components.plant import FLAGS, LIMITS, SETPOINTS
from cosim.atomic import atomic_path
from cosim.errors import SimulationError

__all__ = ["plot_signals", "plot_html", "figure", "panels"]

#: at most this many events are listed under the plot (all are drawn)
MAX_LISTED_EVENTS = 12
#: points per trace in the HTML plot; longer runs are thinned keeping each bucket's min and max
HTML_POINTS = 4000


def panels(frame: pd.DataFrame, signals: Sequence[tuple[str, str]],
           limits: Mapping[str, Sequence[float | None]] | None = None) -> list[dict[str, Any]]:
    """What each panel shows: column, label (with unit), set point column, limits.

    ``signals`` are ``(column, label)`` pairs; a label equal to its column gets the
    unit appended. Signals not recorded are left out. ``limits`` default to the
    run's (``frame.attrs["scenario"]["limits"]``), else the plant's.
    """
    units = frame.attrs.get("units", {})
    if limits is None:
        limits = frame.attrs.get("scenario", {}).get("limits", LIMITS)
    out = []
    for column, label in signals:
        if column not in frame.columns:
            continue
        unit = units.get(column, "")
        shown = f"{column} [{unit}]" if label == column and unit and unit != "1" else label
        setpoint = SETPOINTS.get(column)
        low, high = (list(limits.get(column, (None, None))) + [None, None])[:2]
        out.append({"column": column, "label": shown, "unit": unit,
                    "setpoint": setpoint if setpoint in frame.columns else None,
                    "low": low, "high": high})
    return out


def _events(frame: pd.DataFrame) -> list[tuple[float, str]]:
    return [(float(t), str(text)) for t, text in frame.attrs.get("events", [])]


def _raised(frame: pd.DataFrame) -> list[tuple[str, np.ndarray]]:
    """``(short name, 0/1 array)`` of each flag raised in the run, limits included."""
    per_variable = [c for c in frame.columns if c.startswith("reactor.") and c.endswith("_bounded")
                    and c != "reactor.estimate_bounded"]
    cols = [f.column for f in FLAGS if not (per_variable and f.column == "reactor.estimate_bounded")]
    cols += per_variable + [c for c in frame.columns if c.endswith("_outside_envelope")
                            or c.endswith(":outside_limits")]
    out = []
    for col in cols:
        if col in frame.columns and (frame[col].to_numpy() > 0).any():
            name = col.replace("_outside_envelope", " model outside its envelope").replace(
                ":outside_limits", " outside limits").replace("reactor.estimate_bounded",
                                                             "reactor estimates bounded")
            out.append((name, frame[col].to_numpy() > 0))
    return out


def _time_scale(times: np.ndarray) -> tuple[float, str]:
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    return (3600.0, "h") if span > 7200 else (60.0, "min") if span > 300 else (1.0, "s")


def plot_signals(
    frame: pd.DataFrame, signals: Sequence[tuple[str, str]], path: str | Path, *, title: str = "",
    html: bool = False, limits: Mapping[str, Sequence[float | None]] | None = None,
) -> Path:
    """One panel per ``(column, label)`` recorded in ``frame``, written to ``path`` (PNG).

    ``html``: also write the interactive version beside it (``path`` with ``.html``);
    if either cannot be written, neither is left behind.
    """
    import matplotlib.pyplot as plt

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise SimulationError(f"{path}: plots are written as PNG; expected a .png file name")
    fig = figure(frame, signals, title=title, limits=limits, where=str(path))
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110)
    finally:
        plt.close(fig)
    if html:
        try:
            plot_html(frame, signals, path.with_suffix(".html"), title=title, limits=limits)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
    return path


def figure(
    frame: pd.DataFrame, signals: Sequence[tuple[str, str]], *, title: str = "",
    limits: Mapping[str, Sequence[float | None]] | None = None, where: str = "plot",
) -> Any:
    """The matplotlib figure :func:`plot_signals` saves (close it with ``plt.close``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = panels(frame, signals, limits)
    if not shown:
        raise SimulationError(
            f"{where}: none of the signals to plot were recorded "
            f"({', '.join(c for c, _ in signals)})"
        )
    times = frame.index.to_numpy()
    scale, unit = _time_scale(times)
    x = times / scale
    raised = _raised(frame)
    events = _events(frame)
    strip = 1 if events else 0
    heights = [0.22] * strip + [1.0] * len(shown) + ([0.2 + 0.2 * len(raised)] if raised else [])
    lines = [f"{i:>2}  {t:g} s: {text}" for i, (t, text) in enumerate(events, 1)][:MAX_LISTED_EVENTS]
    if len(events) > MAX_LISTED_EVENTS:
        lines.append(f"    ... and {len(events) - MAX_LISTED_EVENTS} more (in the results' metadata)")
    footer = 0.16 * (len(lines) + 1) if lines else 0.0
    top = 0.35 if title else 0.1
    height = 1.7 * sum(heights) + 0.6 + footer + top
    fig, grid = plt.subplots(len(heights), 1, sharex=True, squeeze=False, figsize=(11, height),
                             gridspec_kw={"height_ratios": heights})
    axes = list(grid[:, 0])
    for ax, panel in zip(axes[strip:], shown, strict=False):
        _draw_panel(ax, frame, x, panel)
    if raised:
        _draw_flags(axes[-1], x, raised)
    if events:
        _draw_events(axes, x, [t / scale for t, _ in events])
    axes[-1].set_xlabel(f"time [{unit}]")
    axes[-1].set_xlim(x[0], x[-1] if len(x) > 1 else x[0] + 1)
    if title:
        fig.suptitle(title, fontsize=11, y=1 - 0.08 / height, va="top")
    if lines:
        fig.text(0.01, 0.1 / height, "events\n" + "\n".join(textwrap.shorten(line, 150)
                                                             for line in lines),
                 fontsize=8, va="bottom", ha="left", family="monospace")
    fig.tight_layout(rect=(0, (footer + 0.1) / height, 1, 1 - top / height), h_pad=0.4)
    return fig


def _draw_panel(ax: Any, frame: pd.DataFrame, x: np.ndarray, panel: Mapping[str, Any]) -> None:
    """One signal, its set point, its limits (a limit far off the data is named, not drawn)."""
    values = frame[panel["column"]].to_numpy()
    ax.plot(x, values, lw=1.3, color="C0", label="actual", zorder=3)
    shown = [values]
    true = f"{panel['column']}:true"
    if true in frame.columns:  # a faulted sensor: the reading above, the truth beside it
        ax.plot(x, frame[true].to_numpy(), lw=1.0, color="0.45", label="true value", zorder=2)
        shown.append(frame[true].to_numpy())
    if panel["setpoint"] is not None:
        target = frame[panel["setpoint"]].to_numpy()
        # a row holds the input over the step that ends there: steps drawn that way
        ax.step(x, target, where="pre", lw=1.0, ls="--", color="C1", label="set point", zorder=2)
        shown.append(target)
    finite = np.concatenate([v[np.isfinite(v)] for v in shown])
    lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
    reach = max(hi - lo, abs(hi) * 0.05, 1e-9)
    off = []
    for bound, name, outside in ((panel["low"], "low", values < (panel["low"] or 0.0)),
                                 (panel["high"], "high", values > (panel["high"] or 0.0))):
        if bound is None:
            continue
        if lo - 0.6 * reach <= bound <= hi + 0.6 * reach:
            ax.axhline(bound, color="C3", ls=":", lw=1.2, label=f"{name} limit", zorder=2)
            if outside.any():
                ax.fill_between(x, bound, values, where=outside, color="C3", alpha=0.25,
                                step=None, zorder=1, label="outside limits")
        else:
            off.append(f"{name} limit {bound:g}")
    ax.set_title(panel["label"] + (f"   ({', '.join(off)}: off scale)" if off else ""),
                 loc="left", fontsize=9, pad=3)
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=8)
    ax.margins(x=0)
    if len(ax.get_legend_handles_labels()[0]) > 1:
        # on the title's line, right: never over the data
        ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=7, ncol=5, frameon=False,
                  borderaxespad=0.1, handlelength=2.2)


def _draw_flags(ax: Any, x: np.ndarray, raised: Sequence[tuple[str, np.ndarray]]) -> None:
    """A bar per raised flag over the time it was raised, named inside the panel."""
    for row, (name, on) in enumerate(raised):
        ax.fill_between(x, row - 0.3, row + 0.3, where=on, step="pre", color="C3", alpha=0.45, lw=0)
        ax.text(0.003, row, name, transform=ax.get_yaxis_transform(), va="center", ha="left",
                fontsize=7, bbox={"fc": "white", "ec": "none", "alpha": 0.8, "pad": 0.5})
    ax.set_yticks([])
    ax.set_ylim(len(raised) - 0.5, -0.5)
    ax.set_title("flags raised (not as asked)", loc="left", fontsize=9, pad=3)
    ax.grid(alpha=0.3, axis="x")


def _draw_events(axes: Sequence[Any], x: np.ndarray, at: Sequence[float]) -> None:
    """Events as dashed lines through every panel, numbered in the strip above them."""
    strip = axes[0]
    strip.set_yticks([])
    strip.set_ylim(0, 1)
    for side in ("left", "right", "top"):
        strip.spines[side].set_visible(False)
    strip.set_title("events (listed below)", loc="left", fontsize=9, pad=3)
    for i, t in enumerate(at, 1):
        strip.text(t, 0.45, str(i), ha="center", va="center", fontsize=7.5,
                   bbox={"boxstyle": "circle,pad=0.2", "fc": "white", "ec": "0.35", "lw": 0.6})
        for ax in axes[1:]:
            ax.axvline(t, color="0.35", ls="--", lw=0.8, zorder=1)


def _thin(x: np.ndarray, y: np.ndarray, points: int = HTML_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most about ``points`` samples: each bucket keeps its first, min and max, so no spike
    is lost."""
    n = len(x)
    if n <= points:
        return x, y
    size = int(np.ceil(n / (points / 3)))
    keep: list[int] = []
    for start in range(0, n, size):
        part = y[start:start + size]
        finite = np.where(np.isfinite(part), part, np.nan)
        picks = {start}
        if np.isfinite(finite).any():
            picks |= {start + int(np.nanargmin(finite)), start + int(np.nanargmax(finite))}
        keep.extend(sorted(picks))
    keep.append(n - 1)
    index = np.unique(np.asarray(keep))
    return x[index], y[index]


def plot_html(
    frame: pd.DataFrame, signals: Sequence[tuple[str, str]], path: str | Path, *, title: str = "",
    limits: Mapping[str, Sequence[float | None]] | None = None,
) -> Path:
    """The same panels as :func:`plot_signals` as an interactive plotly HTML file."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    path = Path(path)
    shown = panels(frame, signals, limits)
    if not shown:
        raise SimulationError(f"{path}: none of the signals to plot were recorded")
    times = frame.index.to_numpy()
    scale, unit = _time_scale(times)
    x = times / scale
    raised = _raised(frame)
    rows = len(shown) + bool(raised)
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.25 / rows,
                        subplot_titles=[p["label"] for p in shown] + (["flags raised"] if raised else []))
    for row, panel in enumerate(shown, 1):
        tx, ty = _thin(x, frame[panel["column"]].to_numpy())
        fig.add_trace(go.Scatter(x=tx, y=ty, name=panel["label"], line={"color": "#1f77b4"},
                                 legendgroup=str(row), showlegend=False), row=row, col=1)
        if panel["setpoint"] is not None:
            sx, sy = _thin(x, frame[panel["setpoint"]].to_numpy())
            fig.add_trace(go.Scatter(x=sx, y=sy, name=f"set point ({panel['setpoint']})",
                                     line={"color": "#ff7f0e", "dash": "dash", "shape": "vh"},
                                     showlegend=False), row=row, col=1)
        for bound, name in ((panel["low"], "low"), (panel["high"], "high")):
            if bound is not None:
                fig.add_hline(y=bound, line={"color": "#d62728", "dash": "dot"}, row=row, col=1,
                              annotation_text=f"{name} limit {bound:g}",
                              annotation_font_size=9)
    if raised:
        for i, (name, on) in enumerate(raised):
            fx, fy = _thin(x, np.where(on, i, np.nan))
            fig.add_trace(go.Scatter(x=fx, y=fy, name=name, mode="lines",
                                     line={"color": "#d62728", "width": 8}, showlegend=False),
                          row=rows, col=1)
        fig.update_yaxes(tickvals=list(range(len(raised))), ticktext=[n for n, _ in raised],
                         autorange="reversed", row=rows, col=1)
    for i, (t, text) in enumerate(_events(frame), 1):
        fig.add_vline(x=t / scale, line={"color": "gray", "dash": "dash", "width": 1})
        fig.add_annotation(x=t / scale, y=1.0, yref="paper", text=str(i), showarrow=False,
                           yanchor="bottom", hovertext=f"{t:g} s: {text}", font={"size": 10})
    fig.update_xaxes(title_text=f"time [{unit}]", row=rows, col=1)
    fig.update_layout(title=title or None, height=230 * rows + 120, hovermode="x unified",
                      margin={"l": 60, "r": 20, "t": 70, "b": 40})
    with atomic_path(path) as tmp:
        fig.write_html(tmp, include_plotlyjs=True, full_html=True)
    return path

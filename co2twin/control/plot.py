"""The comparison plot: the key signals of a case, one colour per controller, with the set
points, the constraints and the price drawn, written atomically to PNG."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.electrochemistry import M_HCOOH

from components.plant import resolve_input

from cosim.atomic import atomic_path
from cosim.errors import SimulationError
from .case import ControlCase
from .runner import ControlResult

__all__ = ["plot_comparison"]

#: colour-blind-safe (Okabe-Ito), one per controller
_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")


def _values(frame: Any, name: str) -> np.ndarray:
    return frame[f"{name}:true" if f"{name}:true" in frame.columns else name].to_numpy(dtype=float)


def plot_comparison(results: Sequence[ControlResult], path: str | Path) -> Path:
    """One panel per set point, constraint and actuator, then the price, the disturbance
    inputs and the production where the case has them, every controller overlaid: set
    points dashed black, limits red with the region outside shaded, disturbances that
    are events shaded grey and named."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise SimulationError(f"{path}: plots are written as PNG; expected a .png file name")
    if not results:
        raise SimulationError("nothing to plot: no controller was run")
    case = results[0].case
    panels = _panels(case)
    times = results[0].frame.index.to_numpy(dtype=float)
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    scale, tunit = (3600.0, "h") if span > 7200 else (60.0, "min") if span > 300 else (1.0, "s")
    fig, axes = plt.subplots(len(panels), 1, sharex=True, figsize=(11, 1.9 * len(panels) + 1.4))
    axes = list(np.atleast_1d(axes))
    for ax, (kind, signal) in zip(axes, panels, strict=True):
        for i, result in enumerate(results):
            _draw_run(ax, kind, signal, result, scale, _COLOURS[i % len(_COLOURS)], first=i == 0)
        _draw_case(ax, kind, signal, results[0], scale, top=ax is axes[0])
        ax.set_ylabel(_label(kind, signal, results[0].units), fontsize=9)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    axes[-1].set_xlabel(f"time [{tunit}]")
    _legend(fig, results)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110)
    finally:
        plt.close(fig)
    return path


def _panels(case: ControlCase) -> list[tuple[str, str]]:
    """``(kind, signal)`` of each panel, top to bottom."""
    spec = case.spec
    panels = [("setpoint", s) for s in spec.setpoints]
    panels += [("constraint", s) for s in spec.constraints if s not in spec.setpoints]
    panels += [("actuator", a) for a in case.actuators]
    if spec.price is not None:
        panels.append(("price", "price"))
    panels += [("disturbance", resolve_input(name)) for d in spec.disturbances.values()
               for name in d.inputs]
    scored = {spec.objective.minimise, spec.objective.maximise} | set(spec.kpis)
    if scored & {"production_kg", "energy_cost", "specific_energy_kWh_per_kg",
                 "co2_utilisation_pct", "mean_fe_formate"}:
        panels.append(("production", "reactor.formate_produced"))
    return panels


def _draw_run(ax: Any, kind: str, signal: str, result: ControlResult, scale: float, colour: str,
              *, first: bool) -> None:
    """One controller's line in a panel."""
    frame = result.frame
    t = frame.index.to_numpy(dtype=float) / scale
    if kind == "actuator":
        column = result.actuators.get(signal)
        if column in frame.columns:
            ax.step(t, frame[column].to_numpy(dtype=float), where="pre", color=colour, lw=1.3)
    elif kind == "production":
        if signal in frame.columns:
            made = _values(frame, signal)
            ax.plot(t, (made - made[0]) * M_HCOOH, color=colour, lw=1.3)
    elif kind == "disturbance":
        if first and signal in frame.columns:  # the same in every run
            ax.step(t, frame[signal].to_numpy(dtype=float), where="pre", color="0.35", lw=1.3)
    elif kind != "price" and signal in frame.columns:
        ax.plot(t, _values(frame, signal), color=colour, lw=1.3)


def _draw_case(ax: Any, kind: str, signal: str, result: ControlResult, scale: float, *,
               top: bool) -> None:
    """What the case says in a panel: set point, price, limits, disturbance events."""
    case = result.case
    times = result.frame.index.to_numpy(dtype=float)
    if kind in ("setpoint", "price"):
        profile = case.profile(signal)
        style = {"color": "black", "ls": "--", "lw": 1.1} if kind == "setpoint" \
            else {"color": "0.35", "lw": 1.3}
        ax.step(times / scale, [profile.value(t) for t in times], where="post", **style)
    constraints = case.constraints
    if signal in constraints:
        _limits(ax, constraints[signal])
    target = case.spec.kpis.get("production_kg")
    if kind == "production" and target is not None and target.min is not None:
        ax.axhline(target.min * 1000.0, color="#C00000", ls=":", lw=1.2)
        ax.text(0.005, target.min * 1000.0, " production threshold", color="#C00000", fontsize=8,
                va="bottom", transform=ax.get_yaxis_transform())
    for name, (a, b) in _event_spans(case).items():
        ax.axvspan(a / scale, b / scale, color="0.5", alpha=0.10, lw=0)
        if top:
            ax.text((a + b) / 2 / scale, 0.03, name.replace("_", " "), fontsize=8, color="0.25",
                    transform=ax.get_xaxis_transform(), ha="center", va="bottom",
                    bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.7, "pad": 1})


def _legend(fig: Any, results: Sequence[ControlResult]) -> None:
    """Title, then a legend of the controllers (pass/FAIL), set point and limit, above the panels."""
    import matplotlib.pyplot as plt

    spec = results[0].case.spec
    handles = [plt.Line2D([], [], color=_COLOURS[i % len(_COLOURS)], lw=2,
                          label=f"{r.controller} ({'pass' if r.passed else 'FAIL'})")
               for i, r in enumerate(results)]
    if spec.setpoints:
        handles.append(plt.Line2D([], [], color="black", ls="--", label="set point"))
    if spec.constraints:
        handles.append(plt.Line2D([], [], color="#C00000", lw=1.2, label="limit"))
    height = fig.get_figheight()
    rows = -(-len(handles) // 5)
    fig.suptitle(f"{results[0].case.name}: {spec.objective.description}", fontsize=10,
                 y=1.0 - 0.08 / height, va="top")
    fig.legend(handles=handles, loc="upper center", ncol=min(len(handles), 5), fontsize=9,
               frameon=False, bbox_to_anchor=(0.5, 1.0 - 0.32 / height))
    fig.tight_layout(rect=(0, 0, 1, 1.0 - (0.45 + 0.22 * rows) / height))


def _event_spans(case: Any) -> dict[str, tuple[float, float]]:
    """Each disturbance made of events -> from its first event to its last (or the run's end)."""
    events = case.scenario.events
    out = {}
    for name, d in case.spec.disturbances.items():
        times = sorted(events[i].at for i in d.events if i < len(events))
        if times:
            out[name] = (times[0], times[-1] if len(times) > 1 else case.scenario.end)
    return out


def _limits(ax: Any, limit: tuple[float | None, float | None]) -> None:
    """The constraint's limits as red lines, the region outside them shaded."""
    low, high = limit
    y0, y1 = ax.get_ylim()  # the data's range (asked before autoscaling stops)
    ax.autoscale(False)
    for value, far in ((high, max(y1, high or 0.0) + 1e9), (low, min(y0, low or 0.0) - 1e9)):
        if value is None:
            continue
        ax.axhline(value, color="#C00000", lw=1.2)
        ax.axhspan(value, far, color="#C00000", alpha=0.08, lw=0)
    pad = 0.05 * (y1 - y0 or 1.0)
    lo = min(y0, low - pad) if low is not None else y0
    hi = max(y1, high + pad) if high is not None else y1
    ax.set_ylim(lo, hi)


def _label(kind: str, signal: str, units: dict[str, str]) -> str:
    if kind == "production":
        return "HCOOH made\n[g]"
    if kind == "price":
        return "price\n[EUR/kWh]"
    if kind == "disturbance":
        unit = units.get(signal, "")
        name = signal.split(".", 1)[-1].replace("_setpoint", "").replace("_", " ")
        return f"{name} (disturbance)\n[{unit}]"
    unit = units.get(signal, "")
    name = signal.split(".", 1)[-1].replace("_setpoint", "").replace("_", " ")
    return f"{name}\n[{unit}]" if unit else name

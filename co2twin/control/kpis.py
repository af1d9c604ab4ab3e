"""The KPIs every controller of a test case is scored by, computed the same way for each.

They read the recorded run only (and the case's known profiles: set points, price), as
BOPTEST's KPI calculator does, so a controller cannot change how it is measured. What
the plant did counts: a faulted sensor's true value (``signal:true``) is used, never the
reading the controller saw. Plant figures (production, energy, conversion, time outside
limits) come from :func:`co2twin.kpi.kpis`. Per-signal KPIs (tracking, violations, travel)
are mappings ``{signal: value}``; a threshold applies to every entry.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from models.electrochemistry import M_HCOOH

from cosim.profiles import Steps
from ..kpi import kpis as plant_kpis
from ..kpi import limit_rows
from ..scenario_schema import CONTROL_KPIS
from .case import ControlCase

__all__ = ["control_kpis", "score", "Verdict", "kpi_unit", "bound_text", "case_thresholds",
           "SETTLING_BAND"]

#: a set-point step has settled when the value stays within this share of the step
SETTLING_BAND = 0.05


def _values(frame: pd.DataFrame, name: str) -> np.ndarray:
    """What the plant did: the true value of a faulted sensor, else the recorded value."""
    return frame[f"{name}:true" if f"{name}:true" in frame.columns else name].to_numpy(dtype=float)


def _spacing(times: np.ndarray) -> np.ndarray:
    """Seconds each row after the first stands for (the steps ending at it)."""
    return np.diff(times)


def control_kpis(frame: pd.DataFrame, case: ControlCase, *, actuators: Mapping[str, str],
                 compute_s: float | None = None) -> dict[str, Any]:
    """The KPIs of one run of ``case``.

    ``actuators``: actuator input -> the recorded column of its command (see
    :meth:`ControlCase.driven_by`); ``compute_s``: wall-clock seconds the controller spent
    (absent when not measured). A KPI whose signals were not recorded is absent.
    """
    times = frame.index.to_numpy(dtype=float)
    dt = _spacing(times)
    hours = float(times[-1] - times[0]) / 3600.0 if len(times) > 1 else 0.0
    constraints = case.constraints
    base = plant_kpis(frame, {k: list(v) for k, v in constraints.items()})
    out: dict[str, Any] = {}
    if "formate_produced_mol" in base:
        out["production_kg"] = base["formate_produced_mol"] * M_HCOOH / 1000.0
    for key, src in (("specific_energy_kWh_per_kg", "energy_kWh_per_kg_HCOOH"),
                     ("energy_kWh", "energy_kWh"), ("co2_utilisation_pct", "overall_conversion_pct"),
                     ("mean_fe_formate", "mean_fe_formate"),
                     ("grid_cost", "grid_cost_EUR"), ("solar_fraction", "solar_fraction")):
        if src in base:
            out[key] = base[src]
    if case.spec.price is not None and "reactor.energy" in frame.columns and len(times) > 1:
        # the energy of each step at the price that held over it (the price at its start)
        price = case.profile("price")
        step_energy = np.diff(frame["reactor.energy"].to_numpy(dtype=float))
        out["energy_cost"] = float(np.sum(step_energy * np.array([price.value(t) for t in times[:-1]])))
    if constraints:
        outside = base.get("outside_limits", {})
        out["time_outside_s"] = float(sum(outside.values()))
        out["integral_outside"] = _violations(frame, constraints, dt)
    if case.spec.setpoints:
        out.update(_tracking(frame, case, times, dt))
    travel = {a: float(np.sum(np.abs(np.diff(frame[col].to_numpy(dtype=float)))))
              for a, col in actuators.items() if col in frame.columns}
    if travel:
        out["actuator_travel"] = travel
    if compute_s is not None and hours > 0:
        out["compute_ms_per_h"] = compute_s * 1000.0 / hours
    return out


def _violations(frame: pd.DataFrame, constraints: Mapping[str, tuple[float | None, float | None]],
                dt: np.ndarray) -> dict[str, float]:
    """Integral over time of how far each constrained signal was outside its limits (not
    where it is undefined: FE at 0 A, as :func:`co2twin.kpi.limit_rows` judges)."""
    out: dict[str, float] = {}
    for signal, (low, high) in constraints.items():
        if signal not in frame.columns:
            continue
        y = _values(frame, signal)[1:]
        excess = np.zeros_like(y)
        if high is not None:
            excess += np.maximum(y - high, 0.0)
        if low is not None:
            excess += np.maximum(low - y, 0.0)
        undefined = limit_rows(frame, signal, low, high)[1][1:]
        out[signal] = float(np.sum(np.where(undefined, 0.0, excess) * dt))
    return out


def _tracking(frame: pd.DataFrame, case: ControlCase, times: np.ndarray,
              dt: np.ndarray) -> dict[str, Any]:
    """IAE and ISE against each planned set point; overshoot and settling time of its steps."""
    iae: dict[str, float] = {}
    ise: dict[str, float] = {}
    overshoot: dict[str, float] = {}
    settling: dict[str, float] = {}
    for signal in case.spec.setpoints:
        if signal not in frame.columns:
            continue
        profile = case.profile(signal)
        r = np.array([profile.value(t) for t in times])
        y = _values(frame, signal)
        e = (r - y)[1:]
        iae[signal] = float(np.sum(np.abs(e) * dt))
        ise[signal] = float(np.sum(e * e * dt))
        if isinstance(profile, Steps):
            steps = _steps(profile, times, _disturbance_times(case))
            if steps:
                found = [_step_response(times, y, *step) for step in steps]
                overshoot[signal] = max(o for o, _ in found)
                settling[signal] = max(s for _, s in found)
    out: dict[str, Any] = {"tracking_iae": iae, "tracking_ise": ise}
    if overshoot:
        out["overshoot_pct"] = overshoot
        out["settling_time_s"] = settling
    return out


def _disturbance_times(case: ControlCase) -> list[float]:
    """When the case's disturbances start: their events' times (inputs vary all along)."""
    events = case.scenario.events
    return sorted(events[i].at for d in case.spec.disturbances.values() for i in d.events
                  if i < len(events))


def _steps(profile: Steps, times: np.ndarray,
           disturbances: list[float]) -> list[tuple[float, float, float, float]]:
    """``(time, from, to, end of its window)`` of each change of a steps profile inside the
    run; a window ends at the next change or the next disturbance, whichever comes first."""
    points = [(t, v) for t, v in profile.points if times[0] < t < times[-1]]
    out = []
    for i, (t, v) in enumerate(points):
        before = profile.value(t - 1e-9 * max(1.0, abs(t)))
        end = points[i + 1][0] if i + 1 < len(points) else float(times[-1])
        end = min([end] + [d for d in disturbances if d > t])
        if v != before:
            out.append((t, before, v, end))
    return out


def _step_response(times: np.ndarray, y: np.ndarray, t0: float, r0: float, r1: float,
                   end: float) -> tuple[float, float]:
    """Overshoot (% of the step) and settling time (s) of the response to one set-point step."""
    inside = (times > t0) & (times <= end)
    ty, yy = times[inside], y[inside]
    size = r1 - r0
    if len(yy) == 0:
        return 0.0, 0.0
    overshoot = max(0.0, float(np.max((yy - r1) * np.sign(size)))) / abs(size) * 100.0
    out_of_band = np.nonzero(np.abs(yy - r1) > SETTLING_BAND * abs(size))[0]
    if len(out_of_band) == 0:
        return overshoot, 0.0
    last = out_of_band[-1]
    # settled at the first row after the last one outside the band; never: the window's length
    settled = ty[last + 1] if last + 1 < len(ty) else end
    return overshoot, float(settled - t0)


@dataclass(frozen=True)
class Verdict:
    """One threshold checked: the KPI (and signal, for per-signal KPIs), value, bounds, result."""

    kpi: str
    key: str | None
    value: float | None
    min: float | None
    max: float | None

    @property
    def ok(self) -> bool:
        if self.value is None or not np.isfinite(self.value):
            return False
        return (self.min is None or self.value >= self.min) and (self.max is None or self.value <= self.max)

    @property
    def label(self) -> str:
        return self.kpi if self.key is None else f"{self.kpi}[{self.key}]"

    @property
    def bound_text(self) -> str:
        return bound_text(self.min, self.max)


def bound_text(low: float | None, high: float | None) -> str:
    """``>= low``, ``<= high``, or both joined by "and" (an open side is left out)."""
    parts = []
    if low is not None:
        parts.append(f">= {low:g}")
    if high is not None:
        parts.append(f"<= {high:g}")
    return " and ".join(parts)


def score(figures: Mapping[str, Any], case: ControlCase) -> list[Verdict]:
    """Each threshold of the case against the figures; a KPI that is absent fails."""
    verdicts = []
    for kpi, bound in case.spec.kpis.items():
        value = figures.get(kpi)
        if isinstance(value, Mapping):
            if not value:
                verdicts.append(Verdict(kpi, None, None, bound.min, bound.max))
            for key, v in value.items():
                verdicts.append(Verdict(kpi, key, float(v), bound.min, bound.max))
        else:
            verdicts.append(Verdict(kpi, None, None if value is None else float(value),
                                    bound.min, bound.max))
    return verdicts


def case_thresholds(case: ControlCase) -> list[tuple[str, str | None, str, str]]:
    """``(kpi, signal, threshold, unit)`` of each threshold of ``case``, known before any run. A
    per-signal KPI (tracking, step response, violations, travel) gives one row per signal (else
    ``signal`` is None), its unit resolved by :func:`kpi_unit` as a run's rows resolve theirs."""
    spec = case.spec
    setpoints = list(spec.setpoints)
    signals = {**dict.fromkeys(("tracking_iae", "tracking_ise", "overshoot_pct", "settling_time_s"),
                               setpoints),
               "integral_outside": list(spec.constraints), "actuator_travel": case.actuators}
    units = case.units()
    rows: list[tuple[str, str | None, str, str]] = []
    for kpi, bound in spec.kpis.items():
        keys: list[str | None] = list(signals.get(kpi, [])) or [None]
        for key in keys:
            rows.append((kpi, key, bound_text(bound.min, bound.max), kpi_unit(kpi, key, units)))
    return rows


def kpi_unit(kpi: str, key: str | None, units: Mapping[str, str]) -> str:
    """The unit of a KPI value (``units``: signal -> unit, for per-signal KPIs)."""
    unit = CONTROL_KPIS[kpi][0]
    if key is None or "unit" not in unit:
        return unit
    return unit.replace("unit", units.get(key, "?"))

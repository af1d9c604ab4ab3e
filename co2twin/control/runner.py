"""Run a test case with a controller and score it; compare controllers on the same case.

``run_case(case, controller)`` is the one call: the command line (``co2twin control``)
only wraps it. Every run of a case has the same scenario, disturbances and seed; only
the controller (the component named ``controller``) differs.
"""
from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..scenario import build
from .case import CONTROLLER_NAME, ControlCase, load_case
from .kpis import Verdict, control_kpis, kpi_unit, score
from .mpc import MPC, MPC_NAME

__all__ = ["ControlResult", "run_case", "compare"]


@dataclass
class ControlResult:
    """One controller's run of a case: the recorded frame, the KPIs and the verdicts."""

    case: ControlCase
    controller: str
    frame: pd.DataFrame
    kpis: dict[str, Any]
    verdicts: list[Verdict]
    #: actuator input -> the recorded column of its command
    actuators: dict[str, str]
    #: signal -> unit, for every recorded column
    units: dict[str, str] = field(default_factory=dict)
    wall_s: float = 0.0
    #: warnings the run gave (model envelopes), one line each
    warnings: list[str] = field(default_factory=list)
    #: what an optimising controller did (the MPC: moves, solves, model runs, ms per move,
    #: and ``ranges``: the range each actuator moved in and where it came from)
    solver: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Every threshold of the case met."""
        return all(v.ok for v in self.verdicts)

    def rows(self) -> list[tuple[str, float | None, str]]:
        """``(label, value, unit)`` of every KPI, per-signal ones one row per signal."""
        out: list[tuple[str, float | None, str]] = []
        for kpi, value in self.kpis.items():
            if isinstance(value, dict):
                out += [(f"{kpi}[{k}]", float(v), kpi_unit(kpi, k, self.units)) for k, v in value.items()]
            else:
                out.append((kpi, None if value is None else float(value), kpi_unit(kpi, None, self.units)))
        return out


def run_case(case: ControlCase | str | Path, controller: Any) -> ControlResult:
    """Run ``case`` with ``controller`` and score it by the case's KPIs and thresholds.

    ``controller``: a name shipped with the case, a YAML file with one controller spec,
    ``module:Class``, a spec, or a class or object with ``initialise(t0)`` and
    ``step(t, measurements) -> actions`` (see :meth:`ControlCase.controller`); or
    ``"mpc"`` (unless the case ships a controller of that name), or an :class:`MPC`:
    the oracle MPC, run by the host loop of :func:`_run_mpc`.
    """
    if not isinstance(case, ControlCase):
        case = load_case(case)
    if isinstance(controller, str) and controller == MPC_NAME and MPC_NAME not in case.spec.controllers:
        controller = MPC()
    if isinstance(controller, MPC):
        return _run_mpc(case, controller)
    label, scenario = case.scenario_for(controller)
    sim = build(scenario)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = sim.run(scenario.end, progress=False)
    wall = time.perf_counter() - start
    component = sim.components[CONTROLLER_NAME]
    compute = getattr(component, "compute_seconds", None)
    return _result(case, label, sim, frame, compute, wall, caught)


def _run_mpc(case: ControlCase, mpc: MPC) -> ControlResult:
    """The host loop of the oracle MPC: the case built with its actuators free; at each move
    the plant's checkpoint goes to ``mpc.plan`` and its actions to the plant's actuators."""
    scenario = case.scenario
    sim = case.build()
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mpc.prepare(case)
        sim.initialize()
        while sim.time < scenario.end - 1e-9 * max(1.0, abs(scenario.end)):
            t = sim.time
            for actuator, value in mpc.plan(t, sim.get_state()).items():
                sim.set(actuator, value)
            sim.advance_to(min(t + mpc.move, scenario.end), progress=False)
        frame = sim.results()
    wall = time.perf_counter() - start
    result = _result(case, MPC_NAME, sim, frame, mpc.compute_seconds, wall, caught)
    result.solver = mpc.stats()
    return result


def _result(case: ControlCase, label: str, sim: Any, frame: pd.DataFrame, compute: float | None,
            wall: float, caught: list[warnings.WarningMessage]) -> ControlResult:
    """Score a finished run of ``case``."""
    scenario = case.scenario
    frame.attrs["scenario"] = {"name": scenario.name, "source": scenario.source,
                               "seed": scenario.seed, "step_s": scenario.step,
                               "duration_s": scenario.duration}
    actuators = case.driven_by(sim)
    figures = control_kpis(frame, case, actuators=actuators, compute_s=compute)
    units = {**frame.attrs.get("units", {}), **{a: sim.unit(a) for a in actuators}}
    seen: list[str] = []
    for w in caught:
        text = str(w.message)
        if text not in seen:
            seen.append(text)
    return ControlResult(case, label, frame, figures, score(figures, case), actuators, units,
                         wall, seen)


def compare(case: ControlCase | str | Path, controllers: Sequence[Any]) -> list[ControlResult]:
    """Run ``case`` with each controller (same scenario, disturbances and seed)."""
    if not isinstance(case, ControlCase):
        case = load_case(case)
    return [run_case(case, c) for c in controllers]

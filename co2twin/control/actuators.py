"""The range a controller may move an actuator in, and where each of its ends comes from.

One rule for every optimising or learning controller that needs a box for its actuators
(the oracle MPC's ``bounds``, the Gymnasium environment's action space), so that both plan
only where the plant can go and the twin is valid:

1. ``given`` (the caller's own bounds): taken as they are, within the input port's bounds;
2. otherwise the port's bounds, narrowed by
   * the case's own controllers' ``limits:`` (the widest they give, per end: what the
     case's authors allow that actuator),
   * the plant's rating of the actuator (the power supply's ``max_current``, a pump's
     ``pump_max``, the two gas flow controllers' full scales),
   * the surrogates' training envelope of the reactor input it sets (every model that takes
     that input; the current through the current density and the cell's area).

Each end keeps the source that set it (the first of the list above when two agree), so a
run can say which range it used and why (:meth:`ActuatorRange.text`).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from models import electrochemistry as ec

from components.feed import Feed
from components.power import PowerSupply
from components.reactor import Reactor

from cosim.errors import ScenarioError
from cosim.simulation import Simulation
from ..controllers import actuator_target
from ..scenario_schema import OnOffSpec, OpenLoopSpec, PidSpec, RatioSpec
from ..supply import CURRENT_REQUEST
from .case import ControlCase

__all__ = ["ActuatorRange", "actuator_range"]

#: actuators whose value becomes the cell current (the power supply's set point, or the
#: request an energy manager passes on to it)
_CURRENT = ("power.current_setpoint", CURRENT_REQUEST)
#: the feed's set points that the reactor reads under the same name (minus ``_setpoint``)
_FEED_SIGNALS = ("gas_flow", "co2_fraction", "anolyte_flow", "catholyte_flow", "anolyte_conc",
                 "catholyte_conc", "humidity")


@dataclass(frozen=True)
class ActuatorRange:
    """``[low, high]`` of ``actuator`` in ``unit``; ``low_from``/``high_from`` say what set each end."""

    actuator: str
    low: float
    high: float
    unit: str
    low_from: str
    high_from: str

    def text(self) -> str:
        """E.g. ``power.current_setpoint in [0, 9.372] A (low: port; high: surrogates' envelope ...)``."""
        return (f"{self.actuator} in [{self.low:.4g}, {self.high:.4g}] {self.unit} "
                f"(low: {self.low_from}; high: {self.high_from})")

    def as_dict(self) -> dict[str, float | str]:
        """The range as plain data (for ``--json``)."""
        return {"low": self.low, "high": self.high, "unit": self.unit,
                "low_from": self.low_from, "high_from": self.high_from}


def actuator_range(case: ControlCase, sim: Simulation, actuator: str,
                   given: Sequence[float] | None = None, *, what: str = "bounds") -> ActuatorRange:
    """The range ``actuator`` (``component.port``) may move in on ``sim`` (the case's
    simulation, built): the module's rule. ``given`` overrides all but the port's bounds;
    ``what`` names the caller's setting in the error raised when no finite range is left
    (e.g. ``"MPC bounds"``, ``"EnvConfig.action_bounds"``)."""
    port = sim.port(actuator)
    low, high = float(port.lower), float(port.upper)
    low_from = high_from = f"port {port.bounds_text()}"
    if given is not None:
        g_low, g_high = (float(v) for v in given)
        # a given range replaces the port's at each end it stays within
        if g_low >= low:
            low, low_from = g_low, "given"
        if g_high <= high:
            high, high_from = g_high, "given"
    else:
        for lo, hi, source in (_case_limits(case, actuator), _rating(sim, actuator),
                               _envelope(sim, actuator)):
            if lo is not None and lo > low:
                low, low_from = lo, source
            if hi is not None and hi < high:
                high, high_from = hi, source
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ScenarioError(f"{what} of {actuator}: expected a finite range low < high within "
                            f"{port.bounds_text()}, found [{low:g}, {high:g}] {port.unit} (low: "
                            f"{low_from}; high: {high_from}); give the range explicitly", case.source)
    return ActuatorRange(actuator, low, high, port.unit, low_from, high_from)


def _case_limits(case: ControlCase, actuator: str) -> tuple[float | None, float | None, str]:
    """The widest ``limits:`` the case's own controllers give ``actuator``, per end (an end
    any of them leaves open stays open)."""
    lows: list[float | None] = []
    highs: list[float | None] = []
    names = []
    for name, spec in case.spec.controllers.items():
        if not isinstance(spec, (PidSpec, RatioSpec, OnOffSpec, OpenLoopSpec)):
            continue
        limits = getattr(spec, "limits", None)
        if limits is None or actuator_target(spec.actuator, case.scenario.has_plant) != actuator:
            continue
        if limits.low is None and limits.high is None:
            continue
        lows.append(limits.low)
        highs.append(limits.high)
        names.append(name)
    low = None if not lows or None in lows else min(v for v in lows if v is not None)
    high = None if not highs or None in highs else max(v for v in highs if v is not None)
    return low, high, f"the case's controllers' limits ({', '.join(names)})"


def _rating(sim: Simulation, actuator: str) -> tuple[float | None, float | None, str]:
    """The largest value the plant's equipment delivers for ``actuator`` (its rating)."""
    for name, comp in sim.components.items():
        if actuator in _CURRENT and isinstance(comp, PowerSupply):
            return None, float(comp.p.max_current), f"{name}.max_current (rated current)"
        if isinstance(comp, Feed) and actuator.startswith(f"{name}."):
            port = actuator.partition(".")[2]
            if port in ("anolyte_flow_setpoint", "catholyte_flow_setpoint"):
                return None, float(comp.p.pump_max), f"{name}.pump_max (pump full scale)"
            if port == "gas_flow_setpoint":
                return (None, float(comp.p.co2_mfc_max + comp.p.n2_mfc_max),
                        f"{name}.co2_mfc_max + n2_mfc_max (gas flow controllers' full scales)")
    return None, None, ""


def _envelope(sim: Simulation, actuator: str) -> tuple[float | None, float | None, str]:
    """The training envelope of the surrogates for the reactor input ``actuator`` sets, in
    the actuator's unit: the narrowest over every model that takes that input."""
    reactor = next((c for c in sim.components.values() if isinstance(c, Reactor)), None)
    if reactor is None or reactor.models is None:
        return None, None, ""
    port = actuator.partition(".")[2]
    if actuator in _CURRENT:
        area = float(reactor.p.area_cm2)
        signal, per_unit = "current_density", ec.current_density(1.0, area)
        how = f" at {area:g} cm2"
    elif actuator.startswith("feed.") and port.removesuffix("_setpoint") in _FEED_SIGNALS:
        signal, per_unit, how = port.removesuffix("_setpoint"), 1.0, ""
    else:
        return None, None, ""
    low, high = -math.inf, math.inf
    for s in reactor.models.surrogates.values():
        if s.lower is None or s.upper is None or signal not in s.inputs:
            continue
        i = s.inputs.index(signal)
        low, high = max(low, float(s.lower[i])), min(high, float(s.upper[i]))
    if not (math.isfinite(low) or math.isfinite(high)):
        return None, None, ""
    unit = reactor.output_port(signal).unit if signal == "current_density" else \
        reactor.input_port(signal).unit
    source = (f"the surrogates' training envelope ({signal} in [{low:.4g}, {high:.4g}] {unit}"
              f"{how})")
    return (low / per_unit if math.isfinite(low) else None,
            high / per_unit if math.isfinite(high) else None, source)

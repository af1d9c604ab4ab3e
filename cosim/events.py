"""Scenario events: things that happen at a given time during a run.

Each event applies itself to a running :class:`~cosim.simulation.Simulation`
and returns a one-line description, which the simulation keeps in its event
log (and the recorder writes beside the results). Plant-specific faults such
as a pump stopping are parameter changes; sensor faults act on measured
output signals and live in the engine because they are about what is seen, not
about the physics.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from .profiles import Constant, Profile, Ramp, Shifted


class Simulation(Protocol):
    """What an event may do to the simulation it is applied to (a :class:`cosim.Simulation`).

    A protocol rather than an import, so that ``simulation`` (which applies events)
    and ``events`` do not import each other.
    """

    @property
    def time(self) -> float: ...

    def get(self, signal: str) -> Any: ...

    def drive(self, signal: str, profile: Profile) -> None: ...

    def set_parameter(self, target: str, value: float) -> float: ...

    def sensor_fault(self, signal: str, mode: str, *, rate: float = 0.0, offset: float = 0.0,
                     std: float = 0.0) -> None: ...

__all__ = [
    "Event",
    "SetInput",
    "RampInput",
    "SwitchProfile",
    "SetParameter",
    "SensorFault",
]


@dataclass(frozen=True)
class Event:
    """Something applied at time ``at`` (seconds), before the step starting then."""

    at: float

    def apply(self, sim: Simulation) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class SetInput(Event):
    """Hold input ``target`` (``component.port``) at ``value`` from now on."""

    target: str
    value: float

    def apply(self, sim: Simulation) -> str:
        sim.drive(self.target, Constant(self.value))
        return f"set {self.target} = {self.value:g}"


@dataclass(frozen=True)
class RampInput(Event):
    """Move input ``target`` linearly from its present value to ``to`` over ``duration`` s."""

    target: str
    to: float
    duration: float

    def apply(self, sim: Simulation) -> str:
        now = sim.time
        initial = sim.get(self.target)
        sim.drive(self.target, Ramp(initial, self.to, now, self.duration))
        return f"ramp {self.target} {initial:g} -> {self.to:g} over {self.duration:g} s"


@dataclass(frozen=True)
class SwitchProfile(Event):
    """Drive input ``target`` by ``profile``, whose time 0 is the event time."""

    target: str
    profile: Profile
    label: str = "profile"

    def apply(self, sim: Simulation) -> str:
        sim.drive(self.target, Shifted(self.profile, sim.time))
        return f"switch {self.target} to {self.label}"


@dataclass(frozen=True)
class SetParameter(Event):
    """Change tunable parameter ``target`` (``component.parameter``) to ``value``."""

    target: str
    value: float
    label: str = ""

    def apply(self, sim: Simulation) -> str:
        old = sim.set_parameter(self.target, self.value)
        text = f"{self.target}: {old:g} -> {self.value:g}"
        return f"{self.label} ({text})" if self.label else f"set {text}"


@dataclass(frozen=True)
class SensorFault(Event):
    """A fault of the sensor behind measured output ``target``.

    ``mode``: ``drift`` (adds ``rate`` units per second since the fault),
    ``bias`` (adds ``offset``), ``freeze`` (holds the reading at the fault time),
    ``noise`` (adds Gaussian noise of standard deviation ``std`` from the
    simulation's seeded generator) or ``clear`` (the sensor reads true again).
    """

    target: str
    mode: str
    rate: float = 0.0
    offset: float = 0.0
    std: float = 0.0

    MODES = ("drift", "bias", "freeze", "noise", "clear")

    def __post_init__(self) -> None:
        if self.mode not in self.MODES:
            raise ValueError(
                f"sensor fault mode must be one of {', '.join(self.MODES)}, found {self.mode!r}"
            )

    def apply(self, sim: Simulation) -> str:
        sim.sensor_fault(self.target, self.mode, rate=self.rate, offset=self.offset, std=self.std)
        detail = {
            "drift": f" at {self.rate:g} per s",
            "bias": f" by {self.offset:g}",
            "noise": f" with std {self.std:g}",
        }.get(self.mode, "")
        return f"sensor {self.target}: {self.mode}{detail}"

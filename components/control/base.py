"""What every controller shares: ports typed for the signals it is wired to, its own sample
time, the output held between samples, and the wall-clock time it spends computing.

A controller is a plain :class:`cosim.Component`. Its ports are declared once on the class
with placeholder units; :meth:`Controller.typed` makes the subclass for one wiring, whose
ports carry the units and bounds of the measured signal and of the actuator (units must
match exactly at a connection, and the engine reads port declarations from the class).
"""
from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from cosim import Component, Parameter, Port, WiringError
from cosim.units import UNITS

__all__ = ["Controller", "Role", "rate_limited", "rate_unit"]

#: role name -> (unit, lower, upper): what a port or parameter of that role takes
Role = tuple[str, float, float]


def rate_unit(unit: str) -> str:
    """The unit of a rate of change of ``unit`` per second, where the unit table has one.

    ``A`` -> ``A/s``; a unit without a per-second form gives ``1`` (the parameter's
    description then states the unit in words).
    """
    candidate = f"{unit}/s"
    return candidate if candidate in UNITS else "1"


def rate_limited(max_rate: Any) -> bool:
    """Whether a rate limit applies: a finite ``max_rate``; an ensemble's array always (an
    infinite rate leaves its variant's output as it is)."""
    return isinstance(max_rate, np.ndarray) or math.isfinite(max_rate)


class Controller(Component):
    """Base class of the controllers: typed ports, sampling, held output, compute time.

    Subclasses implement :meth:`sample` (one control computation at a sample instant)
    and declare ``roles``: port or parameter name -> role (``measurement``, ``output``,
    ``feedforward``); :meth:`typed` gives ports and parameters of a role the unit and
    bounds of the signal playing it. Outputs listed in ``unbounded`` take the unit but
    keep infinite bounds (an error signal can be of either sign).

    Between samples (and at the engine's start-time evaluation, ``dt == 0``, before the
    first sample) the outputs hold: at first the ``output`` port's start value, which
    :meth:`typed` sets to the actuator's own start value, so the plant starts where it
    would have started without the controller.
    """

    roles: ClassVar[Mapping[str, str]] = {}
    #: the shipped controllers compute with the namespace of their inputs (floats, or arrays of
    #: an ensemble's variants); a user's Python controller does not say so and is refused there
    supports_arrays: ClassVar[bool] = True
    unbounded: ClassVar[frozenset[str]] = frozenset()
    #: role -> (unit, lower, upper) this class was typed for (empty on the generic class)
    typing: ClassVar[Mapping[str, Role]] = {}
    state_names: ClassVar[tuple[str, ...]] = ("_held", "_next", "_last")

    def __init__(self, **params: float) -> None:
        super().__init__(**params)
        #: wall-clock seconds spent in :meth:`step` since construction (not part of the state:
        #: a rollback does not give computing time back)
        self.compute_seconds = 0.0

    # -- typing ----------------------------------------------------------------------------
    @classmethod
    def typed(cls, **roles: Role) -> type[Controller]:
        """The subclass whose ports and parameters of each role take ``(unit, lower, upper)``.

        ``PID.typed(measurement=("mol/L", 0, 30), output=("A", 0, 1000, 5.0))`` -- an
        ``output`` role may carry a fourth item, the start value of the actuator.
        """
        unknown = sorted(set(roles) - set(cls.roles.values()))
        if unknown:
            raise WiringError(f"{cls.__name__}.typed: unknown role(s) {', '.join(unknown)}; "
                              f"roles: {', '.join(sorted(set(cls.roles.values())))}")
        frozen = tuple(sorted((k, tuple(v)) for k, v in roles.items()))
        key = (cls, frozen)
        if key not in _TYPED:  # one class per base class and typing, as for a unit table
            _TYPED[key] = _typed(cls, frozen)
        return _TYPED[key]

    # -- contract --------------------------------------------------------------------------
    def initialize(self, t0: float) -> None:
        self._held: dict[str, Any] = {p.name: p.start for p in self.outputs}
        self._next = t0
        self._last: float | None = None
        self.reset()

    def reset(self) -> None:
        """Reset the controller's own state (integrator, filters) for a new run."""

    def step(self, t: float, dt: float, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Sample at the instants of the sample time (every step when it is 0); hold between."""
        if dt <= 0.0 or t < self._next - 1e-9 * max(1.0, abs(t)):
            return dict(self._held)
        start = time.perf_counter()
        period = self.sample_period(dt)
        since = period if self._last is None else t - self._last
        out = self.sample(t, period, since, inputs)
        self._held = out
        self._last = t
        self._next = self._next_sample(t, period)
        self.compute_seconds += time.perf_counter() - start
        return dict(out)

    def sample_period(self, dt: float) -> float:
        """Seconds from one sample to the next: the ``sample_time`` parameter, else the step."""
        ts = getattr(self.p, "sample_time", 0.0)
        return ts if ts > 0.0 else dt

    def _next_sample(self, t: float, period: float) -> float:
        # the next instant of the sample grid after t, which may not fall on a step: the
        # controller then samples at the first step at or after it
        nxt = self._next + period
        while nxt <= t + 1e-9 * max(1.0, abs(t)):
            nxt += period
        return nxt

    def sample(self, t: float, period: float, since: float, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """One control computation at sample instant ``t``.

        ``period`` is the time until the next sample (the output holds that long),
        ``since`` the time since the previous one (``period`` at the first sample).
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement sample()")


#: typed classes made so far: the same typing gives the same class (classes never change)
_TYPED: dict[tuple[type, tuple[tuple[str, tuple[Any, ...]], ...]], type[Controller]] = {}


def _typed(cls: type[Controller], roles: tuple[tuple[str, tuple[Any, ...]], ...]) -> type[Controller]:
    """The subclass of ``cls`` whose ports and parameters of each role take that role's unit."""
    spec: dict[str, tuple[Any, ...]] = dict(roles)
    typing: dict[str, Role] = {}
    for role, values in spec.items():
        if len(values) not in (3, 4) or not isinstance(values[0], str):
            raise WiringError(f"{cls.__name__}.typed: role {role} needs (unit, lower, upper[, start]), "
                              f"found {values!r}")
        typing[role] = (values[0], float(values[1]), float(values[2]))

    def port(p: Port) -> Port:
        role = cls.roles.get(p.name)
        if role not in spec:
            return p
        unit, lower, upper = typing[role]
        if p.name in cls.unbounded:
            lower, upper = -math.inf, math.inf
        start = spec[role][3] if len(spec[role]) == 4 else p.start
        start = min(max(start, lower), upper)
        try:
            return dataclasses.replace(p, unit=unit, lower=lower, upper=upper, start=start)
        except ValueError as exc:
            raise WiringError(f"{cls.__name__}.{p.name}: {exc}") from None

    def parameter(p: Parameter) -> Parameter:
        role = cls.roles.get(p.name)
        if role not in spec:
            return p
        unit, lower, upper = typing[role]
        if p.name.startswith("max_rate"):
            unit = rate_unit(unit)
            return dataclasses.replace(p, unit=unit)
        if p.name in cls.unbounded:
            return dataclasses.replace(p, unit=unit)
        default = p.default
        if p.name == "out_min":
            default = lower if math.isfinite(lower) else p.default
        elif p.name == "out_max":
            default = upper if math.isfinite(upper) else p.default
        default = min(max(default, lower), upper)
        return dataclasses.replace(p, unit=unit, lower=lower, upper=upper, default=default)

    described = ", ".join(f"{r} in {u}" for r, (u, _, _) in sorted(typing.items()))
    attrs = {
        "inputs": tuple(port(p) for p in cls.inputs),
        "outputs": tuple(port(p) for p in cls.outputs),
        "parameters": tuple(parameter(p) for p in cls.parameters),
        "typing": typing,
        "__doc__": f"{cls.__name__} typed for {described}.\n\n{cls.__doc__ or ''}",
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
    }
    return type(cls.__name__, (cls,), attrs)

"""Port and parameter declarations: the one description of what a component exchanges.

Scenario validation, recorder columns, the JSON Schema and (later) the FMU model
description are all derived from these declarations.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .units import check_unit

__all__ = ["Port", "Parameter"]


@dataclass(frozen=True)
class Port:
    """A scalar signal a component reads or writes.

    Parameters
    ----------
    name: identifier, unique among the component's ports of the same direction.
    unit: one of :data:`cosim.units.UNITS`.
    lower, upper: physical bounds; scenario values outside them are rejected.
    description: one line for humans (tables, FMU, JSON Schema).
    start: value before anything is computed or when an input is left unconnected.
    measured: on an output, the signal is a sensor reading, so sensor faults may
        act on it; on an input, the input reads a sensor and so sees a faulty
        reading. Inputs that are not ``measured`` always get the true value.
    """

    name: str
    unit: str
    lower: float = -math.inf
    upper: float = math.inf
    description: str = ""
    start: float = 0.0
    measured: bool = False

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"port name {self.name!r} is not a Python identifier")
        check_unit(self.unit, f"port {self.name!r}")
        if not self.lower <= self.upper:
            raise ValueError(
                f"port {self.name!r}: lower bound {self.lower} exceeds upper bound {self.upper}"
            )
        if not self.lower <= self.start <= self.upper:
            raise ValueError(
                f"port {self.name!r}: start {self.start} outside [{self.lower}, {self.upper}]"
            )

    def bounds_text(self) -> str:
        """Human-readable interval, e.g. ``[0, 300] A``."""
        return _bounds_text(self.lower, self.upper, self.unit)

    def contains(self, value: float) -> bool:
        """True when ``value`` is finite and within the bounds."""
        return _contains(self.lower, self.upper, value)


@dataclass(frozen=True)
class Parameter:
    """A named constant of a component, with unit, bounds and default.

    ``tunable`` parameters may change during a run (faults and operator
    actions are parameter changes); the others are fixed once initialised.
    """

    name: str
    default: float
    unit: str
    description: str = ""
    lower: float = -math.inf
    upper: float = math.inf
    tunable: bool = False

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"parameter name {self.name!r} is not a Python identifier")
        check_unit(self.unit, f"parameter {self.name!r}")
        if not (self.lower <= self.default <= self.upper):
            raise ValueError(
                f"parameter {self.name!r}: default {self.default} outside "
                f"[{self.lower}, {self.upper}]"
            )

    def bounds_text(self) -> str:
        """Human-readable interval, e.g. ``[0, 1] 1``."""
        return _bounds_text(self.lower, self.upper, self.unit)

    def contains(self, value: float) -> bool:
        """True when ``value`` is finite and within the bounds."""
        return _contains(self.lower, self.upper, value)


# Port and Parameter share these two through functions, not by borrowing each other's
# methods, so that each class's methods are typed with its own ``self``.
def _bounds_text(lower: float, upper: float, unit: str) -> str:
    return f"[{_fmt(lower)}, {_fmt(upper)}] {unit}"


def _contains(lower: float, upper: float, value: float) -> bool:
    return math.isfinite(value) and lower <= value <= upper


def _fmt(x: float) -> str:
    if math.isinf(x):
        return "-inf" if x < 0 else "inf"
    return f"{x:g}"

"""Power supply: a galvanostat with current limit, slew rate and compliance voltage."""
from __future__ import annotations

import math
from typing import Any, ClassVar
from collections.abc import Mapping, Sequence

import numpy as np

from cosim import Component, Parameter, Port

__all__ = ["PowerSupply"]

#: the outputs in the order :meth:`PowerSupply._step_floats` returns them (checked in the class)
_OUTPUT_NAMES = ("current", "voltage_limited", "current_limited", "slew_limited")


class PowerSupply(Component):
    """Delivers the current set point within its limits.

    The current follows the set point at most ``slew_rate`` A/s, never above
    ``max_current``. When the cell voltage (fed back, one step delayed) exceeds
    ``max_voltage`` the supply enters compliance and scales the current down by
    ``max_voltage / voltage``; ``voltage_limited`` records that it did.
    ``current_limited`` is 1 while the set point is above the rated current,
    ``slew_limited`` while the slew rate keeps the current from its target.
    ``output_enabled`` = 0 (a trip) drops the current to zero at once.
    """

    inputs = (
        Port("current_setpoint", "A", 0.0, 1000.0, "current asked for", start=5.0),
        Port("cell_voltage", "V", 0.0, 100.0, "voltage sense (feedback)", start=0.0, measured=True),
    )
    outputs = (
        Port("current", "A", 0.0, 1000.0, "current delivered to the cell", start=0.0, measured=True),
        Port("voltage_limited", "1", 0.0, 1.0, "1 while the compliance voltage limits current"),
        Port("current_limited", "1", 0.0, 1.0, "1 while the set point is above the rated current"),
        Port("slew_limited", "1", 0.0, 1.0, "1 while the slew rate keeps the current from its target"),
    )
    parameters = (
        Parameter("max_current", 50.0, "A", "rated current", 0.0, 1000.0),
        Parameter("max_voltage", 6.0, "V", "compliance voltage", 0.0, 100.0, tunable=True),
        Parameter("slew_rate", 10.0, "A/s", "largest change of current per second", 0.0, math.inf),
        Parameter("output_enabled", 1.0, "1", "0 trips the output", 0.0, 1.0, tunable=True),
    )
    state_names = ("_current",)
    #: steps arrays of variants too (an ensemble, :mod:`co2twin.ensemble`)
    supports_arrays: ClassVar[bool] = True

    def initialize(self, t0: float) -> None:
        self._current: float | None = None

    def step(self, t: float, dt: float, inputs: Mapping[str, Any]) -> dict[str, Any]:
        setpoint, voltage = inputs["current_setpoint"], inputs["cell_voltage"]
        if (type(setpoint) is not float and isinstance(setpoint, np.ndarray)) or (
                type(voltage) is not float and isinstance(voltage, np.ndarray)):
            return self._step_arrays(dt, setpoint, voltage)
        return dict(zip(_OUTPUT_NAMES, self._step_floats(dt, setpoint, voltage), strict=True))

    def step_values(self, t: float, dt: float, values: tuple[Any, ...]) -> Sequence[Any]:
        """:meth:`step` with positional inputs and outputs, the engine's path: on numbers the
        float step's tuple itself (what :meth:`step` puts in its dict), else :meth:`step`."""
        setpoint, voltage = values
        if (type(setpoint) is not float and isinstance(setpoint, np.ndarray)) or (
                type(voltage) is not float and isinstance(voltage, np.ndarray)):
            return super().step_values(t, dt, values)
        return self._step_floats(dt, setpoint, voltage)

    def _step_floats(self, dt: float, setpoint: float, voltage: float) -> tuple[float, ...]:
        """The step on numbers: the outputs in the order of :attr:`outputs`."""
        p = self.p
        # min(a, b) written ``b if b < a else a`` (what it returns) saves its call every step
        max_current = p.max_current
        rated = setpoint > max_current and p.output_enabled > 0.0
        target = (max_current if max_current < setpoint else setpoint) * p.output_enabled
        limited = voltage > p.max_voltage
        previous = target if self._current is None else self._current
        if limited:
            target = min(target, previous * p.max_voltage / voltage)
        slewed = False
        if self._current is None or p.output_enabled == 0.0:
            current = target
        else:
            change = p.slew_rate * dt
            move = target - previous
            move = move if move < change else change  # min(change, move)
            current = previous + (move if move > -change else -change)  # max(-change, move)
            slewed = dt > 0.0 and abs(target - previous) > change
        self._current = current
        return (current, 1.0 if limited else 0.0, 1.0 if rated else 0.0, 1.0 if slewed else 0.0)

    def _step_arrays(self, dt: float, setpoint: Any, voltage: Any) -> dict[str, Any]:
        """:meth:`step` on arrays of variants (an ensemble): the same arithmetic, element-wise,
        each branch of the scalar step a ``where``."""
        p = self.p
        rated = (setpoint > p.max_current) & (np.asarray(p.output_enabled) > 0.0)
        target = np.minimum(setpoint, p.max_current) * p.output_enabled
        limited = voltage > p.max_voltage
        previous = target if self._current is None else self._current
        # where limited, the voltage exceeds max_voltage >= 0: the division is the scalar one
        target = np.where(limited, np.minimum(target, previous * p.max_voltage
                                              / np.maximum(voltage, 1e-300)), target)
        if self._current is None:
            current, slewed = target, np.zeros(np.shape(target), dtype=bool)
        else:
            change = p.slew_rate * dt
            off = np.asarray(p.output_enabled) == 0.0
            current = np.where(off, target,
                               previous + np.maximum(-change, np.minimum(change, target - previous)))
            slewed = ~off & (dt > 0.0) & (np.abs(target - previous) > change)
        self._current = current
        return {"current": current, "voltage_limited": np.where(limited, 1.0, 0.0),
                "current_limited": np.where(rated, 1.0, 0.0), "slew_limited": np.where(slewed, 1.0, 0.0)}


if tuple(port.name for port in PowerSupply.outputs) != _OUTPUT_NAMES:
    raise ImportError(f"components/power.py: _step_floats returns {', '.join(_OUTPUT_NAMES)} in "
                      f"this order; PowerSupply.outputs are {[p.name for p in PowerSupply.outputs]}")

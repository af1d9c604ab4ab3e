"""On/off controller with hysteresis."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cosim import Parameter, Port, WiringError
from models.electrochemistry import namespace

from .base import Controller

__all__ = ["OnOff"]


class OnOff(Controller):
    """Switches its output between ``on_value`` and ``off_value`` around a set point.

    With ``action`` = 1 (on below, e.g. a heater or a base-dosing pump) the output turns
    on when the measurement falls below ``setpoint - hysteresis / 2`` and off when it
    rises above ``setpoint + hysteresis / 2``; in between it keeps its state, so sensor
    noise smaller than the band does not make it chatter. ``action`` = -1 reverses
    this (on above, e.g. a cooler). At the first sample it is on when the measurement
    is on the "on" side of the set point.
    """

    inputs = (
        Port("measurement", "1", description="the measured signal (a sensor reading)", measured=True),
        Port("setpoint", "1", description="middle of the hysteresis band"),
    )
    outputs = (
        Port("output", "1", description="on_value or off_value"),
        Port("on", "1", 0.0, 1.0, "1 while on"),
    )
    parameters = (
        Parameter("hysteresis", 0.0, "1", "width of the band around the set point (measurement units)",
                  0.0, 1e12, tunable=True),
        Parameter("on_value", 1.0, "1", "output while on", tunable=True),
        Parameter("off_value", 0.0, "1", "output while off", tunable=True),
        Parameter("action", 1.0, "1", "1: on below the band; -1: on above it", -1.0, 1.0),
        Parameter("sample_time", 0.0, "s", "time between samples (0: every step)", 0.0, 1e9),
    )
    roles = {"measurement": "measurement", "setpoint": "measurement", "hysteresis": "measurement",
             "output": "output", "on_value": "output", "off_value": "output"}
    unbounded = frozenset({"hysteresis"})
    state_names = Controller.state_names + ("_on",)

    def __init__(self, **params: float) -> None:
        super().__init__(**params)
        if self.p.action not in (1.0, -1.0):
            raise WiringError(f"{type(self).__name__}.action: expected 1 (on below the band) or "
                              f"-1 (on above it), found {self.p.action!r}")

    def reset(self) -> None:
        self._on: Any = None

    def sample(self, t: float, period: float, since: float, inputs: Mapping[str, Any]) -> dict[str, Any]:
        p = self.p
        y, r = inputs["measurement"], inputs["setpoint"]
        xp = namespace(y, r, *vars(p).values())  # a variant may set a parameter
        # distance into the "on" side: positive below the set point for action 1
        depth = (r - y) * p.action
        half = p.hysteresis / 2.0
        keep = depth > 0.0 if self._on is None else self._on
        on = xp.where(depth > half, True, xp.where(depth < -half, False, keep))
        self._on = on
        return {"output": xp.where(on, p.on_value, p.off_value), "on": xp.where(on, 1.0, 0.0)}

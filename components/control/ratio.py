"""Ratio control: an output proportional to a measured (wild) signal."""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from cosim import Parameter, Port, WiringError
from models.electrochemistry import namespace

from .base import Controller, rate_limited

__all__ = ["Ratio"]


class Ratio(Controller):
    """``output = ratio * measurement + bias``, within limits and a rate limit.

    The standard practice here: the anolyte flow follows the cell current (the anode
    consumes hydroxide in proportion to it), so the anolyte's pH holds as the current
    moves, before any pH error appears. ``ratio`` is tunable during a run.
    """

    inputs = (
        Port("measurement", "1", description="the wild signal the output follows (a sensor reading)",
             measured=True),
    )
    outputs = (
        Port("output", "1", description="the control action sent to the actuator"),
        Port("saturated", "1", 0.0, 1.0, "1 while the output is limited (range or rate)"),
    )
    parameters = (
        Parameter("ratio", 1.0, "1", "output per unit of the measurement", -1e12, 1e12, tunable=True),
        Parameter("bias", 0.0, "1", "output at a zero measurement", -math.inf, math.inf, tunable=True),
        Parameter("out_min", -1e15, "1", "lowest output", -math.inf, math.inf, tunable=True),
        Parameter("out_max", 1e15, "1", "highest output", -math.inf, math.inf, tunable=True),
        Parameter("max_rate", math.inf, "1", "largest change of the output per second "
                  "(output units per second)", 0.0, math.inf, tunable=True),
        Parameter("sample_time", 0.0, "s", "time between samples (0: every step)", 0.0, 1e9),
    )
    roles = {"measurement": "measurement", "output": "output", "bias": "output",
             "out_min": "output", "out_max": "output", "max_rate": "output"}
    unbounded = frozenset({"bias"})

    def __init__(self, **params: float) -> None:
        super().__init__(**params)
        if self.p.out_min > self.p.out_max:
            raise WiringError(f"{type(self).__name__}: out_min {self.p.out_min:g} is above "
                              f"out_max {self.p.out_max:g}")

    def sample(self, t: float, period: float, since: float, inputs: Mapping[str, Any]) -> dict[str, Any]:
        p = self.p
        y = inputs["measurement"]
        xp = namespace(y, *vars(p).values())  # a variant may set a parameter
        v = p.ratio * y + p.bias
        u = xp.minimum(xp.maximum(v, p.out_min), p.out_max)
        if rate_limited(p.max_rate):
            previous = self._held["output"]
            move = p.max_rate * since
            u = xp.minimum(xp.maximum(u, previous - move), previous + move)
        return {"output": u, "saturated": xp.where(u != v, 1.0, 0.0)}

"""Open loop: the output follows a planned profile, whatever the plant does."""
from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from cosim import Port

from .base import Controller

__all__ = ["OpenLoop"]


class OpenLoop(Controller):
    """``output = value``: a schedule sent to an actuator, with no feedback.

    The reference every closed loop is compared with; as a controller (rather than an
    input profile) it is scored by the same KPIs, actuator travel included. Its input
    is a known profile, not a measurement, so it is applied from the very start.
    """

    inputs = (Port("value", "1", description="the planned output (a profile)"),)
    outputs = (Port("output", "1", description="the control action sent to the actuator"),)
    roles = {"value": "output", "output": "output"}

    def step(self, t: float, dt: float, inputs: Mapping[str, Any]) -> dict[str, Any]:
        start = time.perf_counter()
        out = {"output": inputs["value"]}
        self._held = out
        self.compute_seconds += time.perf_counter() - start
        return dict(out)

    def sample(self, t: float, period: float, since: float, inputs: Mapping[str, Any]) -> dict[str, Any]:
        return {"output": inputs["value"]}

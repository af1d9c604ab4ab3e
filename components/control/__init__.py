"""Controllers as components: plain :class:`cosim.Component` classes, wired like the plant.

They read measured signals (inputs declared ``measured``), so sensor faults reach them as
they would on the plant. ``typed`` gives a controller the units of what it is wired to.

* :class:`PID` -- anti-windup (clamping, back-calculation), output and rate limits, sample
  time, set-point weighting, feed-forward, bumpless manual/auto transfer;
* :class:`OnOff` -- on/off with hysteresis;
* :class:`Ratio` -- output proportional to a measured signal (anolyte flow to current);
* :class:`OpenLoop` -- a planned profile, the reference for closed loops;
* :class:`PythonController` -- a user's class with ``initialise(t0)``,
  ``step(t, measurements) -> actions``, ``get_state()``/``set_state()``.

A cascade is wiring: an outer controller's output feeds an inner one's ``setpoint``.
"""
from __future__ import annotations

from .base import Controller
from .onoff import OnOff
from .open_loop import OpenLoop
from .pid import ANTI_WINDUP, PID
from .python import REQUIRED_METHODS, PythonController, load_class, port_name
from .ratio import Ratio

#: controller type in a scenario -> its class
KINDS: dict[str, type[Controller]] = {
    "pid": PID, "onoff": OnOff, "ratio": Ratio, "open_loop": OpenLoop, "python": PythonController,
}

__all__ = [
    "ANTI_WINDUP", "Controller", "KINDS", "OnOff", "OpenLoop", "PID", "PythonController",
    "REQUIRED_METHODS", "Ratio", "load_class", "port_name",
]

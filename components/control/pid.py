"""PID controller: anti-windup, output and rate limits, set-point weighting, feed-forward,
bumpless manual/auto transfer, its own sample time."""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from cosim import Parameter, Port, WiringError
from models.electrochemistry import namespace

from .base import Controller, rate_limited

__all__ = ["PID", "ANTI_WINDUP"]

#: anti-windup scheme -> the code of the ``anti_windup`` parameter
ANTI_WINDUP = {"none": 0.0, "clamping": 1.0, "back_calculation": 2.0}

_BIG = 1e15  # the untyped controller's output limits: none in practice


class PID(Controller):
    """A PID controller in parallel form with the refinements a plant controller needs.

    At each sample ``t_k`` (every ``sample_time`` s, or every step when it is 0)::

        e  = r - y                                  (the ``error`` output)
        P  = kp (b r - y)                           set-point weight b on P
        D  = (Tf D_prev + kd (ed - ed_prev)) / (Tf + h),  ed = c r - y   filtered, weight c
        v  = P + I + D + ff_gain * feedforward + bias
        u  = v clipped to [out_min, out_max], then moved at most max_rate * h from the last u

    and ``u`` holds until the next sample. The integral ``I`` then advances over the
    coming interval ``h``, ``I += ki e h``, with the anti-windup scheme:

    * ``clamping`` (conditional integration): no integration while the output is
      limited and the error would drive it further into the limit;
    * ``back_calculation``: ``I += (h / Tt)(u - v)`` as well, so the integral unwinds
      while the output is limited (``tracking_time`` Tt, default sqrt(Ti Td) or Ti, with
      Ti = kp / ki and Td = kd / kp);
    * ``none``.

    ``manual`` >= 0.5 switches to manual: the output follows ``manual_output`` (limits
    still apply) and the integral tracks it, so the return to automatic is bumpless.
    ``feedforward`` (a measured signal, wired) is added with ``ff_gain``: feed-forward
    plus PID. A cascade is wiring: an outer controller's output feeds the inner one's
    ``setpoint``. Gains are tunable during a run (gain scheduling by events).
    """

    inputs = (
        Port("measurement", "1", description="the measured signal (a sensor reading)", measured=True),
        Port("setpoint", "1", description="set point of the measured signal"),
        Port("feedforward", "1", description="feed-forward signal (a sensor reading), times ff_gain",
             measured=True),
        Port("manual", "1", 0.0, 1.0, "1 for manual mode (output = manual_output), 0 for automatic"),
        Port("manual_output", "1", description="output asked for in manual mode"),
    )
    outputs = (
        Port("output", "1", description="the control action sent to the actuator"),
        Port("error", "1", description="set point minus measurement at the last sample"),
        Port("saturated", "1", 0.0, 1.0, "1 while the output is limited (range or rate)"),
    )
    parameters = (
        Parameter("kp", 1.0, "1", "proportional gain (output units per measurement unit)",
                  -1e12, 1e12, tunable=True),
        Parameter("ki", 0.0, "1/s", "integral gain (output units per measurement unit and second)",
                  -1e12, 1e12, tunable=True),
        Parameter("kd", 0.0, "s", "derivative gain (output units per measurement unit per second)",
                  -1e12, 1e12, tunable=True),
        Parameter("setpoint_weight", 1.0, "1", "weight b of the set point in the P term", 0.0, 1.0,
                  tunable=True),
        Parameter("derivative_weight", 0.0, "1", "weight c of the set point in the D term", 0.0, 1.0,
                  tunable=True),
        Parameter("derivative_filter", 0.0, "s", "time constant of the derivative's low-pass filter",
                  0.0, 1e9, tunable=True),
        Parameter("out_min", -_BIG, "1", "lowest output", -math.inf, math.inf, tunable=True),
        Parameter("out_max", _BIG, "1", "highest output", -math.inf, math.inf, tunable=True),
        Parameter("max_rate", math.inf, "1", "largest change of the output per second "
                  "(output units per second)", 0.0, math.inf, tunable=True),
        Parameter("bias", 0.0, "1", "output at zero error with an empty integral",
                  -math.inf, math.inf, tunable=True),
        Parameter("ff_gain", 1.0, "1", "gain on the feed-forward input (output units per its unit)",
                  -1e12, 1e12, tunable=True),
        Parameter("anti_windup", ANTI_WINDUP["back_calculation"], "1",
                  "0 none, 1 clamping (conditional integration), 2 back-calculation", 0.0, 2.0),
        Parameter("tracking_time", 0.0, "s", "back-calculation time constant (0: sqrt(Ti Td), or Ti)",
                  0.0, 1e9, tunable=True),
        Parameter("sample_time", 0.0, "s", "time between samples (0: every step)", 0.0, 1e9),
    )
    roles = {
        "measurement": "measurement", "setpoint": "measurement", "error": "measurement",
        "feedforward": "feedforward", "manual_output": "output", "output": "output",
        "out_min": "output", "out_max": "output", "max_rate": "output", "bias": "output",
    }
    unbounded = frozenset({"error", "bias"})
    state_names = Controller.state_names + ("_integral", "_d", "_ed")

    def __init__(self, **params: float) -> None:
        super().__init__(**params)
        code = self.p.anti_windup
        if code not in ANTI_WINDUP.values():
            raise WiringError(f"{type(self).__name__}.anti_windup: expected one of "
                              f"{', '.join(f'{v:g} ({k})' for k, v in ANTI_WINDUP.items())}, "
                              f"found {code!r}")
        if self.p.out_min > self.p.out_max:
            raise WiringError(f"{type(self).__name__}: out_min {self.p.out_min:g} is above "
                              f"out_max {self.p.out_max:g}")

    def reset(self) -> None:
        self._integral: Any = 0.0
        self._d: Any = 0.0
        self._ed: Any = None

    def tracking(self) -> Any:
        """The back-calculation time constant in use (s); 0 when there is no integral action.
        An array, one per variant, when an ensemble varies the gains or ``tracking_time``."""
        p = self.p
        xp = namespace(p.kp, p.ki, p.kd, p.tracking_time)
        if xp is np:
            return _tracking_arrays(p.kp, p.ki, p.kd, p.tracking_time)
        if p.tracking_time > 0.0:
            return float(p.tracking_time)
        if p.ki == 0.0:
            return 0.0
        ti = abs(p.kp / p.ki) if p.kp != 0.0 else 1.0 / abs(p.ki)
        td = abs(p.kd / p.kp) if p.kp != 0.0 else 0.0
        return math.sqrt(ti * td) if td > 0.0 else ti

    def sample(self, t: float, period: float, since: float, inputs: Mapping[str, Any]) -> dict[str, Any]:
        p = self.p
        y, r = inputs["measurement"], inputs["setpoint"]
        xp = namespace(y, r, inputs["manual"], inputs["manual_output"], inputs["feedforward"],
                       *vars(p).values())  # a variant may set a parameter
        e = r - y
        prop = p.kp * (p.setpoint_weight * r - y)
        ed = p.derivative_weight * r - y
        if self._ed is None:
            deriv = 0.0 * e
        else:
            deriv = (p.derivative_filter * self._d + p.kd * (ed - self._ed)) / (
                p.derivative_filter + since)
        rest = prop + deriv + p.ff_gain * inputs["feedforward"] + p.bias
        v = rest + self._integral
        manual = inputs["manual"] >= 0.5
        wanted = xp.where(manual, inputs["manual_output"], v)
        u = xp.minimum(xp.maximum(wanted, p.out_min), p.out_max)
        if rate_limited(p.max_rate):  # from the held output: at first the actuator's start
            previous = self._held["output"]
            move = p.max_rate * since
            u = xp.minimum(xp.maximum(u, previous - move), previous + move)
        self._integral = xp.where(manual, u - rest, self._integrate(e, u, v, period, xp))
        self._d = deriv
        self._ed = ed
        limited = xp.where(manual, 0.0, xp.where(u != v, 1.0, 0.0))
        return {"output": u, "error": e, "saturated": limited}

    def _integrate(self, e: Any, u: Any, v: Any, h: float, xp: Any) -> Any:
        """The integral after the coming interval ``h``, under the anti-windup scheme."""
        p = self.p
        gain = p.ki * e * h
        if p.anti_windup == ANTI_WINDUP["clamping"]:
            # the output is held back from v: do not integrate further in that direction
            pushing = ((u < v) & (gain > 0)) | ((u > v) & (gain < 0))
            return xp.where(pushing, self._integral, self._integral + gain)
        if p.anti_windup == ANTI_WINDUP["back_calculation"]:
            tt = self.tracking()
            if isinstance(tt, np.ndarray):  # per variant: the same arithmetic where tt > 0
                with np.errstate(divide="ignore"):
                    unwind = np.where(tt > 0.0, np.minimum(h / tt, 1.0) * (u - v), 0.0 * e)
            else:
                unwind = min(h / tt, 1.0) * (u - v) if tt > 0.0 else 0.0 * e
            return self._integral + gain + unwind
        return self._integral + gain


def _tracking_arrays(kp: Any, ki: Any, kd: Any, tracking_time: Any) -> np.ndarray:
    """:meth:`PID.tracking` per variant, where an ensemble varies the gains: the scalar
    rule's branches as ``where`` (divisions by zero are masked, never used)."""
    kp, ki, kd, tt = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (kp, ki, kd, tracking_time)))
    with np.errstate(divide="ignore", invalid="ignore"):
        ti = np.where(kp != 0.0, np.abs(kp / ki), 1.0 / np.abs(ki))
        td = np.where(kp != 0.0, np.abs(kd / kp), 0.0)
        own = np.where(td > 0.0, np.sqrt(ti * td), ti)
    return np.where(tt > 0.0, tt, np.where(ki == 0.0, 0.0, own))

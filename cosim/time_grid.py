"""The time grid of a simulation: whole base steps inside, seconds at the edges.

The engine counts time in whole base steps (SimPy's clock, so nothing drifts); users,
scenarios and the recorder speak seconds. :class:`TimeGrid` converts both ways:
``at(k)`` is the time of step ``k``, exact to the decimals of start and step (``59.98``,
never ``59.980000000000004``), and ``index(t, what)`` the step at time ``t``, which must
lie on the grid and not before the start.
"""
from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from .errors import SimulationError

__all__ = ["TimeGrid"]


class TimeGrid:
    """Steps of ``step`` seconds from ``start`` seconds (both finite, ``step`` > 0)."""

    def __init__(self, start: float, step: float) -> None:
        self.start = start
        self.step = step
        #: step index -> seconds; a closure rather than a method because the step loop
        #: calls it every step
        self.at: Callable[[float], float] = _exact_times(start, step)

    def index(self, t: float, what: str) -> int:
        """The step at ``t`` seconds; ``what`` names ``t`` in the error if it is off the grid
        or before the start."""
        k = round((t - self.start) / self.step)
        if abs(self.start + k * self.step - t) > 1e-9 * max(1.0, abs(t)):
            raise SimulationError(
                f"{what} {t!r} s is not on the step grid (start {self.start:g} s, "
                f"step {self.step:g} s)"
            )
        if k < 0:
            raise SimulationError(f"{what} {t!r} s is before the start {self.start:g} s")
        return k


def _exact_times(start: float, step: float) -> Callable[[float], float]:
    """Step index -> seconds, ``start + k * step`` as the float nearest its decimal value.

    Start and step as written (``0.001``) are whole multiples of ``10**-n``: in integers
    of that resolution ``t_k`` is exact, and one correctly rounded division makes it the
    float a user reads (``59.98``, never ``59.980000000000004``). A start or step with no
    short decimal form (``1/3``) keeps the float product. ``k`` is SimPy's clock, a whole
    number here (typed float, as SimPy types it).
    """
    a, b = Decimal(repr(start)), Decimal(repr(step))
    exponent = min(int(a.as_tuple().exponent), int(b.as_tuple().exponent), 0)
    if exponent < -15:
        return lambda k: start + k * step
    scale = 10 ** -exponent
    ia, ib = int(a * scale), int(b * scale)
    if scale == 1:
        return lambda k: float(ia + k * ib)
    return lambda k: (ia + k * ib) / scale

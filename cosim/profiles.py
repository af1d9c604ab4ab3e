"""Time profiles that drive unconnected inputs: constant, steps, ramp, table.

A profile answers two questions: its value at time ``t`` (seconds) and when it
next changes after ``t``. The engine uses the second answer to wake an input's
process only when the value moves, so a constant input costs nothing per step.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from itertools import pairwise
from collections.abc import Sequence

__all__ = ["Profile", "Constant", "Steps", "Ramp", "Table", "Shifted"]

#: ``next_change`` result meaning "the value varies continuously: sample every step".
CONTINUOUS = -math.inf


class Profile:
    """Base class: ``value(t)`` and ``next_change(t)``."""

    def value(self, t: float) -> float:
        raise NotImplementedError

    def next_change(self, t: float) -> float:
        """Earliest time > ``t`` at which the value changes; ``inf`` if never,
        :data:`CONTINUOUS` if it changes continuously at ``t``."""
        raise NotImplementedError


@dataclass(frozen=True)
class Constant(Profile):
    level: float

    def value(self, t: float) -> float:
        return self.level

    def next_change(self, t: float) -> float:
        return math.inf


@dataclass(frozen=True)
class Steps(Profile):
    """Piecewise constant: from each ``(time, value)`` on, the value holds until the next.

    Before the first time the first value holds.
    """

    points: tuple[tuple[float, float], ...]
    # derived from ``points`` in __post_init__ (bisect needs the times alone); not a
    # constructor argument and not part of equality or repr
    _times: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.points:
            raise ValueError("steps profile needs at least one [time, value] pair")
        times = [p[0] for p in self.points]
        if any(b <= a for a, b in pairwise(times)):
            raise ValueError(f"steps profile times must increase strictly, found {times}")
        object.__setattr__(self, "_times", tuple(times))

    def value(self, t: float) -> float:
        i = bisect.bisect_right(self._times, t) - 1
        return self.points[max(i, 0)][1]

    def next_change(self, t: float) -> float:
        i = bisect.bisect_right(self._times, t)
        return self._times[i] if i < len(self._times) else math.inf


@dataclass(frozen=True)
class Ramp(Profile):
    """Linear change from ``initial`` to ``final`` over ``[start, start + duration]``."""

    initial: float
    final: float
    start: float
    duration: float

    def value(self, t: float) -> float:
        if t < self.start:
            return self.initial
        if self.duration <= 0 or t >= self.start + self.duration:
            return self.final  # a ramp of no duration is a step at ``start``
        return self.initial + (self.final - self.initial) * (t - self.start) / self.duration

    def next_change(self, t: float) -> float:
        if t < self.start:
            return self.start
        if t < self.start + self.duration:
            return CONTINUOUS
        return math.inf


@dataclass(frozen=True)
class Table(Profile):
    """Tabulated profile (e.g. from CSV), ``linear`` or ``previous`` interpolation.

    Outside the table the end values hold only when ``hold`` is true; otherwise
    asking for such a time is an error (the scenario checks coverage up front).
    """

    times: tuple[float, ...]
    values: tuple[float, ...]
    interpolation: str = "linear"
    hold: bool = False

    def __post_init__(self) -> None:
        if len(self.times) != len(self.values) or not self.times:
            raise ValueError("table profile needs equally many times and values (at least one)")
        if any(b <= a for a, b in pairwise(self.times)):
            raise ValueError("table profile times must increase strictly")
        if self.interpolation not in ("linear", "previous"):
            raise ValueError(
                f"interpolation must be 'linear' or 'previous', found {self.interpolation!r}"
            )

    def value(self, t: float) -> float:
        times, values = self.times, self.values
        if not times[0] <= t <= times[-1]:
            if not self.hold:
                raise ValueError(
                    f"time {t:g} s is outside the table [{times[0]:g}, {times[-1]:g}] s"
                )
            return values[0] if t < times[0] else values[-1]
        i = bisect.bisect_right(times, t) - 1
        if i >= len(times) - 1 or self.interpolation == "previous":
            return values[i]
        t0, t1 = times[i], times[i + 1]
        return values[i] + (values[i + 1] - values[i]) * (t - t0) / (t1 - t0)

    def next_change(self, t: float) -> float:
        times = self.times
        if t < times[0]:
            return times[0]
        if t >= times[-1]:
            return math.inf
        if self.interpolation == "linear":
            return CONTINUOUS
        return times[bisect.bisect_right(times, t)]


@dataclass(frozen=True)
class Shifted(Profile):
    """``inner`` with its time axis starting at ``offset`` (used when an event switches profile)."""

    inner: Profile
    offset: float

    def value(self, t: float) -> float:
        return self.inner.value(t - self.offset)

    def next_change(self, t: float) -> float:
        nxt = self.inner.next_change(t - self.offset)
        return nxt if nxt in (math.inf, CONTINUOUS) else nxt + self.offset


def steps(points: Sequence[Sequence[float]]) -> Steps:
    """Build a :class:`Steps` profile from ``[[t, v], ...]``."""
    return Steps(tuple((float(t), float(v)) for t, v in points))

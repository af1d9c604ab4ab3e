"""Profiles and random numbers with one value per variant, for ensembles.

An ensemble runs N variants of a scenario in one :class:`~cosim.simulation.Simulation`
whose signals are arrays of N. Its unconnected inputs are driven by the profiles here:
each answers ``value(t)`` with an array of N (variant ``i`` the value its own run would
have) and ``next_change(t)`` with the earliest change of any variant, so an input wakes
whenever one of its variants changes (a wake where a variant's value stays is harmless:
the same value is set again). :class:`VariantRNG` draws, for each variant, what the
generator seeded with that variant's seed would draw in a run of its own.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .profiles import CONTINUOUS, Profile

__all__ = ["Broadcast", "Scaled", "PerVariant", "Masked", "ArrayRamp", "VariantRNG"]


class Broadcast(Profile):
    """``inner``'s value for every one of ``n`` variants."""

    def __init__(self, inner: Profile, n: int) -> None:
        self.inner, self.n = inner, n

    def value(self, t: float) -> Any:  # an array of N
        return np.broadcast_to(np.asarray(self.inner.value(t), dtype=float), (self.n,)).copy()

    def next_change(self, t: float) -> float:
        return self.inner.next_change(t)


class Scaled(Profile):
    """``inner``'s values times a factor per variant (``factors``, an array of N)."""

    def __init__(self, inner: Profile, factors: np.ndarray) -> None:
        self.inner, self.factors = inner, np.asarray(factors, dtype=float)

    def value(self, t: float) -> Any:  # an array of N
        return np.multiply(self.inner.value(t), self.factors)

    def next_change(self, t: float) -> float:
        return self.inner.next_change(t)


class PerVariant(Profile):
    """Variant ``i`` follows ``profiles[index[i]]``: a few distinct profiles shared by N variants."""

    def __init__(self, profiles: Sequence[Profile], index: np.ndarray) -> None:
        self.profiles = tuple(profiles)
        self.index = np.asarray(index, dtype=np.intp)

    def value(self, t: float) -> Any:  # an array of N
        values = np.array([p.value(t) for p in self.profiles], dtype=float)
        return values[self.index]

    def next_change(self, t: float) -> float:
        # CONTINUOUS is -inf: any continuous member makes the whole continuous
        return min(p.next_change(t) for p in self.profiles)


class Masked(Profile):
    """``new`` for the variants in ``mask``, ``old`` for the others (an event that happens
    at this time in some variants only)."""

    def __init__(self, old: Profile, new: Profile, mask: np.ndarray) -> None:
        self.old, self.new, self.mask = old, new, np.asarray(mask, dtype=bool)

    def value(self, t: float) -> Any:  # an array of N
        return np.where(self.mask, self.new.value(t), self.old.value(t))

    def next_change(self, t: float) -> float:
        return min(self.old.next_change(t), self.new.next_change(t))


class ArrayRamp(Profile):
    """:class:`~cosim.profiles.Ramp` with an initial value, a final value and a duration per
    variant (arrays of N, or floats), element by element the same arithmetic."""

    def __init__(self, initial: Any, final: Any, start: float, duration: Any) -> None:
        self.initial = np.asarray(initial, dtype=float)
        self.final = np.asarray(final, dtype=float)
        self.start = start
        self.duration = np.asarray(duration, dtype=float)
        self._end = start + float(np.max(self.duration))

    def value(self, t: float) -> Any:  # an array of N
        initial, final, d = np.broadcast_arrays(self.initial, self.final, self.duration)
        if t < self.start:
            return initial.copy()
        done = (d <= 0) | (t >= self.start + d)
        moving = initial + (final - initial) * (t - self.start) / np.where(d > 0, d, 1.0)
        return np.where(done, final, moving)

    def next_change(self, t: float) -> float:
        if t < self.start:
            return self.start
        if t < self._end:
            return CONTINUOUS
        return float("inf")


class VariantRNG:
    """The engine's random generator for N variants, each seeded with its own seed.

    ``normal(loc, scale)`` gives variant ``i`` what ``numpy.random.default_rng(seeds[i])``
    would give in a run of its own: ``loc + scale * z``, with ``z`` the next standard
    normal of that seed's stream (one stream per distinct seed, drawn once per call).
    """

    def __init__(self, seeds: Sequence[int] | np.ndarray) -> None:
        unique, index = np.unique(np.asarray(seeds, dtype=np.uint64), return_inverse=True)
        self.generators = [np.random.default_rng(int(s)) for s in unique]
        self.index = index.reshape(-1)

    @property
    def bit_generator(self) -> _States:
        """The generators' states as one (``.state``, get and set), for the engine's checkpoints."""
        return _States(self.generators)

    def normal(self, loc: Any = 0.0, scale: Any = 1.0) -> np.ndarray:
        z = np.array([g.standard_normal() for g in self.generators])
        return loc + scale * z[self.index]


class _States:
    """The states of several generators, read and written together."""

    def __init__(self, generators: Sequence[np.random.Generator]) -> None:
        self.generators = generators

    @property
    def state(self) -> list[Any]:
        return [g.bit_generator.state for g in self.generators]

    @state.setter
    def state(self, states: Sequence[Any]) -> None:
        for g, state in zip(self.generators, states, strict=True):
            g.bit_generator.state = state

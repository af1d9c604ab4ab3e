"""The training envelope of a surrogate: the range of each input it was trained on.

An :class:`Envelope` answers the checks :class:`models.model_set.ModelSet`
makes every step (which input of a sample is outside, which rows of a batch are)
and clamps inputs into the range. The check allows a relative slack of
:data:`ROUNDING`, so that a value at a bound up to rounding is inside: a CO2
fraction of 100 % + 1 ulp after mixing is still 100 %.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from operator import le

import numpy as np

__all__ = ["ROUNDING", "Envelope"]

#: relative slack of the envelope check, for values at a bound up to rounding
ROUNDING = 1e-9


@dataclass(frozen=True)
class Envelope:
    """Per input: ``lower``/``upper`` as trained, ``low``/``high`` widened by :data:`ROUNDING`.

    Plain lists, which the per-step scalar check runs faster on than arrays.
    """

    lower: list[float]
    upper: list[float]
    low: list[float]
    high: list[float]

    @classmethod
    def of(cls, lower: np.ndarray, upper: np.ndarray) -> Envelope:
        """The envelope of inputs trained on ``[lower, upper]``."""
        slack = ROUNDING * np.maximum(1.0, np.abs(upper - lower))
        return cls(lower.tolist(), upper.tolist(), (lower - slack).tolist(), (upper + slack).tolist())

    def first_outside(self, x: Sequence[float]) -> int | None:
        """The index of the first input of one sample outside the envelope; ``None`` if all are in."""
        for i, (v, lo, hi) in enumerate(zip(x, self.low, self.high, strict=True)):
            if not lo <= v <= hi:
                return i
        return None

    def contains(self, x: Sequence[float]) -> bool:
        """Whether every input of one sample is inside (a NaN is not): :meth:`first_outside`
        is ``None``, answered in two C-level passes."""
        return all(map(le, self.low, x)) and all(map(le, x, self.high))

    @classmethod
    def narrowest(cls, names: Sequence[str],
                  parts: Sequence[tuple[Sequence[str], Envelope]]) -> Envelope:
        """Over ``names``: per input, the tightest bounds of the ``parts`` (each an envelope
        and the names of its inputs) that check it, unbounded where none does. It contains a
        sample exactly when every part contains it (a NaN is inside none)."""
        bounds = {name: [-math.inf, math.inf, -math.inf, math.inf] for name in names}
        for inputs, e in parts:
            for name, lower, upper, low, high in zip(inputs, e.lower, e.upper, e.low, e.high,
                                                     strict=True):
                b = bounds[name]
                b[:] = max(b[0], lower), min(b[1], upper), max(b[2], low), min(b[3], high)
        rows = [bounds[name] for name in names]
        return cls(*([b[i] for b in rows] for i in range(4)))

    def outside(self, x: np.ndarray) -> np.ndarray:
        """Where the inputs of a batch (rows of ``x``) are outside the envelope."""
        return (x < np.asarray(self.low)) | (x > np.asarray(self.high))

    def clamp(self, x: Sequence[float]) -> list[float]:
        """The inputs of one sample clipped into the envelope as trained."""
        return [min(max(v, lo), hi) for v, lo, hi in zip(x, self.lower, self.upper, strict=True)]

    def clamp_batch(self, x: np.ndarray) -> np.ndarray:
        """The inputs of a batch clipped into the envelope as trained."""
        return np.clip(x, self.lower, self.upper)

"""Several single-path networks run as one network on one sample.

The reactor evaluates every surrogate once per step on a single sample, where
NumPy's per-call overhead dominates. A :class:`Bank` stacks the first layers of
same-shaped networks over the union of their signals (a held constant goes into
the bias) and puts the layers after it side by side, block-diagonally, so one
sample costs a few matrix products for all variables instead of a few per
variable. :class:`models.surrogate.ModelSet` builds one when its networks fit.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .network import ChainStep

__all__ = ["Bank", "Feed", "Member"]

#: what feeds one network input: ``(signal, 0.0)``, or ``(None, constant)`` for a held constant
Feed = tuple[str | None, float]
#: one network of a bank: its single-path steps and what feeds each of its inputs
Member = tuple[list[ChainStep], Sequence[Feed]]
#: one step of a member with its kernel (outputs x inputs), bias or None, activation
_Dense = tuple[np.ndarray, np.ndarray | None, Any]
#: one step of the bank itself
_Layer = tuple[np.ndarray, np.ndarray, Any]


class Bank:
    """Networks that :meth:`fits` accepts, run as one; ``variables`` in the members' order."""

    def __init__(self, members: Mapping[str, Member]) -> None:
        self.variables = tuple(members)
        self.inputs = tuple(dict.fromkeys(
            signal for _, feeds in members.values() for signal, _ in feeds if signal is not None))
        chains = [_dense(chain) for chain, _ in members.values()]
        self.layers = [self._input_layer([c[0] for c in chains], [f for _, f in members.values()])]
        self.layers += [_block_diagonal([c[k] for c in chains]) for k in range(1, len(chains[0]))]

    @staticmethod
    def fits(chains: Sequence[list[ChainStep] | None]) -> bool:
        """Whether networks with these steps (``Network.chain``) can share one bank: two or more
        single-path networks of the same depth and activations, each with one output."""
        if len(chains) < 2:
            return False
        first = chains[0]
        return all(
            c and first and len(c) == len(first) and c[-1][0] is not None and c[-1][0].shape[0] == 1
            and all(w is not None and act is a[2] for (w, _, act), a in zip(c, first, strict=True))
            for c in chains
        )

    def run(self, signals: Mapping[str, float]) -> dict[str, float]:
        """Every member's raw network output for one sample of the signals."""
        h = np.array([signals[n] for n in self.inputs], dtype=float)
        for w, b, act in self.layers:
            h = w.dot(h) + b
            if act is not None:
                h = act(h)
        return dict(zip(self.variables, h.tolist(), strict=True))

    def _input_layer(self, parts: list[_Dense], feeds: list[Sequence[Feed]]) -> _Layer:
        """The members' first steps stacked over the union of their signals; a held constant
        goes into the bias."""
        widths = [w.shape[0] for w, _, _ in parts]
        w_all = np.zeros((sum(widths), len(self.inputs)))
        b_all = np.zeros(sum(widths))
        row = 0
        for (w, b, _), member_feeds, width in zip(parts, feeds, widths, strict=True):
            for j, (signal, constant) in enumerate(member_feeds):
                if signal is None:
                    b_all[row:row + width] += w[:, j] * constant
                else:
                    w_all[row:row + width, self.inputs.index(signal)] += w[:, j]
            if b is not None:
                b_all[row:row + width] += b
            row += width
        return w_all, b_all, parts[0][2]


def _dense(chain: list[ChainStep]) -> list[_Dense]:
    """A member's steps (:meth:`Bank.fits` has checked that each has a kernel)."""
    return [(w, b, act) for w, b, act in chain if w is not None]


def _block_diagonal(parts: list[_Dense]) -> _Layer:
    """The members' steps after the first, side by side: each reads only its own rows."""
    widths = [w.shape[0] for w, _, _ in parts]
    w_all = np.zeros((sum(widths), sum(w.shape[1] for w, _, _ in parts)))
    b_all = np.zeros(sum(widths))
    row = col = 0
    for (w, b, _), width in zip(parts, widths, strict=True):
        w_all[row:row + width, col:col + w.shape[1]] = w
        col += w.shape[1]
        if b is not None:
            b_all[row:row + width] += b
        row += width
    return w_all, b_all, parts[0][2]

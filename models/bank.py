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
        self._batch = _BatchPlan(self.layers[0], [c[0][0].shape[0] for c in chains],
                                 [c[1:] for c in chains])

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
        return dict(zip(self.variables, self.outputs([signals[n] for n in self.inputs]),
                        strict=True))

    def outputs(self, x: Sequence[float]) -> list[float]:
        """Every member's raw output (in ``variables`` order) for one sample ``x`` of ``inputs``."""
        h = np.array(x, dtype=float)
        for w, b, act in self.layers:
            h = w.dot(h)
            h += b  # in place: the same sums as w.dot(h) + b, without a second array
            if act is not None:
                h = act(h)
        return h.tolist()

    def run_batch(self, signals: Mapping[str, Any], n: int) -> np.ndarray:
        """Every member's raw network output for ``n`` samples (an ensemble's variants): rows in
        ``variables`` order, one column per sample. ``signals`` hold arrays of ``n`` or floats.
        See :class:`_BatchPlan`."""
        return self._batch.run([signals[name] for name in self.inputs], n)

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


class _BatchPlan:
    """The bank on many samples at once (:meth:`Bank.run_batch`).

    Samples run as columns (features x samples), so each member's rows are one contiguous
    block. The first layer stays fused over the union of the inputs; the later layers run
    member by member, since on many samples a block-diagonal product would multiply all the
    zeros too. Each block is followed by a row of ones and each matrix carries its bias as a
    last column, so a product adds the bias on the way (no pass over the data for it).
    Intermediate results go into buffers kept per number of samples and are changed in
    place: allocating megabytes afresh each step costs more than the products.
    """

    def __init__(self, first: _Layer, widths: list[int], later: list[list[_Dense]]) -> None:
        w0, b0, self.act0 = first
        self.first_widths = list(widths)
        # first layer: each member's rows, then its row of ones (weights 0, "bias" 1)
        rows, row = [], 0
        for width in widths:
            block = np.zeros((width + 1, w0.shape[1] + 1))
            block[:width, :-1] = w0[row:row + width]
            block[:width, -1] = b0[row:row + width]
            block[width, -1] = 1.0
            rows.append(block)
            row += width
        self.w0 = np.vstack(rows)
        self.later = [[(np.hstack([w, (np.zeros(w.shape[0]) if b is None else b)[:, None]]), act)
                       for w, b, act in member] for member in later]
        self.buffers: dict[int, tuple[np.ndarray, list[np.ndarray]]] = {}

    def _buffers(self, n: int) -> tuple[np.ndarray, list[np.ndarray]]:
        found = self.buffers.get(n)
        if found is None:
            x = np.empty((self.w0.shape[1], n))
            x[-1] = 1.0
            hidden = [np.empty((self.w0.shape[0], n))]
            for k in range(len(self.later[0]) - 1):
                width = sum(member[k][0].shape[0] + 1 for member in self.later)
                hidden.append(np.empty((width, n)))
            for k, h in enumerate(hidden):  # the rows of ones, which no product overwrites
                row = 0
                for width in self._widths(k):
                    h[row + width] = 1.0
                    row += width + 1
            found = self.buffers[n] = (x, hidden)
        return found

    def _widths(self, k: int) -> list[int]:
        """The members' widths in hidden buffer ``k``."""
        if k == 0:
            return self.first_widths
        return [member[k - 1][0].shape[0] for member in self.later]

    def run(self, inputs: list[Any], n: int) -> np.ndarray:
        x, hidden = self._buffers(n)
        for i, values in enumerate(inputs):
            x[i] = values
        h = np.matmul(self.w0, x, out=hidden[0])
        self._activate(self.act0, h, 0)
        depth = len(self.later[0])
        for k in range(depth):
            last = k == depth - 1
            out = np.empty((len(self.later), n)) if last else hidden[k + 1]
            row = col = 0
            for member in self.later:
                w, _ = member[k]
                width = w.shape[0]
                np.matmul(w, h[col:col + w.shape[1]], out=out[row:row + width])
                row, col = row + width + (0 if last else 1), col + w.shape[1]
            if last:
                act = self.later[0][k][1]
                return out if act is None else _activated(act, out)
            self._activate(self.later[0][k][1], out, k + 1)
            h = out
        return h  # a bank has at least two layers: the loop returns

    def _activate(self, act: Any, h: np.ndarray, k: int) -> None:
        """The activation on each member's block of hidden buffer ``k``, not on its ones."""
        if act is None:
            return
        row = 0
        for width in self._widths(k):
            block = h[row:row + width]
            if isinstance(act, np.ufunc):
                act(block, out=block)
            else:
                block[:] = act(block)
            row += width + 1


def _activated(act: Any, h: np.ndarray) -> np.ndarray:
    """``act(h)``, in place for a NumPy ufunc (tanh, the trained networks' activation)."""
    if isinstance(act, np.ufunc):
        return act(h, out=h)
    return act(h)


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

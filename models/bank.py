"""Several single-path networks run as one network on one sample.

The reactor evaluates every surrogate once per step on a single sample, where
NumPy's per-call overhead dominates. A :class:`Bank` stacks the first layers of
same-shaped networks over the union of their signals (a held constant goes into
the bias) and puts the layers after it side by side, block-diagonally, so one
sample costs a few matrix products for all variables instead of a few per
variable. :class:`models.model_set.ModelSet` builds one when its networks fit.

On many samples at once (an ensemble's variants, :meth:`Bank.run_batch`) the bank runs
them in cache-sized blocks, which the threads of :func:`batch_threads` share.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np

from .network import ChainStep

__all__ = ["Bank", "Feed", "Member", "PendingBatch", "batch_threads"]

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
        self._one = _OnePlan(self.layers)

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
        """Every member's raw output (in ``variables`` order) for one sample ``x`` of ``inputs``
        (the reactor's every step; see :class:`_OnePlan`)."""
        one = self._one
        one.x[:] = x
        for dot, h, out, ufunc, act in one.steps:
            dot(h, out)
            if ufunc is not None:
                ufunc(out, out)
            elif act is not None:
                out[:] = act(out)
        return one.result.tolist()

    def run_batch(self, signals: Mapping[str, Any], n: int) -> np.ndarray:
        """Every member's raw network output for ``n`` samples (an ensemble's variants): rows in
        ``variables`` order, one column per sample. ``signals`` hold arrays of ``n`` or floats.
        See :class:`_BatchPlan`."""
        return self.start_batch(signals, n).result()

    def start_batch(self, signals: Mapping[str, Any], n: int) -> PendingBatch:
        """:meth:`run_batch` begun: within :func:`batch_threads`, the pool's threads start on
        the samples and the caller may do other work before it asks for the ``result()``."""
        return self._batch.start([signals[name] for name in self.inputs], n)

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


#: the most samples one pass of the layers takes: a block's hidden layers (~130 rows x 1,000
#: samples x 8 bytes, 1 MB) stay in cache from the products to the activations (a few %
#: faster per sample than passes over 10,000 at once; on one thread blocks of 1,000 to 2,500
#: measured alike), and the threads' shares come out even: an ensemble of 10,000 on two
#: threads measured fastest with blocks of 500 to 1,000, slowest with 3,334 (each thread
#: takes the GIL between its NumPy calls, five a block, so not much smaller)
_BLOCK = 1_000
#: the pool of :func:`batch_threads` and how many threads run a batch (the caller's included)
_POOL: ContextVar[tuple[ThreadPoolExecutor, int] | None] = ContextVar("co2twin_bank_pool",
                                                                       default=None)


@contextmanager
def batch_threads(count: int) -> Iterator[None]:
    """Within the block, a bank's batch larger than one block (an ensemble's variants) runs
    on ``count`` threads: a pool of ``count - 1`` threads (made here, once, and closed on
    leaving) and the caller take its blocks as they come (:class:`PendingBatch`). NumPy
    releases the GIL in its products and ``tanh``, which are most of the time, so the blocks
    run on as many cores. The blocks are the same for any ``count``, so the results are the
    same bits (tests/test_ensemble_threads.py). ``count`` <= 1 changes nothing. Run BLAS
    single-threaded within (threadpoolctl), or its own threads compete with these."""
    if count <= 1:
        yield
        return
    pool = ThreadPoolExecutor(count - 1, thread_name_prefix="co2twin-bank")
    token = _POOL.set((pool, count))
    try:
        yield
    finally:
        _POOL.reset(token)
        pool.shutdown(wait=True)


class PendingBatch:
    """A bank's batch begun (:meth:`Bank.start_batch`): the pool threads of
    :func:`batch_threads` take its blocks one after another from the start; :meth:`result`
    has the caller take the blocks still left, then waits for the threads. Without a pool
    the caller runs every block in :meth:`result`.

    The inputs are copied when the batch begins (one matrix, inputs x samples); the threads
    write only their buffers and their blocks' columns of the result. Which thread runs a
    block changes nothing in its bits.
    """

    def __init__(self, plan: _BatchPlan, x: np.ndarray, blocks: list[tuple[int, int]],
                 out: np.ndarray, pool: tuple[ThreadPoolExecutor, int] | None) -> None:
        self._plan, self._x, self._blocks, self._out = plan, x, blocks, out
        self._next = itertools.count()  # next() on it is atomic: each block is taken once
        self._threads: list[Future[None]] = []
        if pool is not None and len(blocks) > 1:
            executor, threads = pool
            self._threads = [executor.submit(self._work, part)
                             for part in range(1, min(threads, len(blocks)))]

    def _work(self, part: int) -> None:
        """Take blocks until none is left; ``part`` names the thread's buffers."""
        while True:
            k = next(self._next)
            if k >= len(self._blocks):
                return
            start, stop = self._blocks[k]
            self._plan._block(self._x, start, stop, part, self._out)

    def result(self) -> np.ndarray:
        """The members' outputs, rows x samples (raises what a thread raised)."""
        try:
            self._work(0)
        finally:
            wait(self._threads)  # never leave a thread writing into the buffers
        for thread in self._threads:
            thread.result()
        return self._out

    def close(self) -> None:
        """Give up the batch (the caller failed before :meth:`result`): hand out no more
        blocks and wait for those begun."""
        self._next = itertools.count(len(self._blocks))
        wait(self._threads)


class _BatchPlan:
    """The bank on many samples at once (:meth:`Bank.run_batch`).

    Samples run as columns (features x samples). The first layer stays fused over the union
    of the inputs; the later layers run member by member, since on many samples a
    block-diagonal product would multiply all the zeros too: as one stacked product (members
    x outputs x inputs) @ (members x inputs x samples), the members' widths padded with
    zeros to the widest. Each member's hidden block ends with a row of ones and each matrix
    carries its bias as a last column, so a product adds the bias on the way (no pass over
    the data for it). The samples go through in blocks of at most :data:`_BLOCK`
    (cache-sized), shared by the threads of :func:`batch_threads` when there are, five NumPy
    calls a block (each thread holds the GIL only between them); each block's intermediate
    results go into buffers kept per block size and thread and changed in place: allocating
    megabytes afresh each step costs more than the products.
    """

    def __init__(self, first: _Layer, widths: list[int], later: list[list[_Dense]]) -> None:
        w0, b0, self.act0 = first
        self.members = len(widths)
        # hidden layer k: members x (widest + its row of ones) x samples
        self.widths = [max(widths)] + [max(member[k][0].shape[0] for member in later)
                                       for k in range(len(later[0]) - 1)]
        # first layer: each member's rows, zero rows up to the widest, then its row of ones
        # (weights 0, "bias" 1)
        self.w0 = np.zeros((self.members, self.widths[0] + 1, w0.shape[1] + 1))
        row = 0
        for j, width in enumerate(widths):
            self.w0[j, :width, :-1] = w0[row:row + width]
            self.w0[j, :width, -1] = b0[row:row + width]
            self.w0[j, -1, -1] = 1.0
            row += width
        self.w0 = self.w0.reshape(-1, w0.shape[1] + 1)
        # the later layers stacked: members x outputs x (inputs + bias), zeros where padded
        self.later: list[tuple[np.ndarray, Any]] = []
        for k in range(len(later[0])):
            outputs = max(member[k][0].shape[0] for member in later)
            w_k = np.zeros((self.members, outputs, self.widths[k] + 1))
            for j, member in enumerate(later):
                w, b, _ = member[k]
                w_k[j, :w.shape[0], :w.shape[1]] = w
                if b is not None:
                    w_k[j, :w.shape[0], -1] = b
            self.later.append((w_k, later[0][k][2]))
        self.buffers: dict[tuple[int, int], list[np.ndarray]] = {}

    def _buffers(self, n: int, part: int) -> list[np.ndarray]:
        """The hidden buffers of a block of ``n`` samples in thread ``part``."""
        found = self.buffers.get((n, part))
        if found is None:
            found = [np.empty((self.members, width + 1, n)) for width in self.widths]
            for h in found:
                h[:, -1] = 1.0  # the rows of ones, which no product overwrites
            self.buffers[(n, part)] = found
        return found

    def start(self, inputs: list[Any], n: int) -> PendingBatch:
        """Start the members' outputs (rows) for ``n`` samples (columns) of ``inputs`` (each
        an array of ``n`` or a float): see :class:`PendingBatch`."""
        x = np.empty((len(inputs) + 1, n))  # the inputs as rows, then a row of ones
        for i, values in enumerate(inputs):
            x[i] = values
        x[-1] = 1.0
        # the blocks do not depend on the threads: the products' last bits depend on the
        # block a sample is in, so any number of threads gives the same bits
        count = -(-n // _BLOCK)
        edges = [n * k // count for k in range(count + 1)]
        return PendingBatch(self, x, list(zip(edges[:-1], edges[1:], strict=True)),
                            np.empty((self.members, n)), _POOL.get())

    def _block(self, x: np.ndarray, start: int, stop: int, part: int, out: np.ndarray) -> None:
        """Samples ``start:stop`` of ``x`` (inputs x samples) into ``out``'s columns."""
        hidden = self._buffers(stop - start, part)
        h = hidden[0]
        np.matmul(self.w0, x[:, start:stop], out=h.reshape(-1, stop - start))
        _activate(self.act0, h[:, :-1])
        if not self.later:  # networks of one layer: its one output each
            out[:, start:stop] = h[:, 0]
        for k, (w, act) in enumerate(self.later):
            last = k == len(self.later) - 1
            # the last layer writes each member's row of out (members x 1 x samples)
            target = out[:, None, start:stop] if last else hidden[k + 1][:, :-1]
            np.matmul(w, h, out=target)
            _activate(act, target)
            h = hidden[k + 1] if not last else h


def _activate(act: Any, h: np.ndarray) -> None:
    """``act`` on ``h`` in place (a NumPy ufunc, tanh, as the trained networks have)."""
    if act is None:
        return
    if isinstance(act, np.ufunc):
        act(h, out=h)
    else:
        h[...] = act(h)


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


class _OnePlan:
    """The bank on one sample (:meth:`Bank.outputs`, the reactor's every step), where NumPy's
    per-call overhead is most of the time: each layer is one product into a buffer kept from
    step to step and one in-place activation, nothing allocated but the output list.

    The product is the matrix's own ``dot`` with positional arguments (``np.dot`` costs a
    third more per call in its dispatch). Each matrix carries its bias as a last column and
    each buffer ends in a 1 that no product overwrites, so the product adds the bias on the
    way; the matrices are column-major, which BLAS sweeps ~10 % faster on these sizes. The
    sums may round differently from ``W @ h + b`` in the last bit; the batch path differs the
    same way and tests/test_ensemble.py compares the two to 1e-12. (Running the layers between
    member by member instead, without the block-diagonal zeros, was measured slower in a
    running plant: the calls cost more than the products.)

    ``steps``: per layer ``(the matrix's dot, input buffer, output view, ufunc or None,
    other activation or None)``; ``x`` is the view the inputs go into, ``result`` the last
    layer's output. The views alias the buffers, so a copy is made afresh from the layers
    (:meth:`__reduce__`) rather than copied array by array (which would part them). The
    buffers serve one sample at a time: a bank belongs to one simulation's model set
    (:mod:`co2twin.surrogates` never shares one), which one thread steps.
    """

    def __init__(self, layers: Sequence[_Layer]) -> None:
        self.layers = list(layers)
        h = np.ones(layers[0][0].shape[1] + 1)
        self.x = h[:-1]
        self.steps: list[tuple[Any, np.ndarray, np.ndarray, Any, Any]] = []
        for k, (w, b, act) in enumerate(layers):
            buffer = np.ones(w.shape[0] + (1 if k < len(layers) - 1 else 0))
            out = buffer[:w.shape[0]]
            ufunc = act if isinstance(act, np.ufunc) else None
            self.steps.append((_folded(w, b).dot, h, out, ufunc, None if ufunc is not None else act))
            h = buffer
        self.result = h

    def __reduce__(self) -> tuple[Any, ...]:
        return _OnePlan, (self.layers,)


def _folded(w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``w`` with its bias ``b`` as a last column, column-major (see :class:`_OnePlan`)."""
    return np.asfortranarray(np.hstack([w, b[:, None]]))

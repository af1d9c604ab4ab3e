"""The recorder of an ensemble: each recorded signal holds one value per variant.

A :class:`~cosim.simulation.Simulation` whose signals are arrays of N variants (an
ensemble) records with :class:`EnsembleRecorder` (``sim.record_with(...)``). It keeps
every recorded row as a (columns, N) block of float64 in memory: a run of ``R`` rows
takes ``R * columns * N * 8`` bytes, which the caller bounds by choosing the columns,
the decimation (``every``) and N. Plain floats in a row (a signal the same in every
variant) are broadcast to all variants.
"""
from __future__ import annotations

import math
from typing import Any
from collections.abc import Sequence

import numpy as np

from .errors import SimulationError

__all__ = ["EnsembleRecorder"]


class EnsembleRecorder:
    """Rows of N variants; the engine calls it as it calls :class:`~cosim.recorder.Recorder`.

    ``columns`` and ``units`` as the engine gives them; ``n`` the number of variants.
    ``sink`` and ``chunk_bytes`` are taken for the engine's call and must be the defaults:
    an ensemble's rows stay in memory (:meth:`data`).
    """

    def __init__(self, columns: Sequence[str], units: Sequence[str], *, n: int, every: int = 1,
                 sink: Any = None, chunk_bytes: int = 0, rows: int = 16) -> None:
        if sink is not None:
            raise SimulationError("an ensemble keeps its rows in memory; it cannot stream them "
                                  "to a sink (Simulation.stream)")
        if n < 1:
            raise SimulationError(f"an ensemble needs at least one variant, found n = {n}")
        self.columns = list(columns)
        self.units = list(units)
        self.n = n
        self.every = every
        self._times: list[float] = []
        # ``rows``: how many rows the run will record, so they go straight into one block
        # (it grows if a run records more, e.g. the row of a stop request)
        self._data = _block((max(rows, 1), len(self.columns), n))

    def append(self, t: float, row: Sequence[Any]) -> None:
        """Record the values of time ``t``: one float or array of N per column."""
        k = len(self._times)
        if k == self._data.shape[0]:
            grown = _block((2 * k, *self._data.shape[1:]))
            grown[:k] = self._data
            self._data = grown
        block = self._data[k]
        for i, value in enumerate(row):
            block[i] = value  # a float fills the row; an array of N is copied
        self._times.append(t)

    def truncate(self, t: float) -> None:
        """Forget the rows after time ``t`` (a checkpoint was restored)."""
        keep = sum(1 for x in self._times if x <= t)
        del self._times[keep:]

    @property
    def times(self) -> np.ndarray:
        """The recorded times, seconds."""
        return np.asarray(self._times, dtype=float)

    def data(self) -> np.ndarray:
        """The recorded values, rows x columns x variants (a view, not a copy)."""
        return self._data[: len(self._times)]

    def frame(self, events: Sequence[tuple[float, str]] = ()) -> Any:
        """The rows in long format (variant, time, one column per signal), as a DataFrame."""
        import pandas as pd

        data = self.data()
        rows = len(self._times)
        frame = pd.DataFrame({
            "variant": np.repeat(np.arange(self.n), rows),
            "time": np.tile(self.times, self.n),
            **{c: data[:, i, :].T.reshape(-1) for i, c in enumerate(self.columns)},
        })
        frame.attrs["units"] = dict(zip(self.columns, self.units, strict=True))
        frame.attrs["events"] = [list(e) for e in events]
        return frame


def _block(shape: tuple[int, ...]) -> np.ndarray:
    """A float64 array of ``shape`` (zeros) in memory from the C allocator (a bytearray).

    Not ``np.empty``: NumPy asks the kernel for transparent huge pages for any array of 4 MB
    or more, and where the kernel has none free it compacts memory on the first touch. For
    an ensemble of 10,000 variants (~50 columns x 11 rows, 48 MB) that measured 90-140 ms in
    one run of two, 3-4 ms in the others; from the C allocator, which reuses the memory the
    last block freed, 3-4 ms in every run.
    """
    return np.frombuffer(bytearray(math.prod(shape) * 8), dtype=np.float64).reshape(shape)

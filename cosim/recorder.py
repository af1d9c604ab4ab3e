"""Recording signals into preallocated arrays, and writing results to files.

One column per signal, named ``component.port``; rows are times in seconds.
Units travel with the data: in ``DataFrame.attrs["units"]``, in the Parquet
schema metadata, and in a ``<file>.meta.json`` sidecar for CSV. Files are
written to a temporary name and renamed, so a failed write leaves nothing.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .atomic import write_frame
from .errors import SimulationError

__all__ = ["Recorder", "write_results", "read_results", "FORMATS"]

FORMATS = ("parquet", "csv")
_META_KEY = b"co2twin"


class Recorder:
    """Rows of ``(time, signals...)`` in a float64 array that grows by doubling.

    ``every``: keep one row in ``every`` (decimation for long runs). The caller
    decides when to offer a row; the recorder keeps the count.
    """

    def __init__(
        self, names: Sequence[str], units: Sequence[str], *, every: int = 1, capacity: int = 1024
    ) -> None:
        if every < 1:
            raise ValueError(f"record every must be a whole number >= 1, found {every}")
        if len(names) != len(units):
            raise ValueError("recorder needs one unit per signal name")
        self.names = list(names)
        self.units = dict(zip(names, units, strict=True))
        self.every = int(every)
        self._times = np.empty(max(capacity, 1))
        self._data = np.empty((max(capacity, 1), len(self.names)))
        self._rows = 0

    def append(self, t: float, row: Sequence[float]) -> None:
        """Store one row (already selected and ordered as ``names``)."""
        if self._rows == len(self._times):
            self._grow()
        self._times[self._rows] = t
        self._data[self._rows] = row
        self._rows += 1

    def _grow(self) -> None:
        n = len(self._times) * 2
        times = np.empty(n)
        data = np.empty((n, len(self.names)))
        times[: self._rows] = self._times[: self._rows]
        data[: self._rows] = self._data[: self._rows]
        self._times, self._data = times, data

    def truncate(self, t: float) -> None:
        """Forget rows at times after ``t`` (used when a simulation rolls back)."""
        self._rows = int(np.searchsorted(self._times[: self._rows], t, side="right"))

    def __len__(self) -> int:
        return self._rows

    def frame(self, events: Sequence[tuple[float, str]] = ()) -> pd.DataFrame:
        """The recorded rows as a DataFrame indexed by ``time_s`` (a copy)."""
        index = pd.Index(self._times[: self._rows].copy(), name="time_s")
        df = pd.DataFrame(self._data[: self._rows].copy(), index=index, columns=self.names)
        df.attrs["units"] = dict(self.units)
        df.attrs["events"] = [[float(t), text] for t, text in events]
        return df


def _metadata(frame: pd.DataFrame) -> dict[str, Any]:
    return {
        "units": {"time_s": "s", **frame.attrs.get("units", {})},
        "events": frame.attrs.get("events", []),
        "scenario": frame.attrs.get("scenario", {}),
    }


def write_results(frame: pd.DataFrame, path: str | Path, fmt: str | None = None) -> Path:
    """Write ``frame`` as Parquet or CSV (format from ``fmt`` or the file suffix).

    Written atomically: on any error the previous file and sidecar (or none) are left as
    they were, and no temporary file behind.
    """
    path = Path(path)
    fmt = (fmt or path.suffix.lstrip(".") or "parquet").lower()
    if fmt not in FORMATS:
        raise SimulationError(
            f"{path}: unknown output format {fmt!r}; expected one of {', '.join(FORMATS)}"
        )
    return write_frame(frame, path, fmt, _metadata(frame), _META_KEY, index=True)


def read_results(path: str | Path) -> pd.DataFrame:
    """Read what :func:`write_results` wrote, with units and events in ``attrs``."""
    path = Path(path)
    if path.suffix == ".csv":
        frame = pd.read_csv(path, index_col="time_s")
        meta_path = Path(str(path) + ".meta.json")
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    else:
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        frame = table.to_pandas()
        raw = (table.schema.metadata or {}).get(_META_KEY)
        meta = json.loads(raw) if raw else {}
    units = dict(meta.get("units", {}))
    units.pop("time_s", None)
    frame.attrs["units"] = units
    frame.attrs["events"] = meta.get("events", [])
    frame.attrs["scenario"] = meta.get("scenario", {})
    return frame

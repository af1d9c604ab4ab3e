"""Recording signals into preallocated arrays, and writing results to files.

One column per signal, named ``component.port``; rows are times in seconds.
Units travel with the data: in ``DataFrame.attrs["units"]``, in the Parquet
schema metadata, and in a ``<file>.meta.json`` sidecar for CSV. Files are
written to a temporary name and renamed, so a failed write leaves nothing.

Long runs need not hold their rows: a recorder given a :class:`RowSink` keeps one
chunk of rows (about :data:`CHUNK_BYTES`) and hands each full chunk to the sink;
:class:`ResultsWriter` is the sink that streams them to Parquet row groups or CSV
lines, so the memory a run needs does not grow with its duration.
"""
from __future__ import annotations

import json
import struct
from contextlib import suppress
from pathlib import Path
from typing import IO, Any, Protocol
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .atomic import _fsync, _fsync_directory, _replace_all, temp_beside, write_frame
from .errors import SimulationError

__all__ = ["Recorder", "RowSink", "ResultsWriter", "write_results", "read_results",
           "results_metadata", "is_results_file", "FORMATS", "CHUNK_BYTES"]

FORMATS = ("parquet", "csv")
_META_KEY = b"co2twin"
#: rows a streaming recorder keeps before handing them on, in bytes of float64 (one Parquet
#: row group): large enough for Parquet to compress well, small beside the memory of a run
CHUNK_BYTES = 8 * 2**20


class RowSink(Protocol):
    """Where a streaming :class:`Recorder` hands its rows, one chunk at a time."""

    def open(self, names: Sequence[str], units: Mapping[str, str]) -> None:
        """Called once, before any rows, with the column names and their units."""

    def write(self, times: np.ndarray, rows: np.ndarray) -> None:
        """Consume ``rows`` (one per time, columns as named); both are views of the
        recorder's buffer, reused once this returns: copy what you keep."""


class Recorder:
    """Rows of ``(time, signals...)`` in a float64 array that grows by doubling (or takes
    the rows a run will need at once, :meth:`reserve`).

    ``every``: keep one row in ``every`` (decimation for long runs). The caller
    decides when to offer a row; the recorder keeps the count.

    ``sink``: stream instead of keeping: the recorder then holds one chunk of at
    most ``chunk_bytes`` (times included) and hands it to ``sink.write`` when full
    and on :meth:`flush`; its memory stays that chunk, whatever the run's length.
    """

    def __init__(
        self, names: Sequence[str], units: Sequence[str], *, every: int = 1, capacity: int = 1024,
        sink: RowSink | None = None, chunk_bytes: int = CHUNK_BYTES,
    ) -> None:
        if every < 1:
            raise ValueError(f"record every must be a whole number >= 1, found {every}")
        if len(names) != len(units):
            raise ValueError("recorder needs one unit per signal name")
        self.names = list(names)
        self.units = dict(zip(names, units, strict=True))
        self.every = int(every)
        self.sink = sink
        if sink is not None:
            capacity = max(16, chunk_bytes // (8 * (len(self.names) + 1)))
            sink.open(list(self.names), dict(self.units))
        # one buffer, the time in column 0 and the signals after it: a row is one struct
        # call, time included
        self._data = np.empty((max(capacity, 1), len(self.names) + 1))
        # a row of plain numbers goes straight into the buffer's bytes with one struct call,
        # which unboxes them to float64 as NumPy's row assignment would, at half its cost
        self._pack = struct.Struct(f"={len(self.names) + 1}d").pack_into
        self._row_bytes = 8 * (len(self.names) + 1)
        self._bytes = _bytes_of(self._data)
        self._rows = 0
        self._streamed = 0  # rows already handed to the sink
        self._streamed_until = -np.inf  # time of the last of them

    def append(self, t: float, row: Sequence[float]) -> None:
        """Store one row (already selected and ordered as ``names``)."""
        r = self._rows
        if r == len(self._data):
            if self.sink is not None:
                self.flush()
            else:
                self._grow(2 * r)
            r = self._rows
        try:
            self._pack(self._bytes, r * self._row_bytes, t, *row)
        except (struct.error, TypeError):
            # anything but a row of numbers (an array, a wrong length): NumPy's own
            # conversion and errors, as before the struct path
            self._data[r, 1:] = row
            self._data[r, 0] = t
        self._rows = r + 1

    def reserve(self, rows: int) -> None:
        """Make room for ``rows`` rows in all (a run that knows its length asks once, instead
        of the buffer doubling and copying as it fills); nothing to do when streaming."""
        if self.sink is None and rows > len(self._data):
            # at least doubling, so that many short advances still grow geometrically; a run
            # asking for more than memory allows (one a stop request may end) grows as rows come
            with suppress(MemoryError):
                self._grow(max(rows, 2 * len(self._data)))

    def flush(self) -> None:
        """Hand the rows held to the sink (nothing to do without a sink or rows)."""
        if self.sink is None or self._rows == 0:
            return
        self.sink.write(self._data[: self._rows, 0], self._data[: self._rows, 1:])
        self._streamed += self._rows
        self._streamed_until = float(self._data[self._rows - 1, 0])
        self._rows = 0

    @property
    def streamed(self) -> int:
        """Rows already handed to the sink (0 without one)."""
        return self._streamed

    def _grow(self, capacity: int) -> None:
        data = np.empty((capacity, len(self.names) + 1))
        data[: self._rows] = self._data[: self._rows]
        self._data = data
        self._bytes = _bytes_of(data)

    def __getstate__(self) -> dict[str, Any]:
        # a memoryview and a struct method do not pickle or copy: made again from the arrays
        state = dict(self.__dict__)
        del state["_bytes"], state["_pack"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._pack = struct.Struct(f"={len(self.names) + 1}d").pack_into
        self._bytes = _bytes_of(self._data)

    def truncate(self, t: float) -> None:
        """Forget rows at times after ``t`` (used when a simulation rolls back).

        Rows a sink has already written cannot be taken back: rolling back behind them
        raises :class:`SimulationError`.
        """
        if t < self._streamed_until:
            raise SimulationError(
                f"cannot roll the recording back to {t:g} s: the rows up to "
                f"{self._streamed_until:g} s are already streamed to the results file"
            )
        self._rows = int(np.searchsorted(self._data[: self._rows, 0], t, side="right"))

    def __len__(self) -> int:
        return self._streamed + self._rows

    def frame(self, events: Sequence[tuple[float, str]] = ()) -> pd.DataFrame:
        """The recorded rows as a DataFrame indexed by ``time_s`` (a copy)."""
        if self._streamed:
            raise SimulationError(
                f"the recorded rows were streamed to the results file ({self._streamed:,} rows "
                "so far), not kept: read the file with read_results()"
            )
        index = pd.Index(self._data[: self._rows, 0].copy(), name="time_s")
        # one copy, column by column (the layout pandas keeps), handed over without pandas
        # copying it again
        df = pd.DataFrame(np.array(self._data[: self._rows, 1:], order="F"), index=index,
                          columns=self.names, copy=False)
        df.attrs["units"] = dict(self.units)
        df.attrs["events"] = [[float(t), text] for t, text in events]
        return df


def _bytes_of(data: np.ndarray) -> memoryview:
    """The bytes of a row buffer (time and signals), for the struct path."""
    return data.data.cast("B")


def _metadata(frame: pd.DataFrame) -> dict[str, Any]:
    meta = {
        "units": {"time_s": "s", **frame.attrs.get("units", {})},
        "events": frame.attrs.get("events", []),
        "scenario": frame.attrs.get("scenario", {}),
    }
    if "run" in frame.attrs:
        meta["run"] = frame.attrs["run"]
    return meta


def results_metadata(units: Mapping[str, str], events: Sequence[Sequence[Any]],
                     scenario: Mapping[str, Any], run: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata a results file carries (what :func:`read_results` puts in ``attrs``).

    ``run``: how the run ended, e.g. ``{"partial": True, "time_reached_s": 3600.0,
    "end_s": 86400.0, "stopped_by": "SIGINT"}``.
    """
    return {"units": {"time_s": "s", **units}, "events": [[float(t), str(x)] for t, x in events],
            "scenario": dict(scenario), "run": dict(run)}


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
    if "run" in meta:
        frame.attrs["run"] = meta["run"]
    return frame


def is_results_file(path: str | Path) -> bool:
    """True when ``path`` is a results file co2twin wrote: Parquet whose schema metadata has
    the ``co2twin`` key, or CSV with a ``.meta.json`` sidecar holding its units.

    Only the Parquet footer or the sidecar is read, so this is cheap for any file size.
    """
    path = Path(path)
    side = Path(str(path) + ".meta.json")
    if path.suffix.lower() == ".csv" or (side.is_file() and not path.exists()):
        try:
            meta = json.loads(side.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(meta, dict) and isinstance(meta.get("units"), dict)
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except Exception:  # not Parquet at all (pyarrow raises several kinds): not ours
        return False
    return _META_KEY in (schema.metadata or {})


class ResultsWriter:
    """A :class:`RowSink` that streams rows to a results file, all or nothing.

    Parquet gets one row group per chunk (``pyarrow.parquet.ParquetWriter``), CSV the
    same lines :func:`write_results` writes. Rows go to a temporary file beside
    ``path``; :meth:`commit` adds the metadata (Parquet footer or CSV sidecar) and
    renames it into place, :meth:`discard` removes it. The file written is the same
    as :func:`write_results` would write for the whole frame, and
    :func:`read_results` reads it back.
    """

    def __init__(self, path: str | Path, fmt: str | None = None) -> None:
        self.path = Path(path)
        self.fmt = (fmt or self.path.suffix.lstrip(".") or "parquet").lower()
        if self.fmt not in FORMATS:
            raise SimulationError(f"{self.path}: unknown output format {self.fmt!r}; "
                                  f"expected one of {', '.join(FORMATS)}")
        self.rows = 0
        self.names: list[str] = []
        self._tmp: Path | None = None
        self._parquet: Any = None
        self._schema: Any = None
        self._csv: IO[str] | None = None
        self._made: list[Path] = []  # directories created for the file, removed on discard

    def open(self, names: Sequence[str], units: Mapping[str, str]) -> None:
        """Create the temporary file beside the target and write the header."""
        self.names = list(names)
        missing = [d for d in (self.path.parent, *self.path.parent.parents) if not d.exists()]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._made = missing
        self._tmp = temp_beside(self.path)
        empty = pd.DataFrame({n: pd.Series(dtype="float64") for n in self.names},
                             index=pd.Index([], dtype="float64", name="time_s"))
        if self.fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            self._schema = pa.Schema.from_pandas(empty, preserve_index=True)
            if self._schema.names != [*self.names, "time_s"]:
                raise SimulationError(f"{self.path}: unexpected Parquet schema from pandas: "
                                      f"{self._schema.names[:3]}...")
            # no serialised Arrow schema (float64 columns need none): its metadata would hide
            # the key-value metadata added at the end; both keys go in there instead
            self._parquet = pq.ParquetWriter(self._tmp, self._schema, store_schema=False)
        else:
            self._csv = open(self._tmp, "w", encoding="utf-8", newline="")  # noqa: SIM115
            empty.to_csv(self._csv)

    def write(self, times: np.ndarray, rows: np.ndarray) -> None:
        """Append rows: one Parquet row group, or CSV lines."""
        if self._parquet is not None:
            import pyarrow as pa

            # in the schema's order: pandas puts the index (time_s) after the columns
            arrays = [*(pa.array(rows[:, j]) for j in range(rows.shape[1])), pa.array(times)]
            self._parquet.write_table(pa.Table.from_arrays(arrays, schema=self._schema))
        elif self._csv is not None:
            chunk = pd.DataFrame(rows, index=pd.Index(times, name="time_s"), columns=self.names,
                                 copy=False)
            chunk.to_csv(self._csv, header=False, float_format="%.17g")
        else:
            raise SimulationError(f"{self.path}: write() before open()")
        self.rows += len(times)

    def commit(self, meta: Mapping[str, Any]) -> Path:
        """Finish the file with ``meta`` and put it (and a CSV's sidecar) in place.

        On any failure the previous files are left as they were and the temporary removed.
        """
        if self._tmp is None:
            raise SimulationError(f"{self.path}: commit() before open()")
        text = json.dumps(meta, indent=1)
        pending = [(self._tmp, self.path)]
        try:
            if self._parquet is not None:
                # pandas': time_s is the index again when read back; ours: units, events, run
                self._parquet.add_key_value_metadata(
                    {b"pandas": self._schema.metadata[b"pandas"], _META_KEY: text.encode()})
                self._parquet.close()
                self._parquet = None
            if self._csv is not None:
                self._csv.close()
                self._csv = None
                side = Path(str(self.path) + ".meta.json")
                pending.append((temp_beside(side), side))
                pending[-1][0].write_text(text, encoding="utf-8")
            for tmp, _ in pending:
                _fsync(tmp)
            _replace_all(pending)
        except BaseException:
            for tmp, _ in pending[1:]:
                tmp.unlink(missing_ok=True)
            self.discard()
            raise
        self._tmp = None
        self._made = []  # they hold the file now
        _fsync_directory(self.path.parent)
        return self.path

    def discard(self) -> None:
        """Remove the temporary file (and the directories made for it, if still empty)."""
        if self._parquet is not None:
            # the file is going anyway: the error that brought us here is the one to report
            with suppress(Exception):
                self._parquet.close()
            self._parquet = None
        if self._csv is not None:
            self._csv.close()
            self._csv = None
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None
        for folder in self._made:
            try:
                folder.rmdir()
            except OSError:
                break
        self._made = []

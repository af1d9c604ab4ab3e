"""A scenario run streamed to its results file in row groups, in bounded memory, with a stop
on request.

The recorder keeps one chunk of rows (:data:`cosim.recorder.CHUNK_BYTES`, one Parquet row
group) and hands it on when full. Each chunk gets the derived columns
(:func:`co2twin.scenario.add_derived_columns`), is appended to the file under a temporary
name (:class:`cosim.recorder.ResultsWriter`), goes into the run's summary, and is dropped.
What a run holds is then a few chunks and a preview for the plot (at most
:data:`PREVIEW_ROWS` rows), whatever its duration; the file is put in place only once
everything (the plot too) succeeded.

The summary (KPIs, flags, balances and how they were checked) is what the same functions
of :mod:`co2twin.kpi` give on the whole results. A run of one chunk is summarised whole.
A longer one chunk by chunk, each chunk preceded by the last row of the one before (so
consecutive-row balances and flag counts see every pair of rows exactly once), and merged:
spans (means, energy, production, final values) from the first and last rows; seconds
and row counts added; worst cases the worst of the chunks; balances the largest residual
of the chunks (``carbon_plant``, a whole-run ratio, then becomes the worst per chunk).
A new KPI or flag field in :mod:`co2twin.kpi` that does not merge by these rules needs a
rule in :class:`_Merged`: ``tests/test_long_runs.py`` compares both ways on a run of
several chunks.

A :class:`StopRequest` (Ctrl-C) ends the run at the end of its current step; the rows so
far are written, marked partial in the metadata (``run.partial``, ``run.time_reached_s``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from cosim.recorder import CHUNK_BYTES, ResultsWriter, results_metadata
from cosim.simulation import Simulation

from .kpi import balances, checks, flags, kpis
from .outputs import ResultsTarget, check_overwrite
from .scenario import add_derived_columns, build, operating_limits, run_attrs
from .scenario_schema import Scenario

__all__ = ["PREVIEW_ROWS", "RunSummary", "StopRequest", "StreamedRun", "run_streamed"]

#: most rows the plot of a streamed run draws (every n-th row, the last always)
PREVIEW_ROWS = 20_000


class StopRequest:
    """A request to stop a run at the end of its current step; safe to make from a signal
    handler (it sets a flag, and asks the simulation, if one runs, to do the same)."""

    def __init__(self) -> None:
        #: who asked (``"SIGINT"``, ``"SIGTERM"``), None while nobody did
        self.reason: str | None = None
        self._sim: Simulation | None = None

    def request(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        sim = self._sim
        if sim is not None:
            sim.request_stop()

    def attach(self, sim: Simulation | None) -> None:
        """Pass requests on to ``sim`` from now on (and one made already); None: stop it."""
        self._sim = sim
        if sim is not None and self.reason is not None:
            sim.request_stop()


@dataclass
class RunSummary:
    """What :mod:`co2twin.kpi` says of a run, and the rows to show it with."""

    figures: dict[str, Any]
    residuals: dict[str, float]
    flags: list[dict[str, Any]]
    checks: dict[str, str]
    rows: int
    #: rows at 1 of every column that holds only 0 and 1 (the flags)
    flag_rows: dict[str, int]
    #: the rows to plot: all of them, or every n-th and the last
    preview: pd.DataFrame
    #: the whole results, when they were summarised whole (one chunk); else None
    frame: pd.DataFrame | None

    @property
    def skipped_checks(self) -> dict[str, str]:
        """The balances that could not be checked, with the reason (as kpi.skipped_checks)."""
        return {name: how.removeprefix("skipped: ") for name, how in self.checks.items()
                if how.startswith("skipped")}

    @classmethod
    def of(cls, frame: pd.DataFrame, limits: Mapping[str, Any]) -> RunSummary:
        """The summary of results held whole (an in-memory run, or a file read back)."""
        values = frame.to_numpy()
        is_flag = np.all((values == 0.0) | (values == 1.0), axis=0)
        ones = (values == 1.0).sum(axis=0)
        flag_rows = {c: int(n) for c, ok, n in zip(frame.columns, is_flag, ones, strict=True) if ok}
        return cls(kpis(frame, limits), balances(frame), flags(frame, limits), checks(frame),
                   len(frame), flag_rows, frame, frame)


@dataclass
class StreamedRun:
    """A finished (or stopped) streamed run whose file is written but not yet in place."""

    target: ResultsTarget
    summary: RunSummary
    time_reached_s: float
    end_s: float
    stopped_by: str | None
    meta: dict[str, Any]
    writer: ResultsWriter = field(repr=False)

    @property
    def partial(self) -> bool:
        """True when the run stopped before its end (the file says so too)."""
        return self.stopped_by is not None

    def commit(self, *, overwrite: bool = False) -> Path:
        """Put the results file in place, checking once more that it may replace what is
        there now (something may have appeared there during a long run)."""
        try:
            check_overwrite(self.target.path, self.target.fmt, overwrite=overwrite)
        except BaseException:
            self.writer.discard()
            raise
        return self.writer.commit(self.meta)

    def discard(self) -> None:
        """Remove the written rows: nothing of the run is left on disk."""
        self.writer.discard()


def run_streamed(scenario: Scenario, target: ResultsTarget, *, progress: bool | None = None,
                 stop: StopRequest | None = None, chunk_bytes: int = CHUNK_BYTES) -> StreamedRun:
    """Run ``scenario``, streaming its rows to ``target`` in chunks of ``chunk_bytes``.

    The file is complete but not in place when this returns: call ``commit()`` (or
    ``discard()``). On any error, or a second interrupt, nothing is left on disk.
    """
    sim = build(scenario)
    writer = ResultsWriter(target.path, target.fmt)
    limits = operating_limits(scenario)
    attrs = run_attrs(scenario, sim)
    merged = _Merged(limits)
    sim.stream(_Pipeline(scenario, attrs, writer, merged), chunk_bytes=chunk_bytes)
    if stop is not None:
        stop.attach(sim)
    try:
        sim.advance_to(scenario.end, progress=progress)
        sim.recorder.flush()
        summary = merged.summary(sim.event_log)
    except BaseException:
        writer.discard()
        raise
    finally:
        if stop is not None:
            stop.attach(None)
        for comp in sim.components.values():
            close = getattr(comp, "close", None)
            if callable(close):
                close()
    stopped_by = (stop.reason if stop is not None else None) or "a stop request"
    run: dict[str, Any] = {"partial": sim.stopped, "time_reached_s": sim.time,
           "end_s": scenario.end, "rows": writer.rows}
    if run["partial"]:
        run["stopped_by"] = stopped_by
    meta = results_metadata(merged.units, sim.event_log, attrs, run)
    summary.preview.attrs.update(units=dict(merged.units), scenario=attrs, run=run,
                                 events=meta["events"])
    return StreamedRun(target, summary, sim.time, scenario.end,
                       stopped_by if sim.stopped else None, meta, writer)


class _Pipeline:
    """The recorder's sink: each chunk gets the derived columns, then goes to the file and
    to the summary."""

    def __init__(self, scenario: Scenario, attrs: dict[str, Any], writer: ResultsWriter,
                 merged: _Merged) -> None:
        self.scenario, self.attrs, self.writer, self.merged = scenario, attrs, writer, merged
        self.names: list[str] = []
        self.units: dict[str, str] = {}

    def open(self, names: Sequence[str], units: Mapping[str, str]) -> None:
        self.names, self.units = list(names), dict(units)
        empty = self._frame(np.empty(0), np.empty((0, len(self.names))))
        self.merged.units = dict(empty.attrs["units"])
        self.writer.open(list(empty.columns), self.merged.units)

    def write(self, times: np.ndarray, rows: np.ndarray) -> None:
        chunk = self._frame(times.copy(), rows.copy())
        self.writer.write(chunk.index.to_numpy(), chunk.to_numpy())
        self.merged.add(chunk)

    def _frame(self, times: np.ndarray, rows: np.ndarray) -> pd.DataFrame:
        chunk = pd.DataFrame(rows, index=pd.Index(times, name="time_s"), columns=self.names,
                             copy=False)
        chunk.attrs = {"units": dict(self.units), "events": [], "scenario": self.attrs}
        add_derived_columns(chunk, self.scenario)
        return chunk


def _additive(key: str) -> bool:
    """KPIs that count time (``time_*_s``): the run's is the sum of its chunks'."""
    return key.startswith("time_") and key.endswith("_s")


class _Merged:
    """The summary of a run gathered chunk by chunk (see the module's docstring)."""

    def __init__(self, limits: Mapping[str, Any]) -> None:
        self.limits = dict(limits)
        self.units: dict[str, str] = {}
        self.rows = 0
        self.chunks = 0
        self.first: pd.DataFrame | None = None
        self.last: pd.DataFrame | None = None
        self.whole: pd.DataFrame | None = None  # the first chunk, while it is the only one
        self.residuals: dict[str, float] = {}
        self.times: dict[str, float] = {}
        self.maps: dict[str, dict[str, float]] = {}
        self.flags: dict[tuple[str, str], dict[str, Any]] = {}
        self.checks: dict[str, str] = {}
        self.flag_rows: dict[str, int] | None = None
        self.extremes: _Extremes | None = None  # the plot's preview, bucket by bucket
        self.stride = 1

    def add(self, chunk: pd.DataFrame) -> None:
        self.chunks += 1
        if self.chunks == 1:
            self.whole = chunk
        else:
            if self.whole is not None:
                self._absorb(self.whole, None)
                self.whole = None
            self._absorb(chunk, self.last)
        if self.first is None:
            self.first = chunk.iloc[:1]
        self.last = chunk.iloc[-1:]
        self._keep_flags(chunk)
        self._keep_preview(chunk)
        self.rows += len(chunk)

    def _absorb(self, chunk: pd.DataFrame, before: pd.DataFrame | None) -> None:
        """Merge the summary of ``chunk``, preceded by the row ``before`` it."""
        work = chunk if before is None else pd.concat([before, chunk])
        work.attrs = chunk.attrs
        for name, value in balances(work).items():
            self.residuals[name] = max(self.residuals.get(name, -math.inf), value)
        for key, value in kpis(work, self.limits).items():
            if isinstance(value, dict):
                into = self.maps.setdefault(key, {})
                for k, v in value.items():
                    into[k] = into.get(k, 0.0) + v
            elif _additive(key):
                self.times[key] = self.times.get(key, 0.0) + value
        for name, how in checks(work).items():
            if name not in self.checks or how.startswith("skipped"):
                self.checks[name] = how
        overlap = None if before is None else float(before.index[0])
        for entry in flags(work, self.limits):
            self._merge_flag(entry, overlap)

    def _merge_flag(self, entry: dict[str, Any], overlap: float | None) -> None:
        key = (entry["kind"], entry["signal"])
        seen = self.flags.get(key)
        if seen is None:
            self.flags[key] = entry
            return
        rows = entry["rows"]
        if overlap is not None and seen["last_s"] == overlap and entry["first_s"] == overlap:
            rows -= 1  # the row before the chunk is counted in both
        seen["rows"] += rows
        seen["seconds"] += entry["seconds"]
        seen["first_s"] = min(seen["first_s"], entry["first_s"])
        seen["last_s"] = max(seen["last_s"], entry["last_s"])
        if _worse(entry, seen):
            seen["worst"] = entry.get("worst", seen.get("worst"))

    def _keep_flags(self, chunk: pd.DataFrame) -> None:
        """Rows at 1 of each column that holds only 0 and 1 (the flags)."""
        values = chunk.to_numpy()
        is_flag = np.all((values == 0.0) | (values == 1.0), axis=0)
        ones = (values == 1.0).sum(axis=0)
        if self.flag_rows is None:
            self.flag_rows = {c: 0 for c, ok in zip(chunk.columns, is_flag, strict=True) if ok}
        for column, ok, n in zip(chunk.columns, is_flag, ones, strict=True):
            if column not in self.flag_rows:
                continue
            if ok:
                self.flag_rows[column] += int(n)
            else:  # not a flag after all: it took another value
                del self.flag_rows[column]

    def _keep_preview(self, chunk: pd.DataFrame) -> None:
        """Each signal's smallest and largest value in buckets of ``stride`` rows; the stride
        doubles whenever more than PREVIEW_ROWS / 2 buckets are kept.

        Min-max decimation rather than every ``stride``-th row: a spike, a short limit
        violation or a flag raised between two sampled rows still shows in the plot.
        """
        ids = np.arange(self.rows, self.rows + len(chunk)) // self.stride
        found = _Extremes.of(chunk, ids)
        self.extremes = found if self.extremes is None else self.extremes.merged(found)
        while len(self.extremes.low) > PREVIEW_ROWS // 2:
            self.stride *= 2
            self.extremes = self.extremes.halved()

    def summary(self, events: Sequence[tuple[float, str]]) -> RunSummary:
        """The summary of every row added, with ``events`` in the frames' attrs."""
        if self.rows == 0:
            raise ValueError("no rows were recorded")
        if self.whole is not None:
            whole = self.whole
            whole.attrs["events"] = [[float(t), text] for t, text in events]
            return RunSummary.of(whole, self.limits)
        assert self.first is not None and self.last is not None
        ends = pd.concat([self.first, self.last])
        ends.attrs = self.last.attrs
        figures = kpis(ends, self.limits)
        for key in [k for k, v in figures.items() if _additive(k) or isinstance(v, dict)]:
            del figures[key]  # counted on two rows: the chunks' sums replace them
        figures.update(self.times)
        figures.update({k: v for k, v in self.maps.items() if v})
        for entry in self.flags.values():
            entry["of_rows"] = self.rows
        assert self.extremes is not None
        preview = pd.concat([self.extremes.rows(), self.last])
        preview = preview[~preview.index.duplicated(keep="last")]
        return RunSummary(figures, dict(self.residuals), list(self.flags.values()),
                          dict(self.checks), self.rows, dict(self.flag_rows or {}), preview, None)


@dataclass
class _Extremes:
    """Per bucket of rows (index: bucket number): each column's minimum and maximum, and the
    times of the bucket's first and last rows."""

    low: pd.DataFrame
    high: pd.DataFrame
    first: pd.Series
    last: pd.Series

    @classmethod
    def of(cls, chunk: pd.DataFrame, ids: np.ndarray) -> _Extremes:
        rows = chunk.reset_index(drop=True).groupby(ids)
        times = pd.Series(chunk.index.to_numpy()).groupby(ids)
        return cls(rows.min(), rows.max(), times.min(), times.max())

    def merged(self, other: _Extremes) -> _Extremes:
        """Both sets of buckets; a bucket split between two chunks becomes one."""
        return _Extremes(pd.concat([self.low, other.low]), pd.concat([self.high, other.high]),
                         pd.concat([self.first, other.first]),
                         pd.concat([self.last, other.last]))._regrouped(1)

    def halved(self) -> _Extremes:
        """Buckets twice as long (pairs merged)."""
        return self._regrouped(2)

    def _regrouped(self, factor: int) -> _Extremes:
        ids = self.low.index.to_numpy() // factor
        return _Extremes(self.low.groupby(ids).min(), self.high.groupby(ids).max(),
                         self.first.groupby(ids).min(), self.last.groupby(ids).max())

    def rows(self) -> pd.DataFrame:
        """A frame to plot: a bucket of one row is that row; a longer one its minima at its
        first time and its maxima at its last (the line spans the bucket's whole range)."""
        single = (self.first == self.last).to_numpy()
        low = self.low.set_axis(pd.Index(self.first.to_numpy(), name="time"))
        high = self.high[~single].set_axis(pd.Index(self.last.to_numpy()[~single], name="time"))
        return pd.concat([low, high]).sort_index(kind="stable")


def _score(entry: Mapping[str, Any]) -> float:
    """How far the worst row of a flag entry was from what was asked (larger: worse)."""
    worst = entry.get("worst") or {}
    value = worst.get("value")
    if "asked" in worst and "got" in worst:
        return abs(float(worst["asked"]) - float(worst["got"]))
    for size in ("largest", "correction"):  # one column said how far (kpi._worst_asked)
        if size in worst:
            return float(worst[size])
    if value is None:
        return -math.inf
    low, high = worst.get("low"), worst.get("high")
    excess = max(low - value if low is not None else -math.inf,
                 value - high if high is not None else -math.inf)
    if entry.get("kind") == "envelope" and low is not None and high is not None:
        return excess / max(high - low, 1e-300)
    return excess


def _worse(entry: Mapping[str, Any], seen: Mapping[str, Any]) -> bool:
    """True when ``entry``'s worst case is strictly worse than ``seen``'s (the first wins ties,
    as argmax does on the whole run)."""
    return _score(entry) > _score(seen)

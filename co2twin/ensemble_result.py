"""What an ensemble recorded (:class:`EnsembleResult`): the rows of every variant, and their
KPIs, balances and flags, computed by :mod:`co2twin.kpi` on all variants at once.

:func:`co2twin.ensemble.run_ensemble` makes one; ``co2twin sweep`` writes each chunk's with
:meth:`EnsembleResult.to_parquet`.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .kpi import balances, flags, kpis
from .supply import SUPPLY_FLAGS

__all__ = ["EnsembleResult"]


class EnsembleResult:
    """What :func:`run_ensemble` recorded: rows of every variant, and their KPIs and balances.

    ``times`` (rows), ``columns`` and ``data`` (rows x columns x variants); ``kept``: the
    signals :meth:`frame_long` gives; ``variants``: the variants' numbers.
    """

    def __init__(self, times: np.ndarray, columns: Sequence[str], units: Sequence[str],
                 data: np.ndarray, *, kept: Sequence[str], meta: Mapping[str, Any],
                 events: Sequence[tuple[float, str]], first_variant: int = 0) -> None:
        self.times = times
        self.columns = list(columns)
        self.units = dict(zip(columns, units, strict=True))
        self.data = data
        self.kept = list(kept)
        self.meta = dict(meta)
        self.events = list(events)
        self.variants = np.arange(data.shape[2]) + first_variant
        self._col = {c: i for i, c in enumerate(self.columns)}

    @property
    def n(self) -> int:
        """The number of variants."""
        return int(self.data.shape[2])

    def signal(self, name: str) -> np.ndarray:
        """One recorded signal, rows x variants."""
        if name not in self._col:
            raise KeyError(f"{name!r} was not recorded; recorded: {', '.join(self.columns)}")
        return self.data[:, self._col[name], :]

    def frame(self, variant: int) -> pd.DataFrame:
        """Variant ``variant``'s rows (its number, see ``variants``) as a single run's frame
        holds them (indexed by ``time_s``), with the columns recorded."""
        return self._frame(variant, {"units": dict(self.units), "scenario": dict(self.meta)})

    def _frame(self, variant: int, attrs: Mapping[str, Any]) -> pd.DataFrame:
        i = int(variant) - int(self.variants[0])
        if not 0 <= i < self.n:
            raise KeyError(f"no variant {variant}; these are {self.variants[0]}..{self.variants[-1]}")
        frame = pd.DataFrame(self.data[:, :, i], index=pd.Index(self.times, name="time_s"),
                             columns=self.columns)
        frame.attrs.update(attrs)
        return frame

    def _per_variant(self, function: Callable[..., Any], *args: Any,
                     only: set[int] | None = None) -> list[Any]:
        """``function(frame of variant, *args)`` for every variant (or the positions ``only``).

        Each variant's frame is first a :class:`_Rows` view of the recorded block, which gives
        the KPI functions the columns, index, rows and metadata they read without pandas'
        cost per column (a copy of the metadata each time, more than the KPIs themselves);
        should a function ask for more than the view offers, that variant gets a DataFrame.
        """
        index = pd.Index(self.times, name="time_s")
        attrs = {"units": self.units, "scenario": self.meta}
        out = []
        for i, v in enumerate(self.variants):
            if only is not None and i not in only:
                continue
            try:
                out.append(function(_Rows(self._col, self.data, i, index, attrs), *args))
            except (AttributeError, TypeError, NotImplementedError):
                out.append(function(self.frame(int(v)), *args))
        return out

    def frame_long(self) -> pd.DataFrame:
        """The kept signals in long format: columns ``variant``, ``time``, then one per signal."""
        rows = len(self.times)
        out = pd.DataFrame({"variant": np.repeat(self.variants, rows),
                            "time": np.tile(self.times, self.n)})
        for name in self.kept:
            out[name] = self.signal(name).T.reshape(-1)
        out.attrs["units"] = {"time": "s", **{k: self.units[k] for k in self.kept}}
        return out

    def kpis(self) -> pd.DataFrame:
        """One row per variant (column ``variant``): the KPIs :func:`co2twin.kpi.kpis` gives a
        single run; a per-signal KPI (``outside_limits``, ``flagged``) as ``key[signal]``; NaN
        where the single run would have no such KPI.

        One call of :func:`co2twin.kpi.kpis` on every variant's columns at once (rows x
        variants, each figure reduced over the rows), the same code a single run's KPIs
        come from; the supply's KPIs, which go one run at a time, would go variant by variant.
        """
        limits = self.meta["limits"]
        try:
            figures = kpis(self._all_rows(), limits)
        except NotImplementedError:
            return _table(self.variants, [_flat(f) for f in self._per_variant(kpis, limits)])
        return _columns(self.variants, _flat(figures))

    def balances(self) -> pd.DataFrame:
        """One row per variant: the worst relative residual of each balance
        (:func:`co2twin.kpi.balances`, on every variant's columns at once as :meth:`kpis`)."""
        try:
            residuals = balances(self._all_rows())
        except NotImplementedError:
            return _table(self.variants, self._per_variant(balances))
        return _columns(self.variants, residuals)

    def _all_rows(self) -> _Rows:
        """Every variant's recorded rows as one frame-like view: each column rows x variants."""
        return _Rows(self._col, self.data, None, pd.Index(self.times, name="time_s"),
                     {"units": self.units, "scenario": self.meta})

    def flags(self) -> pd.DataFrame:
        """Every flag a variant raised (saturation, bound, envelope, limit), one row each:
        ``variant``, ``kind``, ``signal``, ``rows``, ``seconds``, ``first_s``, ``last_s``
        (:func:`co2twin.kpi.flags`); nothing silent, per variant."""
        supply = {f.column for f in SUPPLY_FLAGS}  # ems.curtailed, bus.shortfall, ...
        flag_columns = [i for i, c in enumerate(self.columns) if c in supply
                        or c.endswith(("_saturated", "_limited", "_bounded", "_outside_envelope"))]
        raised = (self.data[:, flag_columns, :] > 0.0).any(axis=(0, 1)) if flag_columns else \
            np.zeros(self.n, dtype=bool)
        limited = np.zeros(self.n, dtype=bool)
        for name, (low, high) in self.meta["limits"].items():
            if name in self._col:
                values = self.signal(f"{name}:true" if f"{name}:true" in self._col else name)
                if low is not None:
                    limited |= (values < low).any(axis=0)
                if high is not None:
                    limited |= (values > high).any(axis=0)
        entries = []
        chosen = set(np.flatnonzero(raised | limited).tolist())
        found = self._per_variant(flags, self.meta["limits"], only=chosen)
        for i, raised_flags in zip(sorted(chosen), found, strict=True):
            for entry in raised_flags:
                entries.append({"variant": int(self.variants[i]), **{k: entry[k] for k in (
                    "kind", "signal", "rows", "seconds", "first_s", "last_s")}})
        columns = ["variant", "kind", "signal", "rows", "seconds", "first_s", "last_s"]
        return pd.DataFrame(entries, columns=columns)

    def to_parquet(self, folder: str | Path, *, chunk: int | None = None) -> dict[str, Path]:
        """Write the kept signals, the KPIs and the balances under ``folder``, partitioned by
        variant chunk: ``signals/chunk=<c>/part.parquet``, ``kpis/...``, ``balances/...``,
        ``c`` (default the first variant's number, six digits) naming this chunk. Each file is
        written whole or not at all (:mod:`cosim.atomic`); ``pandas.read_parquet(folder /
        "kpis")`` reads every chunk back. Returns the paths written."""
        from cosim.atomic import atomic_path

        chunk = int(self.variants[0]) if chunk is None else chunk
        tables = {"signals": self.frame_long(), "kpis": self.kpis(), "balances": self.balances()}
        out: dict[str, Path] = {}
        for name, table in tables.items():
            path = Path(folder) / name / f"chunk={chunk:06d}" / "part.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                table.to_parquet(tmp, index=False)
            out[name] = path
        return out


class _Rows:
    """One variant's recorded rows (or with ``variant`` None every variant's, each column
    rows x variants) as much of a DataFrame as :mod:`co2twin.kpi` reads:
    ``columns``, ``index``, ``attrs``, ``len``, ``in``, and ``frame[column]`` with
    ``to_numpy()`` and ``iloc`` (views of the ensemble's block, no copies)."""

    def __init__(self, columns: Mapping[str, int], data: np.ndarray, variant: int | None,
                 index: pd.Index, attrs: Mapping[str, Any]) -> None:
        self.columns = columns
        self._data, self._variant = data, variant
        self.index = index
        self.attrs = attrs

    def __len__(self) -> int:
        return len(self.index)

    def __contains__(self, column: object) -> bool:
        return column in self.columns

    def __getitem__(self, column: str) -> _Values:
        if not isinstance(column, str):
            raise NotImplementedError("a _Rows view gives one column at a time")
        if self._variant is None:
            return _Values(self._data[:, self.columns[column], :])
        return _Values(self._data[:, self.columns[column], self._variant])


class _Values:
    """One column of :class:`_Rows`: ``to_numpy()`` and positional ``iloc``."""

    def __init__(self, values: np.ndarray) -> None:
        self.iloc = values

    def to_numpy(self) -> np.ndarray:
        return self.iloc


def _flat(figures: Mapping[str, Any]) -> dict[str, Any]:
    """A KPI dict with its per-signal dicts spread out as ``key[signal]``."""
    out: dict[str, Any] = {}
    for key, value in figures.items():
        if isinstance(value, Mapping):
            out.update({f"{key}[{k}]": v for k, v in value.items()})
        else:
            out[key] = value
    return out


def _columns(variants: np.ndarray, figures: Mapping[str, Any]) -> pd.DataFrame:
    """A table of one row per variant from figures that are each one per variant (or one
    for all: the duration)."""
    n = len(variants)
    columns = {"variant": variants}
    for key, value in figures.items():
        columns[key] = np.full(n, value, dtype=float) if np.ndim(value) == 0 else np.asarray(value)
    return pd.DataFrame(columns)


def _table(variants: np.ndarray, rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame.insert(0, "variant", variants)
    return frame

"""Battery cycling logs in the NASA battery data set's column layout: read, check, write, per cycle.

A log has one row per sample of a cycle (:data:`COLUMNS`): the cell (``Battery``),
the cycle (``id_cycle``, ``type``, ``ambient_temperature``, ``time`` = the cycle's
start as a date or a number), the samples (``Voltage_measured``, ``Current_measured``,
``Temperature_measured``, ``Current_load``, ``Voltage_load``, ``Time`` = seconds
into the cycle) and the cycle's measured ``Capacity`` (Ah, the same on every row of
a discharge). The real NASA files flattened to CSV have this layout, and so do the
logs of :mod:`models.reference_battery` (which add ``true_Capacity``, the
noise-free capacity a simulated bench knows).

:func:`read_log` / :func:`validate_log` refuse a bad log with one
:class:`~models.plantlog.DataError` that names the file, each bad column, the rows
(0-based data rows) and what was expected. Only ``discharge`` rows carry capacity:
the rows of other types are kept but not checked beyond their type.
:func:`cycles` turns a log into one row per discharge cycle with the features the
ageing models take (:data:`FEATURES`).
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from cosim.atomic import write_frame
from models.plantlog import DataError, data_hash

__all__ = ["Column", "COLUMNS", "FEATURES", "TYPES", "read_log", "validate_log", "write_log", "cycles",
           "data_hash", "DataError"]


class Column(NamedTuple):
    """A log column: unit, physical bounds (numbers), description."""

    unit: str
    lower: float
    upper: float
    description: str


_TEXT = Column("", -np.inf, np.inf, "")
#: the NASA layout, in its order; the numbers' bounds are what any Li-ion cell test can show
COLUMNS: dict[str, Column] = {
    "Battery": _TEXT._replace(description="cell name"),
    "id_cycle": Column("1", 0, 1e9, "cycle number (a whole number)"),
    "type": _TEXT._replace(description="discharge, charge or impedance"),
    "ambient_temperature": Column("degC", -40, 80, "ambient temperature of the test"),
    "time": _TEXT._replace(description="start of the cycle: a date and time, or a number"),
    "Voltage_measured": Column("V", 0, 5, "cell terminal voltage"),
    "Current_measured": Column("A", -100, 100, "cell current (negative while discharging)"),
    "Temperature_measured": Column("degC", -40, 120, "cell temperature"),
    "Current_load": Column("A", -100, 100, "current measured at the load"),
    "Voltage_load": Column("V", -1, 10, "voltage measured at the load"),
    "Time": Column("s", 0, 1e7, "time since the start of the cycle"),
    "Capacity": Column("Ah", 0, 1000, "capacity measured in the discharge (Ah, > 0)"),
}
#: optional columns a simulated bench adds
OPTIONAL: dict[str, Column] = {
    "true_Capacity": Column("Ah", 0, 1000, "noise-free capacity (simulated logs only)"),
}
TYPES = ("discharge", "charge", "impedance")
_NUMBERS = [c for c, spec in COLUMNS.items() if spec.unit]

#: what the ageing models take, per discharge cycle: name -> (unit, description)
FEATURES: dict[str, tuple[str, str]] = {
    "cycle": ("1", "discharge cycle number of the cell, from 1 (equivalent full cycles in the twin)"),
    "temperature": ("degC", "cell temperature of the cycle: the largest measured in the discharge "
                    "(the seed's T)"),
    "c_rate": ("1/h", "mean discharge current over the cell's initial capacity"),
}
_META_KEY = b"co2twin"
_SHOW = 5


def _rows(mask: np.ndarray) -> str:
    idx = np.flatnonzero(mask)
    shown = ", ".join(str(int(i)) for i in idx[:_SHOW])
    more = f" (first {_SHOW} of {len(idx)})" if len(idx) > _SHOW else ""
    return f"rows {shown}{more}"


def _numbers(frame: pd.DataFrame, col: str, spec: Column, rows: np.ndarray,
             problems: list[str]) -> np.ndarray:
    """The column as floats; a problem for each kind of bad value among ``rows``."""
    raw = frame[col]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    text = rows & raw.notna().to_numpy() & np.isnan(values)
    if text.any():
        first = raw.to_numpy()[np.flatnonzero(text)[0]]
        problems.append(f"column {col!r}: expected numbers, found {first!r} at {_rows(text)}")
    missing = rows & raw.isna().to_numpy()
    if missing.any():
        problems.append(f"column {col!r}: expected a number, found an empty cell at {_rows(missing)}")
    finite = np.isfinite(values)
    infinite = rows & ~finite & ~np.isnan(values)
    if infinite.any():
        problems.append(f"column {col!r}: expected finite numbers, found infinity at {_rows(infinite)}")
    outside = rows & finite & ((values < spec.lower) | (values > spec.upper))
    if outside.any():
        first = values[np.flatnonzero(outside)[0]]
        unit = f" {spec.unit}" if spec.unit not in ("", "1") else ""
        problems.append(f"column {col!r}: expected values in [{spec.lower:g}, {spec.upper:g}]{unit}, "
                        f"found {first:g} at {_rows(outside)}")
    return values


def _cycle_problems(frame: pd.DataFrame, values: dict[str, np.ndarray], discharge: np.ndarray,
                    problems: list[str]) -> None:
    """Whole cycle numbers; ``Time`` not going back and one ``Capacity`` within each discharge."""
    cycle = values["id_cycle"]
    ok = np.isfinite(cycle)
    fraction = discharge & ok & (cycle != np.round(cycle))
    if fraction.any():
        problems.append(f"column 'id_cycle': expected whole numbers, found "
                        f"{cycle[np.flatnonzero(fraction)[0]]:g} at {_rows(fraction)}")
    keys = frame["Battery"].astype(str).to_numpy() + "\x00" + pd.Series(cycle).astype(str).to_numpy()
    same = np.zeros(len(frame), dtype=bool)
    same[1:] = keys[1:] == keys[:-1]
    for col, test, expected in (
            ("Time", lambda a, b: b < a, "times that do not go back within a cycle"),
            ("Capacity", lambda a, b: a != b, "one capacity per discharge cycle (the same on its rows)")):
        v = values[col]
        bad = np.zeros(len(frame), dtype=bool)
        bad[1:] = same[1:] & discharge[1:] & discharge[:-1] & test(v[:-1], v[1:]) \
            & np.isfinite(v[1:]) & np.isfinite(v[:-1])
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            problems.append(f"column {col!r}: expected {expected}, found {v[i - 1]:g} then {v[i]:g} "
                            f"at {_rows(bad)}")


def _dates(frame: pd.DataFrame, rows: np.ndarray, problems: list[str]) -> None:
    """``time``: a date and time (ISO text) or a number (MATLAB datenum, a year); never empty."""
    raw = frame["time"]
    missing = rows & raw.isna().to_numpy()
    if missing.any():
        problems.append(f"column 'time': expected the start of the cycle, found an empty cell at "
                        f"{_rows(missing)}")
    numbers = pd.to_numeric(raw, errors="coerce")
    text = raw[rows & raw.notna().to_numpy() & numbers.isna().to_numpy()]
    if len(text):
        unique = pd.Series(text.unique())
        dates = pd.to_datetime(unique, errors="coerce", format="mixed")
        bad_values = set(unique[dates.isna().to_numpy()])
        if bad_values:
            bad = rows & raw.isin(bad_values).to_numpy()
            first = raw.to_numpy()[np.flatnonzero(bad)[0]]
            problems.append(f"column 'time': expected a date and time (2008-04-02 15:25:41) or a number, "
                            f"found {first!r} at {_rows(bad)}")


def validate_log(frame: pd.DataFrame, *, source: str = "<log>") -> pd.DataFrame:
    """The log, checked; :class:`DataError` names the source, each bad column, its rows and the rule.

    Checks: every column of :data:`COLUMNS`; ``type`` one of :data:`TYPES`; at least
    one discharge row; on discharge rows, numbers within each column's bounds,
    whole cycle numbers, ``Time`` not going back within a cycle, one ``Capacity``
    per cycle (and ``true_Capacity`` likewise, when present).
    """
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"missing column(s) {', '.join(map(repr, missing))}; a battery log has the NASA "
                        f"battery data set's columns: {', '.join(COLUMNS)}", source)
    if len(frame) == 0:
        raise DataError("expected at least one row, found none", source)
    frame = frame.reset_index(drop=True)
    problems: list[str] = []
    kind = frame["type"].astype(str).str.strip().str.lower()
    bad_type = ~kind.isin(TYPES).to_numpy()
    if bad_type.any():
        first = frame["type"].to_numpy()[np.flatnonzero(bad_type)[0]]
        problems.append(f"column 'type': expected one of {', '.join(TYPES)}, found {first!r} at "
                        f"{_rows(bad_type)}")
    discharge = (kind == "discharge").to_numpy()
    if not discharge.any():
        problems.append("column 'type': expected discharge cycles (they carry the capacity), found none")
    names = frame["Battery"]
    no_name = discharge & (names.isna() | (names.astype(str).str.strip() == "")).to_numpy()
    if no_name.any():
        problems.append(f"column 'Battery': expected a cell name, found an empty cell at {_rows(no_name)}")
    specs = {**{c: COLUMNS[c] for c in _NUMBERS}, **{c: s for c, s in OPTIONAL.items() if c in frame}}
    values = {col: _numbers(frame, col, spec, discharge, problems) for col, spec in specs.items()}
    zero = discharge & (values["Capacity"] == 0)
    if zero.any():
        problems.append(f"column 'Capacity': expected a capacity above 0 Ah, found 0 at {_rows(zero)}")
    _dates(frame, discharge, problems)
    if not problems:
        _cycle_problems(frame, values, discharge, problems)
    if problems:
        raise DataError(problems, source)
    out = frame.copy()
    out["type"] = kind
    out.attrs = {"source": source, "units": {c: s.unit for c, s in {**COLUMNS, **OPTIONAL}.items()
                                              if s.unit and c in out},
                 "ignored_rows": int((~discharge).sum())}
    return out


def read_log(path: str | Path) -> pd.DataFrame:
    """Read a battery log (``.csv`` or ``.parquet``) and check it (:func:`validate_log`)."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            # only an empty cell is missing: "n/a" or "-" in a number column is reported as such
            frame = pd.read_csv(path, low_memory=False, keep_default_na=False, na_values=[""])
        elif suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            raise DataError(f"unknown log format {path.suffix!r}; expected .csv or .parquet", str(path))
    except DataError:
        raise
    except (OSError, ValueError, ImportError) as exc:
        raise DataError(f"cannot read the log: {exc}", str(path)) from None
    return validate_log(frame, source=str(path))


def write_log(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a log as CSV or Parquet (by suffix), atomically, with its units in the metadata."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise DataError(f"unknown log format {path.suffix!r}; expected .csv or .parquet", str(path))
    units = {c: s.unit for c, s in {**COLUMNS, **OPTIONAL}.items() if s.unit and c in frame}
    meta = {"schema": "co2twin.batterylog", "version": 1, "layout": "NASA battery data set",
            "units": units}
    return write_frame(frame.reset_index(drop=True), path, "csv" if suffix == ".csv" else "parquet",
                       meta, _META_KEY, index=False)


def cycles(log: pd.DataFrame) -> pd.DataFrame:
    """One row per discharge cycle of a checked log, in cell then cycle order.

    Columns: ``battery``, ``cycle`` (1, 2, ... per cell, in ``id_cycle`` order),
    ``ambient_temperature``, ``temperature`` (largest measured in the discharge),
    ``current`` (mean of ``|Current_measured|`` over the samples above a tenth of
    the cycle's largest: the discharge itself, not the rest after it),
    ``duration`` (s of those samples), ``capacity`` and ``true_capacity`` (Ah, when
    the log has it), ``c0`` (the cell's first capacity), ``c_rate`` =
    ``current / c0`` and ``capacity_fraction`` = ``capacity / c0``.
    """
    d = log[log["type"] == "discharge"]
    current = pd.to_numeric(d["Current_measured"]).abs()
    key = [d["Battery"].astype(str), pd.to_numeric(d["id_cycle"])]
    peak = current.groupby(key).transform("max")
    on = current > 0.1 * peak
    grouped = d.groupby(key, sort=True)
    table = pd.DataFrame({
        "ambient_temperature": grouped["ambient_temperature"].first().astype(float),
        "temperature": pd.to_numeric(d["Temperature_measured"]).groupby(key).max(),
        "current": current[on].groupby([k[on] for k in key]).mean(),
        "duration": pd.to_numeric(d["Time"])[on].groupby([k[on] for k in key]).max(),
        "capacity": pd.to_numeric(d["Capacity"]).groupby(key).first(),
    })
    if "true_Capacity" in d:
        table["true_capacity"] = pd.to_numeric(d["true_Capacity"]).groupby(key).first()
    table.index.names = ["battery", "id_cycle"]
    table = table.reset_index()
    table["cycle"] = table.groupby("battery").cumcount() + 1
    table["c0"] = table.groupby("battery")["capacity"].transform("first")
    table["c_rate"] = table["current"] / table["c0"]
    table["capacity_fraction"] = table["capacity"] / table["c0"]
    order = ["battery", "id_cycle", "cycle", "ambient_temperature", "temperature", "current", "c_rate",
             "duration", "capacity", "c0", "capacity_fraction"]
    table = table[order + (["true_capacity"] if "true_capacity" in table else [])]
    table.attrs = {"source": log.attrs.get("source", "<log>")}
    return table


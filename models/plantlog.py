"""The plant log: one row per sample of the pilot plant (or of a simulated one).

This is the data contract between the plant (real, or :mod:`models.reference_plant`)
and model training. Column names are the twin's signal names and units (see
:data:`COLUMNS`); logs in the original VALCO2T twin's Spanish names are accepted
and converted (:data:`SPANISH`). :func:`read_log` checks a log and gathers every
problem into one :class:`DataError`; :func:`write_log` writes one atomically with
its units; :func:`data_hash` fingerprints the content for model cards.
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, NamedTuple
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from cosim.atomic import write_frame
from cosim.errors import ModelError
from models.electrochemistry import M_HCOO
from models.variables import FEATURES, VARIABLES

__all__ = [
    "Column", "COLUMNS", "OUTPUTS", "REQUIRED", "BOUNDS", "SPANISH", "SPANISH_DERIVED",
    "DataError", "read_log", "validate_log", "write_log", "data_hash", "required_for",
]


class Column(NamedTuple):
    """Unit, meaning and whether :func:`read_log` requires the column by default."""

    unit: str
    description: str
    required: bool


#: measured outputs; each may also appear noise-free as ``true_<name>``
OUTPUTS: dict[str, Column] = {
    "cell_voltage": Column("V", "cell voltage", False),
    "fe_formate": Column("1", "faradaic efficiency to formate", False),
    "outlet_h2_fraction": Column("%", "H2 in the dry outlet gas", False),
    "outlet_co2_fraction": Column("%", "CO2 in the dry outlet gas", False),
    "anolyte_ph": Column("pH", "anolyte pH at the cell outlet", False),
    "cell_temperature": Column("degC", "cell temperature", False),
    "formate_production": Column("g/h", "formate production (as HCOO-)", False),
}

#: every column of the log, in canonical order
COLUMNS: dict[str, Column] = {
    "time": Column("s", "time since the log started", True),
    "experiment": Column("1", "experiment id (integer); 0 when the log has none", False),
    "phase": Column("", "text label of the sample: settle, steady, step, rest ...", False),
    "area_cm2": Column("cm2", "cathode area", False),
    "current": Column("A", "cell current", True),
    "current_density": Column("mA/cm2", "cell current per cathode area (I * 1000 / A)", False),
    "gas_flow": Column("mL/min", "gas flow into the cathode (25 degC, 1 atm)", True),
    "co2_fraction": Column("%", "CO2 share of the inlet gas", True),
    "humidity": Column("%", "relative humidity of the inlet gas", False),
    "anolyte_flow": Column("mL/min", "anolyte flow", True),
    "catholyte_flow": Column("mL/min", "catholyte flow", True),
    "anolyte_conc": Column("mol/L", "anolyte KOH concentration", True),
    "catholyte_conc": Column("mol/L", "catholyte concentration", True),
    "ambient_temperature": Column("degC", "ambient temperature", False),
    "charge_passed": Column("Ah", "charge through the catalyst since it was new", False),
    "hours_on_stream": Column("h", "operating hours of the catalyst since it was new", False),
    **OUTPUTS,
    **{f"true_{k}": Column(c.unit, f"{c.description}, noise-free (simulated plants only)", False)
       for k, c in OUTPUTS.items()},
}

REQUIRED: tuple[str, ...] = tuple(k for k, c in COLUMNS.items() if c.required)

_INF = math.inf
#: physical bounds (inclusive) of the numeric columns
BOUNDS: dict[str, tuple[float, float]] = {
    "time": (0.0, _INF), "experiment": (0.0, _INF), "area_cm2": (1e-6, 1e6),
    "current": (0.0, 1e4), "current_density": (0.0, 1e5), "gas_flow": (0.0, 1e5),
    "co2_fraction": (0.0, 100.0), "humidity": (0.0, 100.0), "anolyte_flow": (0.0, 1e4),
    "catholyte_flow": (0.0, 1e4), "anolyte_conc": (0.0, 20.0), "catholyte_conc": (0.0, 20.0),
    "ambient_temperature": (-50.0, 80.0), "charge_passed": (0.0, _INF),
    "hours_on_stream": (0.0, _INF), "cell_voltage": (0.0, 100.0), "fe_formate": (0.0, 1.0),
    "outlet_h2_fraction": (0.0, 100.0), "outlet_co2_fraction": (0.0, 100.0),
    "anolyte_ph": (-2.0, 16.0), "cell_temperature": (-50.0, 200.0),
    "formate_production": (0.0, 1e6),
}
BOUNDS.update({f"true_{k}": BOUNDS[k] for k in OUTPUTS})

#: Spanish name -> (English name, factor): english = spanish * factor. ``datetime``
#: (wall clock) is read as seconds since the first row; ``temperatura_out`` (the
#: electrolyte leaving the cell) is taken as the cell temperature, which assumes a
#: lumped, well-mixed cell whose outlet streams leave at its temperature.
SPANISH: dict[str, tuple[str, float]] = {
    "id_experimento": ("experiment", 1.0),
    "intensidad": ("current", 1.0),
    "densidad_corriente": ("current_density", 1.0),
    "caudal_co2": ("gas_flow", 1.0),
    "concentracion_co2": ("co2_fraction", 1.0),
    "humedad_co2": ("humidity", 1.0),
    "caudal_anolito": ("anolyte_flow", 1.0),
    "caudal_catolito": ("catholyte_flow", 1.0),
    "concentracion_anolito": ("anolyte_conc", 1.0),
    "concentracion_catolito": ("catholyte_conc", 1.0),
    "potencial_celda": ("cell_voltage", 1.0),
    "FE": ("fe_formate", 0.01),
    "concentracion_co2_out": ("outlet_co2_fraction", 1.0),
    "concentracion_h2_out": ("outlet_h2_fraction", 1.0),
    "pH": ("anolyte_ph", 1.0),
    "produccion_hcoo_gmin": ("formate_production", 60.0),
    "temperatura_out": ("cell_temperature", 1.0),
}
SPANISH.update({f"true_{s}": (f"true_{e}", k) for s, (e, k) in list(SPANISH.items()) if e in OUTPUTS})
_SPANISH_UNITS = {"FE": "%", "produccion_hcoo_gmin": "g/min", "true_FE": "%",
                  "true_produccion_hcoo_gmin": "g/min"}

#: extras :func:`write_log` adds to a Spanish log, each exactly derivable from one row:
#: mol/min of formate (as HCOO-, 45.02 g/mol), electrical power V*I [W], and kWh per
#: kmol formate (V*I / (3600 * mol/s formate); empty where no formate is made).
#: ``concentracion_hcoo`` is left out: it depends on the product tank's volume and
#: history, not on one row. On reading, these are kept as extra columns (reported in
#: ``attrs["ignored_columns"]``), not checked.
SPANISH_DERIVED: dict[str, str] = {
    "produccion_hcoo_molmin": "mol/min", "potencia": "W", "consumo_energetico": "kWh/kmol",
}

_META_KEY = b"co2twin"
_SHOW = 5


class DataError(ModelError):
    """A plant log is unusable; ``problems`` lists every problem found, one per line."""

    def __init__(self, problems: list[str] | str, source: str | None = None) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.source = source
        prefix = f"{source}: " if source else ""
        if len(self.problems) == 1:
            note = " (0-based data rows)" if " at rows " in self.problems[0] else ""
            text = prefix + self.problems[0] + note
        else:
            text = prefix + f"{len(self.problems)} problems (rows are 0-based data rows)\n" + "\n".join(
                f"  - {p}" for p in self.problems
            )
        super().__init__(text)


def _rows(where: np.ndarray) -> str:
    idx = np.flatnonzero(where) if where.dtype == bool else np.sort(where)
    shown = ", ".join(str(int(i)) for i in idx[:_SHOW])
    more = f" (first {_SHOW} of {len(idx)})" if len(idx) > _SHOW else ""
    return f"rows {shown}{more}"


def required_for(variables: Iterable[str]) -> tuple[str, ...]:
    """Columns a training run for ``variables`` needs: time, their features, the variables
    (and FE to formate for the outlet CO2 fraction)."""
    names = list(variables)
    unknown = [v for v in names if v not in VARIABLES]
    if unknown:
        raise DataError(f"unknown variable(s) {unknown}; expected some of {list(VARIABLES)}")
    used = {f for v in names for f in VARIABLES[v].features}
    # the outlet CO2 models learn the carbonate demand through the carbon balance, which
    # needs the FE of the same rows (formate and H2 take their share of the outlet)
    targets = set(names) | ({"fe_formate"} if "outlet_co2_fraction" in names else set())
    return ("time", *(f for f in FEATURES if f in used), *(v for v in VARIABLES if v in targets))


def _to_english(frame: pd.DataFrame, problems: list[str]) -> tuple[pd.DataFrame, dict[str, str], str]:
    """Rename Spanish columns to English; returns the frame, English -> file name, language."""
    cols = list(frame.columns)
    spanish = [c for c in cols if c in SPANISH] + (["datetime"] if "datetime" in cols else [])
    names = {c: c for c in cols if c in COLUMNS}
    for s in spanish:
        e = SPANISH.get(s, ("time", 1.0))[0]
        if e in cols:
            problems.append(f"columns {s!r} (Spanish) and {e!r} (English) both present; "
                            "keep one name per quantity")
        else:
            names[e] = s
    out = frame.rename(columns={s: e for e, s in names.items() if s != e})
    if "datetime" in spanish and "time" not in cols:
        stamps = pd.to_datetime(frame["datetime"], errors="coerce")
        if stamps.isna().any():
            problems.append(f"column 'datetime': not a date/time at {_rows(stamps.isna().to_numpy())}")
        else:
            out["time"] = (stamps - stamps.iloc[0]).dt.total_seconds().to_numpy()
    return out, names, "es" if spanish else "en"


def validate_log(
    frame: pd.DataFrame, *, required: Iterable[str] = REQUIRED, source: str = "<frame>",
    units: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Check and normalise a log already in memory (``units``: as recorded with it);
    see :func:`read_log`."""
    problems: list[str] = []
    data, names, language = _to_english(frame.reset_index(drop=True), problems)
    if problems:
        raise DataError(problems, source)
    problems += _unit_problems(names, units)
    label = {e: (f"{s!r}" if s == e else f"{s!r} ({e})") for e, s in names.items()}
    ok = np.ones(len(data), dtype=bool)
    for col in (c for c in COLUMNS if c in data and c != "phase"):
        values, found = _numbers(data[col], col, label.get(col, repr(col)),
                                 SPANISH.get(names.get(col, col), ("", 1.0))[1])
        problems += found
        ok &= np.isfinite(values)
        data[col] = values
    _derive_current(data)
    missing = [c for c in required if c not in data]
    if missing:
        problems.append(f"missing required column(s) {missing}")
    exp = data["experiment"].to_numpy(dtype=float) if "experiment" in data else np.zeros(len(data))
    problems += _experiment_problems(exp, label)
    data["experiment"] = np.where(np.isfinite(exp), exp, 0.0).astype(np.int64)
    if ok.all():  # the checks across rows need every value
        problems += _time_problems(data, exp, label) + _current_density_problems(data, names, label)
    if problems:
        raise DataError(problems, source)
    return _normalised(data, source, language)


def _unit_problems(names: Mapping[str, str], units: Mapping[str, str] | None) -> list[str]:
    """Recorded units (``units``, by file column name) that differ from the schema's."""
    problems = []
    for e, s in names.items():
        expected = _SPANISH_UNITS.get(s, COLUMNS[e].unit)
        if units and s in units and units[s] != expected:
            problems.append(f"column {s!r}: recorded unit {units[s]!r}, expected {expected!r}")
    return problems


def _numbers(raw: pd.Series, col: str, name: str, factor: float) -> tuple[np.ndarray, list[str]]:
    """Column ``col`` as floats in the schema's unit (``factor``: from the file's), and what is
    wrong with it: text, missing or non-finite values, values outside :data:`BOUNDS`."""
    problems = []
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    values = values * factor
    bad_text = np.isnan(values) & raw.notna().to_numpy()
    if bad_text.any():
        problems.append(f"column {name}: not a number at {_rows(bad_text)}")
    nonfinite = ~np.isfinite(values) & ~bad_text
    if nonfinite.any():
        problems.append(f"column {name}: missing or not finite (NaN/inf) at {_rows(nonfinite)}")
    lo, hi = BOUNDS[col]
    with np.errstate(invalid="ignore"):
        out = np.isfinite(values) & ((values < lo) | (values > hi))
    if out.any():
        problems.append(f"column {name}: outside the physical range [{lo:g}, {hi:g}] "
                        f"{COLUMNS[col].unit} at {_rows(out)}")
    return values, problems


def _derive_current(data: pd.DataFrame) -> None:
    """Add ``current_density`` from ``current`` and ``area_cm2``, or ``current`` from the other two."""
    if "current_density" not in data and {"current", "area_cm2"} <= set(data):
        data["current_density"] = data["current"] * 1000.0 / data["area_cm2"]
    elif "current" not in data and {"current_density", "area_cm2"} <= set(data):
        data["current"] = data["current_density"] * data["area_cm2"] / 1000.0


def _experiment_problems(exp: np.ndarray, label: Mapping[str, str]) -> list[str]:
    fractional = np.isfinite(exp) & (exp != np.round(exp))
    if not fractional.any():
        return []
    return [f"column {label.get('experiment', repr('experiment'))}: experiment ids "
            f"must be whole numbers; they are not at {_rows(fractional)}"]


def _time_problems(data: pd.DataFrame, exp: np.ndarray, label: Mapping[str, str]) -> list[str]:
    """Time must increase strictly within each experiment."""
    if "time" not in data:
        return []
    order = np.argsort(exp, kind="stable")
    t = data["time"].to_numpy(dtype=float)[order]
    stuck = (exp[order][1:] == exp[order][:-1]) & (np.diff(t) <= 0.0)
    if not stuck.any():
        return []
    return [f"column {label.get('time', repr('time'))}: time must increase strictly "
            f"within each experiment; it does not at {_rows(order[1:][stuck])}"]


def _current_density_problems(data: pd.DataFrame, names: Mapping[str, str],
                              label: Mapping[str, str]) -> list[str]:
    """A log that gives current, current density and area must give them consistently."""
    if not {"current", "current_density", "area_cm2"} <= set(names):
        return []
    j = data["current"].to_numpy() * 1000.0 / data["area_cm2"].to_numpy()
    off = np.abs(j - data["current_density"].to_numpy()) > 1e-6 * np.abs(j) + 1e-6
    if not off.any():
        return []
    return [f"column {label['current_density']}: differs from current*1000/area_cm2 at {_rows(off)}"]


def _normalised(data: pd.DataFrame, source: str, language: str) -> pd.DataFrame:
    """Schema columns first, in :data:`COLUMNS` order, then the others; ``attrs`` filled in."""
    known = [c for c in COLUMNS if c in data]
    extra = [c for c in data.columns if c not in COLUMNS]
    data = data[known + extra]
    data.attrs = {
        "units": {c: COLUMNS[c].unit for c in known if COLUMNS[c].unit},
        "ignored_columns": extra, "source": source, "language": language,
    }
    return data


def read_log(path: str | Path, *, required: Iterable[str] = REQUIRED) -> pd.DataFrame:
    """Read a plant log (``.csv`` or ``.parquet``), English or Spanish names, and check it.

    Returns the log in English names and units with ``experiment`` as int64
    (0 if absent) and ``current_density`` derived from ``current`` and
    ``area_cm2`` when only those are given. ``attrs`` hold ``units``,
    ``ignored_columns`` (columns the schema does not know; kept), ``source`` and
    ``language``. Raises :class:`DataError` listing every problem: missing
    required columns, non-numeric or non-finite values, values outside
    :data:`BOUNDS`, time not strictly increasing within an experiment, both the
    Spanish and English form of a column, a recorded unit that differs.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    meta: dict[str, Any] = {}
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path)
            side = Path(str(path) + ".meta.json")
            if side.exists():
                meta = json.loads(side.read_text())
        elif suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            table = pq.read_table(path)
            frame = table.to_pandas()
            raw = (table.schema.metadata or {}).get(_META_KEY)
            meta = json.loads(raw) if raw else {}
        else:
            raise DataError(f"unknown log format {path.suffix!r}; expected .csv or .parquet", str(path))
    except (OSError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"cannot read the log: {exc}", str(path)) from exc
    return validate_log(frame, required=required, source=str(path), units=meta.get("units"))


def _spanish(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    back = {e: (s, k) for s, (e, k) in SPANISH.items()}
    out = pd.DataFrame(index=frame.index)
    units: dict[str, str] = {}
    for col in frame.columns:
        s, k = back.get(col, (col, 1.0))
        out[s] = frame[col] / k if k != 1.0 else frame[col]
        if col in COLUMNS and COLUMNS[col].unit:
            units[s] = _SPANISH_UNITS.get(s, COLUMNS[col].unit)
    if {"formate_production", "cell_voltage", "current"} <= set(frame.columns):
        mol_min = frame["formate_production"] / M_HCOO / 60.0
        out["produccion_hcoo_molmin"] = mol_min
        out["potencia"] = frame["cell_voltage"] * frame["current"]
        formate = mol_min / 60.0
        with np.errstate(divide="ignore", invalid="ignore"):
            energy = out["potencia"] / (3600.0 * formate)
        out["consumo_energetico"] = energy.where(formate > 0.0)
        units.update(SPANISH_DERIVED)
    return out, units


def write_log(frame: pd.DataFrame, path: str | Path, spanish: bool = False) -> Path:
    """Write a log as CSV or Parquet (by suffix), atomically, with its column units.

    Units go in the Parquet schema metadata under ``b"co2twin"`` (JSON) or, for
    CSV, in a ``<file>.meta.json`` sidecar (as :mod:`cosim.recorder` does).
    ``spanish=True`` writes the VALCO2T names and units plus :data:`SPANISH_DERIVED`;
    columns VALCO2T has no name for (time, phase, area_cm2, ambient_temperature,
    charge_passed, hours_on_stream) keep their English names.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise DataError(f"unknown log format {path.suffix!r}; expected .csv or .parquet", str(path))
    frame = frame.reset_index(drop=True)
    if spanish:
        frame, units = _spanish(frame)
    else:
        units = {c: COLUMNS[c].unit for c in frame.columns if c in COLUMNS and COLUMNS[c].unit}
    meta = {"schema": "co2twin.plantlog", "version": 1, "language": "es" if spanish else "en",
            "units": units}
    return write_frame(frame, path, "csv" if suffix == ".csv" else "parquet", meta, _META_KEY,
                       index=False)


def data_hash(frame: pd.DataFrame) -> str:
    """SHA-256 of a log's content: schema columns in :data:`COLUMNS` order, then the
    others by name; numbers as little-endian float64 (``-0.0`` as ``0.0``), text as
    UTF-8. Independent of column order, index and ``attrs``."""
    known = [c for c in COLUMNS if c in frame.columns]
    cols = known + sorted(str(c) for c in frame.columns if c not in COLUMNS)
    h = hashlib.sha256(f"rows={len(frame)}".encode())
    for col in cols:
        h.update(b"\x00col\x00" + str(col).encode())
        series = frame[col]
        if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
            values = series.to_numpy(dtype="<f8") + 0.0
            h.update(np.ascontiguousarray(values).tobytes())
        else:
            h.update("\x00".join(series.astype(str)).encode())
    return h.hexdigest()

"""Plant logs round-trip with their units, convert Spanish names, and reject bad data loudly."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from cosim.errors import ModelError
from models.plantlog import (
    COLUMNS, REQUIRED, SPANISH, DataError, data_hash, read_log, required_for, validate_log, write_log,
)
from models.variables import VARIABLES


def make_log(n: int = 6) -> pd.DataFrame:
    """A small valid log in English names, two experiments, with measured and true outputs."""
    rng = np.random.default_rng(0)
    current = np.linspace(0.0, 7.5, n)
    frame = pd.DataFrame({
        "time": np.arange(n) * 10.0 + 10.0, "experiment": np.repeat([1, 2], [n // 2, n - n // 2]),
        "phase": ["settle"] * (n - 2) + ["steady"] * 2, "area_cm2": 25.0,
        "current": current, "current_density": current * 1000.0 / 25.0,
        "gas_flow": 100.0, "co2_fraction": 90.0, "humidity": 80.0, "anolyte_flow": 5.0,
        "catholyte_flow": 5.0, "anolyte_conc": 1.0, "catholyte_conc": 1.0,
        "ambient_temperature": 25.0, "charge_passed": np.cumsum(current) / 360.0,
        "hours_on_stream": np.arange(n) / 360.0, "cell_voltage": 3.0 + rng.random(n) * 0.5,
        "fe_formate": np.linspace(0.0, 0.85, n), "outlet_h2_fraction": np.linspace(0.0, 8.0, n),
        "outlet_co2_fraction": np.linspace(99.0, 80.0, n), "anolyte_ph": np.linspace(14.0, 13.2, n),
        "cell_temperature": np.linspace(25.0, 33.0, n), "formate_production": np.linspace(0.0, 4.0, n),
    })
    frame["true_fe_formate"] = frame["fe_formate"] + 0.001
    return frame


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_round_trip_keeps_values_and_units(tmp_path, suffix: str) -> None:
    """write_log then read_log returns the same values, with units recorded and returned."""
    log = make_log()
    path = write_log(log, tmp_path / f"log{suffix}")
    back = read_log(path)
    pd.testing.assert_frame_equal(back[log.columns], log, check_dtype=False)
    assert back.attrs["units"]["fe_formate"] == "1" and back.attrs["units"]["gas_flow"] == "mL/min"
    if suffix == ".csv":
        meta = json.loads((tmp_path / "log.csv.meta.json").read_text())
    else:
        meta = json.loads(pq.read_schema(path).metadata[b"co2twin"])
    assert meta["units"]["formate_production"] == "g/h"
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_spanish_round_trip_converts_units(tmp_path, suffix: str) -> None:
    """A Spanish log stores FE in % and production in g/min, and reads back in fraction and g/h."""
    log = make_log()
    path = write_log(log, tmp_path / f"es{suffix}", spanish=True)
    raw = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    assert {"FE", "produccion_hcoo_gmin", "potencial_celda", "intensidad", "pH"} <= set(raw)
    assert "fe_formate" not in raw
    np.testing.assert_allclose(raw["FE"], log["fe_formate"] * 100.0)
    np.testing.assert_allclose(raw["produccion_hcoo_gmin"], log["formate_production"] / 60.0)
    np.testing.assert_allclose(raw["potencia"], log["cell_voltage"] * log["current"])
    back = read_log(path)
    assert back.attrs["language"] == "es"
    for col in log.columns.drop("phase"):
        np.testing.assert_allclose(back[col], log[col], rtol=1e-12, err_msg=col)
    assert {"produccion_hcoo_molmin", "potencia", "consumo_energetico"} <= set(back.attrs["ignored_columns"])


def test_spanish_datetime_becomes_seconds() -> None:
    """A Spanish log's wall-clock datetime column becomes seconds since its first row."""
    log = make_log().drop(columns="time").rename(columns={k: s for s, (k, f) in SPANISH.items() if f == 1.0})
    log["datetime"] = pd.date_range("2024-03-01 08:00", periods=len(log), freq="10s").astype(str)
    back = validate_log(log)
    np.testing.assert_array_equal(back["time"], np.arange(len(log)) * 10.0)


def write_bad(tmp_path, frame: pd.DataFrame, name: str = "bad.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def problems(path, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        read_log(path, **kwargs)
    assert str(path) in str(info.value)
    return str(info.value)


def test_missing_required_column_is_named(tmp_path) -> None:
    """A log without a required column is refused, naming the file and the column."""
    text = problems(write_bad(tmp_path, make_log().drop(columns=["gas_flow"])))
    assert "missing required column" in text and "gas_flow" in text


def test_non_numeric_values_are_named_with_rows(tmp_path) -> None:
    """Text in a numeric column is reported with its column and rows."""
    log = make_log().astype({"humidity": object})
    log.loc[[1, 4], "humidity"] = "wet"
    text = problems(write_bad(tmp_path, log))
    assert "'humidity'" in text and "not a number" in text and "rows 1, 4" in text


def test_nan_rows_are_named(tmp_path) -> None:
    """Missing values are reported with the column and the first row numbers, counting the rest."""
    log = make_log(20)
    log.loc[[2, 3, 5, 7, 11, 13, 17], "cell_voltage"] = np.nan
    text = problems(write_bad(tmp_path, log))
    assert "'cell_voltage'" in text and "rows 2, 3, 5, 7, 11 (first 5 of 7)" in text


def test_negative_flow_is_out_of_bounds(tmp_path) -> None:
    """A negative flow is outside the physical range and named with its row."""
    log = make_log()
    log.loc[3, "catholyte_flow"] = -0.5
    text = problems(write_bad(tmp_path, log))
    assert "'catholyte_flow'" in text and "outside the physical range" in text and "rows 3" in text


def test_fraction_above_one_is_out_of_bounds(tmp_path) -> None:
    """FE is a fraction: 85 (a percentage) in the English column is refused."""
    log = make_log()
    log.loc[5, "fe_formate"] = 85.0
    assert "'fe_formate'" in problems(write_bad(tmp_path, log))


def test_time_must_increase_within_each_experiment(tmp_path) -> None:
    """Repeated or backwards time within one experiment is refused; a restart in a new one is fine."""
    log = make_log()
    log.loc[2, "time"] = log.loc[1, "time"]
    text = problems(write_bad(tmp_path, log))
    assert "'time'" in text and "increase strictly" in text and "rows 2" in text
    restart = make_log()
    restart.loc[3:, "time"] -= 30.0
    assert read_log(write_bad(tmp_path, restart, "restart.csv"))["experiment"].tolist() == [1, 1, 1, 2, 2, 2]


def test_english_and_spanish_forms_together_are_refused(tmp_path) -> None:
    """A log with both FE and fe_formate is refused instead of picking one silently."""
    log = make_log()
    log["FE"] = log["fe_formate"] * 100.0
    text = problems(write_bad(tmp_path, log))
    assert "'FE'" in text and "'fe_formate'" in text and "both present" in text


def test_all_problems_are_reported_at_once(tmp_path) -> None:
    """Several problems in one log come back in one error, one line each."""
    log = make_log().drop(columns=["anolyte_conc"])
    log.loc[1, "gas_flow"] = -1.0
    log.loc[2, "anolyte_ph"] = np.inf
    with pytest.raises(ModelError) as info:
        read_log(write_bad(tmp_path, log))
    assert len(info.value.problems) == 3


def test_unknown_columns_are_kept_and_reported(tmp_path) -> None:
    """Columns the schema does not know stay in the frame and are listed in attrs."""
    log = make_log()
    log["operator_note"] = "ok"
    back = read_log(write_log(log, tmp_path / "log.parquet"))
    assert back.attrs["ignored_columns"] == ["operator_note"]
    assert (back["operator_note"] == "ok").all()


def test_experiment_defaults_to_zero_and_current_density_is_derived() -> None:
    """Without experiment ids every row is experiment 0; current density comes from I and area."""
    log = make_log().drop(columns=["experiment", "current_density"])
    log["time"] = np.arange(len(log)) * 10.0
    back = validate_log(log)
    assert (back["experiment"] == 0).all() and back["experiment"].dtype == np.int64
    np.testing.assert_allclose(back["current_density"], log["current"] * 40.0)


def test_data_hash_is_stable_and_sensitive(tmp_path) -> None:
    """The hash ignores column order and storage, and changes when one value changes."""
    log = make_log()
    digest = data_hash(log)
    assert digest == data_hash(log[log.columns[::-1]])
    assert digest == data_hash(read_log(write_log(log, tmp_path / "a.csv"))[log.columns])
    changed = log.copy()
    changed.loc[4, "anolyte_ph"] += 1e-9
    assert data_hash(changed) != digest


def test_required_for_lists_features_and_variables() -> None:
    """Training columns are time, every feature of the variables, then the variables."""
    cols = required_for(["anolyte_ph"])
    assert cols[0] == "time" and cols[-1] == "anolyte_ph"
    assert set(cols[1:-1]) == set(VARIABLES["anolyte_ph"].features)
    assert set(required_for(VARIABLES)) <= set(COLUMNS) and set(REQUIRED) <= set(COLUMNS)
    with pytest.raises(DataError, match="unknown variable"):
        required_for(["voltage"])

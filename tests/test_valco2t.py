"""The VALCO2T twin's four Keras models as our surrogates: its formulas, its inputs, its constants.

The models live in ``shared/valco2t/models`` beside the repository; every test
here needs them and fails (not skips) when they are missing. Reference values
are the original service's formulas written out by hand and Keras itself.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from co2twin.kpi import balances
from co2twin.scenario import build, load_scenario, run
from models import valco2t
from models.variables import VARIABLES

#: Keras's own load_model trips a NumPy 2 deprecation inside TensorFlow
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

REPO = Path(__file__).resolve().parents[1]
FILES = {"cell_voltage": "DNN_V_model.keras", "fe_formate": "DNN_CH2_model.keras",
         "outlet_co2_fraction": "DNN_CCO2_model.keras", "anolyte_ph": "DNN_pH_model.keras"}
#: each model's own output among its inputs, and the constant the original service fed there
SELF_INPUT = {"cell_voltage": ("V", 10.0), "fe_formate": ("C_H2_out", 0.0),
              "outlet_co2_fraction": ("C_CO2_out", 0.0), "anolyte_ph": ("pH", 7.0)}
#: VALCO2T input -> our signal, as the service's columns mean them
SIGNAL_OF = {"I": "current", "Q_an": "anolyte_flow", "Q_cat": "catholyte_flow", "C_an": "anolyte_conc",
             "C_cat": "catholyte_conc", "Q_co2_in": "gas_flow", "C_CO2_in": "co2_fraction"}
#: plausible operating ranges of those signals (around the training means of process.md)
RANGES = {"current": (0.5, 6.0), "anolyte_flow": (4.5, 7.0), "catholyte_flow": (4.5, 7.0),
          "anolyte_conc": (0.5, 3.0), "catholyte_conc": (0.5, 3.0), "gas_flow": (90.0, 110.0),
          "co2_fraction": (85.0, 100.0)}
# the original service's constants (its config.json and code)
F, MW_H2, MW_HCOO, P_BAR, R, T_K = 96485.33, 2.0, 45.0, 1.01325, 0.08314, 298.15


@pytest.fixture(scope="session")
def valco2t_dir(valco2t_models: Path) -> Path:
    """The folder of the four VALCO2T models (conftest fails, never skips, without them)."""
    return valco2t_models


@pytest.fixture(scope="session")
def keras_models(keras: Any, valco2t_dir: Path) -> dict[str, Any]:
    """The four VALCO2T models loaded by Keras itself, by our variable."""
    return {v: keras.saving.load_model(valco2t_dir / name) for v, name in FILES.items()}


def keras_abs(model: Any, columns: dict[str, np.ndarray]) -> np.ndarray:
    """|Keras output| for inputs given by VALCO2T name (as the service took abs() of it)."""
    feed = {name: np.asarray(columns[name], dtype=np.float32).reshape(-1, 1)
            for name in (t.name for t in model.inputs)}
    if not isinstance(model._inputs_struct, dict):
        feed = [feed[t.name] for t in model.inputs]
    return np.abs(np.asarray(model(feed), dtype=np.float64)[:, 0])


def hand_fe(h2_percent: float, current: float, q_cat: float) -> float:
    """FE to formate as the original service computed it: 1 - FE_H2, with FE_H2 = 0 at no current."""
    if current == 0:
        return 1.0
    h2_mol_min = h2_percent / 100 * MW_H2 * P_BAR / (R * T_K) * q_cat / 1000 / MW_H2
    fe_h2_percent = 2 * F * (h2_mol_min / 60) * 100 / current
    return 1.0 - fe_h2_percent / 100


# -- the service's formulas -------------------------------------------------------------
CASES = [(0.08, 2.5, 5.57), (5.0, 5.0, 10.0), (30.0, 1.0, 5.57), (0.5, 0.2, 4.0), (2.0, 0.0, 5.57)]


@pytest.mark.parametrize("h2, current, q_cat", CASES)
def test_fe_from_h2_is_the_service_formula(h2, current, q_cat):
    """fe_from_h2 gives 1 - 2F (H2 mol/min / 60) / I from outlet H2 %, catholyte flow and current."""
    assert float(valco2t.fe_from_h2(h2, current, q_cat)) == pytest.approx(hand_fe(h2, current, q_cat),
                                                                          rel=1e-12, abs=1e-12)


def test_fe_from_h2_on_arrays_and_without_current():
    """On arrays fe_from_h2 works element by element; I = 0 gives FE 1 (the service's FE_H2 = 0)."""
    h2, current, q = (np.array(c) for c in zip(*CASES))
    got = valco2t.fe_from_h2(h2, current, q)
    np.testing.assert_allclose(got, [hand_fe(*c) for c in CASES], rtol=1e-12, atol=1e-12)
    assert got[-1] == 1.0
    assert float(valco2t.fe_from_h2(0.0, 3.0, 5.57)) == 1.0  # no H2: every electron to formate


def test_derived_outputs_by_hand():
    """derived() gives formate mol/min and g/min, g/L, W, kWh/kmol and FE % as the service did."""
    voltage, fe, current, q = 3.5, 0.8, 5.0, 5.57
    mol_min = fe * current / (2 * F) * 60
    g_min = mol_min * MW_HCOO
    out = valco2t.derived(voltage, fe, current, q)
    expected = {"FE": 80.0, "produccion_hcoo_molmin": mol_min, "produccion_hcoo_gmin": g_min,
                "concentracion_hcoo": g_min * 1000 / q, "potencia": voltage * current,
                "consumo_energetico": voltage * current / (mol_min * 60)}
    assert set(out) == set(expected)
    for key, value in expected.items():
        assert float(out[key]) == pytest.approx(value, rel=1e-12), key
    idle = valco2t.derived(3.0, 0.8, 0.0, 0.0)  # no current, no catholyte flow: zeros, not NaN
    assert [float(idle[k]) for k in ("produccion_hcoo_molmin", "concentracion_hcoo", "consumo_energetico",
                                     "potencia")] == [0.0, 0.0, 0.0, 0.0]


# -- the models as surrogates -------------------------------------------------------------
def sample(signals: tuple[str, ...], n: int = 48, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cols = [rng.uniform(*RANGES[s], n) for s in signals]
    return np.asarray(np.column_stack(cols), dtype=np.float32).astype(np.float64)


@pytest.mark.parametrize("variable", list(FILES))
def test_load_maps_inputs_and_holds_the_self_input(valco2t_dir, variable):
    """Each model's inputs are our signals per INPUT_MAP; its self-input is held at the service's value."""
    s = valco2t.load(variable, valco2t_dir)
    assert (s.variable, s.kind) == (variable, "valco2t")
    network = s.h2 if variable == "fe_formate" else s
    assert network.absolute and not network.residual
    self_name, constant = SELF_INPUT[variable]
    fed = {c.model_input: c.signal for c in network.columns if c.signal is not None}
    held = {c.model_input: c.constant for c in network.columns if c.signal is None}
    assert held == {self_name: constant}
    assert fed == {name: SIGNAL_OF[name] for name in fed} and set(fed) | {self_name} == set(
        network.network.input_names)
    assert s.inputs == tuple(fed.values())
    assert valco2t.INPUT_MAP == SIGNAL_OF


@pytest.mark.parametrize("variable", list(FILES))
def test_prediction_is_abs_of_keras(valco2t_dir, keras_models, variable):
    """A VALCO2T surrogate predicts |Keras output| at the same inputs (FE: the service's FE of |H2|)."""
    s = valco2t.load(variable, valco2t_dir)
    x = sample(s.inputs)
    self_name, constant = SELF_INPUT[variable]
    by_name = {name: x[:, s.inputs.index(signal)] for name, signal in SIGNAL_OF.items() if signal in s.inputs}
    by_name[self_name] = np.full(len(x), constant)
    reference = keras_abs(keras_models[variable], by_name)
    if variable == "fe_formate":
        reference = valco2t.fe_from_h2(reference, by_name["I"], by_name["Q_cat"])
        assert np.all(reference <= 1.0)
    physics = np.full(len(x), 123.0)  # ignored: these models give the value itself
    np.testing.assert_allclose(s.predict(x, physics), reference, rtol=1e-5, atol=1e-5)
    for row, want in zip(x[:6], reference[:6]):
        assert s.predict_one(row.tolist(), 123.0) == pytest.approx(want, rel=1e-5, abs=1e-5)


def test_envelope_is_the_training_mean_plus_minus_three_sigma(valco2t_dir):
    """The guard's envelope is the training mean +- 3 std; pH (untrained normalisation) has none."""
    s = valco2t.load("cell_voltage", valco2t_dir)
    i = s.inputs.index("current")
    assert s.lower[i] == pytest.approx(2.52 - 3 * 7.24, rel=1e-2)  # process.md: I 2.52 +- 7.24 A
    assert s.upper[i] == pytest.approx(2.52 + 3 * 7.24, rel=1e-2)
    assert valco2t.load("anolyte_ph", valco2t_dir).lower is None


# -- the shipped scenario -----------------------------------------------------------------
def test_shipped_scenario_runs_on_the_valco2t_models(valco2t_dir, keras_models):
    """scenarios/valco2t_models.yaml validates, runs with closed balances and V = the V model's |output|."""
    sc = load_scenario(REPO / "scenarios" / "valco2t_models.yaml")
    chosen = build(sc).components["reactor"].models
    assert {chosen.kind(v) for v in VARIABLES} == {"valco2t"}
    assert {Path(s.source).parent.resolve() for s in chosen.surrogates.values()} == {valco2t_dir.resolve()}
    frame = run(sc, progress=False)
    assert len(frame) == 3601
    residuals = balances(frame)
    assert max(residuals.values()) < 1e-9, residuals
    inputs = {"C_an": frame["feed.anolyte_conc"], "C_cat": frame["feed.catholyte_conc"],
              "I": frame["power.current"], "Q_an": frame["feed.anolyte_flow"],
              "Q_cat": frame["feed.catholyte_flow"], "V": np.full(len(frame), 10.0),
              "C_CO2_in": frame["feed.co2_fraction"], "Q_co2_in": frame["feed.gas_flow"],
              "C_H2_out": np.zeros(len(frame))}
    assert set(frame["power.current"]) >= {1.0, 2.5, 4.0}
    voltage = keras_abs(keras_models["cell_voltage"], inputs)
    np.testing.assert_allclose(frame["reactor.cell_voltage"], voltage, rtol=1e-5, atol=1e-5)
    fe = valco2t.fe_from_h2(keras_abs(keras_models["fe_formate"], inputs), inputs["I"], inputs["Q_cat"])
    free = frame["reactor.estimate_bounded"].to_numpy() == 0.0
    assert free.any()
    np.testing.assert_allclose(frame["reactor.fe_formate"].to_numpy()[free], fe[free], rtol=1e-5, atol=1e-5)


# -- co2twin models check -------------------------------------------------------------------
def models_check(*paths: Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "co2twin.cli", "models", "check", *map(str, paths)],
                          cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def test_models_check_warns_once_per_model_about_its_self_input(valco2t_dir, tmp_path):
    """co2twin models check on the four models: one self-input warning each, no error, exit 0."""
    paths = [valco2t_dir / FILES[v] for v in FILES]
    done = models_check(*paths, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    warnings = [line for line in lines if line.strip().startswith("warning:")]
    assert len(warnings) == 4, done.stdout
    assert not [line for line in lines if line.strip().startswith("error:")]
    for variable, path in zip(FILES, paths):
        self_name = SELF_INPUT[variable][0]
        mine = [w for w in warnings if f"{path}: the model takes its own output as an input: "
                f"{self_name!r}" in w]
        assert len(mine) == 1, (path, warnings)


def test_models_check_names_a_corrupt_file_and_fails(valco2t_dir, tmp_path):
    """A truncated .keras file is an error naming the file, and the command exits 1."""
    broken = tmp_path / "broken.keras"
    broken.write_bytes((valco2t_dir / FILES["cell_voltage"]).read_bytes()[:300])
    done = models_check(broken, valco2t_dir / FILES["anolyte_ph"], cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    errors = [line for line in done.stdout.splitlines() if line.strip().startswith("error:")]
    assert len(errors) == 1 and f"{broken}: not a .keras archive" in errors[0], done.stdout

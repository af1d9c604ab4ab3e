"""check_model flags a network fed its own output (the VALCO2T leak) and passes clean models."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models.check import Finding, check_model, model_target, self_inputs

#: Keras's own save() trips a NumPy 2 deprecation inside TensorFlow
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

from conftest import VALCO2T_MODELS as VALCO2T  # noqa: E402
needs_valco2t = pytest.mark.usefixtures("valco2t_models")


@pytest.fixture(scope="module")
def keras() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    keras.utils.set_random_seed(11)
    return keras


def warnings_of(findings: list[Finding]) -> list[str]:
    return [f.message for f in findings if f.level == "warning"]


@needs_valco2t
@pytest.mark.parametrize(("name", "self_input"), [
    ("DNN_V_model", "V"), ("DNN_CH2_model", "C_H2_out"), ("DNN_CCO2_model", "C_CO2_out"),
    ("DNN_pH_model", "pH"),
])
def test_each_valco2t_model_warns_once_about_its_self_input(name: str, self_input: str) -> None:
    """Each VALCO2T network gives exactly one warning, naming its self-input and the measured sensitivity."""
    findings = check_model(VALCO2T / f"{name}.keras")
    assert not [f for f in findings if f.level == "error"]
    (warning,) = warnings_of(findings)
    assert warning.startswith(str(VALCO2T / f"{name}.keras"))
    assert f"takes its own output as an input: {self_input!r}" in warning
    assert f"per unit of {self_input} at the mid-range point" in warning
    assert any(f.level == "info" and "inputs" in f.message for f in findings)


def test_target_comes_from_the_file_name() -> None:
    """File names give the target: DNN_<x>_model -> x, <variable>.<kind>.keras -> variable."""
    assert [model_target(Path(f"{n}.keras"))[0] for n in (
        "DNN_V_model", "DNN_CH2_model", "DNN_CCO2_model", "DNN_pH_model", "cell_voltage.hybrid")] == [
        "V", "CH2", "CCO2", "pH", "cell_voltage"]


def test_input_names_match_the_target_loosely_but_not_inlets() -> None:
    """C_H2_out matches CH2 and C_CO2_out matches CCO2, but C_CO2_in does not match CCO2."""
    assert self_inputs(("C_CO2_in", "C_CO2_out", "C_cat", "Q_co2_in"), "CCO2") == ["C_CO2_out"]
    assert self_inputs(("C_CO2_in", "C_H2_out", "I"), "CH2") == ["C_H2_out"]
    assert self_inputs(("C_an", "I", "pH"), "pH") == ["pH"]
    assert self_inputs(("current_density", "gas_flow"), "cell_voltage") == []


@needs_valco2t
def test_model_card_output_name_overrides_the_file_name(tmp_path: Path) -> None:
    """With a card beside the file, its output.name decides the target, not the file name."""
    renamed = shutil.copy(VALCO2T / "DNN_V_model.keras", tmp_path / "cell_voltage.nn.keras")
    (tmp_path / "cell_voltage.nn.card.json").write_text(json.dumps({"output": {"name": "V", "unit": "V"}}))
    (warning,) = warnings_of(check_model(renamed))
    assert "'V' is the estimated 'V' (from its model card)" in warning
    innocent = shutil.copy(VALCO2T / "DNN_V_model.keras", tmp_path / "DNN_V_model.keras")
    (tmp_path / "DNN_V_model.card.json").write_text(json.dumps({"output": {"name": "cell_voltage"}}))
    assert warnings_of(check_model(innocent)) == []


def test_clean_model_gives_no_warning(keras: Any, tmp_path: Path) -> None:
    """A model whose inputs do not include its target gives information only."""
    L = keras.layers
    inputs = [keras.Input((1,), name=n) for n in ("current_density", "gas_flow", "anolyte_conc")]
    x = L.BatchNormalization()(L.Concatenate()(inputs))
    model = keras.Model(inputs, L.Dense(1)(L.Dense(6, activation="relu")(x)))
    path = tmp_path / "cell_voltage.nn.keras"
    model.save(path)
    findings = check_model(path)
    assert [f.level for f in findings] == ["info"]
    assert "current_density, gas_flow, anolyte_conc" in findings[0].message


def test_self_named_input_the_output_ignores_is_only_information(keras: Any, tmp_path: Path) -> None:
    """An input named like the target that has no effect on the output gives info, not a warning."""
    L = keras.layers
    inputs = [keras.Input((1,), name=n) for n in ("I", "V")]
    dense = L.Dense(1)
    model = keras.Model(inputs, dense(L.Concatenate()(inputs)))
    dense.set_weights([np.array([[0.7], [0.0]]), np.array([2.0])])
    path = tmp_path / "DNN_V_model.keras"
    model.save(path)
    findings = check_model(path)
    assert warnings_of(findings) == []
    assert any(f.level == "info" and "does not depend on it" in f.message for f in findings)


def test_unloadable_file_gives_one_error(tmp_path: Path) -> None:
    """A file the runtime cannot read becomes a single error finding carrying the runtime's message."""
    path = tmp_path / "DNN_V_model.keras"
    path.write_text("not a model")
    (finding,) = check_model(path)
    assert finding.level == "error" and finding.message.startswith(f"{path}: not a .keras archive")

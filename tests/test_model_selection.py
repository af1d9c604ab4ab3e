"""The scenario's ``models:`` section: which model each variable gets, its errors, its envelope policy.

Models are small Keras networks built here once per session: a "trained models"
folder of ``<variable>.<kind>.keras`` + cards for the four variables, and odd
files (no weights, an LSTM, unmatched inputs, a card in other units) for the errors.
"""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import models.surrogate as surrogate_module
from co2twin.kpi import balances
from cosim.errors import ModelError, ScenarioError
from co2twin.scenario import build, load_scenario, parse_scenario, run
from models.runtime import load_keras
from models.surrogate import EnvelopeWarning
from models.variables import VARIABLES

from kit import WIDE, network  # noqa: E402 (tests/kit.py)

#: Keras's own save() trips a NumPy 2 deprecation inside TensorFlow
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

REPO = Path(__file__).resolve().parents[1]
BASE = {"name": "t", "duration": 60, "step": 1}
#: current 4 A -> 8 A from 10 s to 70 s: beyond 6 A (240 mA/cm2) the trained models extrapolate
RAMP = {"name": "ramp", "duration": 90, "step": 1,
        "inputs": {"current": {"ramp": {"from": 4.0, "to": 8.0, "at": 10, "duration": 60}}}}


# -- building test models ---------------------------------------------------------------
@pytest.fixture(scope="session")
def odd_dir(keras: Any, model_card: Any, trained_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Model files for selection and for every kind of error, beside each other."""
    folder = tmp_path_factory.mktemp("odd")
    # a pH model fed by two signals, no card (so: nn, no envelope)
    network(keras, ("current_density", "anolyte_flow"), bias=13.0, seed=3).save(folder / "ph.keras")
    # a VALCO2T-like voltage model: I, ambient temperature and its own output; negative, so abs() shows
    network(keras, ("I", "T_amb", "V"), bias=-3.5, seed=4).save(folder / "v_model.keras")
    # inputs named like no signal
    network(keras, ("current_density", "weird", "strange"), seed=5).save(folder / "odd.keras")
    # a card in other units than the signal
    network(keras, ("current_density", "gas_flow"), seed=6).save(folder / "units.keras")
    card = model_card("outlet_co2_fraction", "nn",
                      {"current_density": (0.0, 300.0), "gas_flow": (0.0, 200.0)}).to_dict()
    card["inputs"][0]["unit"] = "A/cm2"
    (folder / "units.card.json").write_text(json.dumps(card), encoding="utf-8")
    # not a zip, and a zip without weights
    (folder / "text.keras").write_text("this is not a model\n", encoding="utf-8")
    with zipfile.ZipFile(folder / "ph.keras") as src, zipfile.ZipFile(folder / "noweights.keras", "w") as dst:
        for name in src.namelist():
            if name != "model.weights.h5":
                dst.writestr(name, src.read(name))
    # a layer the NumPy runtime does not run
    seq = keras.Input(shape=(3, 1), name="current_density")
    lstm = keras.Model(seq, keras.layers.Dense(1)(keras.layers.LSTM(2, name="memory")(seq)))
    lstm.save(folder / "lstm.keras")
    return folder


def quoted(path: Path) -> str:
    """A path as a YAML scalar, whatever characters it holds (JSON strings are YAML)."""
    return json.dumps(str(path))


def scenario(models: Mapping[str, Any], base_dir: Path, **extra: Any) -> Any:
    return parse_scenario({**BASE, **extra, "models": dict(models)}, source="sc.yaml", base_dir=base_dir)


def problems_of(models: Mapping[str, Any], base_dir: Path, **extra: Any) -> list[str]:
    """The ScenarioError problems that validating ``models`` raises."""
    with pytest.raises(ScenarioError) as info:
        scenario(models, base_dir, **extra)
    assert str(info.value).startswith("sc.yaml: ")
    return info.value.problems


def reactor_models(sc: Any) -> Any:
    return build(sc).components["reactor"].models


# -- selection ---------------------------------------------------------------------------
def test_kinds_per_variable_with_a_default_for_the_rest(trained_dir, odd_dir):
    """physics, nn, a bare .keras path and the default (hybrid) each reach the reactor's ModelSet."""
    models = {"default": "hybrid", "directory": str(trained_dir), "cell_voltage": "physics",
              "fe_formate": "nn", "anolyte_ph": "ph.keras"}
    sc = scenario(models, odd_dir)
    chosen = reactor_models(sc)
    assert {v: chosen.kind(v) for v in VARIABLES} == {
        "cell_voltage": "physics", "fe_formate": "nn", "outlet_co2_fraction": "hybrid", "anolyte_ph": "nn"}
    assert chosen.policy == "warn"
    assert chosen.surrogates["fe_formate"].source == str(trained_dir / "fe_formate.nn.keras")
    assert chosen.surrogates["outlet_co2_fraction"].source == str(
        trained_dir / "outlet_co2_fraction.hybrid.keras")
    assert chosen.surrogates["anolyte_ph"].source == str(odd_dir / "ph.keras")  # relative to base_dir
    assert "cell_voltage" not in chosen.surrogates

    frame = run(sc, progress=False)
    assert frame.attrs["scenario"]["models"] == {
        "default": "hybrid", "envelope": "warn", "directory": str(trained_dir), "valco2t_dir": None,
        "cell_voltage": "physics", "fe_formate": "nn", "outlet_co2_fraction": None,
        "anolyte_ph": {"path": "ph.keras", "kind": None, "inputs": {}, "constants": {}, "absolute": False},
    }
    ph = load_keras(odd_dir / "ph.keras").predict(
        frame[["reactor.current_density", "feed.anolyte_flow"]].to_numpy())[:, 0]
    np.testing.assert_allclose(frame["reactor.anolyte_ph"], ph, rtol=1e-12)


def test_mapping_form_maps_holds_and_takes_abs(trained_dir, odd_dir, tmp_path):
    """A file spec's inputs map model inputs to signals, constants hold the rest, absolute takes abs()."""
    text = (
        "name: mapped\nduration: 30\nstep: 1\ninputs: {current: 4.0, ambient_temperature: 21.0}\n"
        "models:\n  default: physics\n"
        f"  cell_voltage: {{path: {quoted(odd_dir / 'v_model.keras')}, "
        "inputs: {I: current, T_amb: ambient_temperature}, constants: {V: 10.0}, absolute: true}\n"
        f"  anolyte_ph: {{path: {quoted(trained_dir / 'anolyte_ph.hybrid.keras')}}}\n"
    )
    path = tmp_path / "mapped.yaml"
    path.write_text(text, encoding="utf-8")
    sc = load_scenario(path)
    chosen = reactor_models(sc)
    assert {v: chosen.kind(v) for v in VARIABLES} == {
        "cell_voltage": "nn", "fe_formate": "physics", "outlet_co2_fraction": "physics",
        "anolyte_ph": "hybrid"}  # the card beside the pH file says hybrid
    voltage = chosen.surrogates["cell_voltage"]
    assert voltage.inputs == ("current", "ambient_temperature") and voltage.absolute
    frame = run(sc, progress=False)
    x = np.column_stack([frame["power.current"], frame["reactor.ambient_temperature"],
                         np.full(len(frame), 10.0)])
    raw = load_keras(odd_dir / "v_model.keras").predict(x)[:, 0]
    assert (raw < 0).all()
    np.testing.assert_allclose(frame["reactor.cell_voltage"], np.abs(raw), rtol=1e-12)
    assert frame.attrs["scenario"]["models"]["cell_voltage"] == {
        "path": str(odd_dir / "v_model.keras"), "kind": None,
        "inputs": {"I": "current", "T_amb": "ambient_temperature"}, "constants": {"V": 10.0},
        "absolute": True}


def test_default_physics_gives_a_reactor_without_models(tmp_path):
    """default: physics with nothing named leaves the reactor on physics (no ModelSet at all)."""
    assert reactor_models(scenario({"default": "physics"}, tmp_path)) is None


# -- errors: each names the variable, the file and the problem -------------------------------
def _cases(trained: Path, odd: Path) -> list[tuple[str, dict[str, Any], str, list[str]]]:
    return [
        ("missing_file", {"cell_voltage": "missing.keras"}, "cell_voltage",
         [f"{odd / 'missing.keras'}: no such model file"]),
        ("text_file", {"fe_formate": "text.keras"}, "fe_formate",
         [f"{odd / 'text.keras'}: not a .keras archive", "zip"]),
        ("zip_without_weights", {"outlet_co2_fraction": "noweights.keras"}, "outlet_co2_fraction",
         [f"{odd / 'noweights.keras'}: the archive has no model.weights.h5"]),
        ("unsupported_layer", {"anolyte_ph": "lstm.keras"}, "anolyte_ph",
         [f"{odd / 'lstm.keras'}: layer 'memory' (LSTM) is not supported by the NumPy runtime", "Dense"]),
        ("inputs_fed_by_no_signal", {"cell_voltage": "odd.keras"}, "cell_voltage",
         [f"{odd / 'odd.keras'}: input mismatch for cell_voltage", "model input 'weird' is fed by no signal",
          "inputs: {weird: <signal>}", "constants: {weird: <value>}", "model input 'strange'",
          "current_density, gas_flow"]),
        ("input_mapped_to_no_model_input",
         {"fe_formate": {"path": "odd.keras", "inputs": {"nope": "current", "weird": "current"},
                         "constants": {"strange": 1.0}}}, "fe_formate",
         [f"{odd / 'odd.keras'}: input mismatch for fe_formate",
          "inputs.nope: the model has no input 'nope'"]),
        ("card_unit_differs", {"outlet_co2_fraction": "units.keras"}, "outlet_co2_fraction",
         [f"{odd / 'units.keras'}", "'current_density' is in 'A/cm2' (its card)", "'mA/cm2'"]),
        ("card_kind_differs",
         {"anolyte_ph": {"path": str(trained / "anolyte_ph.hybrid.keras"), "kind": "nn"}}, "anolyte_ph",
         [f"{trained / 'anolyte_ph.hybrid.keras'}: asked for a nn model, but its card says 'hybrid'"]),
        ("card_of_another_variable", {"cell_voltage": str(trained / "fe_formate.nn.keras")}, "cell_voltage",
         [f"{trained / 'fe_formate.nn.keras'}: the model estimates 'fe_formate' (its card)",
          "not 'cell_voltage'"]),
        ("kind_not_trained", {"directory": str(odd), "cell_voltage": "nn"}, "cell_voltage",
         [f"{odd / 'cell_voltage.nn.keras'}: no trained nn model of cell_voltage", "co2twin train"]),
    ]


CASE_IDS = ["missing_file", "text_file", "zip_without_weights", "unsupported_layer",
            "inputs_fed_by_no_signal", "input_mapped_to_no_model_input", "card_unit_differs",
            "card_kind_differs", "card_of_another_variable", "kind_not_trained"]


@pytest.mark.parametrize("case", CASE_IDS)
def test_model_error_names_variable_file_and_problem(trained_dir, odd_dir, case):
    """An unusable model choice is one problem, models.<variable>: <file>: <what is wrong>."""
    (_, models, variable, fragments), = [c for c in _cases(trained_dir, odd_dir) if c[0] == case]
    problems = problems_of({"default": "physics", **models}, odd_dir)
    assert len(problems) == 1, problems
    (problem,) = problems
    assert problem.startswith(f"models.{variable}: "), problem
    for fragment in fragments:
        assert fragment in problem, (fragment, problem)


def test_every_bad_variable_is_listed_at_once(odd_dir):
    """Four unusable files give four problems in one ScenarioError, one per variable."""
    models = {"default": "physics", "cell_voltage": "missing.keras", "fe_formate": "text.keras",
              "outlet_co2_fraction": "noweights.keras", "anolyte_ph": "lstm.keras"}
    problems = problems_of(models, odd_dir)
    assert [p.split(":", 1)[0] for p in problems] == [f"models.{v}" for v in VARIABLES]
    for problem, file in zip(problems, ("missing", "text", "noweights", "lstm")):
        assert str(odd_dir / f"{file}.keras") in problem


def test_mapping_to_an_unknown_signal_names_that_signal(odd_dir):
    """inputs: {weird: curent} is refused with a message that names the unknown signal 'curent'."""
    problems = problems_of({"default": "physics", "fe_formate": {
        "path": "odd.keras", "inputs": {"weird": "curent"}, "constants": {"strange": 1.0}}}, odd_dir)
    (problem,) = problems
    assert problem.startswith(f"models.fe_formate: {odd_dir / 'odd.keras'}: input mismatch"), problem
    assert "'weird'" in problem and "current_density, gas_flow" in problem  # the signals it could be
    assert "curent" in problem, problem


def test_unknown_kind_is_named(odd_dir):
    """A kind that is not physics/nn/hybrid/valco2t or a .keras file is a problem under models.<variable>."""
    problems = problems_of({"default": "physics", "cell_voltage": "magic"}, odd_dir)
    named = [p for p in problems if p.startswith("models.cell_voltage") and "'magic'" in p]
    assert named and any("physics, nn, hybrid, valco2t or a .keras file" in p for p in named), problems


def test_unknown_envelope_policy_is_named(odd_dir):
    """An envelope policy other than warn/clamp/physics/stop is a problem under models.envelope."""
    problems = problems_of({"default": "physics", "envelope": "ignore"}, odd_dir)
    assert any(p.startswith("models.envelope: ") and "'ignore'" in p and "'stop'" in p
               for p in problems), problems


@pytest.mark.parametrize("models, bad", [
    ({"default": "physics", "cell_voltage": "magic"}, "models.cell_voltage"),
    ({"default": "physics", "envelope": "ignore"}, "models.envelope"),
], ids=["unknown_kind", "unknown_policy"])
def test_a_schema_error_in_models_is_the_only_problem(odd_dir, tmp_path, monkeypatch, models, bad):
    """A typo in models: is reported alone, not with problems about default models the file never chose."""
    monkeypatch.setattr(surrogate_module, "TRAINED_DIR", tmp_path / "no-trained-models")
    problems = problems_of(models, odd_dir)
    others = [p for p in problems if not p.startswith(bad)]
    assert not others, "problems beyond the typo:\n" + "\n".join(others)


def test_valco2t_needs_its_folder(odd_dir, monkeypatch):
    """valco2t without models.valco2t_dir (or CO2TWIN_VALCO2T_DIR, or a shared/valco2t/models
    folder above the working directory) says where to name the folder."""
    monkeypatch.delenv("CO2TWIN_VALCO2T_DIR", raising=False)
    monkeypatch.chdir(odd_dir)
    (problem,) = problems_of({"default": "physics", "fe_formate": "valco2t"}, odd_dir)
    assert problem.startswith("models.fe_formate: valco2t models for fe_formate: say where they are")
    assert "models.valco2t_dir" in problem and "CO2TWIN_VALCO2T_DIR" in problem
    models = {"default": "physics", "valco2t_dir": "nowhere", "anolyte_ph": "valco2t"}
    (problem,) = problems_of(models, odd_dir)
    assert problem.startswith(f"models.anolyte_ph: {odd_dir / 'nowhere' / 'DNN_pH_model.keras'}: "
                              "no such VALCO2T model file")


# -- envelope policies through a whole run ------------------------------------------------
def ramp(trained_dir: Path, envelope: str, **models: Any) -> Any:
    spec = {"default": "hybrid", "directory": str(trained_dir), "envelope": envelope, **models}
    return parse_scenario({**RAMP, "models": spec}, source="ramp.yaml", base_dir=trained_dir)


@pytest.fixture(scope="session")
def warned_ramp(trained_dir: Path) -> tuple[Any, list[str]]:
    """The ramp run with envelope: warn, and the EnvelopeWarning messages it gave."""
    with pytest.warns(EnvelopeWarning) as records:
        frame = run(ramp(trained_dir, "warn"), progress=False)
    return frame, [str(w.message) for w in records if issubclass(w.category, EnvelopeWarning)]


def outside_rows(frame: Any) -> np.ndarray:
    return frame["reactor.current_density"].to_numpy() > WIDE["current_density"][1]


def test_warn_flags_exactly_the_rows_outside(warned_ramp):
    """warn: every variable's flag column is 1 exactly where current density exceeds the envelope."""
    frame, messages = warned_ramp
    outside = outside_rows(frame)
    assert 0 < outside.sum() < len(frame) - 10
    for v in VARIABLES:
        flag = frame[f"reactor.{v}_outside_envelope"].to_numpy()
        np.testing.assert_array_equal(flag, outside.astype(float))
    assert sorted(m.split(" ", 1)[0] for m in messages) == sorted(VARIABLES)
    assert all("current_density" in m and "[0, 240]" in m for m in messages), messages


def test_physics_policy_gives_the_physics_value_where_flagged(trained_dir):
    """physics: in flagged rows pH and FE are exactly the physics-only run's; elsewhere the model's."""
    models = {"default": "physics", "anolyte_ph": "hybrid", "fe_formate": "hybrid"}
    frame = run(ramp(trained_dir, "physics", **models), progress=False)
    physics = run(ramp(trained_dir, "warn", default="physics"), progress=False)
    flagged = frame["reactor.anolyte_ph_outside_envelope"].to_numpy() == 1.0
    np.testing.assert_array_equal(flagged, outside_rows(frame))
    np.testing.assert_array_equal(frame["reactor.fe_formate_outside_envelope"].to_numpy() == 1.0, flagged)
    assert 0 < flagged.sum() < len(frame)
    ph, ph_physics = frame["reactor.anolyte_ph"].to_numpy(), physics["reactor.anolyte_ph"].to_numpy()
    np.testing.assert_array_equal(ph[flagged], ph_physics[flagged])
    assert (ph[~flagged] != ph_physics[~flagged]).all()  # the hybrid's residual acts inside
    np.testing.assert_allclose(frame["reactor.fe_formate"].to_numpy()[flagged],
                               physics["reactor.fe_formate"].to_numpy()[flagged], rtol=1e-12, atol=0)


def test_stop_raises_naming_input_and_time(trained_dir, warned_ramp):
    """stop: the run raises ModelError naming the input, the first time outside and the policy."""
    frame, _ = warned_ramp
    first = float(frame.index[outside_rows(frame)][0])
    with pytest.raises(ModelError) as info:
        run(ramp(trained_dir, "stop"), progress=False)
    text = str(info.value)
    for fragment in ("input current_density = ", f"at t = {first:g} s", "[0, 240]", "models.envelope: stop"):
        assert fragment in text, (fragment, text)


def test_stop_through_the_cli_leaves_no_results_file(trained_dir, warned_ramp, tmp_path):
    """co2twin run with envelope: stop exits non-zero naming input and time, and writes no results file."""
    frame, _ = warned_ramp
    first = float(frame.index[outside_rows(frame)][0])
    ramp_yaml = (
        "name: ramp\nduration: 90\nstep: 1\n"
        "inputs:\n  current: {ramp: {from: 4.0, to: 8.0, at: 10, duration: 60}}\n"
        f"models: {{default: hybrid, directory: {quoted(trained_dir)}, envelope: ENVELOPE}}\n")

    def cli(envelope: str, out: str) -> subprocess.CompletedProcess:
        (tmp_path / f"{envelope}.yaml").write_text(ramp_yaml.replace("ENVELOPE", envelope), encoding="utf-8")
        return subprocess.run([sys.executable, "-m", "co2twin.cli", "run", f"{envelope}.yaml", "-o", out],
                              cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)

    stopped = cli("stop", "out.parquet")
    assert stopped.returncode != 0
    for fragment in ("current_density", f"t = {first:g} s", "stop"):
        assert fragment in stopped.stderr, (fragment, stopped.stderr)
    assert not (tmp_path / "out.parquet").exists()
    clamped = cli("clamp", "clamped.parquet")  # the same run on, to show where the file would be
    assert clamped.returncode == 0, clamped.stderr
    assert (tmp_path / "clamped.parquet").is_file()


def test_balances_close_in_a_hybrid_run(trained_dir):
    """With hybrid models for all four variables, charge and carbon balances close to 1e-9."""
    spec = {"name": "hybrid", "duration": "1 h", "step": 1,
            "inputs": {"current": {"steps": [[0, 3.0], [1200, 5.0], [2400, 7.0]]},
                       "recycle_fraction": 0.5, "co2_fraction": 60.0}}
    sc = parse_scenario({**spec, "models": {"default": "hybrid", "directory": str(trained_dir),
                                            "envelope": "clamp"}}, source="hybrid.yaml")
    assert {reactor_models(sc).kind(v) for v in VARIABLES} == {"hybrid"}
    frame = run(sc, progress=False)
    residuals = balances(frame)
    assert {"charge", "carbon_cell", "carbon_feed", "carbon_separator", "tank",
            "carbon_plant"} <= set(residuals)
    assert max(residuals.values()) < 1e-9, residuals
    physics = run(parse_scenario({**spec, "models": {"default": "physics"}}, source="physics.yaml"),
                  progress=False)
    assert not np.allclose(frame["reactor.cell_voltage"], physics["reactor.cell_voltage"], rtol=1e-6, atol=0)

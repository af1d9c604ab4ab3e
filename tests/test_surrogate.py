"""Surrogates: network surrogates in NumPy, the envelope policies of a ModelSet, and a reactor on them.

Test models are small Keras Functional networks built here once per session
(named scalar inputs -> Concatenate -> Dense(4, tanh) -> Dense(1)) with model
cards beside them; the reactor tests also use constant surrogates that return
absurd values, to prove the balances hold whatever a model says.
"""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from components.reactor import Reactor
from cosim.errors import ModelError
from models.cards import card_beside
from models.runtime import load_keras
from models.model_set import POLICIES, ModelSet
from models.surrogate import (
    EnvelopeWarning,
    Surrogate,
    load_network_surrogate,
)
from models.variables import VARIABLES

from kit import network  # noqa: E402 (tests/kit.py)

#: Keras's own save() trips a NumPy 2 deprecation inside TensorFlow
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

REPO = Path(__file__).resolve().parents[1]
UNIT_INPUTS = ("current_density", "gas_flow", "co2_fraction")
UNIT_ENVELOPE = {"current_density": (50.0, 250.0), "gas_flow": (50.0, 150.0), "co2_fraction": (10.0, 100.0)}
INSIDE = {"current_density": 120.0, "gas_flow": 100.0, "co2_fraction": 60.0}
REACTOR_INPUTS = {
    "current": 5.0, "gas_flow": 100.0, "co2_fraction": 100.0, "anolyte_flow": 5.57,
    "catholyte_flow": 5.57, "anolyte_conc": 1.0, "catholyte_conc": 1.0, "humidity": 90.0,
    "ambient_temperature": 25.0,
}


# -- building test models ---------------------------------------------------------------
def f32(x: Any) -> np.ndarray:
    """Values Keras (float32) and the runtime (float64) both see exactly."""
    return np.asarray(x, dtype=np.float32).astype(np.float64)


@pytest.fixture(scope="session")
def sample() -> np.ndarray:
    """16 rows of (current_density, gas_flow, co2_fraction) inside the unit envelope."""
    rng = np.random.default_rng(3)
    lo = np.array([UNIT_ENVELOPE[n][0] for n in UNIT_INPUTS])
    hi = np.array([UNIT_ENVELOPE[n][1] for n in UNIT_INPUTS])
    return f32(rng.uniform(lo, hi, (16, 3)))


@pytest.fixture(scope="session")
def unit_models(keras: Any, model_card: Any, sample: np.ndarray,
                tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """fe_formate as nn and hybrid (same network, output straddling 0) and an outlet CO2 nn, with cards.

    Returns ``{"dir", "keras": the fe network in Keras, "fe_nn", "fe_hybrid", "outlet_nn"}`` (paths).
    """
    folder = tmp_path_factory.mktemp("unit_models")
    fe = network(keras, UNIT_INPUTS, out_scale=1.0, seed=1)
    raw = np.asarray(fe([sample[:, i:i + 1].astype(np.float32) for i in range(3)]))[:, 0]
    weights = fe.get_weights()
    weights[-1] = np.array([-np.median(raw)], dtype=np.float32)  # half the outputs negative
    fe.set_weights(weights)
    fe.save(folder / "fe_formate.nn.keras")
    shutil.copy(folder / "fe_formate.nn.keras", folder / "fe_formate.hybrid.keras")
    model_card("fe_formate", "nn", UNIT_ENVELOPE).write(card_beside(folder / "fe_formate.nn.keras"))
    model_card("fe_formate", "hybrid", UNIT_ENVELOPE).write(card_beside(folder / "fe_formate.hybrid.keras"))
    outlet = network(keras, UNIT_INPUTS, bias=60.0, out_scale=5.0, seed=2)
    outlet.save(folder / "outlet_co2_fraction.nn.keras")
    model_card("outlet_co2_fraction", "nn", UNIT_ENVELOPE).write(
        card_beside(folder / "outlet_co2_fraction.nn.keras"))
    return {"dir": folder, "keras": fe, "fe_nn": folder / "fe_formate.nn.keras",
            "fe_hybrid": folder / "fe_formate.hybrid.keras",
            "outlet_nn": folder / "outlet_co2_fraction.nn.keras"}


def keras_output(model: Any, x: np.ndarray) -> np.ndarray:
    return np.asarray(model([x[:, i:i + 1].astype(np.float32) for i in range(x.shape[1])]),
                      dtype=np.float64)[:, 0]


# -- NetworkSurrogate -------------------------------------------------------------------
def test_nn_surrogate_is_the_network_output(unit_models, sample):
    """An nn surrogate's predict and predict_one return the runtime network's output (= Keras's)."""
    s = load_network_surrogate("fe_formate", unit_models["fe_nn"])
    net = load_keras(unit_models["fe_nn"])
    assert (s.kind, s.inputs) == ("nn", UNIT_INPUTS)
    physics = np.full(len(sample), 0.37)
    expected = net.predict(sample)[:, 0]
    np.testing.assert_array_equal(s.predict(sample, physics), expected)
    np.testing.assert_allclose(expected, keras_output(unit_models["keras"], sample), rtol=1e-5, atol=1e-5)
    for row, want in zip(sample, expected):
        assert s.predict_one(row.tolist(), 0.37) == pytest.approx(want, rel=1e-12, abs=1e-12)


def test_hybrid_surrogate_adds_the_physics_value(unit_models, sample):
    """A hybrid surrogate returns physics + the network's output, row by row."""
    s = load_network_surrogate("fe_formate", unit_models["fe_hybrid"])
    net = load_keras(unit_models["fe_hybrid"])
    assert s.kind == "hybrid"
    physics = np.linspace(0.1, 0.9, len(sample))
    np.testing.assert_allclose(s.predict(sample, physics), physics + net.predict(sample)[:, 0],
                               rtol=1e-12, atol=1e-12)
    assert s.predict_one(sample[0].tolist(), 0.5) == pytest.approx(
        0.5 + net.predict(sample[:1])[0, 0], rel=1e-12)


def test_absolute_takes_abs_of_the_output(unit_models, sample):
    """absolute=True returns |network output|, also where the network gives a negative value."""
    raw = load_keras(unit_models["fe_nn"]).predict(sample)[:, 0]
    assert (raw < 0).any() and (raw > 0).any()  # the test model straddles zero
    s = load_network_surrogate("fe_formate", unit_models["fe_nn"], absolute=True)
    np.testing.assert_allclose(s.predict(sample, np.zeros(len(sample))), np.abs(raw), rtol=1e-12)
    negative = int(np.argmin(raw))
    assert s.predict_one(sample[negative].tolist(), 0.0) == pytest.approx(-raw[negative], rel=1e-12)


def test_constants_fill_held_inputs(unit_models, sample):
    """A held input leaves the surrogate's inputs and is fed its constant in the network's column."""
    s = load_network_surrogate("fe_formate", unit_models["fe_nn"], constants={"gas_flow": 120.0})
    assert s.inputs == ("current_density", "co2_fraction")
    full = sample.copy()
    full[:, 1] = 120.0
    expected = load_keras(unit_models["fe_nn"]).predict(full)[:, 0]
    x = sample[:, [0, 2]]
    np.testing.assert_allclose(s.predict(x, np.zeros(len(x))), expected, rtol=1e-12)
    assert s.predict_one(x[3].tolist(), 0.0) == pytest.approx(expected[3], rel=1e-12)
    assert s.lower.tolist() == [50.0, 10.0] and s.upper.tolist() == [250.0, 100.0]


@pytest.mark.parametrize("options", [
    {"path": "fe_nn"}, {"path": "fe_hybrid"}, {"path": "fe_nn", "absolute": True},
    {"path": "fe_hybrid", "constants": {"co2_fraction": 80.0}},
], ids=["nn", "hybrid", "absolute", "constants"])
def test_batch_predict_equals_row_by_row(unit_models, sample, options):
    """predict on a batch gives what predict_one gives for each row."""
    options = dict(options)
    s = load_network_surrogate("fe_formate", unit_models[options.pop("path")], **options)
    x = sample[:, [UNIT_INPUTS.index(n) for n in s.inputs]]
    physics = np.linspace(0.2, 0.8, len(x))
    batch = s.predict(x, physics)
    rows = [s.predict_one(row.tolist(), p) for row, p in zip(x, physics)]
    np.testing.assert_allclose(batch, rows, rtol=1e-12, atol=1e-12)


# -- ModelSet: envelope policies, one sample -------------------------------------------
def envelope_warnings(records: list) -> list[str]:
    return [str(w.message) for w in records if issubclass(w.category, EnvelopeWarning)]


@pytest.mark.parametrize("policy", POLICIES)
def test_inside_the_envelope_gives_the_model_value_unflagged(unit_models, policy):
    """Inside the envelope every policy returns the model's value, flag 0, and warns of nothing."""
    s = load_network_surrogate("fe_formate", unit_models["fe_nn"])
    models = ModelSet({"fe_formate": s}, envelope=policy)
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        value, flag = models.estimate("fe_formate", INSIDE, 0.42, t=5.0)
    assert value == s.predict_one([INSIDE[n] for n in UNIT_INPUTS], 0.42)
    assert flag == 0.0
    assert envelope_warnings(records) == []


def test_warn_uses_the_model_and_warns_once_per_variable(unit_models):
    """warn: the model's value, flag 1, and one EnvelopeWarning per variable naming input, value, envelope."""
    fe = load_network_surrogate("fe_formate", unit_models["fe_nn"])
    outlet = load_network_surrogate("outlet_co2_fraction", unit_models["outlet_nn"])
    models = ModelSet({"fe_formate": fe, "outlet_co2_fraction": outlet}, envelope="warn")
    outside = {**INSIDE, "current_density": 300.0}
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        first = models.estimate("fe_formate", outside, 0.42, t=7.0)
        again = models.estimate("fe_formate", {**outside, "current_density": 320.0}, 0.42, t=8.0)
        other = models.estimate("outlet_co2_fraction", {**INSIDE, "gas_flow": 170.0}, 50.0, t=9.0)
    assert first == (fe.predict_one([300.0, 100.0, 60.0], 0.42), 1.0)
    assert again == (fe.predict_one([320.0, 100.0, 60.0], 0.42), 1.0)
    assert other == (outlet.predict_one([120.0, 170.0, 60.0], 50.0), 1.0)
    messages = envelope_warnings(records)
    assert len(messages) == 2, messages
    fe_message, outlet_message = messages
    assert fe_message.startswith("fe_formate nn model")
    for fragment in ("current_density = 300 mA/cm2", "t = 7 s", "[50, 250]", "training envelope"):
        assert fragment in fe_message, (fragment, fe_message)
    assert outlet_message.startswith("outlet_co2_fraction nn model")
    for fragment in ("gas_flow = 170 mL/min", "t = 9 s", "[50, 150]"):
        assert fragment in outlet_message, (fragment, outlet_message)


def test_clamp_predicts_at_the_clipped_inputs(unit_models):
    """clamp: the prediction at the inputs clipped into the envelope, flag 1."""
    s = load_network_surrogate("fe_formate", unit_models["fe_nn"])
    models = ModelSet({"fe_formate": s}, envelope="clamp")
    value, flag = models.estimate("fe_formate", {**INSIDE, "current_density": 400.0, "gas_flow": 20.0}, 0.42)
    assert value == s.predict_one([250.0, 50.0, 60.0], 0.42)
    assert value != s.predict_one([400.0, 20.0, 60.0], 0.42)
    assert flag == 1.0


def test_physics_policy_returns_the_physics_value(unit_models):
    """physics: outside the envelope the physics value comes back, flag 1."""
    s = load_network_surrogate("fe_formate", unit_models["fe_nn"])
    models = ModelSet({"fe_formate": s}, envelope="physics")
    assert models.estimate("fe_formate", {**INSIDE, "co2_fraction": 5.0}, 0.42) == (0.42, 1.0)


def test_stop_raises_naming_input_value_envelope_and_policy(unit_models):
    """stop: ModelError naming the input, its value, the envelope, the time and the stop policy."""
    s = load_network_surrogate("fe_formate", unit_models["fe_nn"])
    models = ModelSet({"fe_formate": s}, envelope="stop")
    with pytest.raises(ModelError) as info:
        models.estimate("fe_formate", {**INSIDE, "current_density": 300.0}, 0.42, t=12.0)
    text = str(info.value)
    for fragment in ("current_density = 300 mA/cm2", "[50, 250]", "t = 12 s", "stop", "fe_formate"):
        assert fragment in text, (fragment, text)


def test_unknown_policy_and_variable_are_refused(unit_models):
    """A ModelSet refuses an unknown envelope policy and an unknown variable, naming them."""
    s = load_network_surrogate("fe_formate", unit_models["fe_nn"])
    with pytest.raises(ModelError, match="envelope policy 'ignore'; expected one of warn, clamp"):
        ModelSet({"fe_formate": s}, envelope="ignore")
    with pytest.raises(ModelError, match="unknown variable.*cell_current"):
        ModelSet({"cell_current": s})


# -- ModelSet: envelope policies, a batch of variants ------------------------------------
BATCH = {  # rows 1 and 3 outside (current density, then gas flow); co2_fraction a plain number
    "current_density": np.array([120.0, 300.0, 200.0, 100.0]),
    "gas_flow": np.array([100.0, 100.0, 60.0, 20.0]),
    "co2_fraction": 60.0,
}
BATCH_X = np.column_stack([BATCH["current_density"], BATCH["gas_flow"], np.full(4, 60.0)])
BATCH_PHYSICS = np.array([0.1, 0.2, 0.3, 0.4])
BATCH_OUTSIDE = np.array([0.0, 1.0, 0.0, 1.0])


def test_batch_inside_the_envelope_is_unflagged(unit_models):
    """A batch inside the envelope gives the model's values and an all-zero flag array."""
    s = load_network_surrogate("fe_formate", unit_models["fe_nn"])
    inside = {**BATCH, "current_density": np.array([120.0, 130.0, 200.0, 100.0]),
              "gas_flow": np.array([100.0, 100.0, 60.0, 90.0])}
    for policy in POLICIES:
        value, flag = ModelSet({"fe_formate": s}, envelope=policy).estimate(
            "fe_formate", inside, BATCH_PHYSICS)
        x = np.column_stack([inside["current_density"], inside["gas_flow"], np.full(4, 60.0)])
        np.testing.assert_array_equal(value, s.predict(x, BATCH_PHYSICS))
        np.testing.assert_array_equal(flag, np.zeros(4))


def test_batch_warn_flags_the_rows_outside_and_warns_once(unit_models):
    """warn on a batch: model values in every row, flags on the rows outside, one warning in all."""
    s = load_network_surrogate("fe_formate", unit_models["fe_nn"])
    models = ModelSet({"fe_formate": s}, envelope="warn")
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        value, flag = models.estimate("fe_formate", BATCH, BATCH_PHYSICS, t=3.0)
        models.estimate("fe_formate", BATCH, BATCH_PHYSICS, t=4.0)
    np.testing.assert_array_equal(value, s.predict(BATCH_X, BATCH_PHYSICS))
    np.testing.assert_array_equal(flag, BATCH_OUTSIDE)
    (message,) = envelope_warnings(records)
    for fragment in ("current_density = 300 mA/cm2", "t = 3 s", "[50, 250]"):
        assert fragment in message, (fragment, message)


def test_batch_warning_names_the_variant_like_the_stop_error(unit_models):
    """The warn policy's message on a batch names the variant outside, as stop's error does."""
    s = load_network_surrogate("fe_formate", unit_models["fe_nn"])
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        ModelSet({"fe_formate": s}, envelope="warn").estimate("fe_formate", BATCH, BATCH_PHYSICS, t=3.0)
    (message,) = envelope_warnings(records)
    assert "(variant 1)" in message, message


def test_batch_clamp_clips_only_the_rows_outside(unit_models):
    """clamp on a batch: predictions at the clipped inputs, flags on the rows outside."""
    s = load_network_surrogate("fe_formate", unit_models["fe_nn"])
    value, flag = ModelSet({"fe_formate": s}, envelope="clamp").estimate("fe_formate", BATCH, BATCH_PHYSICS)
    clipped = BATCH_X.copy()
    clipped[1, 0], clipped[3, 1] = 250.0, 50.0
    np.testing.assert_array_equal(value, s.predict(clipped, BATCH_PHYSICS))
    np.testing.assert_array_equal(flag, BATCH_OUTSIDE)
    for row in range(4):
        assert value[row] == pytest.approx(s.predict_one(clipped[row].tolist(), 0.0), rel=1e-12)


def test_batch_physics_policy_falls_back_row_by_row(unit_models):
    """physics on a batch: physics values in the rows outside, the model's in the others."""
    s = load_network_surrogate("fe_formate", unit_models["fe_nn"])
    value, flag = ModelSet({"fe_formate": s}, envelope="physics").estimate("fe_formate", BATCH, BATCH_PHYSICS)
    model = s.predict(BATCH_X, BATCH_PHYSICS)
    np.testing.assert_array_equal(value, [model[0], 0.2, model[2], 0.4])
    np.testing.assert_array_equal(flag, BATCH_OUTSIDE)


def test_batch_stop_names_input_value_variant_and_policy(unit_models):
    """stop on a batch: ModelError naming the first input outside, its value, variant, envelope and stop."""
    s = load_network_surrogate("fe_formate", unit_models["fe_nn"])
    with pytest.raises(ModelError) as info:
        ModelSet({"fe_formate": s}, envelope="stop").estimate("fe_formate", BATCH, BATCH_PHYSICS, t=6.0)
    text = str(info.value)
    for fragment in ("current_density = 300 mA/cm2", "(variant 1)", "[50, 250]", "t = 6 s", "stop"):
        assert fragment in text, (fragment, text)


# -- the reactor on surrogates: the balances hold whatever a model says -------------------
class Fixed(Surrogate):
    """A surrogate that returns a fixed value (or one per variant), with an optional envelope."""

    def __init__(self, variable: str, value: Any, *, inputs: tuple[str, ...] = ("current_density",),
                 envelope: tuple[list[float], list[float]] | None = None) -> None:
        self.variable, self.kind, self.source = variable, "nn", "fixed"
        self.inputs = inputs
        self.value = value
        self.lower, self.upper = (None, None) if envelope is None else map(np.array, envelope)

    def predict(self, x: np.ndarray, physics: np.ndarray) -> np.ndarray:
        return np.broadcast_to(np.asarray(self.value, dtype=float), (x.shape[0],)).copy()

    def predict_one(self, x: Any, physics: float) -> float:
        return float(self.value)


SANE = {"cell_voltage": 3.2, "fe_formate": 0.6, "outlet_co2_fraction": 50.0, "anolyte_ph": 13.0}


def run_reactor(values: Mapping[str, Any], inputs: Mapping[str, Any] | None = None,
                envelope: str = "warn", surrogates: Mapping[str, Surrogate] | None = None,
                steps: int = 4) -> list[dict[str, Any]]:
    """Outputs of a Reactor stepped ``steps`` times (the first with dt = 0) on constant inputs."""
    chosen = {v: Fixed(v, value) for v, value in values.items()}
    chosen.update(surrogates or {})
    reactor = Reactor(models=ModelSet(chosen, envelope=envelope))
    reactor.initialize(0.0)
    inputs = {**REACTOR_INPUTS, **(inputs or {})}
    outs = [reactor.step(0.0, 0.0, inputs)]
    for k in range(steps - 1):
        outs.append(reactor.step(float(k), 1.0, inputs))
    return outs


def assert_balanced(out: Mapping[str, Any], current: Any) -> None:
    """FE within [0, 1], FE sum 1, formate <= CO2 in, carbon and charge closed, no negative flow."""
    fe, fe_h2 = np.asarray(out["fe_formate"]), np.asarray(out["fe_h2"])
    co2_in, co2_out = np.asarray(out["co2_in_rate"]), np.asarray(out["co2_out_rate"])
    formate, carbonate = np.asarray(out["formate_rate"]), np.asarray(out["carbonate_rate"])
    assert ((fe >= 0.0) & (fe <= 1.0)).all(), fe
    np.testing.assert_allclose(fe + fe_h2, 1.0, rtol=0, atol=1e-15)
    assert (formate <= co2_in).all(), (formate, co2_in)
    np.testing.assert_allclose(co2_in - co2_out - formate - carbonate, 0.0, rtol=0,
                               atol=1e-12 * float(np.max(co2_in)))
    assert (carbonate >= 0.0).all() and (co2_out >= 0.0).all() and (np.asarray(out["h2_rate"]) >= 0).all()
    charge = (formate * 2 + np.asarray(out["h2_rate"]) * 2) * 96485.33
    np.testing.assert_allclose(charge, current, rtol=1e-12)
    assert np.min(out["cell_voltage"]) >= 0.0 and np.max(out["cell_voltage"]) <= 100.0
    assert np.min(out["anolyte_ph"]) >= -2.0 and np.max(out["anolyte_ph"]) <= 16.0
    assert np.min(out["outlet_co2_fraction"]) >= 0.0 and np.max(out["outlet_co2_fraction"]) <= 100.0


def test_sane_estimates_pass_through_unbounded():
    """Plausible estimates reach the outputs unchanged and estimate_bounded stays 0."""
    for out in run_reactor(SANE):
        assert_balanced(out, 5.0)
        assert out["estimate_bounded"] == 0.0
        assert out["cell_voltage"] == 3.2 and out["anolyte_ph"] == 13.0
        assert out["fe_formate"] == pytest.approx(0.6, rel=1e-12)
        assert out["outlet_co2_fraction"] == pytest.approx(50.0, rel=1e-9)
        assert all(out[f"{v}_outside_envelope"] == 0.0 for v in VARIABLES)


ABSURD = [
    ("fe_above_one", {"fe_formate": 1.7}, {}),
    ("fe_negative", {"fe_formate": -0.3}, {}),
    ("fe_beyond_the_co2_fed", {"fe_formate": 0.95}, {"current": 20.0}),
    ("outlet_co2_150_percent", {"outlet_co2_fraction": 150.0}, {}),
    ("outlet_co2_negative", {"outlet_co2_fraction": -20.0}, {}),
    ("outlet_co2_beyond_the_co2_left", {"outlet_co2_fraction": 99.0}, {"co2_fraction": 30.0}),
    ("voltage_negative", {"cell_voltage": -2.0}, {}),
    ("voltage_500", {"cell_voltage": 500.0}, {}),
    ("ph_30", {"anolyte_ph": 30.0}, {}),
]


@pytest.mark.parametrize("estimates, inputs", [c[1:] for c in ABSURD], ids=[c[0] for c in ABSURD])
def test_absurd_estimates_are_bounded_and_flagged(estimates, inputs):
    """An absurd estimate is bounded so FE, charge and carbon balances hold, and estimate_bounded is 1."""
    current = inputs.get("current", 5.0)
    for out in run_reactor({**SANE, **estimates}, inputs):
        assert_balanced(out, current)
        assert out["estimate_bounded"] == 1.0


def test_fe_bounds_give_zero_and_all_formate():
    """FE 1.7 gives every electron to formate; FE -0.3 gives none; H2 takes the rest."""
    (out,) = run_reactor({**SANE, "fe_formate": 1.7}, steps=1)
    assert out["fe_formate"] == pytest.approx(1.0, rel=1e-15)
    assert out["h2_rate"] == pytest.approx(0.0, abs=1e-18)
    (out,) = run_reactor({**SANE, "fe_formate": -0.3}, steps=1)
    assert out["fe_formate"] == 0.0 and out["formate_rate"] == 0.0


def test_outlet_co2_estimate_without_diluent_is_honoured_or_flagged():
    """With no N2 and no H2 (pure CO2, FE 1) an outlet CO2 estimate of 90 % is either kept or flagged."""
    (out,) = run_reactor({**SANE, "fe_formate": 1.0, "outlet_co2_fraction": 90.0}, steps=1)
    assert_balanced(out, 5.0)
    assert out["estimate_bounded"] == 1.0 or out["outlet_co2_fraction"] == pytest.approx(90.0), (
        f"outlet CO2 reported {out['outlet_co2_fraction']} % (estimate 90 %), carbonate "
        f"{out['carbonate_rate']:.3g} of {out['co2_in_rate']:.3g} mol/s CO2 in, "
        f"estimate_bounded {out['estimate_bounded']}")


def test_reactor_envelope_flag_per_variable():
    """A surrogate evaluated outside its envelope sets its own flag, not the others'."""
    guarded = Fixed("anolyte_ph", 13.0, envelope=([0.0], [150.0]))
    with pytest.warns(EnvelopeWarning, match="current_density = 200 mA/cm2"):
        out = run_reactor(SANE, surrogates={"anolyte_ph": guarded}, steps=2)[-1]
    assert out["anolyte_ph_outside_envelope"] == 1.0
    assert [out[f"{v}_outside_envelope"] for v in ("cell_voltage", "fe_formate", "outlet_co2_fraction")] \
        == [0.0, 0.0, 0.0]
    assert out["anolyte_ph"] == 13.0  # warn: the model's value
    physics = run_reactor(SANE, surrogates={"anolyte_ph": guarded}, envelope="physics", steps=2)[-1]
    assert physics["anolyte_ph_outside_envelope"] == 1.0 and physics["anolyte_ph"] > 13.5


def test_variants_give_flag_arrays():
    """With 3 variants (array inputs) values are bounded per variant and every flag is an array."""
    n = 3
    inputs = {k: np.full(n, v) for k, v in REACTOR_INPUTS.items()}
    inputs["current"] = np.array([2.0, 5.0, 2.0])
    surrogates = {
        "fe_formate": Fixed("fe_formate", np.array([0.6, 1.7, -0.3])),
        "cell_voltage": Fixed("cell_voltage", np.array([3.0, 3.5, 3.1]), envelope=([0.0], [150.0])),
    }
    with pytest.warns(EnvelopeWarning, match="current_density = 200 mA/cm2"):
        outs = run_reactor({"outlet_co2_fraction": 50.0, "anolyte_ph": 13.0}, inputs, envelope="warn",
                           surrogates=surrogates)
    for out in outs:
        assert_balanced(out, inputs["current"])
        flags = {name: out[name] for name in out if name == "estimate_bounded" or name.endswith("_envelope")}
        for name, flag in flags.items():
            assert isinstance(flag, np.ndarray) and flag.shape == (n,), (name, flag)
        np.testing.assert_array_equal(out["estimate_bounded"], [0.0, 1.0, 1.0])
        np.testing.assert_array_equal(out["cell_voltage_outside_envelope"], [0.0, 1.0, 0.0])
        np.testing.assert_array_equal(out["fe_formate_outside_envelope"], [0.0, 0.0, 0.0])
        np.testing.assert_allclose(out["fe_formate"], [0.6, 1.0, 0.0], rtol=1e-12, atol=0)
        np.testing.assert_array_equal(out["cell_voltage"], [3.0, 3.5, 3.1])


# -- learning spaces: any network output is a consistent plant state -------------------------
SPACE_ENVELOPE = {"current_density": (0.0, 1000.0), "gas_flow": (0.0, 2000.0), "co2_fraction": (0.0, 100.0)}


@pytest.fixture(scope="session")
def space_models(keras: Any, model_card: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """nn models of FE (fe_logit space) and of the outlet CO2 side (logit_carbonate_demand) whose
    outputs sit far out on either side (about +-40), with cards naming the space."""
    folder = tmp_path_factory.mktemp("space_models")
    paths = {}
    for variable, space in (("fe_formate", "fe_logit"), ("outlet_co2_fraction", "logit_carbonate_demand")):
        for tag, bias in (("high", 40.0), ("low", -40.0)):
            path = folder / f"{variable}.{tag}.keras"
            network(keras, UNIT_INPUTS, bias=bias, out_scale=1.0, seed=7).save(path)
            card = model_card(variable, "nn", SPACE_ENVELOPE)
            card.output["space"] = space
            card.write(card_beside(path))
            paths[f"{variable}.{tag}"] = path
    return paths


SUPPLY = [  # (current A, gas flow mL/min, CO2 %): plenty of CO2, starved, diluted, at rest
    (5.0, 100.0, 100.0), (20.0, 10.0, 100.0), (8.0, 200.0, 10.0), (0.0, 100.0, 50.0),
]


@pytest.mark.parametrize("fe_tag", ["high", "low"])
@pytest.mark.parametrize("carbon_tag", ["high", "low"])
def test_bounded_spaces_need_no_bound_whatever_the_network_says(space_models, fe_tag, carbon_tag):
    """FE and carbonate-demand networks with extreme outputs give states that close every
    balance with no bound acting: FE stays under the ceiling, carbonate within the CO2 left."""
    surrogates = {v: load_network_surrogate(v, space_models[f"{v}.{tag}"]) for v, tag in
                  (("fe_formate", fe_tag), ("outlet_co2_fraction", carbon_tag))}
    assert surrogates["outlet_co2_fraction"].estimates == "carbonate_demand"
    for current, gas, x in SUPPLY:
        inputs = {"current": current, "gas_flow": gas, "co2_fraction": x}
        for out in run_reactor({"cell_voltage": 3.2, "anolyte_ph": 13.0}, inputs, surrogates=surrogates):
            assert_balanced(out, current)
            assert out["estimate_bounded"] == 0.0 and out["fe_formate_bounded"] == 0.0
            assert out["outlet_co2_fraction_bounded"] == 0.0
            assert out["fe_formate_correction"] <= 1e-9 and out["outlet_co2_fraction_correction"] == 0.0
            ceiling = min(1.0, out["co2_in_rate"] * 2 * 96485.33 / max(current, 1e-300))
            if current > 0 and fe_tag == "high":
                # every electron the CO2 allows goes to formate: FE 1 with CO2 to spare
                assert out["fe_formate"] == pytest.approx(ceiling, rel=1e-9)
            if current > 0 and fe_tag == "low":
                assert out["fe_formate"] < 1e-12


def test_outlet_fraction_follows_the_carbon_balance_of_a_demand(space_models):
    """With a carbonate-demand model the outlet CO2 fraction is CO2 out over the dry outlet,
    CO2 out = left * left / (demand * I/F + left), left = CO2 in - formate."""
    surrogates = {"outlet_co2_fraction": load_network_surrogate(
        "outlet_co2_fraction", space_models["outlet_co2_fraction.low"])}
    (out,) = run_reactor({**SANE}, {"co2_fraction": 60.0}, surrogates={
        **surrogates, "fe_formate": Fixed("fe_formate", 0.6)}, steps=1)
    left = out["co2_in_rate"] - out["formate_rate"]
    demand = surrogates["outlet_co2_fraction"].predict_one([200.0, 100.0, 60.0], 0.12)
    assert 0.0 < demand < 1e-12
    electrons = 5.0 / 96485.33
    assert out["carbonate_rate"] == pytest.approx(left * demand * electrons / (demand * electrons + left),
                                                  rel=1e-9)
    assert out["outlet_co2_fraction"] == pytest.approx(
        100.0 * out["co2_out_rate"] / (out["co2_out_rate"] + out["n2_rate"] + out["h2_rate"]), rel=1e-12)


def test_per_variable_bound_columns_say_which_and_how_much():
    """An FE estimate of 1.7 sets fe_formate_bounded with its correction (0.7); the others stay 0."""
    (out,) = run_reactor({**SANE, "fe_formate": 1.7}, steps=1)
    assert out["fe_formate_bounded"] == 1.0
    assert out["fe_formate_correction"] == pytest.approx(0.7, rel=1e-9)
    assert out["cell_voltage_bounded"] == out["anolyte_ph_bounded"] == 0.0
    assert out["cell_voltage_correction"] == out["anolyte_ph_correction"] == 0.0
    (out,) = run_reactor({**SANE, "cell_voltage": 500.0}, steps=1)
    assert out["cell_voltage_bounded"] == 1.0 and out["cell_voltage_correction"] == pytest.approx(400.0)
    assert out["fe_formate_bounded"] == 0.0


# -- the run path stays free of TensorFlow ---------------------------------------------------
RUN_WITHOUT_TF = """
import json, sys, warnings
warnings.simplefilter("ignore")
from co2twin.scenario import build, parse_scenario, run
from models.variables import VARIABLES
sc = parse_scenario({"name": "no-tf", "duration": 30, "step": 1, "inputs": {"current": 5.0},
                     "models": {"default": "hybrid", "directory": sys.argv[1]}})
models = build(sc).components["reactor"].models
kinds = {v: models.kind(v) for v in VARIABLES}
frame = run(sc, progress=False)
print(json.dumps({"rows": len(frame), "kinds": kinds,
                  "voltage": float(frame["reactor.cell_voltage"].iloc[-1]),
                  "loaded": sorted(m for m in ("tensorflow", "keras") if m in sys.modules)}))
"""


def test_running_on_networks_never_imports_tensorflow(trained_dir):
    """Loading and running a scenario on hybrid .keras models imports neither TensorFlow nor Keras."""
    done = subprocess.run([sys.executable, "-c", RUN_WITHOUT_TF, str(trained_dir)], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["rows"] == 31
    assert set(report["kinds"].values()) == {"hybrid"}
    assert math.isfinite(report["voltage"]) and report["voltage"] > 0
    assert report["loaded"] == []


@pytest.mark.parametrize("choice", [
    "hybrid", "nn",
    # the random signals leave the VALCO2T models' narrow envelopes (mean +- 3 sigma): expected
    pytest.param("valco2t", marks=pytest.mark.filterwarnings("ignore::models.surrogate.EnvelopeWarning")),
])
def test_fused_bank_equals_one_model_at_a_time(choice, valco2t_models):
    """estimate_all runs same-shaped networks as one bank and gives each variable's own estimate."""
    from models.selection import model_set

    models = model_set(default=choice, valco2t_dir=valco2t_models)
    assert models._bank is not None and len(models._bank.variables) >= 3
    rng = np.random.default_rng(5)
    for _ in range(20):
        signals = {"current": rng.uniform(0.5, 7.0), "current_density": rng.uniform(20, 270),
                   "gas_flow": rng.uniform(30, 250), "co2_fraction": rng.uniform(20, 100),
                   "humidity": rng.uniform(50, 100), "anolyte_flow": rng.uniform(2, 18),
                   "catholyte_flow": rng.uniform(2, 18), "anolyte_conc": rng.uniform(0.6, 2.8),
                   "catholyte_conc": rng.uniform(0.6, 1.9), "ambient_temperature": 25.0,
                   "cell_temperature": rng.uniform(20, 40), "charge_passed": rng.uniform(0, 500)}
        physics = {"cell_voltage": 3.4, "fe_formate": 0.8, "outlet_co2_fraction": 85.0, "anolyte_ph": 13.7}
        values, flags = models.estimate_all(signals, physics)
        for variable in VARIABLES:
            one, flag = models.estimate(variable, signals, physics[variable])
            assert values[variable] == pytest.approx(one, rel=1e-12, abs=1e-12), variable
            assert flags[variable] == flag

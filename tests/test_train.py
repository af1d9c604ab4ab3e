"""Training nn and hybrid surrogates end to end on a tiny log, and reporting on them."""
from __future__ import annotations

import math

# after models.train, which quietens TensorFlow's C++ logging before importing it
import keras  # noqa: E402, I001
import numpy as np
import pandas as pd
import pytest

from cosim.errors import ModelError
from models import baseline, report
from models.campaign import generate
from models.cards import ModelCard, card_path, model_path, score
from models.runtime import load_keras
from models.train import Progress, train
from models.variables import FEATURES

VARIABLE = "fe_formate"
EPOCHS = 4


@pytest.fixture(scope="module")
def log() -> pd.DataFrame:
    """600 rows, 30 experiments (20 rows at rest) of the reference plant's campaign."""
    return generate(seed=0, n_points=24, settle_s=300.0, steady_s=300.0, step_s=300.0, sample_s=30.0)


@pytest.fixture(scope="module")
def trained(log, tmp_path_factory):
    out = tmp_path_factory.mktemp("trained")
    cards = train(log, out_dir=out, variables=[VARIABLE], epochs=EPOCHS, patience=EPOCHS, seed=3)
    return out, {c.kind: c for c in cards}


def _x(frame: pd.DataFrame, names) -> np.ndarray:
    return frame[list(names)].to_numpy(float)


def test_files_and_cards_written(trained):
    """Each kind leaves a .keras file and a valid card beside it, and no temporary files."""
    out, cards = trained
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"{VARIABLE}.{k}.{s}" for k in ("nn", "hybrid") for s in ("keras", "card.json"))
    for kind, card in cards.items():
        assert ModelCard.read(card_path(out, VARIABLE, kind)) == card
        assert card.training["epochs_run"] <= EPOCHS and card.training["seed"] == 3


@pytest.mark.parametrize("kind", ["nn", "hybrid"])
def test_keras_and_numpy_runtime_agree(trained, log, kind):
    """The saved file loads in Keras and in the NumPy runtime with the same predictions."""
    path = model_path(trained[0], VARIABLE, kind)
    network = load_keras(path)
    model = keras.saving.load_model(path)
    x = _x(log, network.input_names)
    by_keras = model.predict({n: x[:, i:i + 1] for i, n in enumerate(network.input_names)}, verbose=0)
    np.testing.assert_allclose(network.predict(x), by_keras, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["nn", "hybrid"])
def test_envelope_is_training_split_range(trained, log, kind):
    """The card's input ranges are the min/max of the training split (after exclusions),
    reaching down to a feature's origin (a new catalyst's 0 Ah) where it has one."""
    card = trained[1][kind]
    rows = card.splits.masks(log, VARIABLE)["train"]
    assert card.data["splits"]["rows"]["train"] == rows.sum()
    for spec in card.inputs:
        lo, hi = log[spec.name][rows].min(), log[spec.name][rows].max()
        origin = FEATURES[spec.name].origin
        if origin is not None:
            lo, hi = min(lo, origin), max(hi, origin)
        assert (spec.min, spec.max) == (lo, hi)
    charge = next(spec for spec in card.inputs if spec.name == "charge_passed")
    assert charge.min == 0.0 < log["charge_passed"][rows].min()


@pytest.mark.parametrize("kind", ["nn", "hybrid"])
def test_metrics_present_and_finite(trained, kind):
    """Test and extrapolation metrics exist against truth and measurement, all finite."""
    metrics = trained[1][kind].metrics
    for split in ("train", "validation", "test", "extrapolation"):
        for ref in ("truth", "measured"):
            assert all(math.isfinite(v) for v in metrics[split][ref].values()), (split, ref)


def test_hybrid_is_baseline_plus_network(trained, log):
    """The hybrid card scores ceiling * sigmoid(logit(physics / ceiling) + network output): the
    physics baseline corrected in the FE space, and records the baseline and the space."""
    out, cards = trained
    card = cards["hybrid"]
    assert card.output["residual_of"] == "physics"
    assert card.output["baseline"]["function"] == baseline.IDENTITY
    assert card.output["space"] == "fe_logit"
    network = load_keras(model_path(out, VARIABLE, "hybrid"))
    ceiling = baseline.context(log)["ceiling"]
    share = np.clip(baseline.predict(VARIABLE, log) / ceiling, 1e-12, 1.0 - 1e-12)
    z = np.log(share / (1.0 - share))
    predicted = ceiling / (1.0 + np.exp(-(z + network.predict(_x(log, network.input_names))[:, 0])))
    rows = card.splits.masks(log, VARIABLE)["test"]
    expected = score(predicted[rows], log[f"true_{VARIABLE}"].to_numpy()[rows])
    assert card.metrics["test"]["truth"] == pytest.approx(expected, rel=1e-6)


def test_same_seed_same_weights(trained, log, tmp_path):
    """Training again with the same seed and data gives bit-identical weights."""
    train(log, out_dir=tmp_path, variables=[VARIABLE], kinds=["hybrid"], epochs=EPOCHS, patience=EPOCHS,
          seed=3)
    first = keras.saving.load_model(model_path(trained[0], VARIABLE, "hybrid")).get_weights()
    again = keras.saving.load_model(model_path(tmp_path, VARIABLE, "hybrid")).get_weights()
    assert len(first) == len(again)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)


def test_extrapolation_rows_never_trained_on(trained, log):
    """Extrapolation rows lie above the threshold, in no other split; test experiments never train."""
    card = trained[1]["nn"]
    splits = card.splits
    masks = splits.masks(log, VARIABLE)
    j = log["current_density"].to_numpy()
    steady = (log["phase"] == "steady").to_numpy()
    assert masks["extrapolation"].any()
    assert (j[masks["extrapolation"]] > splits.threshold).all()
    assert not (masks["extrapolation"] & (masks["train"] | masks["validation"] | masks["test"])).any()
    assert card.envelope["current_density"][1] <= splits.threshold
    # the campaign runs beyond 375 mA/cm2: the models cover up to there, the rest is extrapolation
    assert (j[steady] > 375.0).any() and splits.threshold == 375.0
    assert splits.quantile == pytest.approx(np.mean(j[steady] <= 375.0))
    assert set(splits.test_experiments).isdisjoint(log["experiment"][masks["train"]])


def test_extrapolation_falls_back_to_the_quantile_below_the_fixed_threshold(log):
    """A log that never reaches 375 mA/cm2 extrapolates above its 85th percentile instead."""
    from models.splits import Splits

    low = log[log["current_density"] <= 300.0]
    splits = Splits.choose(low, 0, phases=("steady",), above=375.0)
    steady = (low["phase"] == "steady").to_numpy()
    assert splits.threshold == pytest.approx(np.quantile(low["current_density"][steady], 0.85))
    assert Splits.choose(log, 0, phases=("steady",), above=375.0).threshold == 375.0


def test_transient_and_rest_rows_excluded_and_recorded(trained, log):
    """Rows outside the steady phase, and FE rows at rest, are in no split and counted in the card."""
    card = trained[1]["hybrid"]
    masks = card.splits.masks(log, VARIABLE)
    left_out = ~(log["phase"] == "steady").to_numpy() | (log["current_density"] == 0).to_numpy()
    assert not any((m & left_out).any() for m in masks.values())
    assert sum(m.sum() for m in masks.values()) == (~left_out).sum()
    excluded = card.data["splits"]["excluded"]
    assert sorted(excluded.values()) == sorted([int((log["phase"] != "steady").sum()),
                                                int((log["current_density"] == 0).sum())])
    assert card.data["splits"]["phases"] == ["steady"]


def test_training_learns_far_better_than_the_training_mean(tmp_path):
    """A cell-voltage nn's test RMSE is under 40 % of the training mean's (R2 > 0.85); its loss
    falls 20-fold. (1,000 points over the whole operating range, rests at open circuit among
    them: a tighter bound would test the data, not the training.)"""
    # one or two steady rows per point: many operating points, few near-copies; ~5 s on 2 cores
    campaign = generate(seed=0, n_points=1000, settle_s=2400.0, steady_s=300.0, sample_s=600.0,
                        include_steps=False)
    epochs: list[Progress] = []
    (card,) = train(campaign, out_dir=tmp_path, variables=["cell_voltage"], kinds=["nn"], epochs=40,
                    patience=40, batch_size=64, learning_rate=5e-3, seed=0, progress=epochs.append)
    masks = card.splits.masks(campaign, "cell_voltage")
    truth = campaign["true_cell_voltage"].to_numpy()[masks["test"]]
    mean = campaign["cell_voltage"][masks["train"]].mean()
    trivial = score(np.full(truth.shape, mean), truth)
    assert masks["test"].sum() >= 100
    assert card.metrics["test"]["truth"]["rmse"] < 0.4 * trivial["rmse"], (card.metrics["test"], trivial)
    assert card.metrics["test"]["truth"]["r2"] > 0.85
    losses = [e.loss for e in epochs if not e.done]
    assert len(losses) == 40
    assert losses[-1] < losses[0] / 20, losses


def test_missing_feature_column_is_named(log, tmp_path):
    """A log without a feature column gives a ModelError naming that column."""
    with pytest.raises(ModelError, match="humidity"):
        train(log.drop(columns="humidity"), out_dir=tmp_path, variables=["cell_voltage"], epochs=1)
    assert not any(tmp_path.iterdir())


def test_report_compares_kinds_and_checks_targets(trained, log, tmp_path):
    """The report scores physics, nn and hybrid on test and extrapolation, and draws parity plots."""
    out = trained[0]
    result = report.compare(log, out)
    assert set(result) == {VARIABLE}
    assert set(result[VARIABLE]) == {"test", "extrapolation"}
    assert set(result[VARIABLE]["test"]) == {"physics", "nn", "hybrid"}
    assert result[VARIABLE]["test"]["hybrid"] == pytest.approx(trained[1]["hybrid"].metrics["test"]["truth"])
    measured = report.compare(log, out, reference="measured")
    assert measured[VARIABLE]["test"]["nn"] == pytest.approx(trained[1]["nn"].metrics["test"]["measured"])
    checks = report.targets(result)
    assert [c["target"] for c in checks] == list(report.TARGETS)
    assert all(isinstance(c["passed"], bool) and c["value"] is not None for c in checks)
    (png,) = report.parity_plots(log, out, tmp_path)
    assert png.name == f"{VARIABLE}.parity.png" and png.read_bytes()[:4] == b"\x89PNG"


def test_outlet_models_estimate_a_carbonate_demand_within_the_balance(log, tmp_path):
    """The outlet CO2 models learn the carbonate demand per electron through the carbon balance:
    their card says so, every output is a demand in (0, 1), and the fraction they score is the
    carbon balance's with the log's FE (trained without FE models, they learn with it)."""
    from models.balance import close, outlet_fraction
    from models.train import value_of

    cards = {c.kind: c for c in train(log, out_dir=tmp_path, variables=["outlet_co2_fraction"],
                                       epochs=EPOCHS, patience=EPOCHS, seed=1)}
    ctx = baseline.context(log)
    for kind, card in cards.items():
        assert card.output["space"] == "logit_carbonate_demand"
        assert card.output["estimates"] == "carbonate_demand"
        assert card.output["fe_context"] == "the log's measured fe_formate"
        network = load_keras(model_path(tmp_path, "outlet_co2_fraction", kind))
        z = network.predict(_x(log, network.input_names))[:, 0]
        if kind == "hybrid":
            k_physics = baseline.quantity("outlet_co2_fraction", log)
            z = z + np.log(k_physics / (1.0 - k_physics))
        demand = 1.0 / (1.0 + np.exp(-z))
        assert ((demand > 0.0) & (demand < 1.0)).all()
        fe = np.clip(log["fe_formate"].to_numpy(), 0.0, ctx["ceiling"])
        closed = close(ctx["current"], ctx["co2_in"], ctx["n2"], fe, demand, demand=True,
                       physics_demand=demand, xp=np)
        fraction = outlet_fraction(closed.co2_out, ctx["n2"], closed.h2, np)
        np.testing.assert_allclose(value_of("outlet_co2_fraction", z, log, ctx), fraction, rtol=1e-6)
        rows = card.splits.masks(log, "outlet_co2_fraction")["test"]
        expected = score(fraction[rows], log["true_outlet_co2_fraction"].to_numpy()[rows])
        assert card.metrics["test"]["truth"] == pytest.approx(expected, rel=1e-5)


def test_outlet_models_learn_with_the_fe_models_of_their_kind(log, tmp_path):
    """Trained together, each outlet CO2 model learns with the FE model of its kind: its card says
    so and its scores are the fraction the balance gives with that FE model's estimates."""
    from models.train import value_of

    cards = {(c.variable, c.kind): c for c in train(
        log, out_dir=tmp_path, variables=["outlet_co2_fraction", "fe_formate"], epochs=2, patience=2,
        seed=2)}
    assert list(cards)[:2] == [("fe_formate", "nn"), ("fe_formate", "hybrid")]  # FE first
    ctx = baseline.context(log)
    for kind in ("nn", "hybrid"):
        card = cards[("outlet_co2_fraction", kind)]
        assert card.output["fe_context"] == f"the fe_formate {kind} model trained with it"
        fe_net = load_keras(model_path(tmp_path, "fe_formate", kind))
        z_fe = fe_net.predict(_x(log, fe_net.input_names))[:, 0]
        if kind == "hybrid":
            share = np.clip(baseline.predict("fe_formate", log) / ctx["ceiling"], 1e-12, 1 - 1e-12)
            z_fe = z_fe + np.log(share / (1.0 - share))
        fe = value_of("fe_formate", z_fe, log, ctx)
        net = load_keras(model_path(tmp_path, "outlet_co2_fraction", kind))
        z = net.predict(_x(log, net.input_names))[:, 0]
        if kind == "hybrid":
            k = baseline.quantity("outlet_co2_fraction", log)
            z = z + np.log(k / (1.0 - k))
        fraction = value_of("outlet_co2_fraction", z, log, ctx, fe)
        rows = card.splits.masks(log, "outlet_co2_fraction")["test"]
        expected = score(fraction[rows], log["true_outlet_co2_fraction"].to_numpy()[rows])
        assert card.metrics["test"]["truth"] == pytest.approx(expected, rel=1e-5)


# Keras's own save() trips a NumPy 2 deprecation inside TensorFlow
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_joint_fidelity_sees_no_bound_on_bounded_spaces_and_reports_one_on_plain_values(
        trained, log, tmp_path):
    """The report's joint section: FE models in their bounded space need no bound on any row and
    close the balances from their unbounded estimates, even when their output is pushed far up;
    the same network read as a plain FE value (an old-style card) says FE > 1, is bounded on the
    rows with current, and its charge balance is reported broken."""
    import shutil

    together = report.joint(log, trained[0])
    assert set(together) == {"physics", "nn", "hybrid"}
    for kind, splits in together.items():
        for split, j in splits.items():
            assert j["rows"] > 0 and j["bounded_share"]["any"] == 0.0, (kind, split, j)
            assert all(v <= 1e-12 for v in j["balances"].values()), (kind, split, j)
    pushed = tmp_path / "pushed"
    shutil.copytree(trained[0], pushed)
    model = keras.saving.load_model(model_path(pushed, VARIABLE, "nn"))
    kernel, bias = model.get_layer("output").get_weights()
    model.get_layer("output").set_weights([kernel, bias + 3.0])  # logit ~ 3: FE near its ceiling
    model.save(model_path(pushed, VARIABLE, "nn"))
    j = report.joint(log, pushed)["nn"]["test"]
    assert j["bounded_share"]["any"] == 0.0 and j["balances"]["charge"] <= 1e-12
    card = ModelCard.read(card_path(pushed, VARIABLE, "nn"))
    card.output.pop("space")
    card.write(card_path(pushed, VARIABLE, "nn"))
    j = report.joint(log, pushed)["nn"]["test"]
    with_current = trained[1]["nn"].splits.masks(log)["test"] & (log["current_density"] > 0).to_numpy()
    assert j["bounded_share"]["fe_formate"] == pytest.approx(with_current.sum() / j["rows"])
    assert j["largest_correction"]["fe_formate"] > 1.0 and j["balances"]["charge"] > 0.0

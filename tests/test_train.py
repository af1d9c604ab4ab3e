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
    """The hybrid card scores physics baseline + network output, and records the baseline."""
    out, cards = trained
    card = cards["hybrid"]
    assert card.output["residual_of"] == "physics"
    assert card.output["baseline"]["function"] == baseline.IDENTITY
    network = load_keras(model_path(out, VARIABLE, "hybrid"))
    predicted = baseline.predict(VARIABLE, log) + network.predict(_x(log, network.input_names))[:, 0]
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
    assert splits.threshold == pytest.approx(np.quantile(j[steady], 0.85))
    assert set(splits.test_experiments).isdisjoint(log["experiment"][masks["train"]])


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
    """A cell-voltage nn's test RMSE is under a third of the training mean's; its loss falls 20-fold."""
    # one or two steady rows per point: many operating points, few near-copies; ~5 s on 2 cores
    campaign = generate(seed=0, n_points=1000, settle_s=2400.0, steady_s=300.0, sample_s=600.0,
                        include_steps=False)
    epochs: list[Progress] = []
    (card,) = train(campaign, out_dir=tmp_path, variables=["cell_voltage"], kinds=["nn"], epochs=30,
                    patience=30, batch_size=64, learning_rate=5e-3, seed=0, progress=epochs.append)
    masks = card.splits.masks(campaign, "cell_voltage")
    truth = campaign["true_cell_voltage"].to_numpy()[masks["test"]]
    mean = campaign["cell_voltage"][masks["train"]].mean()
    trivial = score(np.full(truth.shape, mean), truth)
    assert masks["test"].sum() >= 100
    assert card.metrics["test"]["truth"]["rmse"] < trivial["rmse"] / 3, (card.metrics["test"], trivial)
    assert card.metrics["test"]["truth"]["r2"] > 0.8
    losses = [e.loss for e in epochs if not e.done]
    assert len(losses) == 30
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

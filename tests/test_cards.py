"""Model cards (round trip, validation), split rebuilding, scores, and the physics baseline."""
from __future__ import annotations

import json

import numpy as np
import pytest

from components.reactor import Reactor
from cosim.errors import ModelError
from models import baseline
from models.cards import InputRange, ModelCard, Splits, card_path, score
from models.variables import FEATURES, VARIABLES


def _card(kind: str = "nn") -> ModelCard:
    variable = "anolyte_ph"
    output = {"name": variable, "unit": "pH"}
    if kind == "hybrid":
        output.update(residual_of="physics", baseline={"function": baseline.IDENTITY})
    split = {"truth": {"mae": 0.01, "rmse": 0.02, "r2": 0.99},
             "measured": {"mae": 0.03, "rmse": 0.04, "r2": None}}
    return ModelCard(
        variable=variable, kind=kind,
        inputs=[InputRange(f, FEATURES[f].unit, float(i), float(i) + 1.5)
                for i, f in enumerate(VARIABLES[variable].features)],
        output=output,
        metrics={"train": split, "test": split, "extrapolation": split},
        data={"hash": "ab" * 32, "rows": 120, "source": "<test>",
              "splits": Splits(0, 0.85, 210.0, (3, 7), (5,)).to_dict()},
        training={"epochs_run": 4, "early_stopping": {"patience": 2}, "seed": 0, "time_s": 1.5,
                  "architecture": {"hidden": [8]}, "optimizer": {"name": "adam"}},
        versions={"python": "3.11", "numpy": "2", "tensorflow": None, "keras": "3", "co2twin": "0.1"},
        created="2026-01-01T00:00:00+00:00",
    )


def _bad(tmp_path, edit) -> str:
    raw = _card().to_dict()
    edit(raw)
    path = tmp_path / "anolyte_ph.nn.card.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(ModelError) as err:
        ModelCard.read(path)
    return str(err.value)


@pytest.mark.parametrize("kind", ["nn", "hybrid"])
def test_round_trip(tmp_path, kind):
    """A card written and read back (file and JSON text) is the same card."""
    card = _card(kind)
    path = card.write(card_path(tmp_path, card.variable, kind))
    assert path.name == f"anolyte_ph.{kind}.card.json"
    assert ModelCard.read(path) == card
    assert ModelCard.from_json(card.to_json()) == card
    assert card.envelope["anolyte_flow"] == (1.0, 2.5)
    assert card.splits == Splits(0, 0.85, 210.0, (3, 7), (5,))
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_missing_field_names_file_and_field(tmp_path):
    """A card without its metrics names the file and the field."""
    message = _bad(tmp_path, lambda raw: raw.pop("metrics"))
    assert "anolyte_ph.nn.card.json" in message and "'metrics'" in message


def test_wrong_kind_names_file_and_field(tmp_path):
    """A card of kind 'physics' is refused, naming the file and the kind field."""
    message = _bad(tmp_path, lambda raw: raw.update(kind="physics"))
    assert "anolyte_ph.nn.card.json" in message and "kind: 'physics'" in message


def test_envelope_min_above_max_names_input(tmp_path):
    """An input whose min is above its max is refused, naming the input and the field."""
    message = _bad(tmp_path, lambda raw: raw["inputs"][1].update(min=9.0, max=1.0))
    assert "anolyte_ph.nn.card.json" in message
    assert "inputs[1] (anolyte_flow).min: 9.0 is above max 1.0" in message


def test_every_problem_reported_at_once(tmp_path):
    """Several problems come back in one error, one line each."""
    def edit(raw):
        raw["output"]["unit"] = "V"
        raw["metrics"].pop("test")
        raw["inputs"][0]["name"] = "voltage"
        raw["created"] = "yesterday"
    message = _bad(tmp_path, edit)
    for field in ("output.unit", "metrics.test", "inputs[0] (voltage).name", "created"):
        assert field in message


def test_hybrid_card_needs_residual_of_physics(tmp_path):
    """A hybrid card must say its network returns the residual over physics."""
    raw = _card("hybrid").to_dict()
    raw["output"].pop("residual_of")
    with pytest.raises(ModelError, match="output.residual_of"):
        ModelCard.from_dict(raw, "x.card.json")


def test_splits_are_disjoint_and_deterministic():
    """Splits drawn twice with one seed agree; extrapolation holds only high current densities."""
    rng = np.random.default_rng(0)
    frame = {"experiment": np.repeat(np.arange(1, 21), 10), "current_density": rng.uniform(0, 300, 200)}
    a, b = Splits.choose(frame, 4), Splits.choose(frame, 4)
    assert a == b and a != Splits.choose(frame, 5)
    masks = a.masks(frame)
    assert (sum(m.astype(int) for m in masks.values()) == 1).all()
    assert (frame["current_density"][masks["extrapolation"]] > a.threshold).all()
    assert masks["test"].any() and masks["validation"].any()


def test_score_of_constant_reference_has_no_r2():
    """R2 is None when the reference does not vary; MAE and RMSE still come out."""
    assert score(np.array([1.0, 3.0]), np.array([2.0, 2.0])) == {"mae": 1.0, "rmse": 1.0, "r2": None}
    assert score(np.array([]), np.array([])) == {"mae": None, "rmse": None, "r2": None}


@pytest.mark.parametrize("current, co2, anolyte_flow",
                         [(5.0, 50.0, 5.0), (7.5, 100.0, 2.0), (2.0, 20.0, 8.0)])
def test_baseline_matches_reactor_at_steady_state(current, co2, anolyte_flow):
    """models.baseline.predict reproduces the reactor's four variables once it has settled."""
    reactor = Reactor(initial_charge_Ah=300.0, initial_hours=100.0)
    reactor.initialize(0.0)
    held = {"current": current, "gas_flow": 60.0, "co2_fraction": co2, "anolyte_flow": anolyte_flow,
            "catholyte_flow": 5.0, "anolyte_conc": 1.0, "catholyte_conc": 0.5, "humidity": 80.0,
            "ambient_temperature": 30.0}
    for n in range(1000):
        out = reactor.step(5.0 * n, 5.0, held)
    row = {**held, "current_density": out["current_density"], "cell_temperature": out["cell_temperature"],
           "charge_passed": out["charge_passed"], "hours_on_stream": reactor._hours}
    frame = {k: np.array([v]) for k, v in row.items()}
    for variable in VARIABLES:
        assert baseline.predict(variable, frame)[0] == pytest.approx(out[variable], rel=1e-9, abs=1e-12)


def test_baseline_names_missing_column():
    """A log without a column the baseline needs gives a ModelError naming it."""
    with pytest.raises(ModelError, match="anolyte_conc"):
        baseline.predict("anolyte_ph", {"current_density": np.ones(2), "anolyte_flow": np.ones(2)})


def test_splits_that_cannot_be_rebuilt_are_refused(tmp_path):
    """A card whose data.splits lacks the threshold is refused, naming the file and the field."""
    message = _bad(tmp_path, lambda raw: raw["data"]["splits"].pop("extrapolation"))
    assert "anolyte_ph.nn.card.json" in message and "data.splits" in message

"""The surrogate protocol and the model set's state: finish on every surrogate, warnings in checkpoints.

A surrogate that defines only ``predict`` (like the VALCO2T FE-from-H2 one) must still
answer the whole protocol the model set calls; which variables have already warned
about their training envelope is state that a reactor's checkpoint saves and restores.
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

from components.reactor import Reactor
from models import cards, network, runtime, splits
from models.selection import model_set
from models.model_set import ModelSet
from models.surrogate import EnvelopeWarning, Surrogate

#: the reactor's inputs, held; 5 A is outside the test surrogate's envelope of [0, 1] A
HELD = {"current": 5.0, "gas_flow": 60.0, "co2_fraction": 50.0, "anolyte_flow": 5.0,
        "catholyte_flow": 5.0, "anolyte_conc": 1.0, "catholyte_conc": 0.5, "humidity": 80.0,
        "ambient_temperature": 25.0}


class _PhysicsVoltage(Surrogate):
    """The cell voltage as physics gives it, trained on 0-1 A; defines predict only."""

    def __init__(self) -> None:
        self.variable, self.kind, self.source = "cell_voltage", "nn", "<test>"
        self.inputs = ("current",)
        self.lower, self.upper = np.array([0.0]), np.array([1.0])

    def predict(self, x: np.ndarray, physics: np.ndarray) -> np.ndarray:
        return np.asarray(physics, dtype=float)


def _envelope_warnings(run: Any) -> list[str]:
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        run()
    return [str(r.message) for r in records if issubclass(r.category, EnvelopeWarning)]


def test_surrogate_without_its_own_finish_finishes_a_raw_output_unchanged():
    """The base Surrogate answers finish (the call the model set makes with a bank's output)."""
    assert _PhysicsVoltage().finish(0.25, 7.0) == 0.25


def test_set_mixing_banked_networks_and_a_plain_surrogate_estimates_each_as_alone():
    """estimate_all over banked networks and a predict-only surrogate equals estimate per variable."""
    banked = model_set(default="nn")
    chosen = ModelSet({**banked.surrogates, "cell_voltage": _PhysicsVoltage()}, envelope="physics")
    assert chosen._bank is not None and "cell_voltage" not in chosen._bank.variables
    signals = {**HELD, "current": 0.5, "current_density": 20.0, "cell_temperature": 30.0,
               "charge_passed": 10.0}
    physics = {"cell_voltage": 3.0, "fe_formate": 0.8, "outlet_co2_fraction": 40.0, "anolyte_ph": 13.0}
    values, flags = chosen.estimate_all(signals, physics, 1.0)
    for variable, value in physics.items():
        one, flag = chosen.estimate(variable, signals, value, 1.0)
        # the bank sums its wider matrices in another order: equal to rounding
        assert values[variable] == pytest.approx(one, rel=1e-12, abs=1e-12) and flags[variable] == flag
    assert values["cell_voltage"] == 3.0 and flags["cell_voltage"] == 0.0


def test_rollback_to_before_the_first_envelope_warning_warns_again():
    """A reactor set back to a checkpoint taken before its first warning gives that warning again."""
    reactor = Reactor(ModelSet({"cell_voltage": _PhysicsVoltage()}))
    reactor.initialize(0.0)
    before = reactor.get_state()
    first = _envelope_warnings(lambda: [reactor.step(float(t), 1.0, HELD) for t in range(3)])
    assert len(first) == 1 and "input current = 5 A" in first[0]
    reactor.set_state(before)
    assert len(_envelope_warnings(lambda: reactor.step(0.0, 1.0, HELD))) == 1


def test_rollback_to_after_the_warning_stays_silent():
    """A checkpoint taken after the warning keeps it given: rolling back to it warns no more."""
    reactor = Reactor(ModelSet({"cell_voltage": _PhysicsVoltage()}))
    reactor.initialize(0.0)
    assert len(_envelope_warnings(lambda: reactor.step(0.0, 1.0, HELD))) == 1
    after = reactor.get_state()
    reactor.set_state(after)
    assert _envelope_warnings(lambda: reactor.step(1.0, 1.0, HELD)) == []


@pytest.mark.parametrize("old, new, names", [
    (runtime, network, ("Network", "SUPPORTED_ACTIVATIONS")),
    (cards, splits, ("Splits", "score", "exclusions", "METRICS")),
])
def test_moved_names_stay_importable_from_their_old_modules(old, new, names):
    """runtime and cards still export what moved to models.network and models.splits."""
    for name in names:
        assert getattr(old, name) is getattr(new, name) and name in old.__all__

"""The committed models are consistent by construction over the plant's operating range.

Over a grid of the operating range of ``shared/process.md`` (current density 0-350 mA/cm2,
5-100 % CO2 at gas flows up to the flow controllers' full scale, cell at 5-60 degC,
electrolytes 0.25-3 mol/L from a stopped pump to the pump's maximum, catalysts fresh to
near the end of their life), the committed nn and hybrid models are evaluated together in
one vectorised reactor step: every input lies inside every model's training envelope (the
``stop`` policy raises otherwise), no bound of :func:`models.balance.close` acts, and the
charge and carbon balances close. Each shipped scenario's rows say the same: no bound and
no envelope warning. Learning-space values from anywhere on the real line close the
balances too, so the bounds are a safety net only.
"""
from __future__ import annotations

import itertools
import warnings
from pathlib import Path

import numpy as np
import pytest

from components.reactor import Reactor
from models import electrochemistry as ec
from models.balance import close, violations
from models.campaign import END_OF_LIFE_AH, FLOW_CONTROLLER_MAX
from models.selection import model_set
from models.surrogate import EnvelopeWarning
from models.variables import SPACES, VARIABLES

SCENARIOS = sorted((Path(__file__).parents[1] / "scenarios").glob("*.yaml"))

#: levels of each axis of the grid (the gas flow is capped per CO2 fraction, see grid())
LEVELS = {
    "current_density": (0.0, 1.0, 10.0, 50.0, 100.0, 200.0, 300.0, 350.0),  # mA/cm2
    "co2_fraction": (5.0, 15.0, 40.0, 70.0, 100.0),  # %
    "gas_flow": (5.0, 30.0, 100.0, 300.0, 1000.0),  # mL/min
    "catholyte_flow": (0.0, 0.5, 5.0, 50.0),  # mL/min
    "catholyte_conc": (0.25, 1.0, 3.0),  # mol/L
    "cell_temperature": (5.0, 25.0, 45.0, 60.0),  # degC
    "charge_passed": (0.0, 1000.0, END_OF_LIFE_AH),  # Ah
}
#: levels of the axes that only the voltage and pH models read, cycled through the grid
CYCLED = {
    "anolyte_flow": (0.0, 1.0, 5.0, 20.0, 50.0),
    "anolyte_conc": (0.25, 1.0, 3.0),
    "humidity": (0.0, 50.0, 90.0, 100.0),
}
AREA_CM2 = ec.CellParameters().area_cm2


def grid() -> dict[str, np.ndarray]:
    """Every combination of LEVELS (28,800 points), the CYCLED axes taking turns."""
    points = np.array(list(itertools.product(*LEVELS.values())), dtype=float)
    g = {name: points[:, i] for i, name in enumerate(LEVELS)}
    n = len(points)
    for k, (name, levels) in enumerate(CYCLED.items()):
        g[name] = np.asarray(levels)[(np.arange(n) // (k + 1)) % len(levels)]
    x = g["co2_fraction"] / 100.0
    # neither mass-flow controller beyond its full scale (the feed's defaults)
    g["gas_flow"] = np.minimum(g["gas_flow"], FLOW_CONTROLLER_MAX / np.maximum(x, 1.0 - x))
    return g


def step_on_grid(kind: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """One reactor step over the grid on the committed ``kind`` models (envelope policy: stop)."""
    g = grid()
    reactor = Reactor(models=model_set(default=kind, envelope="stop"))
    reactor.initialize(0.0)
    state = reactor.get_state()
    state.update(_temperature=g["cell_temperature"], _charge_ah=g["charge_passed"],
                 _hours=g["charge_passed"] / 3.0)
    reactor.set_state(state)
    inputs = {
        "current": g["current_density"] * AREA_CM2 / 1000.0, "gas_flow": g["gas_flow"],
        "co2_fraction": g["co2_fraction"], "anolyte_flow": g["anolyte_flow"],
        "catholyte_flow": g["catholyte_flow"], "anolyte_conc": g["anolyte_conc"],
        "catholyte_conc": g["catholyte_conc"], "humidity": g["humidity"],
        "ambient_temperature": g["cell_temperature"],
    }
    return inputs, reactor.step(0.0, 0.0, inputs)


def assert_closed(out: dict[str, np.ndarray], current: np.ndarray) -> None:
    fe, co2_in = out["fe_formate"], out["co2_in_rate"]
    formate, carbonate, co2_out, h2 = (out[k] for k in ("formate_rate", "carbonate_rate",
                                                        "co2_out_rate", "h2_rate"))
    assert ((fe >= 0.0) & (fe <= 1.0)).all()
    np.testing.assert_allclose(fe + out["fe_h2"], 1.0, rtol=0, atol=1e-15)
    assert (formate <= co2_in).all() and (carbonate >= 0).all() and (co2_out >= 0).all() and (h2 >= 0).all()
    np.testing.assert_allclose(co2_in - co2_out - formate - carbonate, 0.0, rtol=0,
                               atol=1e-12 * float(np.max(co2_in)))
    np.testing.assert_allclose((formate * ec.Z_FORMATE + h2 * ec.Z_H2) * ec.F, current, rtol=1e-12,
                               atol=1e-15)


@pytest.mark.parametrize("kind", ["hybrid", "nn"])
def test_no_bound_acts_over_the_operating_range(kind):
    """Over the grid every input is inside every envelope, no bound acts and the balances close."""
    inputs, out = step_on_grid(kind)
    assert out["fe_formate"].shape == (28_800,)
    acted = {v: int(np.sum(out[f"{v}_bounded"] > 0)) for v in VARIABLES}
    assert acted == {v: 0 for v in VARIABLES}, acted
    assert not np.any(out["estimate_bounded"] > 0)
    assert max(float(np.max(out[f"{v}_correction"])) for v in VARIABLES) <= 1e-9
    assert_closed(out, inputs["current"])
    on = inputs["current"] > 0
    # the estimates move the plant state (they are not physics in disguise)
    physics = Reactor()
    physics.initialize(0.0)
    state = physics.get_state()
    state.update(_temperature=inputs["ambient_temperature"], _charge_ah=grid()["charge_passed"],
                 _hours=grid()["charge_passed"] / 3.0)
    physics.set_state(state)
    plain = physics.step(0.0, 0.0, inputs)
    assert np.median(np.abs(out["fe_formate"] - plain["fe_formate"])[on]) > 1e-3


def test_learning_spaces_close_the_balances_for_any_network_output():
    """FE and carbonate demand from learning-space values anywhere in [-60, 60] need no bound."""
    rng = np.random.default_rng(0)
    n = 20_000
    current = rng.uniform(0.0, 12.0, n)
    gas, x = rng.uniform(0.0, 1000.0, n), rng.uniform(0.0, 100.0, n)
    co2_in, n2 = ec.gas_mol_s(gas * x / 100.0), ec.gas_mol_s(gas * (1.0 - x / 100.0))
    ceiling = ec.fe_ceiling(current, co2_in, np)
    fe = SPACES[VARIABLES["fe_formate"].space].from_space(rng.uniform(-60.0, 60.0, n), ceiling)
    demand = SPACES[VARIABLES["outlet_co2_fraction"].space].from_space(rng.uniform(-60.0, 60.0, n), None)
    closed = close(current, co2_in, n2, fe, demand, demand=True, physics_demand=0.2, xp=np)
    assert not np.any(closed.fe_bounded) and not np.any(closed.carbon_bounded)
    broken = violations(current, co2_in, n2, fe, demand, demand=True, physics_demand=0.2, xp=np)
    # nothing beyond rounding: relative to the charge (as formate) and to the CO2 fed
    scale = {"charge": current / (2 * ec.F), "carbon_formate": co2_in, "carbon_outlet": co2_in}
    worst = {name: float(np.max(v / np.maximum(scale[name], 1e-300))) for name, v in broken.items()}
    assert all(w <= 1e-12 for w in worst.values()), worst
    assert (closed.co2_out >= 0).all() and (closed.carbonate >= 0).all() and (closed.h2 >= 0).all()


def test_outlet_fractions_can_break_the_balance_where_demands_cannot():
    """What the bounds are for: an FE and outlet-fraction pair (the old estimates) that implies a
    negative carbonate is bounded and flagged, and the same pair's balance is reported broken."""
    current, gas, x = 2.0, 100.0, 100.0
    co2_in, n2 = ec.gas_mol_s(gas * x / 100.0), 0.0
    # FE 0.80 at 2 A leaves 0.2 * 2 / 2F of H2: an outlet of 99.5 % CO2 then needs more CO2 out
    # than is left after formate
    closed = close(current, co2_in, n2, 0.80, 99.5, demand=False, physics_demand=0.2)
    assert closed.carbon_bounded == 1.0 and closed.carbon_correction > 0.01
    assert closed.carbonate >= 0.0
    broken = violations(current, co2_in, n2, 0.80, 99.5, demand=False, physics_demand=0.2)
    assert broken["carbon_outlet"] > 0.0


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_shipped_scenario_rows_are_never_bounded(shipped_run, path):
    """No shipped scenario warns about a training envelope, and no bound acts in any of its rows."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", EnvelopeWarning)
        _, frame = shipped_run(path)
    outside = {v: int(frame[f"reactor.{v}_outside_envelope"].sum()) for v in VARIABLES}
    assert outside == {v: 0 for v in VARIABLES}, outside
    bounded = {v: int((frame[f"reactor.{v}_bounded"] > 0).sum()) for v in VARIABLES}
    assert bounded == {v: 0 for v in VARIABLES}, bounded
    assert not (frame["reactor.estimate_bounded"] > 0).any()


def test_an_unexpected_envelope_warning_fails_the_test():
    """The test suite's warning filter (pyproject) turns an EnvelopeWarning into an error, so a
    test that runs a model outside its envelope without saying so fails."""
    with pytest.raises(EnvelopeWarning, match="outside"):
        warnings.warn("a model input outside its training envelope", EnvelopeWarning, stacklevel=1)


@pytest.mark.parametrize("kind", ["hybrid", "nn"])
def test_no_co2_reaching_the_cell_gives_no_formate_instead_of_a_crash(kind):
    """Gas flow 0 (an FMU host or a direct input can set it): the FE ceiling is 0, so the FE
    estimate's logit has nothing to share; the cell makes only H2, floats and arrays alike,
    and the envelope exit is reported (it used to raise ZeroDivisionError)."""
    import numpy as np

    from components.reactor import Reactor
    from models.selection import model_set
    from models.surrogate import EnvelopeWarning

    for arrays in (False, True):
        reactor = Reactor(models=model_set(default=kind))
        reactor.initialize(0.0)
        inputs = {p.name: p.start for p in reactor.inputs}
        inputs.update(current=5.0, gas_flow=0.0)
        if arrays:
            inputs = {k: np.full(2, v, dtype=float) for k, v in inputs.items()}
            inputs["gas_flow"] = np.array([0.0, 100.0])
        with pytest.warns(EnvelopeWarning, match="gas_flow = 0"):
            for k in range(3):
                out = reactor.step(float(k), 1.0, inputs)
        fe, formate = np.atleast_1d(out["fe_formate"]), np.atleast_1d(out["formate_rate"])
        assert fe[0] == 0.0 and formate[0] == 0.0
        assert np.atleast_1d(out["co2_in_rate"])[0] == 0.0
        h2 = np.atleast_1d(out["h2_rate"])[0]
        assert h2 * ec.Z_H2 * ec.F == pytest.approx(5.0, rel=1e-12)  # all charge to H2
        if arrays:
            assert 0.5 < fe[1] < 1.0  # the other variant unaffected

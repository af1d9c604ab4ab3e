"""The reference plant keeps exact physics in its true values and departs from the twin as documented."""
from __future__ import annotations

from dataclasses import fields

import numpy as np
import pandas as pd
import pytest

from models import electrochemistry as ec
from models.campaign import (
    CATALYSTS, EXTRAPOLATION_ABOVE, FLOW_CONTROLLER_MAX, generate, latin_hypercube, plan,
)
from models.reference_plant import (
    INPUTS, ReferenceParameters, ReferencePlant, log_activity, ph_at, twin_baseline,
)

TINY = dict(n_points=12, settle_s=600.0, steady_s=120.0, step_s=300.0)
NOMINAL = dict(current=5.0, gas_flow=100.0, co2_fraction=100.0, humidity=90.0, anolyte_flow=5.57,
               catholyte_flow=5.57, anolyte_conc=1.0, catholyte_conc=1.0, ambient_temperature=25.0)


def run(n_steps: int = 2400, plant: ReferencePlant | None = None, **columns: list[float]) -> dict:
    """Simulate one experiment per entry of the given lists, other inputs nominal and constant."""
    n = max((len(v) for v in columns.values()), default=1)
    sched = {k: np.full((n, n_steps), NOMINAL[k], dtype=float) for k in INPUTS}
    for k, v in columns.items():
        sched[k][:] = np.asarray(v, dtype=float)[:, None]
    return (plant or ReferencePlant()).simulate(sched, 1.0)


def pkw(temp_c: np.ndarray | float) -> np.ndarray | float:
    """-log10 Kw of water (Harned and Owen)."""
    kelvin = np.asarray(temp_c) + 273.15
    return 4470.99 / kelvin - 6.0875 + 0.01706 * kelvin


def amps(j: float) -> float:
    return j * ec.CellParameters().area_cm2 / 1000.0


@pytest.fixture(scope="module")
def campaign_true() -> list[dict]:
    """True signals of every step of a small campaign (DoE points and step tests)."""
    plant = ReferencePlant()
    return [plant.simulate(b.schedule, 1.0) for b in plan(**TINY)]


def test_true_values_close_charge_and_carbon_balances(campaign_true: list[dict]) -> None:
    """Charge and carbon balances close to 1e-9 relative and FE sums to 1 over a whole campaign."""
    for r in campaign_true:
        on = r["current"] > 0
        charge = (r["formate_rate"] * ec.Z_FORMATE + r["h2_rate"] * ec.Z_H2) * ec.F
        assert np.all(np.abs(charge - r["current"])[on] <= 1e-9 * r["current"][on])
        carbon = r["co2_out_rate"] + r["formate_rate"] + r["carbonate_rate"]
        assert np.all(np.abs(carbon - r["co2_in_rate"]) <= 1e-9 * r["co2_in_rate"])
        np.testing.assert_allclose(r["fe_formate"] + r["fe_h2"], 1.0, rtol=0, atol=1e-12)
        assert np.all((r["fe_formate"] >= 0) & (r["fe_formate"] <= 1))
        assert np.all((r["co2_out_rate"] >= 0) & (r["carbonate_rate"] >= 0) & (r["h2_rate"] >= 0))


def test_formate_never_exceeds_co2_fed() -> None:
    """Formate stays below the CO2 fed, even starved of CO2 at high current."""
    r = run(300, current=[amps(320)] * 3, gas_flow=[2.0, 20.0, 300.0], co2_fraction=[10.0, 10.0, 100.0])
    assert np.all(r["formate_rate"] <= r["co2_in_rate"])
    assert np.all(r["co2_in_rate"][:2] - r["formate_rate"][:2] > 0)


def test_anolyte_ph_follows_the_hydroxide_balance_with_crossover() -> None:
    """pH is the OH- balance (anode sink plus 2 OH- per crossed-over CO2) at the cell's Kw, as
    the OH- activity."""
    plant = ReferencePlant()
    p, c = plant.params, plant.params.cell
    r = run(600, plant, current=[amps(250), amps(150)], anolyte_flow=[1.5, 8.0])
    oh = r["anolyte_conc"][:, 0].copy()
    carbonate = np.zeros(2)
    for k in range(600):
        sink = r["current"][:, k] + 2.0 * p.carbonate_to_anolyte * ec.F * carbonate
        oh = ec.hydroxide_step(oh, r["anolyte_conc"][:, k], r["anolyte_flow"][:, k], sink,
                               c.anolyte_volume_L, 1.0, np)
        carbonate = r["carbonate_rate"][:, k]
    temp = r["cell_temperature"][:, -1]
    # a probe reads the OH- activity: Davies at the anolyte's ionic strength
    expected = (ph_at(oh, 14.0 - (pkw(25.0) - pkw(temp)))
                + log_activity(r["anolyte_conc"][:, -1], temp))
    np.testing.assert_allclose(r["anolyte_ph"][:, -1], expected, rtol=0, atol=1e-9)


def test_flooding_cuts_fe_at_high_current_and_low_gas_flow() -> None:
    """At 300 mA/cm2 FE is lower at 40 than at 300 mL/min, by more than the twin's drop."""
    r = run(2400, current=[amps(300)] * 2, gas_flow=[40.0, 300.0], catholyte_flow=[10.0] * 2,
            anolyte_flow=[10.0] * 2)
    last = {k: v[:, -1] for k, v in r.items()}
    twin = twin_baseline(last)
    assert last["flooding"][0] > 0.8 and last["flooding"][1] < 0.05
    assert last["fe_formate"][0] < last["fe_formate"][1]
    assert last["fe_formate"][0] / last["fe_formate"][1] < twin["fe_formate"][0] / twin["fe_formate"][1]


def test_flooding_builds_over_minutes_and_recovers() -> None:
    """At constant high current FE keeps falling for minutes; after a current drop it recovers slowly."""
    r = run(2400, current=[amps(300)], gas_flow=[40.0])
    fe = r["fe_formate"][0]
    assert fe[60] > fe[600] > fe[2399]
    sched = {k: np.full((1, 1200), NOMINAL[k]) for k in INPUTS}
    sched.update(current=np.full((1, 1200), amps(100)), gas_flow=np.full((1, 1200), 40.0))
    down = ReferencePlant().simulate({**sched, "initial_flooding": r["flooding"][:, -1]}, 1.0)
    assert down["flooding"][0, 30] > down["flooding"][0, 600] > down["flooding"][0, 1199]


def test_bubble_resistance_raises_voltage_with_current_more_than_the_twin() -> None:
    """From 50 to 300 mA/cm2 the reference voltage rises more than the twin's at the same state."""
    r = run(2400, current=[amps(50), amps(300)], gas_flow=[300.0] * 2, catholyte_flow=[2.0] * 2)
    last = {k: v[:, -1] for k, v in r.items()}
    twin = twin_baseline(last)
    rise = last["cell_voltage"][1] - last["cell_voltage"][0]
    assert rise - (twin["cell_voltage"][1] - twin["cell_voltage"][0]) > 0.1


def test_catholyte_flow_reduces_bubble_resistance() -> None:
    """At 300 mA/cm2 more catholyte flow lowers the voltage more than the twin predicts."""
    r = run(2400, current=[amps(300)] * 2, catholyte_flow=[1.0, 20.0], gas_flow=[300.0] * 2)
    last = {k: v[:, -1] for k, v in r.items()}
    twin = twin_baseline(last)
    drop = last["cell_voltage"][0] - last["cell_voltage"][1]
    assert drop > twin["cell_voltage"][0] - twin["cell_voltage"][1] + 0.05


def test_fe_falls_above_forty_degrees() -> None:
    """FE to formate is lower in a cell near 50 degC than near 30 degC; the twin's does not move."""
    r = run(3000, current=[amps(100)] * 2, ambient_temperature=[48.0, 29.0], gas_flow=[300.0] * 2,
            anolyte_flow=[20.0] * 2, catholyte_flow=[20.0] * 2)
    last = {k: v[:, -1] for k, v in r.items()}
    assert last["cell_temperature"][0] > 45.0 and 28.0 < last["cell_temperature"][1] < 35.0
    assert last["fe_formate"][0] < last["fe_formate"][1] - 0.05
    twin = twin_baseline(last)
    assert twin["fe_formate"][0] == pytest.approx(twin["fe_formate"][1], rel=1e-12)


def test_ageing_lowers_fe_fast_then_slowly_and_raises_voltage() -> None:
    """FE falls faster per Ah over the first 200 Ah (break-in) than over the next 800; voltage
    drifts up."""
    plant = ReferencePlant()
    fe, volt = [], []
    for charge in (0.0, 200.0, 1000.0):
        sched = {k: np.full((1, 1200), NOMINAL[k]) for k in INPUTS}
        r = plant.simulate({**sched, "initial_charge_Ah": charge}, 1.0)
        fe.append(r["fe_formate"][0, -1])
        volt.append(r["cell_voltage"][0, -1])
    assert (fe[0] - fe[1]) / 200.0 > (fe[1] - fe[2]) / 800.0 > 0
    assert volt[0] < volt[1] < volt[2]


def test_voltage_within_pilot_range_at_nominal_conditions() -> None:
    """Steady voltages lie in 2.8-4.5 V from 50 to 300 mA/cm2 at nominal conditions, fresh or aged."""
    for charge in (0.0, 600.0):
        sched = {k: np.full((6, 2400), NOMINAL[k]) for k in INPUTS}
        sched["current"] = np.repeat([[amps(j)] for j in (50, 100, 150, 200, 250, 300)], 2400, axis=1)
        v = ReferencePlant().simulate({**sched, "initial_charge_Ah": charge}, 1.0)["cell_voltage"][:, -1]
        assert np.all((v >= 2.8) & (v <= 4.5)), v
        assert np.all(np.diff(v) > 0)


def test_differences_from_the_twin_are_learnable(campaign_true: list[dict]) -> None:
    """At settled DoE points the twin is wrong by a learnable, same-order amount."""
    r = {k: v[:, -1] for k, v in campaign_true[0].items()}
    on = r["current"] > 0
    twin = twin_baseline(r)
    gap = {k: np.median(np.abs(r[k] - twin[k])[on]) for k in twin}
    assert 0.03 < gap["cell_voltage"] < 0.6
    assert 0.02 < gap["fe_formate"] < 0.2
    assert 0.2 < gap["outlet_co2_fraction"] < 5.0
    assert 0.03 < gap["anolyte_ph"] < 0.5


def test_same_seed_same_log_other_seed_other_noise() -> None:
    """generate() is deterministic for a seed; another seed (or rng) gives other noise."""
    a = generate(seed=3, **TINY)
    pd.testing.assert_frame_equal(a, generate(seed=3, **TINY))
    assert not a.equals(generate(seed=4, **TINY))
    plant = ReferencePlant()
    true = run(50, plant)
    one = plant.measure(true, np.random.default_rng(1))["cell_voltage"]
    assert not np.array_equal(one, plant.measure(true, np.random.default_rng(2))["cell_voltage"])
    np.testing.assert_array_equal(one, plant.measure(true, np.random.default_rng(1))["cell_voltage"])


def test_sensor_errors_have_the_documented_noise_and_bias() -> None:
    """measured - (gain * true + offset) has each sensor's documented std (within 5 %) and no mean."""
    plant = ReferencePlant()
    true = run(3000, plant, current=[amps(200)] * 4, co2_fraction=[90.0] * 4)
    measured = plant.measure(true, np.random.default_rng(0))
    assert set(measured) == {s.signal for s in plant.params.sensors}
    for s in plant.params.sensors:
        error = measured[s.signal] - (s.gain * true[s.signal] + s.offset)
        assert np.std(error) == pytest.approx(s.noise, rel=0.05), s.signal
        assert abs(np.mean(error)) < 0.05 * s.noise, s.signal


def test_fe_reads_zero_at_rest_and_readings_stay_in_bounds() -> None:
    """With no current FE reads 0; no reading leaves the plant log's physical bounds."""
    plant = ReferencePlant()
    true = run(200, plant, current=[0.0, amps(300)], gas_flow=[20.0, 20.0], co2_fraction=[100.0, 10.0])
    measured = plant.measure(true, np.random.default_rng(0))
    assert np.all(measured["fe_formate"][0] == 0.0)
    assert np.all(measured["outlet_co2_fraction"] >= 0.0) and np.all(measured["fe_formate"] <= 1.0)


def test_campaign_log_shape_and_ageing_order() -> None:
    """The campaign log has settle/steady/step phases and ids in run order; the runs are shared
    out over catalysts of different ages, each of which ages further through its runs."""
    log = generate(seed=0, **TINY)
    assert set(log["phase"]) == {"settle", "steady", "step"}
    assert log["time"].is_monotonic_increasing and log["experiment"].is_monotonic_increasing
    assert (log["current_density"] == 0).any() and log["current_density"].max() > 250
    assert {f"true_{k}" for k in ("cell_voltage", "fe_formate", "anolyte_ph")} <= set(log)
    first = log.groupby("experiment")["charge_passed"].min().to_numpy()  # in run order
    catalyst = np.arange(len(first)) * len(CATALYSTS) // len(first)
    for k, (charge, _) in enumerate(CATALYSTS):
        mine = first[catalyst == k]
        assert charge <= mine[0] < charge + 1.0, (k, mine)
        assert (np.diff(mine) > 0).all(), (k, mine)


def test_campaign_covers_the_operating_range_with_margin() -> None:
    """The design spans the operating range of process.md with margin (current density to 450,
    gas flows to the flow controllers' full scale, stopped pumps to the pumps' maximum,
    0.2-3.2 mol/L, 2-63 degC, catalysts fresh to 4,000 Ah), and no controller runs over."""
    (points, _), area = plan(seed=0, n_points=1280, settle_s=60.0, steady_s=10.0, step_s=10.0), 25.0
    u = points.schedule
    first = {k: v[:, 0] for k, v in u.items() if np.ndim(v) == 2}
    j = first["current"] * 1000.0 / area
    assert j.min() == 0.0 and j.max() > 440.0 and (j > EXTRAPOLATION_ABOVE).mean() > 0.1
    assert ((j > 0) & (j < 10)).sum() >= 20  # the FE onset is covered too
    x, gas = first["co2_fraction"], first["gas_flow"]
    assert x.min() < 5.0 and x.max() > 99.0
    assert gas.min() <= 5.0 and gas.max() > 950.0
    assert (x == 100.0).mean() > 0.2  # pure CO2, the usual feed, at the edge of the range
    assert (gas * x / 100.0 <= 1.05 * FLOW_CONTROLLER_MAX + 1e-9).all()
    assert (gas * (1.0 - x / 100.0) <= 1.05 * FLOW_CONTROLLER_MAX + 1e-9).all()
    for pump in ("anolyte_flow", "catholyte_flow"):
        assert (first[pump] == 0.0).sum() >= 20 and first[pump].max() > 50.0, pump
    for conc in ("anolyte_conc", "catholyte_conc"):
        assert first[conc].min() < 0.25 and first[conc].max() > 3.0, conc
    assert first["ambient_temperature"].min() < 5.0 and first["ambient_temperature"].max() > 60.0
    assert points.schedule["initial_charge_Ah"].min() < 1.0
    assert points.schedule["initial_charge_Ah"].max() > CATALYSTS[-1][0]


@pytest.mark.parametrize("j, variable, published", [
    (39.0, "fe_formate", 0.70), (200.0, "fe_formate", 0.90), (300.0, "fe_formate", 0.846),
    (100.0, "cell_voltage", 3.1), (140.0, "cell_voltage", 3.5),
], ids=["fe_39", "fe_200", "fe_300", "v_100", "v_140"])
def test_a_fresh_cell_is_near_the_published_figures(j, variable, published) -> None:
    """Settled at the nominal point, a fresh reference cell lies within 5 % of each published
    figure of process.md at its current density."""
    r = run(3600, current=[amps(j)])
    assert r[variable][0, -1] == pytest.approx(published, rel=0.05)


def test_best_fe_reaches_what_good_published_cells_do() -> None:
    """At its best current density the fresh reference cell passes 0.92 FE (published cells reach
    0.90 and, with Bi/NiO, up to 1.0), and no FE limit holds it near the twin's fe_max of 0.90."""
    r = run(3600, current=[amps(j) for j in range(60, 260, 20)])
    assert r["fe_formate"][:, -1].max() > 0.92
    assert ReferenceParameters().cell.fe_max > 0.92


def test_latin_hypercube_fills_every_slice() -> None:
    """Each axis of the hypercube has exactly one point per 1/n slice."""
    u = latin_hypercube(50, 4, np.random.default_rng(0))
    assert u.shape == (50, 4)
    for axis in u.T:
        np.testing.assert_array_equal(np.sort(np.floor(axis * 50)), np.arange(50))


def test_every_parameter_is_documented() -> None:
    """Every ReferenceParameters field carries a unit and a description."""
    for f in fields(ReferenceParameters):
        assert f.metadata["unit"] and f.metadata["doc"], f.name

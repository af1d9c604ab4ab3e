"""The standard plant: balances close at every step and physical effects go the right way.

The main run (1 s steps, 3000 s)::

    current     5 A ─ 7 A at 300 ─ 3 A at 600 ─ 5 A at 900
    CO2 share   100 % ─ 30 % at 1200 ─ 100 % at 1500       (feed.co2_fraction_setpoint)
    catholyte   pump stops at 1800, restarts at 2100        (feed.catholyte_pump_on)
    CO2 supply  drops to 30 % at 2400, restored at 2700     (feed.co2_supply_fraction)
    throughout  recycle_fraction 0.5, product_draw 0.5 mL/min
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from co2twin.kpi import balances, kpis
from components.plant import LIMITS, build_plant
from components.reactor import Reactor
from cosim import SetInput, SetParameter, Simulation, Steps
from models.electrochemistry import F, M_HCOO, M_HCOOH, Z_FORMATE, CellParameters, ph_scale

STEP = 1.0
EVENTS = [
    SetInput(1200.0, "feed.co2_fraction_setpoint", 30.0),
    SetInput(1500.0, "feed.co2_fraction_setpoint", 100.0),
    SetParameter(1800.0, "feed.catholyte_pump_on", 0.0),
    SetParameter(2100.0, "feed.catholyte_pump_on", 1.0),
    SetParameter(2400.0, "feed.co2_supply_fraction", 0.3),
    SetParameter(2700.0, "feed.co2_supply_fraction", 1.0),
]
STEP_BALANCES = {"carbon_separator", "tank", "recycle_link", "carbon_plant"}
ALL_BALANCES = {"charge", "carbon_cell", "carbon_feed"} | STEP_BALANCES


def _main_run(sim: Simulation) -> pd.DataFrame:
    sim.drive("power.current_setpoint", Steps(((0.0, 5.0), (300.0, 7.0), (600.0, 3.0),
                                               (900.0, 5.0))))
    sim.set("separation.recycle_fraction", 0.5)
    sim.set("separation.product_draw", 0.5)
    for event in EVENTS:
        sim.schedule(event)
    return sim.run(3000.0, progress=False)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """The main run, with the step recorded for the step balances."""
    components, connections = build_plant()
    result = _main_run(Simulation(components, connections, step=STEP))
    result.attrs["scenario"] = {"step_s": STEP}
    return result


@pytest.fixture(scope="module")
def long_run() -> pd.DataFrame:
    """Four hours at 5 A, 10 s steps, no product draw: warm-up and accumulation."""
    components, connections = build_plant()
    sim = Simulation(components, connections, step=10.0)
    result = sim.run(4 * 3600.0, progress=False)
    result.attrs["scenario"] = {"step_s": 10.0}
    return result


def at(frame: pd.DataFrame, signal: str, t: float) -> float:
    return float(frame.loc[t, signal])


def test_every_balance_closes_at_every_step(frame):
    """Charge, cell/feed/separator/tank/recycle/plant carbon balances close below 1e-9 on every row."""
    residuals = balances(frame)
    assert set(residuals) == ALL_BALANCES
    assert max(residuals.values()) < 1e-9, residuals


def test_balances_close_with_long_steps_too(long_run):
    """With 10 s steps over 4 h the same balances close below 1e-9."""
    residuals = balances(long_run)
    assert set(residuals) == ALL_BALANCES
    assert max(residuals.values()) < 1e-9, residuals


def test_decimated_results_check_the_step_balances_between_the_rows_kept(plant):
    """Recording every 10th step, the step balances are checked from running totals between the
    rows kept, all closed; any balance left out is named with its reason (tests/test_truth.py)."""
    from co2twin.kpi import skipped_checks

    sim = plant()
    sim.record(every=10)
    sim.set("separation.recycle_fraction", 0.5)
    sim.schedule(SetInput(100.0, "power.current_setpoint", 7.0))
    thin = sim.run(400.0, progress=False)
    residuals = balances(thin)  # the step is unknown: recycle_link needs it
    assert {"charge", "carbon_cell", "carbon_feed", "carbon_separator", "tank"} <= set(residuals)
    assert "step is unknown" in skipped_checks(thin)["recycle_link"]
    thin.attrs.update({"scenario": {"step_s": 1.0}})
    residuals = balances(thin)
    assert set(residuals) == ALL_BALANCES  # carbon_plant from reactor.carbonate_lost
    assert skipped_checks(thin) == {}
    assert max(residuals.values()) < 1e-9


def test_charge_splits_between_formate_and_h2(frame):
    """FE formate + FE H2 = 1 on every row."""
    total = frame["reactor.fe_formate"] + frame["reactor.fe_h2"]
    assert (total == 1.0).all()


def test_formate_never_exceeds_the_co2_fed(frame):
    """formate_rate <= co2_in_rate and no outlet or vent flow goes negative."""
    assert (frame["reactor.formate_rate"] <= frame["reactor.co2_in_rate"]).all()
    for name in ("reactor.co2_out_rate", "reactor.h2_rate", "separation.vent_co2_rate",
                 "separation.co2_recycle_rate", "separation.product_draw_rate"):
        assert (frame[name] >= 0.0).all(), name


def test_current_steps_move_voltage_and_production(frame):
    """7 A gives a higher voltage and more formate than 5 A; 3 A less of both."""
    for signal in ("reactor.cell_voltage", "reactor.formate_rate"):
        five, seven, three = (at(frame, signal, t) for t in (300.0, 600.0, 900.0))
        assert seven > five > three, signal
    assert at(frame, "power.current", 301.0) == 7.0


def test_co2_dilution_lowers_fe(frame):
    """Diluting the feed to 30 % CO2 lowers FE to formate by a clear margin, and it recovers."""
    before, diluted, after = (at(frame, "reactor.fe_formate", t) for t in (1200.0, 1500.0, 1800.0))
    assert diluted < before - 0.1
    assert after == pytest.approx(before, abs=0.01)
    assert at(frame, "feed.co2_fraction", 1500.0) < 60.0


def test_catholyte_pump_stop_lowers_fe_and_raises_voltage(frame):
    """With the catholyte pump stopped FE collapses and the voltage rises; restart recovers both."""
    fe = [at(frame, "reactor.fe_formate", t) for t in (1800.0, 2100.0, 2400.0)]
    volts = [at(frame, "reactor.cell_voltage", t) for t in (1800.0, 2100.0, 2400.0)]
    assert fe[1] < 0.5 * fe[0] and volts[1] > volts[0] + 0.3
    assert fe[2] == pytest.approx(fe[0], abs=0.01)
    assert at(frame, "feed.catholyte_flow", 2100.0) < 1e-6


def test_co2_supply_drop_lowers_co2_and_fe(frame):
    """A CO2 supply at 30 % starves the cell: less CO2 in and lower FE, back after the restore."""
    co2 = [at(frame, "reactor.co2_in_rate", t) for t in (2400.0, 2700.0, 3000.0)]
    fe = [at(frame, "reactor.fe_formate", t) for t in (2400.0, 2700.0, 3000.0)]
    assert co2[1] < 0.6 * co2[0] and fe[1] < fe[0] - 0.05
    assert fe[2] == pytest.approx(fe[0], abs=0.01)


def test_total_co2_supply_loss_closes_balances_and_keeps_signs(plant):
    """`co2_supply_fraction 0` at 100 s: flows decay through subnormals to 0, balances stay closed."""
    sim = plant()
    sim.schedule(SetParameter(100.0, "feed.co2_supply_fraction", 0.0))
    loss = sim.run(2500.0, progress=False)
    loss.attrs["scenario"] = {"step_s": 1.0}
    residuals = balances(loss)
    assert set(residuals) == ALL_BALANCES
    assert max(residuals.values()) < 1e-9, residuals
    assert loss["reactor.co2_in_rate"].iloc[-1] == 0.0
    assert loss["reactor.fe_formate"].iloc[-1] == 0.0 and loss["reactor.fe_h2"].iloc[-1] == 1.0
    for name in ("reactor.co2_out_rate", "reactor.carbonate_rate", "reactor.formate_rate"):
        assert (loss[name] >= 0.0).all(), name


def test_stagnant_anolyte_starts_fresh_and_is_consumed(plant):
    """Anolyte flow 0 from the start: pH starts at the fresh 1 M value, then falls by I/(F V) per s."""
    sim = plant()
    sim.set("feed.anolyte_flow_setpoint", 0.0)
    run = sim.run(60.0, progress=False)
    ph = run["reactor.anolyte_ph"].to_numpy()
    assert ph[0] == pytest.approx(14.0, abs=1e-9)
    assert (np.diff(ph) < 0).all() and ph[-1] > 13.5
    consumed = 5.0 / F / Reactor().p.anolyte_volume_L * 60.0  # mol/L of OH- over 60 s at 5 A
    # the pH a probe reads at the cell temperature (water's ion product moves with it)
    scale = ph_scale(run["reactor.cell_temperature"].iloc[-1], CellParameters())
    assert ph[-1] == pytest.approx(scale + np.log10(1.0 - consumed), abs=1e-9)


def test_events_are_logged(frame):
    """Each event of the run is in the log at its time."""
    assert [t for t, _ in frame.attrs["events"]] == [e.at for e in EVENTS]
    assert frame.attrs["events"][2][1] == "set feed.catholyte_pump_on: 1 -> 0"


def test_tank_concentration_grows_over_hours(long_run):
    """Without product draw the tank formate concentration rises all along, past 0.1 mol/L in 4 h."""
    conc = long_run["separation.tank_formate_conc"].to_numpy()
    assert (np.diff(conc) > 0).all()
    assert conc[-1] > 0.1
    hourly = conc[::360]
    assert (np.diff(hourly) > 0.02).all()


def test_temperature_rises_to_a_steady_state_above_ambient(long_run):
    """The cell warms monotonically, ever slower, and settles a few K above the 25 degC ambient."""
    temp = long_run["reactor.cell_temperature"].to_numpy()
    assert (np.diff(temp[1:]) >= -1e-12).all()
    assert temp[-1] > 25.0 + 3.0
    first_10_min, last_10_min = temp[60] - temp[0], temp[-1] - temp[-61]
    assert last_10_min < 0.01 * first_10_min
    assert abs(last_10_min) < 0.01


def test_reactor_arrays_match_one_variant_at_a_time():
    """Reactor inputs as arrays of 6 variants give the floats of 6 separate runs, to 1e-12."""
    # not bit for bit: NumPy's vectorised exp/log may differ from libm's in the last bit
    rng = np.random.default_rng(5)
    n, steps = 6, 8
    series = {
        "current": rng.uniform(0.0, 10.0, (steps, n)),
        "gas_flow": rng.uniform(0.0, 300.0, (steps, n)),
        "co2_fraction": rng.uniform(0.0, 100.0, (steps, n)),
        "anolyte_flow": rng.uniform(0.0, 20.0, (steps, n)),
        "catholyte_flow": rng.uniform(0.0, 20.0, (steps, n)),
        "anolyte_conc": rng.uniform(0.0, 3.0, (steps, n)),
        "catholyte_conc": rng.uniform(0.0, 3.0, (steps, n)),
        "humidity": rng.uniform(0.0, 100.0, (steps, n)),
        "ambient_temperature": rng.uniform(0.0, 40.0, (steps, n)),
    }
    for values in series.values():  # zero flows, zero current and the nominal point among the variants
        values[:, 0] = 0.0
    series["current"][:, 1] = 5.0
    vector = Reactor()
    vector.initialize(0.0)
    scalars = [Reactor() for _ in range(n)]
    for reactor in scalars:
        reactor.initialize(0.0)
    for k in range(steps):
        dt = 0.0 if k == 0 else 5.0
        out = vector.step(k * 5.0, dt, {name: v[k] for name, v in series.items()})
        for i, reactor in enumerate(scalars):
            one = reactor.step(k * 5.0, dt, {name: float(v[k, i]) for name, v in series.items()})
            for name, value in one.items():
                assert np.shape(out[name]) == (n,), name
                assert out[name][i] == pytest.approx(value, rel=1e-12, abs=1e-300), (k, i, name)


def test_kpis_agree_with_the_recorded_signals(frame):
    """Mean FE, current, voltage, production, energy and conversions recomputed from the rows agree."""
    figures = kpis(frame)
    dt = np.diff(frame.index.to_numpy())
    rows = frame.iloc[1:]  # each row holds the rates over the step that ends there
    charge = float(np.sum(rows["power.current"] * dt))
    formate = float(np.sum(rows["reactor.formate_rate"] * dt))
    energy_j = float(np.sum(rows["reactor.power"] * dt))
    duration = frame.index[-1] - frame.index[0]
    assert figures["duration_h"] == pytest.approx(duration / 3600.0, rel=1e-12)
    assert figures["mean_fe_formate"] == pytest.approx(formate * Z_FORMATE * F / charge, rel=1e-9)
    assert figures["mean_current_A"] == pytest.approx(charge / duration, rel=1e-9)
    assert figures["mean_cell_voltage_V"] == pytest.approx(energy_j / charge, rel=1e-9)
    assert figures["formate_produced_mol"] == pytest.approx(formate, rel=1e-9)
    assert figures["formate_production_g_per_h"] == pytest.approx(
        rows["reactor.formate_production"].mean(), rel=1e-9)
    assert figures["energy_kWh"] == pytest.approx(energy_j / 3.6e6, rel=1e-9)
    assert figures["energy_kWh_per_kg_HCOOH"] == pytest.approx(
        energy_j / 3.6e6 / (formate * M_HCOOH / 1000.0), rel=1e-9)
    assert figures["energy_kWh_per_kmol_formate"] == pytest.approx(
        energy_j / 3.6e6 / (formate / 1000.0), rel=1e-9)
    co2_cell = float(np.sum(rows["reactor.co2_in_rate"] * dt))
    co2_fresh = float(np.sum(rows["feed.fresh_co2_rate"] * dt))
    assert figures["single_pass_conversion_pct"] == pytest.approx(100 * formate / co2_cell, rel=1e-9)
    assert figures["overall_conversion_pct"] == pytest.approx(100 * formate / co2_fresh, rel=1e-9)
    assert figures["overall_conversion_pct"] > figures["single_pass_conversion_pct"]  # recycle helps
    assert figures["final_product_conc_mol_L"] == frame["separation.tank_formate_conc"].iloc[-1]
    assert figures["final_product_conc_g_L"] == pytest.approx(
        figures["final_product_conc_mol_L"] * M_HCOOH, rel=1e-12)
    assert figures["formate_production_g_per_h"] == pytest.approx(
        formate * M_HCOO / (duration / 3600.0), rel=1e-9)
    assert 0.0 < figures["mean_fe_formate"] < 1.0


def test_time_outside_limits_counts_rows(frame):
    """Time outside limits is the number of rows past a limit times the step, per signal."""
    figures = kpis(frame)
    for name, (low, high) in LIMITS.items():
        values = frame[name].to_numpy()[1:]
        bad = np.zeros(len(values), bool)
        if low is not None:
            bad |= values < low
        if high is not None:
            bad |= values > high
        assert figures["outside_limits"][name] == bad.sum() * STEP, name
    assert figures["outside_limits"]["reactor.fe_formate"] > 0  # the pump stop
    assert figures["time_outside_limits_s"] == sum(figures["outside_limits"].values())


def test_sensor_faults_change_readings_not_physics():
    """A biased current sensor and a drifting gas-flow sensor leave the reactor's physics untouched."""
    from components.plant import build_plant
    from cosim import SensorFault, Simulation

    def go(faults):
        components, connections = build_plant()
        sim = Simulation(components, connections, step=1.0)
        for fault in faults:
            sim.schedule(fault)
        return sim.run(300, progress=False)

    clean = go([])
    faulty = go([SensorFault(60, "power.current", "bias", offset=1.0),
                 SensorFault(60, "feed.gas_flow", "drift", rate=1.0)])
    for column in ("reactor.formate_rate", "reactor.cell_voltage", "reactor.co2_in_rate"):
        assert (faulty[column] == clean[column]).all(), column
    assert faulty["power.current"].iloc[-1] == pytest.approx(clean["power.current"].iloc[-1] + 1.0)
    assert faulty["power.current:true"].iloc[-1] == clean["power.current"].iloc[-1]
    assert faulty["feed.gas_flow"].iloc[-1] > clean["feed.gas_flow"].iloc[-1] + 200


def test_voltage_sense_fault_reaches_the_power_supply():
    """The supply reads the voltage sensor, so a biased reading drives it into compliance."""
    from components.plant import build_plant
    from cosim import SensorFault, Simulation

    components, connections = build_plant()
    sim = Simulation(components, connections, step=1.0)
    sim.schedule(SensorFault(60, "reactor.cell_voltage", "bias", offset=5.0))
    frame = sim.run(300, progress=False)
    assert frame["power.voltage_limited"].iloc[:60].max() == 0.0
    assert frame["power.voltage_limited"].iloc[-1] == 1.0
    assert frame["power.current"].iloc[-1] < 0.5 * frame["power.current"].iloc[59]
    assert sim.get("power.cell_voltage") == frame["reactor.cell_voltage"].iloc[-1]


def test_sensor_fault_injected_while_running_spares_the_physics():
    """A fault injected from outside mid-run changes the reading; the reactor still sees the truth."""
    from components.plant import build_plant
    from cosim import Simulation

    components, connections = build_plant()
    sim = Simulation(components, connections, step=1.0)
    sim.advance_to(10)
    truth = sim.get("power.current")
    sim.sensor_fault("power.current", "bias", offset=2.0)
    sim.advance_to(20)
    assert sim.get("power.current") == pytest.approx(truth + 2.0)
    assert sim.get("reactor.current") == truth


def test_a_reader_reads_as_get_and_get_true_and_follows_a_fault_made_later():
    """Simulation.reader (what a Gymnasium env reads every step) gives what get and get_true
    give, for outputs and a connected input, before and after a sensor fault made mid-run
    (which gives the signal a true value the reader did not know of)."""
    from components.plant import build_plant
    from cosim import Simulation, SimulationError

    components, connections = build_plant()
    sim = Simulation(components, connections, step=1.0)
    names = ["power.current", "reactor.cell_voltage", "reactor.current"]
    read, read_true = sim.reader(names), sim.reader(names, true=True)
    sim.advance_to(10)
    assert read() == tuple(sim.get(n) for n in names)
    sim.sensor_fault("power.current", "bias", offset=2.0)
    sim.advance_to(20)
    assert read() == tuple(sim.get(n) for n in names)
    assert read_true() == tuple(sim.get_true(n) for n in names)
    assert read()[0] == pytest.approx(read_true()[0] + 2.0)  # the reading, and the truth
    with pytest.raises(SimulationError, match="unknown signal 'power.nope'"):
        sim.reader(["power.nope"])

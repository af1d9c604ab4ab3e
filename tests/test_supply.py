"""The solar and battery supply: PV, battery, DC bus and energy manager, alone and in scenarios.

    pv ──▶ ems ──▶ power ──▶ reactor ──▶ bus ──▶ battery
            ▲                  │                   │
            └── cell voltage ──┘ (delayed)          │
            └────────── battery limits (delayed) ───┘

Balances: the bus (sources = sinks) and the battery (stored change = in - out - losses -
fade) close every step to 1e-9, checked on the recorded rows.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from co2twin import build, parse_scenario, run
from co2twin.supply import CURRENT_REQUEST, runs_after_sunset, supply_balances, supply_kpis
from components.battery import Battery, power_limits
from components.dc_bus import FLOWS, DCBus, EnergyManager
from components.pv import PVArray, clear_sky
from cosim.errors import ScenarioError
from models.battery_models import NetworkAgeing, PhysicsAgeing

SCENARIOS = Path(__file__).parents[1] / "scenarios"


def _scenario(name: str, **changes: object) -> dict:
    data = yaml.safe_load((SCENARIOS / f"{name}.yaml").read_text())
    data.pop("output", None)
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            sub, _, leaf = field.partition("__")
            if leaf:
                data[section].setdefault(sub, {})[leaf] = value
            else:
                data[section][sub] = value
        else:
            data[section] = value
    return data


def _run(data: dict):
    return run(parse_scenario(data, base_dir=SCENARIOS))


@pytest.fixture
def sunny(shipped_run):
    """The shipped sunny day (run once per session, shared with the shipped-scenario tests)."""
    return shipped_run(SCENARIOS / "solar_battery_sunny.yaml")[1]


@pytest.fixture
def price_run(shipped_run):
    """The shipped grid-price scenario (run once per session)."""
    return shipped_run(SCENARIOS / "solar_battery_grid_price.yaml")[1]


# -- the components alone ---------------------------------------------------------------
def _battery(**params: float) -> Battery:
    b = Battery(PhysicsAgeing(), **params)
    b.initialize(0.0)
    b.step(0.0, 0.0, {"power_request": 0.0, "ambient_temperature": 25.0})
    return b


def test_battery_energy_balance_closes_every_step_under_random_requests():
    """Charge, discharge and clipping at both ends of the window: stored change = in - out - losses - fade."""
    b = _battery(capacity=2.0, initial_soc=0.5, initial_cycles=50.0)
    rng = np.random.default_rng(3)
    last = b.step(0.0, 0.0, {"power_request": 0.0, "ambient_temperature": 25.0})
    for k in range(2000):
        out = b.step(60.0 * k, 60.0, {"power_request": float(rng.uniform(-60.0, 60.0)),
                                     "ambient_temperature": 30.0})
        moved = [out[c] - last[c] for c in ("stored_energy", "energy_in", "energy_out", "losses",
                                           "fade_energy")]
        residual = moved[0] - (moved[1] - moved[2] - moved[3] - moved[4])
        assert abs(residual) <= 1e-9 * max(map(abs, moved)) + 1e-18, k
        assert abs(out["balance_residual"]) <= 1e-9 * max(map(abs, moved)) + 1e-18
        assert 0.1 - 1e-12 <= out["soc"] <= 0.95 + 1e-12
        last = out
    assert out["fade_energy"] > 0.0 and out["capacity"] < 2.0 * PhysicsAgeing().fraction(50.0, 25.0, 0.5)


def test_battery_delivers_its_limit_exactly_and_clips_beyond_it():
    """A request at power_limits is met to the bit; a larger one is cut to it and flagged."""
    b = _battery(initial_soc=0.12)
    out = b.step(0.0, 0.0, {"power_request": 0.0, "ambient_temperature": 25.0})
    limit, _ = power_limits(*(out[n] for n in ("ocv", "resistance", "discharge_energy", "charge_energy",
                                               "max_discharge_current", "max_charge_current",
                                               "charge_efficiency")), 60.0)
    state = b.get_state()
    exact = b.step(0.0, 60.0, {"power_request": limit, "ambient_temperature": 25.0})
    assert exact["power"] == limit and exact["request_clipped"] == 0.0
    assert exact["soc"] == pytest.approx(0.1, abs=1e-9)
    b.set_state(state)
    over = b.step(0.0, 60.0, {"power_request": 2.0 * limit, "ambient_temperature": 25.0})
    assert over["power"] == limit and over["request_clipped"] == 1.0


def test_battery_steps_arrays_as_it_steps_floats():
    """Three variants in one array battery equal three float batteries, output by output."""
    requests = np.array([-20.0, 0.0, 35.0])
    array = _battery(initial_soc=0.5)
    singles = [_battery(initial_soc=0.5) for _ in requests]
    for k in range(50):
        a = array.step(60.0 * k, 60.0, {"power_request": requests, "ambient_temperature": 25.0})
        for i, single in enumerate(singles):
            s = single.step(60.0 * k, 60.0, {"power_request": float(requests[i]),
                                             "ambient_temperature": 25.0})
            for name in ("soc", "stored_energy", "temperature", "capacity", "power", "losses"):
                assert np.asarray(a[name])[i] == pytest.approx(s[name], rel=1e-12, abs=1e-15), name


def test_battery_heats_with_its_losses_and_cools_to_ambient():
    """Discharging warms the cells above ambient; resting brings them back."""
    b = _battery(initial_soc=0.9, heat_capacity=200.0, heat_transfer=0.2)
    for k in range(30):
        hot = b.step(60.0 * k, 60.0, {"power_request": 50.0, "ambient_temperature": 25.0})
    assert hot["temperature"] > 25.5
    for k in range(30, 300):
        cool = b.step(60.0 * k, 60.0, {"power_request": 0.0, "ambient_temperature": 25.0})
    assert cool["temperature"] == pytest.approx(25.0, abs=0.05)


def test_bus_dispatch_pv_first_then_battery_then_grid_and_records_every_flow():
    """Deficit: battery before grid (grid first when told); surplus: battery, export, curtailment."""
    bus = DCBus(converter_efficiency=0.95, export_limit=5.0)
    bus.initialize(0.0)
    base = {"price": 0.2, "grid_first": 0.0, "grid_charge": 0.0, "battery_discharge_limit": 10.0,
            "battery_charge_limit": 8.0, "grid_allowance": 50.0}
    night = bus.step(0.0, 60.0, {**base, "pv_power": 5.0, "load_power": 38.0})
    assert night["load"] == pytest.approx(40.0) and night["pv_to_load"] == 5.0
    assert night["battery_to_load"] == 10.0 and night["grid_to_load"] == pytest.approx(25.0)
    first = bus.step(60.0, 60.0, {**base, "grid_first": 1.0, "pv_power": 5.0, "load_power": 38.0})
    assert first["grid_to_load"] == pytest.approx(35.0) and first["battery_to_load"] == 0.0
    noon = bus.step(120.0, 60.0, {**base, "pv_power": 60.0, "load_power": 19.0})
    assert noon["pv_to_battery"] == 8.0 and noon["pv_export"] == 5.0
    assert noon["pv_curtailed"] == pytest.approx(27.0) and noon["battery_power"] == -8.0
    short = bus.step(180.0, 60.0, {**base, "grid_allowance": 0.0, "pv_power": 0.0, "load_power": 19.0})
    assert short["unserved"] == pytest.approx(10.0) and short["shortfall"] == 1.0
    assert short["grid_energy"] == pytest.approx((25.0 + 35.0) * 60.0 / 3.6e6)
    assert short["cost"] == pytest.approx(0.2 * (25.0 + 35.0) * 60.0 / 3.6e6 - 5.0 * 0.0)
    for out in (night, first, noon, short):
        assert abs(out["balance_residual"]) < 1e-12


def test_energy_manager_curtails_the_current_to_the_power_available():
    """No sun, empty battery, no grid: no current; a grid carries the request; price above the limit: not."""
    ems = EnergyManager(grid_limit=0.0, converter_efficiency=0.95)
    ems.initialize(0.0)
    empty = {"current_request": 6.0, "cell_voltage": 3.8, "pv_power": 0.0, "price": 0.2,
             "battery_ocv": 14.0, "battery_resistance": 0.2, "battery_discharge_energy": 0.0,
             "battery_charge_energy": 0.05, "battery_max_discharge_current": 4.0,
             "battery_max_charge_current": 2.0, "battery_charge_efficiency": 0.995}
    out = ems.step(0.0, 60.0, empty)
    assert out["current_setpoint"] == 0.0 and out["curtailed"] == 1.0
    ems.set_parameter("grid_limit", 40.0)
    out = ems.step(60.0, 60.0, empty)
    assert out["current_setpoint"] == 6.0 and out["curtailed"] == 0.0
    ems.set_parameter("import_price_limit", 0.1)
    out = ems.step(120.0, 60.0, empty)
    assert out["current_setpoint"] == 0.0 and out["grid_allowance"] == 0.0
    sunny = ems.step(180.0, 60.0, {**empty, "pv_power": 12.0})
    expected = 12.0 * 0.95 / (3.8 * 1.02)
    assert sunny["current_setpoint"] == pytest.approx(expected) and sunny["curtailed"] == 1.0


def test_pv_follows_the_sun_and_loses_power_when_hot():
    """Dark at midnight, brightest near solar noon; a hotter day gives less power at the same sun."""
    assert clear_sky(0.0, 40.0, 172, 30.0, 180.0)[0] == 0.0
    noon, elevation = clear_sky(12 * 3600.0, 40.0, 172, 30.0, 180.0)
    assert elevation == pytest.approx(90 - 40 + 23.45, abs=0.1) and 900 < noon < 1200
    pv = PVArray(peak_power=100.0)
    pv.initialize(0.0)
    cool = pv.step(12 * 3600.0, 0.0, {"irradiance": 0.0, "clearness": 1.0, "ambient_temperature": 10.0})
    hot = pv.step(12 * 3600.0, 0.0, {"irradiance": 0.0, "clearness": 1.0, "ambient_temperature": 40.0})
    assert hot["power"] < cool["power"] * 0.9
    measured = PVArray(peak_power=100.0, clear_sky=0.0, system_efficiency=1.0)
    measured.initialize(0.0)
    out = measured.step(0.0, 60.0, {"irradiance": 1000.0, "clearness": 1.0, "ambient_temperature": 0.0})
    cell = 0.0 + (45.0 - 20.0) / 800.0 * 1000.0
    assert out["power"] == pytest.approx(100.0 * (1 - 0.004 * (cell - 25.0)))


# -- in a scenario ----------------------------------------------------------------------
def test_sunny_day_closes_the_bus_and_battery_balances_every_step(sunny):
    """Every recorded step: bus sources = sinks, battery stored change = flows, bus asks = battery gives."""
    residuals = supply_balances(sunny)
    assert set(residuals) == {"bus", "battery", "bus_battery"}
    assert max(residuals.values()) < 1e-9, residuals
    flows = sunny[[f"bus.{f}" for f in FLOWS]].to_numpy()
    scale = np.maximum(flows.max(axis=1), sunny["pv.power"].to_numpy())
    assert (np.abs(sunny["bus.balance_residual"].to_numpy()) <= 1e-9 * np.maximum(scale, 1e-300)).all()
    assert (sunny["battery.request_clipped"] == 0.0).all()


def test_sunny_day_runs_the_reactor_from_pv_and_battery(sunny):
    """The sun and the battery carry the plant: all its energy from PV, the battery after sunset."""
    figures = supply_kpis(sunny)
    assert figures["grid_energy_kWh"] == 0.0 and figures["solar_fraction"] == pytest.approx(1.0, abs=0.01)
    assert figures["curtailed_pv_kWh"] > 0.0  # off grid: a full battery leaves PV unused
    night = figures["nights"][0]
    assert night["minutes"] > 30 and not night["through"]
    assert sunny["reactor.formate_produced"].iloc[-1] > 0
    # the electrolyser's energy reaches the bus through the converter, step by step
    load = sunny["bus.load"].to_numpy()[1:] * 0.95
    assert np.allclose(load, sunny["reactor.power"].to_numpy()[1:], rtol=1e-12, atol=1e-12)
    assert figures["unserved_kWh"] < 1e-3 * figures["load_energy_kWh"]


def test_clouds_curtail_the_current_and_end_the_evening_earlier(sunny):
    """The cloudy day gives less PV, curtails longer and runs less after sunset than the sunny one."""
    cloudy = _run(_scenario("solar_battery_cloudy"))
    sun, cloud = supply_kpis(sunny), supply_kpis(cloudy)
    assert cloud["pv_energy_kWh"] < 0.8 * sun["pv_energy_kWh"]
    assert cloud["time_curtailed_s"] > sun["time_curtailed_s"]
    assert cloud["runtime_after_sunset_min"] < sun["runtime_after_sunset_min"]
    assert max(supply_balances(cloudy).values()) < 1e-9


def test_grid_price_decides_when_the_grid_runs_the_plant_and_charges_the_battery(price_run):
    """No import above 0.30 EUR/kWh, grid charging only at or below 0.10, the battery carries the peak."""
    f = price_run
    price = f["ems.price"].to_numpy()[1:]
    grid = f["bus.grid_import"].to_numpy()[1:]
    assert grid[price > 0.30].max() == 0.0 and grid[price <= 0.10].min() > 0.0
    charge = f["bus.grid_to_battery"].to_numpy()[1:]
    assert charge[price > 0.10].max() == 0.0 and charge.max() > 0.0
    battery = f["bus.battery_to_load"].to_numpy()[1:]
    assert battery[price == 0.20].sum() < 0.1 * battery[price == 0.40].sum()  # grid first by day
    figures = supply_kpis(f)
    cost = (f["bus.grid_import"].to_numpy()[1:] * price * 60.0 / 3.6e6).sum()
    assert figures["grid_cost_EUR"] == pytest.approx(cost, rel=1e-9)
    assert max(supply_balances(f).values()) < 1e-9


def test_without_grid_first_by_day_the_battery_carries_less_of_the_peak(price_run):
    """Battery first by day (grid_first_price below the day price): it is emptier at the peak, the cell
    is curtailed longer there, and the grid bill is lower."""
    plain = _run(_scenario("solar_battery_grid_price", supply__ems__grid_first_price=0.1))

    def peak(f, column):
        return f[column].to_numpy()[1:][f["ems.price"].to_numpy()[1:] == 0.40].sum()

    assert peak(plain, "bus.battery_to_load") < 0.8 * peak(price_run, "bus.battery_to_load")
    assert peak(plain, "ems.curtailed") > 1.2 * peak(price_run, "ems.curtailed")
    assert supply_kpis(plain)["grid_cost_EUR"] < supply_kpis(price_run)["grid_cost_EUR"]


def test_battery_ageing_shortens_the_runtime_after_sunset_over_30_days():
    """The 30-day run against itself with a battery that does not age: the gap in runtime after
    sunset grows over the month, and by the last nights exceeds the steps' resolution."""
    aged = supply_kpis(_run(_scenario("solar_battery_ageing_30d")))
    held = supply_kpis(_run(_scenario("solar_battery_ageing_30d", supply__battery__capacity_fade=0.0)))
    first = lambda k: np.mean([n["minutes"] for n in k["nights"][:5]])  # noqa: E731
    last = lambda k: np.mean([n["minutes"] for n in k["nights"][-5:]])  # noqa: E731
    assert len(aged["nights"]) == 30 and not any(n["through"] for n in aged["nights"])
    assert aged["capacity_end_Ah"] < 0.98 * aged["capacity_start_Ah"]
    assert held["capacity_end_Ah"] == held["capacity_start_Ah"]
    assert held["nights"][0]["minutes"] == aged["nights"][0]["minutes"]  # fade starts after night 1
    assert first(held) - first(aged) < last(held) - last(aged)
    assert last(aged) < last(held) - 2.0  # 2-minute steps: more than the resolution
    assert aged["nights"][-1]["minutes"] < held["nights"][-1]["minutes"]


@pytest.mark.parametrize("choice", ["physics", "nn", "hybrid"])
def test_scenario_chooses_the_battery_ageing_model(choice):
    """supply.ageing: physics, nn or hybrid gives the battery that model (networks: the committed ones)."""
    data = _scenario("solar_battery_sunny", supply__ageing=choice, duration=600)
    sim = build(parse_scenario(data, base_dir=SCENARIOS))
    model = sim.components["battery"].ageing_model
    assert model.kind == choice
    assert isinstance(model, PhysicsAgeing if choice == "physics" else NetworkAgeing)


def test_ageing_choices_give_different_capacities_for_an_aged_battery():
    """Same aged battery, three models: three different capacities at the start of the run."""
    capacities = {}
    for choice in ("physics", "nn", "hybrid"):
        data = _scenario("solar_battery_ageing_30d", supply__ageing=choice, duration=3600)
        capacities[choice] = _run(data)["battery.capacity"].iloc[0]
    assert len({round(c, 6) for c in capacities.values()}) == 3


def test_current_request_and_its_events_reach_the_energy_manager():
    """The scenario's current and events on it drive ems.current_request, not the power supply."""
    data = _scenario("solar_battery_sunny", duration=7200, events=[
        {"at": 3600, "type": "set", "target": "current", "value": 2.0}])
    data["supply"]["ems"]["grid_limit"] = 100.0
    frame = _run(data)
    request = frame[CURRENT_REQUEST]
    assert request.iloc[10] == 6.0 and request.iloc[-1] == 2.0
    assert frame["power.current"].iloc[-1] == pytest.approx(2.0)


def test_supply_section_problems_are_named():
    """Bad parameters, a profile outside its port and a wrong unit: each named by its path."""
    bad = {"name": "x", "duration": 60, "step": 1, "supply": {
        "battery": {"soc_max": 2.0, "volts": 3}, "price": {"constant": 0.1, "unit": "A"},
        "irradiance": {"steps": [[0, 100], [30, -1]]}, "ageing": "magic"}}
    with pytest.raises(ScenarioError) as info:
        parse_scenario(bad)
    text = str(info.value)
    for expected in ("supply.battery.soc_max", "supply.battery.volts: unknown key", "supply.price.unit",
                     "supply.irradiance.steps[1][1]: expected a value in [0, 2000] W/m2", "supply.ageing"):
        assert expected in text, text


def test_supply_needs_the_plant_and_a_model_that_loads(tmp_path):
    """plant: false has no power supply to feed; a missing ageing folder is named."""
    with pytest.raises(ScenarioError, match="supply: expected the standard plant"):
        run(parse_scenario({"name": "x", "duration": 60, "step": 1, "plant": False, "supply": {}}))
    data = _scenario("solar_battery_sunny", duration=60, supply__ageing_directory=str(tmp_path / "none"))
    with pytest.raises(ScenarioError, match="supply.ageing: .*none.*battery_capacity.hybrid.keras"):
        run(parse_scenario(data, base_dir=SCENARIOS))


def test_runs_after_sunset_counts_until_the_first_curtailment():
    """A hand-made night: sunset at 2 h, curtailed from 3.5 h on: 90 minutes."""
    import pandas as pd

    t = np.arange(0, 6 * 3600 + 1, 1800.0)
    frame = pd.DataFrame({"pv.sun_elevation": np.where(t < 7200, 10.0, -5.0),
                          "ems.curtailed": np.where(t >= 12600, 1.0, 0.0)}, index=t)
    assert runs_after_sunset(frame) == [{"sunset_h": 2.0, "minutes": 90.0, "through": False}]
    frame["ems.curtailed"] = 0.0
    assert runs_after_sunset(frame)[0]["through"] is True
    assert math.isclose(runs_after_sunset(frame)[0]["minutes"], 240.0)


def test_a_controller_that_drives_the_current_asks_the_energy_manager():
    """A controller on the current feeds ems.current_request, which the power supply follows when
    the grid carries it."""
    data = _scenario("solar_battery_sunny", duration=1800)
    data["inputs"] = {}
    data["supply"]["ems"]["grid_limit"] = 100.0
    data["controllers"] = {"heat": {"type": "onoff", "measurement": "reactor.cell_temperature",
                                    "setpoint": 80.0, "actuator": "current", "on_value": 5.0,
                                    "off_value": 2.0}}
    frame = _run(data)
    assert (frame["heat.output"].iloc[1:] == 5.0).all()
    assert (frame["ems.current_setpoint"].iloc[1:] == 5.0).all()
    assert frame["power.current"].iloc[-1] == pytest.approx(5.0)

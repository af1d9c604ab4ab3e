"""The solar supply's float steps (PV, battery, energy manager, DC bus): the positional
``step_values`` the engine calls, and ``step`` on floats, give the bits of the general step (the
arithmetic in the SCALAR namespace that arrays of variants take too), on runs that reach their
branches (day and night, the battery clipped at its limits and ageing, the grid at every price
threshold, a stopped and restarted electrolyser, unserved load, export and curtailment), from
the first step on; and a whole supply scenario records the same bits with the fast paths off."""
from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from co2twin import build, parse_scenario
from components.battery import Battery, limits_floats, power_limits
from components.dc_bus import DCBus, EnergyManager
from components.pv import PVArray, clear_sky
from cosim import Component
from models.battery_models import ageing_model
from models.battery_physics import ocv, soc_and_ocv, soc_from_integral

SCENARIOS = Path(__file__).parents[1] / "scenarios"
_RAD = math.pi / 180.0


def _bits(value: Any) -> Any:
    return np.asarray(value, dtype=float).view(np.int64)


def _state(component: Component) -> list[tuple[str, Any]]:
    """Every value of the component's checkpoint, flattened, as bits (None kept as is)."""
    def flat(prefix: str, value: Any) -> Iterator[tuple[str, Any]]:
        if isinstance(value, dict):
            for key, item in value.items():
                yield from flat(f"{prefix}.{key}", item)
        else:
            yield prefix, None if value is None else _bits(value).tolist()
    return list(flat("", component.get_state()))


def _pick(rng: random.Random, *special: float, lo: float, hi: float) -> float:
    return rng.choice(special) if special and rng.random() < 0.3 else rng.uniform(lo, hi)


def _three_ways(make: Callable[[], Component], steps: Iterator[tuple[float, float, dict[str, float]]],
                ) -> list[dict[str, float]]:
    """Step three instances on the same inputs, through ``step_values``, ``step`` and the
    general step, and check every output and the whole state bit for bit after each step.
    Returns the outputs, for the caller to check which branches the run reached."""
    by_values, by_dict, general = make(), make(), make()
    cls = type(by_values)
    assert cls.has_step_values()
    names = [p.name for p in cls.inputs]
    outputs = [p.name for p in cls.outputs]
    for c in (by_values, by_dict, general):
        c.initialize(0.0)
    seen = []
    for k, (t, dt, inputs) in enumerate(steps):
        a = by_values.step_values(t, dt, tuple(inputs[n] for n in names))
        b = by_dict.step(t, dt, inputs)
        c = general._step_general(t, dt, inputs)  # type: ignore[attr-defined]
        assert len(a) == len(outputs) and set(b) == set(c) == set(outputs), k
        for name, value in zip(outputs, a, strict=True):
            assert _bits(value) == _bits(c[name]), (k, t, dt, name, value, c[name])
            assert _bits(b[name]) == _bits(c[name]), (k, t, dt, name, b[name], c[name])
        assert _state(by_values) == _state(general) == _state(by_dict), k
        seen.append(c)
    return seen


# -- PV ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("params", [
    {},  # the clear sky at 40 degN, midsummer
    {"clear_sky": 0.0},  # the measured irradiance input
    {"latitude": -33.0, "day_of_year": 364.0, "tilt": 60.0, "azimuth": 0.0, "albedo": 0.5,
     "peak_power": 2500.0, "noct": 60.0},  # south, facing north, over the year's end
])
def test_pv_float_step_gives_the_general_steps_bits(params: dict[str, float]):
    """Three days in steps of 0 s to 2 h: nights, sunrises, the day changing mid-step, clouds,
    frost and heat."""
    rng = random.Random(14)

    def steps() -> Iterator[tuple[float, float, dict[str, float]]]:
        t, dt = 0.0, 0.0  # the engine's first step: outputs at the start
        while t < 3 * 86400.0:
            yield t, dt, {"irradiance": _pick(rng, 0.0, -0.0, 2000.0, lo=0.0, hi=1200.0),
                          "clearness": _pick(rng, 0.0, 1.0, 1.5, lo=0.0, hi=1.2),
                          "ambient_temperature": _pick(rng, -40.0, 80.0, lo=-5.0, hi=35.0)}
            t += dt
            dt = rng.choice((0.0, 60.0, 60.0, 599.0, 900.0, 7200.0))

    seen = _three_ways(lambda: PVArray(**params), steps())
    power = [s["power"] for s in seen]
    elevation = [s["sun_elevation"] for s in seen]
    assert min(elevation) < 0.0 < max(elevation) and max(power) > 0.0 and power.count(0.0) > 10


def _clear_sky_as_written(t: float, latitude: float, day_of_year: float, tilt: float, azimuth: float,
                          albedo: float = 0.2) -> tuple[float, float]:
    """The clear sky's formulas written out in one function (what ``clear_sky`` was before its
    daily terms were cached), the reference of its bits."""
    day = day_of_year + math.floor(t / 86400.0)
    hour = (t % 86400.0) / 3600.0
    decl = 23.45 * _RAD * math.sin(2.0 * math.pi * (284.0 + day) / 365.0)
    omega = 15.0 * _RAD * (hour - 12.0)
    phi = latitude * _RAD
    up = math.sin(phi) * math.sin(decl) + math.cos(phi) * math.cos(decl) * math.cos(omega)
    east = -math.cos(decl) * math.sin(omega)
    north = math.cos(phi) * math.sin(decl) - math.sin(phi) * math.cos(decl) * math.cos(omega)
    elevation = math.asin(max(-1.0, min(1.0, up))) / _RAD
    if up <= 0.0:
        return 0.0, elevation
    zenith = 90.0 - elevation
    air_mass = 1.0 / (up + 0.50572 * (96.07995 - zenith) ** -1.6364)
    dni = 1353.0 * 0.7 ** (air_mass**0.678)
    dhi = 0.1 * dni
    ghi = dni * up + dhi
    beta, gamma = tilt * _RAD, azimuth * _RAD
    incidence = (east * math.sin(beta) * math.sin(gamma) + north * math.sin(beta) * math.cos(gamma)
                 + up * math.cos(beta))
    poa = (dni * max(incidence, 0.0) + dhi * (1.0 + math.cos(beta)) / 2.0
           + ghi * albedo * (1.0 - math.cos(beta)) / 2.0)
    return poa, elevation


def test_clear_sky_gives_the_bits_of_its_formulas():
    """Its daily terms computed once per day change no bit, anywhere on the globe, in any season,
    on any plane (the poles included, where the sun stays up or down)."""
    rng = random.Random(14)
    for _ in range(3000):
        args = (rng.uniform(0.0, 5 * 86400.0), rng.choice((-90.0, 90.0, 0.0, rng.uniform(-90.0, 90.0))),
                float(rng.randint(1, 366)), rng.choice((0.0, 90.0, rng.uniform(0.0, 90.0))),
                rng.uniform(0.0, 360.0), rng.uniform(0.0, 1.0))
        assert _bits(clear_sky(*args)).tolist() == _bits(_clear_sky_as_written(*args)).tolist(), args


# -- battery ------------------------------------------------------------------------------------
def _battery_steps(rng: random.Random, n: int) -> Iterator[tuple[float, float, dict[str, float]]]:
    """Phases of strong discharge and charge (past both state-of-charge limits, the requests
    clipped), rests, random requests; zero steps among them; the first step at dt = 0."""
    t, dt = 0.0, 0.0
    for k in range(n):
        phase = (k // 40) % 4
        request = (rng.uniform(40.0, 200.0) if phase == 0 else -rng.uniform(30.0, 200.0) if phase == 1
                   else 0.0 if phase == 2 and k % 3 else rng.uniform(-60.0, 60.0))
        ambient = _pick(rng, -10.0, 45.0, lo=15.0, hi=30.0)
        yield t, dt, {"power_request": request, "ambient_temperature": ambient}
        t += dt
        dt = rng.choice((0.0, 60.0, 60.0, 60.0, 1.0, 600.0))


@pytest.mark.parametrize("case", ["physics", "hybrid", "aged-nn", "no-fade", "lossy"])
def test_battery_float_step_gives_the_general_steps_bits(case: str):
    model = {"physics": "physics", "hybrid": "hybrid", "aged-nn": "nn", "no-fade": "physics",
             "lossy": "physics"}[case]
    params: dict[str, float] = {"initial_soc": 0.5}
    if case == "aged-nn":
        params.update(initial_cycles=400.0, history_temperature=35.0, history_c_rate=1.5, capacity=1.0)
    if case == "no-fade":
        params.update(capacity_fade=0.0, resistance=0.0, initial_soc=1.0)
    if case == "lossy":  # the discharge held at the maximum power point, a lighter pack that warms
        params.update(resistance=3.0, max_discharge_current=6.0, heat_capacity=290.0, heat_transfer=0.37)
    seen = _three_ways(lambda: Battery(ageing_model(model), **params),
                       _battery_steps(random.Random(14), 400))
    soc = [s["soc"] for s in seen]
    assert min(soc) <= 0.1 + 1e-9 and max(soc) >= 0.95 - 1e-9  # both limits reached
    assert sum(s["request_clipped"] for s in seen) > 20
    assert min(s["current"] for s in seen) < 0.0 < max(s["current"] for s in seen)
    fade = seen[-1]["fade_energy"]
    assert fade == 0.0 if case == "no-fade" else fade > 0.0


def test_battery_float_step_follows_a_parameter_changed_midway():
    """``capacity_fade`` (tunable) switched off and on during the run, and a checkpoint restored."""
    rng = random.Random(3)
    steps = list(_battery_steps(rng, 300))

    def run(stepper: Callable[[Battery, float, float, dict[str, float]], Any]) -> list[Any]:
        b = Battery(ageing_model("physics"))
        b.initialize(0.0)
        out, saved = [], None
        for k, (t, dt, inputs) in enumerate(steps):
            if k in (100, 200):
                b.set_parameter("capacity_fade", 0.0 if k == 100 else 1.0)
            if k == 150:
                saved = b.get_state()
            if k == 250:
                b.set_state(saved)
            out.append(_bits(list(stepper(b, t, dt, inputs))).tolist())
        return out

    names = [p.name for p in Battery.outputs]
    fast = run(lambda b, t, dt, i: b.step_values(t, dt, (i["power_request"], i["ambient_temperature"])))
    general = run(lambda b, t, dt, i: list(map(b._step_general(t, dt, i).get, names)))
    assert fast == general


def test_limits_and_soc_helpers_give_the_bits_of_the_general_functions():
    """``limits_floats`` against ``power_limits``; ``soc_and_ocv`` against ``soc_from_integral``
    and ``ocv``, inside and outside their ranges."""
    rng = random.Random(14)
    for _ in range(3000):
        resistance = rng.choice((0.0, 1e-13, rng.uniform(0.0, 1.0), rng.uniform(1.0, 9.0)))
        args = (rng.uniform(10.0, 17.0), resistance,
                rng.choice((0.0, rng.uniform(0.0, 0.1))), rng.choice((0.0, rng.uniform(0.0, 0.1))),
                rng.uniform(0.0, 5.0), rng.uniform(0.0, 5.0), rng.uniform(0.5, 1.0))
        dt = rng.choice((0.0, 1.0, 60.0, 3600.0))
        assert _bits(limits_floats(*args, dt)).tolist() == _bits(power_limits(*args, dt=dt)).tolist()
        f = rng.choice((-1.0, 0.0, 3.74, 5.0, rng.uniform(-0.1, 4.0)))
        soc = soc_from_integral(f)
        assert _bits(soc_and_ocv(f)).tolist() == _bits((soc, ocv(soc))).tolist(), f


# -- energy manager and bus ---------------------------------------------------------------------------
def _manager_inputs(rng: random.Random) -> dict[str, float]:
    return {
        "current_request": _pick(rng, 0.0, 6.0, 50.0, lo=0.0, hi=10.0),
        "cell_voltage": _pick(rng, 0.0, lo=2.0, hi=4.5),
        "pv_power": _pick(rng, 0.0, lo=0.0, hi=60.0),
        "price": _pick(rng, -0.1, 0.05, 0.1, 0.3, lo=-0.2, hi=0.6),
        "battery_ocv": rng.uniform(12.0, 17.0),
        "battery_resistance": _pick(rng, 0.0, lo=0.05, hi=0.5),
        "battery_discharge_energy": _pick(rng, 0.0, lo=0.0, hi=0.05),
        "battery_charge_energy": _pick(rng, 0.0, lo=0.0, hi=0.05),
        "battery_max_discharge_current": _pick(rng, 0.0, lo=0.0, hi=5.0),
        "battery_max_charge_current": _pick(rng, 0.0, lo=0.0, hi=5.0),
        "battery_charge_efficiency": rng.uniform(0.9, 1.0),
    }


@pytest.mark.parametrize("params", [
    {"min_current": 1.0},  # off grid
    {"min_current": 2.0, "restart_current": 0.5, "converter_efficiency": 0.8, "min_cell_voltage": 2.5},
    {"grid_limit": 20.0, "import_price_limit": 0.3, "grid_first_price": 0.1, "grid_charge_price": 0.05,
     "min_current": 1.0, "restart_current": 2.0, "voltage_margin": 0.0, "hold_time": 60.0},
])
def test_energy_manager_float_step_gives_the_general_steps_bits(params: dict[str, float]):
    """Prices across every threshold, the battery empty and full, no PV, a stop and restarts."""
    rng = random.Random(14)

    def steps() -> Iterator[tuple[float, float, dict[str, float]]]:
        for k in range(600):
            yield 60.0 * k, 0.0 if k == 0 or rng.random() < 0.1 else 60.0, _manager_inputs(rng)

    seen = _three_ways(lambda: EnergyManager(**params), steps())
    curtailed = [s["curtailed"] for s in seen]
    stopped = [s["current_setpoint"] == 0.0 < s["current_limit"] for s in seen]
    assert 0.0 in curtailed and 1.0 in curtailed and any(stopped)
    if params.get("grid_limit"):
        assert {s["grid_first"] for s in seen} == {0.0, 1.0} and any(s["grid_charge"] > 0.0 for s in seen)
        assert 0.0 in {s["grid_allowance"] for s in seen}


def test_energy_manager_at_its_thresholds_exactly():
    """A current limit exactly at ``min_current`` and at ``restart_current`` (PV alone carries
    ``1 A`` or ``2 A`` at the 3 V floor of the cell voltage): the electrolyser runs on at the
    floor, stops below it and restarts exactly at the restart current, as the general step does."""
    nothing = dict.fromkeys(("battery_discharge_energy", "battery_charge_energy",
                             "battery_max_discharge_current", "battery_max_charge_current"), 0.0)
    base = {**_manager_inputs(random.Random(1)), **nothing, "cell_voltage": 0.0, "current_request": 6.0,
            "price": 0.2}
    pv = (6.0, 6.0, 5.0, 6.0, 12.0, 6.0, 5.0, 0.0, 11.0, 12.0)  # W; 1 A per 6 W at 3 V and 50 %
    steps = ((60.0 * k, 0.0 if k == 0 else 60.0, {**base, "pv_power": w}) for k, w in enumerate(pv))
    seen = _three_ways(lambda: EnergyManager(converter_efficiency=0.5, min_current=1.0, restart_current=2.0),
                       steps)
    assert [s["current_setpoint"] for s in seen] == [1.0, 1.0, 0.0, 0.0, 2.0, 1.0, 0.0, 0.0, 0.0, 2.0]


@pytest.mark.parametrize("params", [
    {},
    {"converter_efficiency": 0.9, "export_limit": 10.0, "export_price": 0.05},
])
def test_dc_bus_float_step_gives_the_general_steps_bits(params: dict[str, float]):
    """Surplus and deficit, the grid first or last, charging from the grid, export, curtailed
    PV and unserved load."""
    rng = random.Random(14)

    def steps() -> Iterator[tuple[float, float, dict[str, float]]]:
        for k in range(600):
            yield 60.0 * k, 0.0 if k == 0 or rng.random() < 0.1 else rng.choice((1.0, 60.0)), {
                "pv_power": _pick(rng, 0.0, lo=0.0, hi=100.0),
                "load_power": _pick(rng, 0.0, lo=0.0, hi=60.0),
                "price": _pick(rng, -0.1, lo=-0.2, hi=0.6),
                "grid_allowance": _pick(rng, 0.0, -0.0, lo=0.0, hi=50.0),
                "grid_first": rng.choice((0.0, 1.0)),
                "grid_charge": _pick(rng, 0.0, -0.0, lo=0.0, hi=30.0),
                "battery_discharge_limit": _pick(rng, 0.0, -0.0, lo=0.0, hi=60.0),
                "battery_charge_limit": _pick(rng, 0.0, -0.0, lo=0.0, hi=60.0),
            }

    seen = _three_ways(lambda: DCBus(**params), steps())
    for flow in ("unserved", "pv_curtailed", "grid_to_battery", "grid_to_load", "battery_to_load",
                 "pv_to_battery"):
        assert any(s[flow] > 0.0 for s in seen), flow
    assert any(s["pv_export"] > 0.0 for s in seen) == bool(params)


def test_arrays_of_variants_take_the_general_step():
    """Inputs as arrays (variants) go through the general step, as before: each component's
    ``step`` and ``step_values`` on arrays equal its general step's."""
    rng = random.Random(14)
    cases: list[tuple[Callable[[], Component], Callable[[], dict[str, float]]]] = [
        (PVArray, lambda: {"irradiance": rng.uniform(0.0, 900.0), "clearness": rng.uniform(0.0, 1.0),
                           "ambient_temperature": rng.uniform(0.0, 30.0)}),
        (Battery, lambda: {"power_request": rng.uniform(-60.0, 60.0), "ambient_temperature": 25.0}),
        (EnergyManager, lambda: _manager_inputs(rng)),
        (DCBus, lambda: {"pv_power": rng.uniform(0.0, 50.0), "load_power": rng.uniform(0.0, 50.0),
                         "price": 0.2, "grid_allowance": 10.0, "grid_first": 0.0, "grid_charge": 5.0,
                         "battery_discharge_limit": 20.0, "battery_charge_limit": 20.0}),
    ]
    for make, draw in cases:
        by_values, by_dict, general = make(), make(), make()
        for c in (by_values, by_dict, general):
            c.initialize(0.0)
        names = [p.name for p in type(general).inputs]
        for k in range(20):
            draws = [draw() for _ in range(3)]
            inputs = {n: np.array([d[n] for d in draws]) for n in names}
            c = general._step_general(60.0 * k, 60.0, inputs)  # type: ignore[attr-defined]
            a = by_values.step_values(60.0 * k, 60.0, tuple(inputs[n] for n in names))
            b = by_dict.step(60.0 * k, 60.0, inputs)
            for i, p in enumerate(type(general).outputs):
                assert np.array_equal(_bits(a[i]), _bits(c[p.name])), (make, k, p.name)
                assert np.array_equal(_bits(b[p.name]), _bits(c[p.name])), (make, k, p.name)


# -- a whole scenario --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["solar_battery_sunny", "solar_battery_grid_price"])
def test_a_supply_scenario_records_the_same_bits_with_the_fast_paths_off(name: str):
    """The shipped scenario, every signal recorded, against the same run with each supply
    component stepped through its general step (an instance's own ``step``, which the engine
    steps through); the fast run does call ``step_values`` of PV, battery and bus."""
    data = yaml.safe_load((SCENARIOS / f"{name}.yaml").read_text())
    data.pop("output", None)
    data["duration"] = 36 * 3600.0  # a night, a day, the next night
    data["record"] = {"signals": "all"}
    frames, calls = [], {"pv": 0, "battery": 0, "bus": 0}
    for fast in (True, False):
        sim = build(parse_scenario(data, base_dir=SCENARIOS))
        for cname in ("pv", "battery", "ems", "bus"):
            comp = sim.components[cname]
            if not fast:
                comp.step = comp._step_general  # type: ignore[attr-defined]
            elif cname in calls:
                comp.step_values = _counted(comp.step_values, calls, cname)  # type: ignore[method-assign]
        frames.append(sim.run(data["duration"], progress=False))
    steps = int(data["duration"] / data["step"])
    assert calls == {"pv": steps, "battery": steps, "bus": steps}  # every step, the first one included
    fast_frame, general_frame = frames
    assert list(fast_frame.columns) == list(general_frame.columns)
    assert {"pv.power", "battery.soc", "ems.current_setpoint", "bus.cost"} <= set(fast_frame.columns)
    assert np.array_equal(fast_frame.index.to_numpy(), general_frame.index.to_numpy())
    assert np.array_equal(_bits(fast_frame.to_numpy(float)), _bits(general_frame.to_numpy(float)))


def _counted(step_values: Callable[..., Any], calls: dict[str, int], name: str) -> Callable[..., Any]:
    def counted(t: float, dt: float, values: tuple[Any, ...]) -> Any:
        calls[name] += 1
        return step_values(t, dt, values)
    return counted

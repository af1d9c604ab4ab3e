"""Ensembles (co2twin.ensemble): N variants in one pass equal N runs of their own.

::

    variants ──▶ run_ensemble ──▶ one Simulation, every signal an array of N
                                    │  (vectorised components, the bank's batch path)
                                    ▼
    variant i of the ensemble  ==  co2twin.run(apply_variant(scenario, variants[i]))
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from co2twin.ensemble import EnsembleResult, apply_variant, run_ensemble
from co2twin.kpi import balances, kpis
from co2twin.scenario import operating_limits, parse_scenario, run
from cosim.errors import ScenarioError, SimulationError
from cosim.variants import VariantRNG
from models.electrochemistry import namespace
from models.surrogate import EnvelopeWarning

#: a short run with every kind of event the ensemble vectorises, and inputs of every kind
BASE: dict[str, Any] = {
    "name": "ensemble-test",
    "duration": 240,
    "step": 1.0,
    "seed": 3,
    "inputs": {"current": 5.0, "recycle_fraction": 0.5, "product_draw": 0.5,
               "gas_flow": {"ramp": {"from": 90.0, "to": 110.0, "at": 10, "duration": 60}},
               "co2_fraction": {"steps": [[0, 100.0], [120, 80.0]]}},
    "events": [
        {"at": 20, "type": "sensor_noise", "target": "reactor.cell_temperature", "std": 0.05},
        {"at": 40, "type": "co2_supply_drop", "fraction": 0.6},
        {"at": 60, "type": "sensor_drift", "target": "reactor.cell_voltage", "rate": 1.0e-4},
        {"at": 80, "type": "set", "target": "anolyte_flow", "value": 4.0},
        {"at": 100, "type": "ramp", "target": "current", "to": 6.0, "duration": 30},
        {"at": 150, "type": "profile", "target": "humidity", "steps": [[0, 80.0], [20, 85.0]]},
        {"at": 170, "type": "power_trip"},
        {"at": 180, "type": "power_restore"},
        {"at": 200, "type": "co2_supply_restore"},
        {"at": 210, "type": "sensor_clear", "target": "reactor.cell_voltage"},
    ],
}

VARIANTS: list[dict[str, Any]] = [
    {},
    {"inputs.current": 4.0, "seed": 11},
    {"plant.reactor.area_cm2": 30.0, "parameters.feed.pump_time_constant": 2.0,
     "plant.feed.pump_max": 5.0},  # below the electrolyte set points: the pumps saturate
    {"inputs.current.scale": 1.2, "inputs.gas_flow.scale": 0.9},
    {"inputs.co2_fraction.steps": [[0, 90.0], [60, 70.0]], "events[1].fraction": 0.3},
    {"events[3].value": 6.0, "events[3].at": 90, "events[4].to": 4.5, "events[4].duration": 10},
    {"events[5].steps": [[0, 70.0]], "events.6.at": 160, "events[0].std": 0.2, "seed": 5},
    {"inputs.gas_flow": {"steps": [[0, 100.0], [50, 120.0]]}, "events[2].rate": -2.0e-4,
     "plant.separation.tank_volume_L": 1.0},
]


@pytest.fixture(scope="module")
def scenario() -> Any:
    return parse_scenario(BASE)


@pytest.fixture(scope="module")
def ensemble(scenario: Any) -> EnsembleResult:
    return run_ensemble(scenario, VARIANTS, keep=["power.current", "reactor.*_fraction"])


@pytest.fixture(scope="module")
def singles(scenario: Any) -> list[pd.DataFrame]:
    return [run(apply_variant(scenario, v), progress=False) for v in VARIANTS]


#: step-average flows computed from the change of a stock over a step (so that the balances
#: close exactly on the rows), and their running totals -> that stock: their rounding is the
#: stock's, divided by the step
_FROM_STOCK = {"separation.product_draw_rate": "separation.tank_formate",
               "separation.product_drawn": "separation.tank_formate"}


def _assert_same(single: pd.DataFrame, member: pd.DataFrame, label: str) -> None:
    """Every recorded column of the ensemble's variant equals the single run's to 1e-12.

    Relative to the largest magnitude of that column, since a value crossing zero has no
    relative error of its own. Not bit for bit: NumPy's vectorised exp, tanh and matrix
    products may differ from the scalar ones in the last bit, which the few quantities
    computed as a difference of two nearly equal numbers show relative to the numbers they
    are computed from: a bound's correction (two estimates of a variable of order 1) and
    a flow from a stock's change (:data:`_FROM_STOCK`).
    """
    np.testing.assert_array_equal(single.index.to_numpy(), member.index.to_numpy())
    step = float(np.min(np.diff(single.index.to_numpy())))
    for column in member.columns:
        a, b = single[column].to_numpy(), member[column].to_numpy()
        scale = max(np.max(np.abs(a)), 1e-300)
        if column.endswith("_correction"):
            scale = max(scale, 1.0)
        if column in _FROM_STOCK:
            scale = max(scale, np.max(np.abs(single[_FROM_STOCK[column]].to_numpy())) / step)
        worst = float(np.max(np.abs(a - b))) / scale
        assert worst <= 1e-12, f"{label}: {column} differs by {worst:.3g} (relative)"


def test_each_variant_equals_its_own_run(ensemble, singles):
    """Each variant, events and profiles differing, equals co2twin.run of the scenario with its
    overrides applied, every recorded signal to 1e-12 (sensor readings and true values too)."""
    assert ensemble.n == len(VARIANTS)
    assert "reactor.cell_temperature:true" in ensemble.columns  # the noisy sensor's truth
    for i, single in enumerate(singles):
        member = ensemble.frame(i)
        _assert_same(single, member, f"variant {i} {VARIANTS[i]}")


def test_variants_really_differ(ensemble):
    """The overrides took effect: variants differ from the base where they set something."""
    current = ensemble.signal("power.current")
    assert current[5, 1] == pytest.approx(4.0) and current[5, 0] == pytest.approx(5.0)
    assert current[5, 3] == pytest.approx(6.0)  # scaled by 1.2
    temperature = ensemble.signal("reactor.cell_temperature")
    assert not np.array_equal(temperature[:, 0], temperature[:, 1])  # another seed's noise


def test_kpis_and_balances_equal_the_single_runs(scenario, ensemble, singles):
    """kpis() and balances() give per variant what co2twin.kpi gives the single run."""
    table, residuals = ensemble.kpis(), ensemble.balances()
    assert list(table["variant"]) == list(range(len(VARIANTS)))
    limits = operating_limits(scenario)
    for i, single in enumerate(singles):
        expected = kpis(single, limits)
        for key, value in expected.items():
            if isinstance(value, dict):
                for signal, seconds in value.items():
                    assert table.loc[i, f"{key}[{signal}]"] == pytest.approx(seconds, rel=1e-12)
            else:
                assert table.loc[i, key] == pytest.approx(value, rel=1e-12, abs=1e-15), (i, key)
        expected_balances = balances(single)
        assert set(expected_balances) <= set(residuals.columns)
        for key, value in expected_balances.items():  # both closed to rounding
            assert residuals.loc[i, key] == pytest.approx(value, abs=1e-12), (i, key)


def test_frame_long_has_variant_time_and_the_kept_signals(ensemble):
    """frame_long(): one row per variant and recorded time, the kept signals as columns."""
    long = ensemble.frame_long()
    rows = len(ensemble.times)
    assert list(long.columns[:2]) == ["variant", "time"]
    assert {"power.current", "reactor.outlet_co2_fraction", "reactor.outlet_h2_fraction"} <= set(long.columns)
    assert len(long) == rows * len(VARIANTS)
    one = long[long["variant"] == 2]
    np.testing.assert_array_equal(one["power.current"].to_numpy(), ensemble.signal("power.current")[:, 2])


def test_flags_are_per_variant(ensemble):
    """flags() names the variant whose pumps saturated, and only it; its KPIs count the time."""
    table = ensemble.flags()
    assert set(table.columns) >= {"variant", "kind", "signal", "seconds"}
    saturated = table[table["kind"] == "saturation"]
    assert set(saturated["variant"]) == {2}
    assert set(saturated["signal"]) == {"feed.anolyte_pump_saturated", "feed.catholyte_pump_saturated"}
    times = ensemble.kpis()["time_saturated_s"]
    assert times[2] > 0 and (times.drop(2) == 0).all()


def test_to_parquet_partitions_by_chunk(tmp_path, scenario):
    """to_parquet writes signals, kpis and balances under chunk=<first variant>, readable back."""
    result = run_ensemble(scenario, VARIANTS[:3], first_variant=300, every=20)
    paths = result.to_parquet(tmp_path)
    assert paths["kpis"] == tmp_path / "kpis" / "chunk=000300" / "part.parquet"
    back = pd.read_parquet(tmp_path / "kpis")
    assert sorted(back["variant"]) == [300, 301, 302]
    signals = pd.read_parquet(tmp_path / "signals" / "chunk=000300")
    assert set(signals["variant"]) == {300, 301, 302}
    assert len(signals) == 3 * len(result.times)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["balances", "kpis", "signals"]


def test_decimation_matches_a_single_run_recorded_as_often(scenario):
    """every=k: the rows and KPIs are those of the single run with record.every = k."""
    result = run_ensemble(scenario, [{"inputs.current": 4.5}], every=30)
    alone = apply_variant(scenario, {"inputs.current": 4.5})
    alone = alone.model_copy(update={"record": alone.record.model_copy(update={"every": 30})})
    single = run(alone, progress=False)
    _assert_same(single, result.frame(0), "every=30")


# -- refusals --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("variant", "fragment"), [
    ({"models.default": "physics"}, "'models.default' cannot vary"),
    ({"duration": 100}, "'duration' cannot vary"),
    ({"plant.reactor.no_such": 1.0}, "names no parameter of reactor"),
    ({"plant.pv.area": 1.0}, "names no plant component"),
    ({"events[3].target": "current"}, "is no field a variant may set on a set event"),
    ({"events[12].value": 1.0}, "names no event"),
    ({"inputs.no_such_input": 1.0}, "names no input"),
])
def test_structural_paths_are_refused_naming_the_path(scenario, variant, fragment):
    """A path that would change the structure (or names nothing) is refused, naming it."""
    with pytest.raises(ScenarioError, match="variants\\[1\\]") as info:
        run_ensemble(scenario, [{}, variant])
    assert fragment in str(info.value)
    assert "different ensembles" in str(info.value)


def test_bad_values_name_the_variant(scenario):
    """A value out of range or not a number names the variant and the path or port."""
    with pytest.raises(ScenarioError, match=r"variants\[1\]: plant.reactor.area_cm2: expected a number"):
        run_ensemble(scenario, [{}, {"plant.reactor.area_cm2": "big"}])
    with pytest.raises(ScenarioError, match=r"Reactor.area_cm2: expected a finite number .* in variant 2"):
        run_ensemble(scenario, [{}, {}, {"plant.reactor.area_cm2": -5.0}])
    with pytest.raises(SimulationError, match=r"power.current_setpoint .* found 5000.0 in variant 1"):
        run_ensemble(scenario, [{}, {"inputs.current": 5000.0}])
    with pytest.raises(ScenarioError, match=r"variants\[0\]: events\[1\]: fraction"):
        run_ensemble(scenario, [{"events[1].fraction": 2.0}])
    with pytest.raises(ScenarioError, match=r"variants\[1\]: events\[3\].at: expected a time "
                       r"within \[0, 240\) s"):
        run_ensemble(scenario, [{}, {"events[3].at": 240}])


def test_a_sensor_fault_time_cannot_differ(scenario):
    """Sensor faults must happen at one time in all variants of an ensemble."""
    with pytest.raises(ScenarioError, match=r"events\[0\].at: a sensor fault's time cannot differ"):
        run_ensemble(scenario, [{}, {"events[0].at": 30}])


# -- per-variant envelope flags ----------------------------------------------------------------------
def test_envelope_exits_are_flagged_per_variant():
    """A variant driven outside the surrogates' training envelope is flagged in its own rows
    and KPIs only; the engine warns once, naming the variant."""
    scenario = parse_scenario({"name": "env", "duration": 20, "step": 1.0,
                               "inputs": {"current": 5.0}})
    with pytest.warns(EnvelopeWarning, match="variant 1"):
        result = run_ensemble(scenario, [{}, {"inputs.current": 40.0}, {}])
    table = result.kpis()
    assert table.loc[1, "time_outside_envelope_s"] > 0
    assert table.loc[0, "time_outside_envelope_s"] == 0 == table.loc[2, "time_outside_envelope_s"]
    flagged = result.flags()
    assert set(flagged.loc[flagged["kind"] == "envelope", "variant"]) == {1}


# -- the parts ------------------------------------------------------------------------------------
def test_variant_rng_draws_what_each_seed_draws_alone():
    """VariantRNG.normal gives variant i what default_rng(seeds[i]).normal would."""
    seeds = [4, 9, 4, 0]
    rng = VariantRNG(seeds)
    alone = [np.random.default_rng(s) for s in seeds]
    for _ in range(3):
        std = np.array([0.1, 2.0, 0.5, 1.0])
        got = rng.normal(0.0, std)
        expected = [g.normal(0.0, s) for g, s in zip(alone, std, strict=True)]
        np.testing.assert_array_equal(got, expected)


def test_bank_batch_equals_one_sample_at_a_time():
    """The fused bank's batch path gives each column what run() gives that sample, to 1e-12."""
    from models.selection import model_set

    bank = model_set(default="hybrid")._bank
    assert bank is not None
    rng = np.random.default_rng(1)
    n = 7
    signals = {name: rng.uniform(0.5, 2.0, n) * 50 for name in bank.inputs}
    batch = bank.run_batch(signals, n)
    assert batch.shape == (len(bank.variables), n)
    for j in range(n):
        one = bank.run({k: float(v[j]) for k, v in signals.items()})
        for row, variable in enumerate(bank.variables):
            assert batch[row, j] == pytest.approx(one[variable], rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("component", ["feed", "power"])
def test_feed_and_power_step_arrays_like_floats(component):
    """Feed and power supply on arrays of variants give each variant's float results."""
    from components.feed import Feed
    from components.power import PowerSupply

    cls = {"feed": Feed, "power": PowerSupply}[component]
    rng = np.random.default_rng(2)
    n, steps = 5, 6
    series = {p.name: rng.uniform(0.0, p.upper if p.upper < 1e4 else 1e3, (steps, n)) / 4
              for p in cls.inputs}
    if component == "power":
        series["cell_voltage"][:, 0] = 20.0  # above the compliance voltage
        series["current_setpoint"][:, 1] = 900.0  # above the rated current
    vector, scalars = cls(), [cls() for _ in range(n)]
    for c in (vector, *scalars):
        c.initialize(0.0)
    for k in range(steps):
        dt = 0.0 if k == 0 else 1.0
        out = vector.step(k, dt, {name: v[k] for name, v in series.items()})
        for i, c in enumerate(scalars):
            one = c.step(k, dt, {name: float(v[k, i]) for name, v in series.items()})
            for name, value in one.items():
                assert np.shape(out[name]) == (n,), name
                assert out[name][i] == pytest.approx(value, rel=1e-12, abs=1e-300), (k, i, name)
    assert namespace(series[cls.inputs[0].name]) is np


def test_every_plant_parameter_can_vary():
    """Each parameter of the four plant components, varied in a variant of its own (lags of 0,
    pumps stopped, the output tripped among them), gives that variant's single run."""
    from components.plant import STAGES

    scenario = parse_scenario({"name": "parameters", "duration": 30, "step": 1.0,
                               "inputs": {"current": 5.0, "recycle_fraction": 0.5,
                                          "product_draw": 0.3}})
    variants: list[dict[str, Any]] = [{}]
    for component, cls in STAGES.items():
        for p in cls.parameters:
            value = p.default * 1.1 if p.default != 0.0 else min(0.5, p.upper)
            if value > p.upper:
                value = p.default * 0.9
            if p.name in ("output_enabled", "anolyte_pump_on", "catholyte_pump_on",
                          "mfc_time_constant"):
                value = 0.0
            variants.append({f"plant.{component}.{p.name}": value})
    result = run_ensemble(scenario, variants)
    for i, variant in enumerate(variants):
        _assert_same(run(apply_variant(scenario, variant), progress=False), result.frame(i),
                     str(variant))


def test_checkpoints_roll_an_ensemble_back():
    """get_state/set_state on an ensemble's simulation: rolled back and run again, every
    variant (sensor noise drawn per seed included) repeats its values exactly."""
    from co2twin.ensemble import build_ensemble, record_ensemble

    scenario = parse_scenario(BASE)
    sim = build_ensemble(scenario, VARIANTS[:4])
    sim.record(["reactor.cell_temperature"])
    record_ensemble(sim, 4, rows=300)
    sim.initialize()
    sim.advance_to(75.0)
    state = sim.get_state()
    sim.advance_to(130.0)  # through a sensor drift, a set, a ramp (per-variant values)
    first = np.array(sim.get("reactor.cell_temperature"))
    sim.set_state(state)
    sim.advance_to(130.0)
    np.testing.assert_array_equal(sim.get("reactor.cell_temperature"), first)
    assert len(set(first.tolist())) > 1


def test_a_non_finite_signal_names_its_variants():
    """The engine's finite check on arrays: which signal, which variants, one value."""
    from cosim import Component, Port, Simulation
    from cosim.ensemble_recorder import EnsembleRecorder

    class Inverse(Component):
        inputs = (Port("u", "1", description="input", start=1.0),)
        outputs = (Port("y", "1", description="1 / u"),)

        def step(self, t: float, dt: float, inputs: Any) -> dict[str, Any]:
            with np.errstate(divide="ignore"):
                return {"y": 1.0 / inputs["u"]}

    sim = Simulation({"inv": Inverse()}, step=1.0)
    sim.set("inv.u", np.array([1.0, 2.0, 1.0]))
    sim.record_with(lambda columns, units, **kw: EnsembleRecorder(columns, units, n=3, **kw))
    sim.advance_to(2.0)
    sim.set("inv.u", np.array([1.0, 0.0, 0.0]))
    with pytest.raises(SimulationError, match=r"inv.y = inf in variant\(s\) 1, 2 \(of 3\)"):
        sim.advance_to(3.0)

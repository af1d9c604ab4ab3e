"""Controllers in ensembles: the shipped controllers step arrays of variants, and a variant may
set a number of a controller's spec (a tuning sweep). Each variant equals its own run.

::

    variant {"controllers.pi.gains.kp": 150, "plant.reactor.r_membrane": 1.8, "seed": 4}
        run_ensemble ──▶ variant i  ==  co2twin.run(apply_variant(scenario, variant i))
"""
from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from test_ensemble import _assert_same

from co2twin.ensemble import apply_variant, run_ensemble
from co2twin.kpi import kpis
from co2twin.scenario import parse_scenario, run
from co2twin.sweep_spec import load_sweep_spec, parse_sweep_spec
from components.control.pid import PID, _tracking_arrays
from cosim.errors import ScenarioError

#: the tank case's plant (scenarios/control/tank_concentration.yaml) for 1 h 40 min at 5 s, with
#: a PI on the tank's concentration, an on/off anolyte pump on the pH, and a ratio catholyte flow
BASE: dict[str, Any] = {
    "name": "ensemble-controllers",
    "duration": 6000,
    "step": 5,
    "seed": 1,
    "plant": {"separation": {"tank_volume_L": 0.5, "initial_formate_conc": 0.1}},
    "inputs": {"product_draw": 10.0},
    "events": [{"at": 2400, "type": "co2_supply_drop", "fraction": 0.5},
               {"at": 3600, "type": "co2_supply_restore"},
               {"at": 300, "type": "sensor_noise", "target": "separation.tank_formate_conc",
                "std": 0.0005}],
    "controllers": {
        "pi": {"type": "pid", "measurement": "separation.tank_formate_conc", "actuator": "current",
               "setpoint": {"steps": [[0, 0.10], [1200, 0.13]]}, "gains": {"kp": 260, "ki": 0.087},
               "limits": {"low": 0, "high": 6.8, "rate": 0.05}, "bias": 4.0, "sample_time": 10},
        "ph": {"type": "onoff", "measurement": "reactor.anolyte_ph", "actuator": "anolyte_flow",
               "setpoint": 13.6, "hysteresis": 0.1, "on_value": 8.0, "off_value": 4.0},
        "cat": {"type": "ratio", "measurement": "power.current", "actuator": "catholyte_flow",
                "ratio": 1.1, "bias": 0.5, "limits": {"low": 1.0, "high": 12.0, "rate": 0.2}},
    },
}

VARIANTS: list[dict[str, Any]] = [
    {},
    {"controllers.pi.gains.kp": 150.0, "plant.reactor.r_membrane": 1.8, "seed": 4},
    {"controllers.pi.gains.ki": 0.2, "controllers.pi.limits.rate": 0.02},
    {"controllers.pi.limits.high": 5.5, "controllers.pi.tracking_time": 40.0},
    {"controllers.ph.hysteresis": 0.3, "controllers.ph.on_value": 10.0, "events[0].fraction": 0.3},
    {"controllers.cat.ratio": 0.8, "controllers.cat.bias": 1.5, "inputs.product_draw": 14.0},
]


@pytest.fixture(scope="module")
def scenario() -> Any:
    return parse_scenario(BASE)


@pytest.fixture(scope="module")
def ensemble(scenario):
    return run_ensemble(scenario, VARIANTS, keep=["*"])


@pytest.fixture(scope="module")
def singles(scenario):
    return [run(apply_variant(scenario, v), progress=False) for v in VARIANTS]


def test_each_variant_with_controllers_equals_its_own_run(ensemble, singles):
    for i, single in enumerate(singles):
        assert {"pi.output", "ph.on", "cat.output"} <= set(single.columns)
        _assert_same(single, ensemble.frame(i), f"variant {i} {VARIANTS[i]}")


def test_the_controller_variants_really_differ(ensemble):
    """What each variant sets moves its loop: a lower current ceiling holds the current under
    it, a wider band switches the pump less often, a smaller ratio gives less catholyte."""
    current = ensemble.signal("pi.output")
    assert current[:, 3].max() == pytest.approx(5.5) and current[:, 0].max() > 5.5
    switches = np.count_nonzero(np.diff(ensemble.signal("ph.on"), axis=0), axis=0)
    assert switches[4] < switches[0]
    assert not np.array_equal(ensemble.signal("cat.output")[:, 5], ensemble.signal("cat.output")[:, 0])


def test_loop_kpis_per_variant_equal_the_single_runs(scenario, ensemble, singles):
    """``loop_iae`` and ``loop_travel`` of every controller, per variant, as each run's own."""
    table = ensemble.kpis()
    for i, single in enumerate(singles):
        figures = kpis(single, None)
        assert set(figures["loop_travel"]) == {"pi", "ph", "cat"}
        assert set(figures["loop_iae"]) == {"pi"}  # only a PID has an error output
        assert table.loc[i, "loop_iae[pi]"] == pytest.approx(figures["loop_iae"]["pi"], rel=1e-12)
        for name, travel in figures["loop_travel"].items():
            assert table.loc[i, f"loop_travel[{name}]"] == pytest.approx(travel, rel=1e-12, abs=1e-12)
        assert set(figures["loop_saturated_s"]) == {"pi", "cat"}  # the on/off has no saturated output
        for name, seconds in figures["loop_saturated_s"].items():
            assert table.loc[i, f"loop_saturated_s[{name}]"] == seconds
    # the slower integral with a tighter rate limit tracks worse than the tuned loop
    assert table.loc[2, "loop_iae[pi]"] != table.loc[0, "loop_iae[pi]"]
    # a tighter rate limit (0.02 A/s, with a faster integral) holds the loop at a limit longer
    assert table.loc[2, "loop_saturated_s[pi]"] > table.loc[0, "loop_saturated_s[pi]"] > 0


def test_loop_iae_is_the_integral_of_the_error(singles):
    """Against the definitions, on the first variant's rows: sum of |error| x row spacing, and
    the rows at a limit (after the first) x row spacing."""
    frame = singles[0]
    t = frame.index.to_numpy()
    expected = float(np.sum(np.abs(frame["pi.error"].to_numpy()[1:]) * np.diff(t)))
    assert kpis(frame, None)["loop_iae"]["pi"] == pytest.approx(expected, rel=1e-12)
    held = np.count_nonzero(frame["pi.saturated"].to_numpy()[1:] > 0.0) * float(np.median(np.diff(t)))
    assert kpis(frame, None)["loop_saturated_s"]["pi"] == held > 0


@pytest.mark.parametrize("variant, fragment", [
    ({"controllers.nope.gains.kp": 1.0},
     "names no controller of the scenario (its controllers: pi, ph, cat)"),
    ({"controllers.pi.sample_time": 5.0}, "is no number a variant may set on controller pi (type pid;"),
    ({"controllers.ph.ratio": 1.0}, "(type onoff; those: hysteresis, on_value, off_value)"),
    ({"controllers.pi.anti_windup": "none"}, "is no number a variant may set"),
])
def test_controller_paths_that_cannot_vary_are_refused_naming_the_path(scenario, variant, fragment):
    with pytest.raises(ScenarioError) as info:
        run_ensemble(scenario, [{}, variant])
    assert fragment in str(info.value)
    assert next(iter(variant)) in str(info.value)


def test_bad_controller_values_name_the_variant(scenario):
    with pytest.raises(ScenarioError, match=r"controllers\.pi\.limits: low 7 above high 6\.8 in variant 1"):
        run_ensemble(scenario, [{}, {"controllers.pi.limits.low": 7.0}])
    with pytest.raises(ScenarioError, match=r"controllers\.ph\.hysteresis: .*found -1\.0 in variant 2"):
        run_ensemble(scenario, [{}, {}, {"controllers.ph.hysteresis": -1.0}])


def test_a_python_controller_is_refused_naming_it(fixed_controller):
    """A user's class steps one run at a time: the ensemble says which controller, and why."""
    tmp_path = fixed_controller
    data = {**BASE, "controllers": {"mine": {"type": "python", "python": "mine:Fixed",
                                             "actuators": ["current"]}}}
    scenario = parse_scenario(data, source=str(tmp_path / "s.yaml"), base_dir=tmp_path)
    with pytest.raises(ScenarioError, match=r"these do not \(yet\): mine \(.*PythonController\)"):
        run_ensemble(scenario, [{}])


def test_pid_tracking_time_per_variant_follows_the_scalar_rule():
    """The array form of the back-calculation time constant equals the scalar rule on every
    combination of zero and non-zero gains and tracking times."""
    values = {"kp": (0.0, 2.0, -3.0), "ki": (0.0, 0.5), "kd": (0.0, 4.0), "tracking_time": (0.0, 7.0)}
    combos = list(itertools.product(*values.values()))
    arrays = [np.array([c[k] for c in combos]) for k in range(4)]
    got = _tracking_arrays(*arrays)
    for i, (kp, ki, kd, tt) in enumerate(combos):
        expected = PID(kp=kp, ki=ki, kd=kd, tracking_time=tt).tracking()
        assert got[i] == expected or (math.isnan(expected) and math.isnan(got[i])), (kp, ki, kd, tt)


# -- tuning sweeps ------------------------------------------------------------------------------
SWEEPS = sorted((Path(__file__).parent.parent / "sweeps").glob("*.yaml"))


@pytest.mark.parametrize("path", SWEEPS, ids=[p.stem for p in SWEEPS])
def test_every_shipped_sweep_spec_validates(path):
    """The shipped specs (README's commands run them) pass every check against their scenario,
    model files included."""
    spec = load_sweep_spec(path)
    assert spec.n_variants >= 1


def test_the_tuning_sweep_varies_the_gains_of_its_scenario_controller():
    spec = load_sweep_spec(Path(__file__).parent.parent / "sweeps" / "pi_tuning.yaml")
    assert spec.n_groups == 9 and spec.n_variants == 144
    assert {"controllers.pi.gains.kp", "controllers.pi.gains.ki"} <= set(spec.grid)


def test_a_loop_kpi_of_a_controller_the_scenario_lacks_is_refused(tmp_path):
    data = yaml.safe_load((Path(__file__).parent.parent / "sweeps" / "pi_tuning.yaml").read_text())
    data["sweep"]["keep"]["kpis"] = ["loop_iae[pi]", "loop_iae[nope]"]
    data["sweep"]["scenario"] = str(Path(__file__).parent.parent / "scenarios" / "tank_pi_loop.yaml")
    with pytest.raises(ScenarioError,
                       match=r"sweep\.keep\.kpis\[1\]: expected a KPI .*found 'loop_iae\[nope\]'"):
        parse_sweep_spec(data, source="spec.yaml", base_dir=tmp_path)


def test_band_plots_label_a_controllers_signals_with_their_units():
    """A controller's ports take the units of what it measures and drives; the band plot's
    axes say them (they came from the plant's stages only, so pi.output had none)."""
    from co2twin.uncertainty import _units

    spec = load_sweep_spec(Path(__file__).parent.parent / "sweeps" / "pi_tuning.yaml")
    assert _units(spec, ["pi.output", "pi.error", "separation.tank_formate_conc"]) == {
        "pi.output": "A", "pi.error": "mol/L", "separation.tank_formate_conc": "mol/L"}


def test_a_sweeps_kpi_units_name_each_loops_units():
    """summary.json's kpi_units (what `co2twin sweep` prints): a loop's IAE in its measurement's
    unit times seconds, its travel in its actuator's unit; plant KPIs and per-signal seconds."""
    from co2twin.uncertainty import kpi_units

    spec = load_sweep_spec(Path(__file__).parent.parent / "sweeps" / "pi_tuning.yaml")
    assert kpi_units(spec, ["loop_iae[pi]", "loop_travel[pi]", "loop_saturated_s[pi]",
                            "formate_produced_mol", "outside_limits[reactor.cell_voltage]"]) == {
        "loop_iae[pi]": "mol/L s", "loop_travel[pi]": "A", "loop_saturated_s[pi]": "s",
        "formate_produced_mol": "mol", "outside_limits[reactor.cell_voltage]": "s"}

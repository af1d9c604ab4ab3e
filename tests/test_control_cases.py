"""Control test cases (co2twin.control): the shipped cases separate their controllers, and the
KPIs are computed the same way for every controller, from the recorded run.

    case.yaml = scenario (plant, disturbances, seed) + case: (objective, set points,
    constraints, allowed signals, thresholds, shipped controllers)
    run_case(case, controller) -> ControlResult(frame, kpis, verdicts, passed)
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args

import numpy as np
import pandas as pd
import pytest
import yaml

from co2twin.control import CONTROLLER_NAME, ControlCase, compare, control_kpis, load_case, run_case
from co2twin.scenario import parse_scenario
from co2twin.scenario_schema import CONTROL_KPIS, KpiName
from cosim.errors import ScenarioError

pytestmark = pytest.mark.filterwarnings("ignore::models.surrogate.EnvelopeWarning")

CASES_DIR = Path(__file__).parents[1] / "scenarios" / "control"
CASES = sorted(CASES_DIR.glob("*.yaml"))


@pytest.fixture(scope="module", params=CASES, ids=lambda p: p.stem)
def compared(request: pytest.FixtureRequest) -> tuple[ControlCase, list[Any]]:
    """Each shipped case run with each of its shipped controllers (once per module)."""
    case = load_case(request.param)
    return case, compare(case, list(case.spec.controllers))


def test_the_five_required_cases_are_shipped():
    """Tank concentration, FE through dilution, voltage limit with ageing, pH band, price."""
    assert {p.stem for p in CASES} >= {"tank_concentration", "fe_dilution", "ageing_voltage_limit",
                                       "anolyte_ph", "price_following"}


def test_each_case_separates_its_controllers(compared):
    """The shipped baseline passes, at least one shipped controller fails, and each gets the
    verdict the case says it gets: the scoring discriminates."""
    case, results = compared
    verdicts = {r.controller: r.passed for r in results}
    assert verdicts["baseline"] is True, _failures(results)
    assert not all(verdicts.values())
    assert {n: ("pass" if v else "fail") for n, v in verdicts.items() if n in case.spec.expected} \
        == dict(case.spec.expected)


def _failures(results: list[Any]) -> str:
    return "; ".join(f"{r.controller}: {v.label} = {v.value} ({v.bound_text})"
                     for r in results for v in r.verdicts if not v.ok)


def test_every_controller_is_scored_by_the_same_kpis(compared):
    """The KPI names of a case's runs are the same for every controller, and include the
    thresholds' and the objective's."""
    case, results = compared
    names = {frozenset(r.kpis) for r in results}
    assert len(names) == 1
    (kpis,) = names
    objective = case.spec.objective.minimise or case.spec.objective.maximise
    assert set(case.spec.kpis) | {objective} <= kpis
    for r in results:
        assert r.kpis["compute_ms_per_h"] >= 0.0
        assert set(r.actuators) == set(case.actuators)


def test_the_kpi_catalogue_is_what_the_cases_compute(compared):
    """Every KPI computed is in the catalogue (with its unit) and the schema's names match it."""
    _, results = compared
    assert set(get_args(KpiName)) == set(CONTROL_KPIS)
    for r in results:
        assert set(r.kpis) <= set(CONTROL_KPIS)


def test_runs_are_reproducible():
    """Same case, same controller: the same recorded run, bit for bit."""
    case = load_case(CASES_DIR / "anolyte_ph.yaml")
    a, b = run_case(case, "onoff"), run_case(case, "onoff")
    assert a.frame.equals(b.frame)
    assert {k: v for k, v in a.kpis.items() if k != "compute_ms_per_h"} == \
        {k: v for k, v in b.kpis.items() if k != "compute_ms_per_h"}


# -- controllers given from Python -----------------------------------------------------------
class HalfPrice:
    """Runs high when the price is below its day's mean, low otherwise (reads forecasts)."""

    def __init__(self) -> None:
        self.price: Any = None

    def set_forecasts(self, forecasts: Mapping[str, Any]) -> None:
        self.price = forecasts["price"]

    def initialise(self, t0: float) -> None:
        self.mean = np.mean([self.price(t0 + 3600 * h) for h in range(24)])

    def step(self, t: float, measurements: Mapping[str, float]) -> dict[str, float]:
        assert set(measurements) == {"power.current", "reactor.cell_voltage"}
        return {"current": 5.0 if self.price(t) < self.mean else 2.0}


def test_a_python_class_or_object_runs_a_case():
    """run_case takes a class or object with the controller signature, and gives it the
    case's allowed measurements and its forecasts (the day-ahead price)."""
    case = load_case(CASES_DIR / "price_following.yaml")
    by_class = run_case(case, HalfPrice)
    by_object = run_case(case, HalfPrice())
    assert by_class.controller == "HalfPrice"
    assert by_class.frame.equals(by_object.frame)
    current = by_class.frame[by_class.actuators["power.current_setpoint"]]
    assert set(np.round(current.iloc[1:].unique(), 6)) == {2.0, 5.0}


def test_a_controller_may_only_use_what_the_case_allows():
    """A controller reading a signal the case does not allow, or driving another input, is
    refused before anything runs, naming it."""
    case = load_case(CASES_DIR / "fe_dilution.yaml")
    spec = {"type": "pid", "measurement": "reactor.anolyte_ph", "setpoint": {"constant": 13.5},
            "actuator": "anolyte_flow", "gains": {"kp": 1}}
    with pytest.raises(ScenarioError) as info:
        run_case(case, spec)
    text = str(info.value)
    assert "case.controllers.pid: reads reactor.anolyte_ph, which the case does not allow" in text
    assert "case.controllers.pid: drives feed.anolyte_flow_setpoint, which the case does not allow" in text
    with pytest.raises(ScenarioError, match="expected one of the case's"):
        run_case(case, "nonexistent")


def test_without_a_controller_the_actuators_are_free():
    """ControlCase.build() leaves the actuators unconnected (a Gymnasium agent sets them);
    with a controller the component named 'controller' drives them."""
    case = load_case(CASES_DIR / "tank_concentration.yaml")
    free = case.build()
    assert set(case.actuators) <= set(free.external_inputs)
    wired = case.build("baseline")
    assert CONTROLLER_NAME in wired.components
    assert "power.current_setpoint" not in wired.external_inputs
    assert case.profile("separation.tank_formate_conc").value(4000.0) == 0.13


# -- the case section's checks ---------------------------------------------------------------
def case_data(**case: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "objective": {"description": "hold the voltage", "minimise": "tracking_iae"},
        "setpoints": {"reactor.cell_voltage": {"constant": 3.6}},
        "measurements": ["reactor.cell_voltage"], "actuators": ["current"],
        "kpis": {"tracking_iae": {"max": 10}},
        "controllers": {"pi": {"type": "pid", "measurement": "reactor.cell_voltage",
                               "actuator": "current", "gains": {"kp": 1, "ki": 0.1}}},
    }
    base.update(case)
    return {"name": "c", "duration": 60, "step": 1, "case": base}


def test_a_valid_case_loads():
    parse_scenario(case_data())


def test_every_problem_of_a_case_is_reported_at_once():
    """Disallowed signals, a driven actuator, a threshold without what it needs, unknown
    signals and names: one ScenarioError naming each YAML path."""
    data = case_data(
        measurements=["reactor.fe_formate"],
        constraints={"reactor.nowhere": {"high": 1}},
        kpis={"energy_cost": {"max": 1}, "tracking_iae": {"min": 5, "max": 1}},
        disturbances={"dip": {"description": "x", "events": [3], "inputs": ["gas_flow"]}},
        expected={"pid": "pass"},
        controllers={"pi": {"type": "pid", "measurement": "reactor.cell_temperature",
                            "actuator": "gas_flow", "gains": {"kp": 1}}},
    )
    data["inputs"] = {"current": 5.0}
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data)
    text = str(info.value)
    for expected in [
        "case.measurements[0]: expected a measured signal",
        "case.actuators[0]: power.current_setpoint is driven by inputs.current",
        "case.constraints.reactor.nowhere: unknown signal",
        "case.kpis.energy_cost: this KPI needs a price (case.price)",
        "case.kpis.tracking_iae: expected min <= max",
        "case.disturbances.dip.events[0]: expected the index of an event",
        "case.disturbances.dip.inputs[0]: expected one of the scenario's inputs",
        "case.expected.pid: expected one of the case's controllers (pi)",
        "case.controllers.pi: reads reactor.cell_temperature, which the case does not allow",
        "case.controllers.pi: drives feed.gas_flow_setpoint, which the case does not allow",
    ]:
        assert expected in text, f"{expected!r} not in:\n{text}"


def test_an_unknown_kpi_threshold_is_refused():
    with pytest.raises(ScenarioError, match=r"case.kpis \(a key\): expected 'production_kg', .* "
                       r"found 'happiness'"):
        parse_scenario(case_data(kpis={"happiness": {"min": 1}}))


# -- the KPIs, on frames whose answers are known ----------------------------------------------
def synthetic_case(**case: Any) -> ControlCase:
    data = case_data(**case)
    data["duration"] = 100
    return ControlCase(parse_scenario(data))


def frame_of(columns: dict[str, Any], step: float = 1.0, n: int = 101) -> pd.DataFrame:
    index = pd.Index(np.arange(n) * step, name="time_s")
    return pd.DataFrame({k: (v(index.to_numpy()) if callable(v) else v) for k, v in columns.items()},
                        index=index)


def test_tracking_iae_and_ise():
    """A constant error of 0.2 V for 100 s (rows 2 s apart): IAE 20 V*s, ISE 4 V^2*s."""
    case = synthetic_case()
    frame = frame_of({"reactor.cell_voltage": 3.4}, step=2.0, n=51)
    kpis = control_kpis(frame, case, actuators={})
    assert kpis["tracking_iae"]["reactor.cell_voltage"] == pytest.approx(20.0)
    assert kpis["tracking_ise"]["reactor.cell_voltage"] == pytest.approx(4.0)


def test_overshoot_and_settling_of_a_set_point_step():
    """Step 3.0 -> 4.0 at 10 s; the response overshoots to 4.3 at 20 s and stays within
    5 % (0.05 V) from 40 s: overshoot 30 %, settling time 30 s."""
    case = synthetic_case(setpoints={"reactor.cell_voltage": {"steps": [[0, 3.0], [10, 4.0]]}})

    def response(t: np.ndarray) -> np.ndarray:
        y = np.where(t <= 10, 3.0, 4.0)
        y = np.where((t > 10) & (t <= 20), 3.0 + 1.3 * (t - 10) / 10, y)
        return np.where((t > 20) & (t < 40), 4.3 - 0.26 * (t - 20) / 20 * 1.0, y)

    kpis = control_kpis(frame_of({"reactor.cell_voltage": response}), case, actuators={})
    assert kpis["overshoot_pct"]["reactor.cell_voltage"] == pytest.approx(30.0)
    assert kpis["settling_time_s"]["reactor.cell_voltage"] == pytest.approx(30.0)


def test_energy_cost_follows_the_price_of_each_step(tmp_path):
    """1 kWh per step-hour at a price that doubles half way: cost = sum(price * energy)."""
    case = synthetic_case(price={"steps": [[0, 0.10], [50, 0.20]]}, kpis={"energy_cost": {"max": 1}})
    frame = frame_of({"reactor.energy": lambda t: t * 0.01})  # 0.01 kWh per 1 s step
    kpis = control_kpis(frame, case, actuators={})
    assert kpis["energy_cost"] == pytest.approx(50 * 0.01 * 0.10 + 50 * 0.01 * 0.20)


def test_violations_use_the_true_value_of_a_faulted_sensor():
    """Time and integral outside a constraint count what the plant did, not the reading (the
    limit given in mV is converted to the signal's V)."""
    case = synthetic_case(constraints={"reactor.cell_voltage": {"high": 4000, "unit": "mV"}},
                          kpis={"time_outside_s": {"max": 0}})
    frame = frame_of({"reactor.cell_voltage": 3.9,
                      "reactor.cell_voltage:true": lambda t: np.where(t > 80, 4.5, 3.9)})
    kpis = control_kpis(frame, case, actuators={})
    assert kpis["time_outside_s"] == pytest.approx(20.0)
    assert kpis["integral_outside"]["reactor.cell_voltage"] == pytest.approx(20 * 0.5)


def test_actuator_travel_production_and_compute_time():
    """Travel is the total variation of the command; production the HCOOH made; compute time
    is per simulated hour."""
    case = synthetic_case()
    frame = frame_of({"ctl.output": lambda t: np.where((t // 10) % 2 == 0, 1.0, 3.0),
                      "reactor.formate_produced": lambda t: t * 1e-3})
    kpis = control_kpis(frame, case, actuators={"power.current_setpoint": "ctl.output"},
                        compute_s=0.001)
    assert kpis["actuator_travel"]["power.current_setpoint"] == pytest.approx(10 * 2.0)  # 10 switches
    assert kpis["production_kg"] == pytest.approx(0.1 * 46.03 / 1000.0)
    assert kpis["compute_ms_per_h"] == pytest.approx(1.0 / (100 / 3600))


def test_a_missing_kpi_fails_its_threshold():
    """A threshold on a KPI that could not be computed fails (absent is not a pass)."""
    from co2twin.control import score

    case = synthetic_case()
    (verdict,) = score({}, case)
    assert verdict.value is None and not verdict.ok
    (verdict,) = score({"tracking_iae": {"reactor.cell_voltage": math.nan}}, case)
    assert not verdict.ok


def test_case_files_are_valid_scenarios_that_also_run_open_loop(tmp_path):
    """A test case is a scenario: `co2twin run` runs it without a controller (the actuators at
    their start values), and every shipped case file loads."""
    from co2twin.scenario import load_scenario, run

    for path in CASES:
        assert load_scenario(path).case is not None
    data = yaml.safe_load((CASES_DIR / "anolyte_ph.yaml").read_text())
    data["duration"] = "10 min"
    data["events"] = []
    data["case"]["disturbances"].pop("probe_drift")
    path = tmp_path / "short.yaml"
    path.write_text(yaml.safe_dump(data))
    frame = run(load_scenario(path), progress=False)
    assert (frame["feed.anolyte_flow_setpoint"] == 5.57).all()

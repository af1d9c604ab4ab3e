"""The oracle MPC (co2twin.control.mpc): the twin's own checkpoints as its prediction model.

    run_case(case, "mpc") -> host loop: plan(t, plant.get_state()) -> actions -> plant.set
    MPC.plan: restore the model twin to the plant's state, SLSQP over move-blocked actuators

It must beat the shipped baseline where the case rewards planning (ageing_voltage_limit:
more formic acid under the same voltage limit), and say what it cost (compute time, solves).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from co2twin.control import MPC, ControlCase, compare, load_case, run_case
from co2twin.scenario import parse_scenario
from cosim.errors import ScenarioError

CASES_DIR = Path(__file__).parents[1] / "scenarios" / "control"
AGEING = CASES_DIR / "ageing_voltage_limit.yaml"
ENV = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "COLUMNS")}
ENV.update(NO_COLOR="1", TERM="dumb", COLUMNS="200")


def co2twin(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "co2twin.cli", *args], cwd=cwd, capture_output=True,
                          encoding="utf-8", errors="replace", timeout=300, env=ENV)


@pytest.fixture(scope="module")
def ageing() -> tuple[ControlCase, Any, Any, MPC]:
    """The ageing case run with its baseline and with the MPC (default settings), once."""
    case = load_case(AGEING)
    mpc = MPC()
    baseline, predicted = compare(case, ["baseline", mpc])
    return case, baseline, predicted, mpc


def test_mpc_beats_the_baseline_under_the_voltage_limit(ageing):
    """The MPC passes every threshold of the case, and makes more formic acid than the PI
    baseline of the same run while staying within the 3.9 V limit as long as it does."""
    case, baseline, mpc_result, _ = ageing
    assert baseline.passed
    assert mpc_result.passed, [(v.label, v.value, v.bound_text) for v in mpc_result.verdicts if not v.ok]
    assert mpc_result.kpis["production_kg"] > baseline.kpis["production_kg"]
    assert mpc_result.kpis["time_outside_s"] <= baseline.kpis["time_outside_s"]
    assert mpc_result.controller == "mpc"


def test_mpc_rides_the_limit_its_model_predicts(ageing):
    """An oracle's prediction is the plant's: the cell voltage ends each move at the limit
    less the back-off, never over it (a model that drifted from the plant would either
    cross the limit or stay well under it)."""
    case, _, result, mpc = ageing
    (high,) = [h for s, (_, h) in case.constraints.items() if s == "reactor.cell_voltage"]
    voltage = result.frame["reactor.cell_voltage"]
    assert voltage.max() <= high
    # the rows just before each move: the end of a prediction the plan was made for
    ends = voltage[(voltage.index % mpc.move == mpc.move - case.scenario.step)]
    assert len(ends) > 10
    assert (ends.iloc[2:] >= high - 3 * mpc.backoff * high).all(), ends.describe()


def test_mpc_reports_its_computation_and_solves(ageing):
    """The compute-time KPI is the MPC's planning time per simulated hour; every move was
    solved at least once, each solve ran the model several times."""
    case, _, result, mpc = ageing
    hours = case.scenario.duration / 3600.0
    assert result.kpis["compute_ms_per_h"] == pytest.approx(mpc.compute_seconds * 1000.0 / hours)
    s = result.solver
    assert s["moves"] == len(mpc.move_seconds) == pytest.approx(case.scenario.duration / mpc.move)
    assert s["solves"] >= s["moves"]
    assert s["model_runs"] > s["solves"]
    assert s["median_move_ms"] > 0.0
    # the model's exploration stays apart from the plant's own warnings
    assert isinstance(mpc.model_warnings, list)


def test_mpc_moves_within_the_cases_actuator_range(ageing):
    """Without bounds given, the MPC moves the current within the baseline's limits (the
    surrogates' envelope in this case), not the port's 0-1000 A."""
    case, _, result, _ = ageing
    limits = case.spec.controllers["baseline"].limits
    current = result.frame["power.current_setpoint"].iloc[1:]
    assert current.min() >= limits.low
    assert current.max() <= limits.high


PRICE = CASES_DIR / "price_following.yaml"


def _envelope_current(sim: Any) -> float:
    """The largest current the surrogates were trained for: the narrowest upper bound of
    the current density over the models that take it, times the cell's area (mA -> A)."""
    reactor = sim.components["reactor"]
    highs = [s.upper[s.inputs.index("current_density")] for s in reactor.models.surrogates.values()
             if "current_density" in s.inputs]
    assert highs, "the shipped plant's models take the current density"
    return min(highs) * reactor.p.area_cm2 / 1000.0


def test_default_range_stays_within_the_plant_and_the_models():
    """price_following ships no current limits: the MPC's default range for the current is
    the port's 0-1000 A narrowed to the supply's rated current and the surrogates' training
    envelope (here the envelope binds), says where each end came from, and the Gymnasium
    environment's action space uses the same range. Explicit bounds are taken as given."""
    from co2twin.control.gym_env import CaseEnv

    case = load_case(PRICE)
    sim = case.build()
    rated, envelope = sim.components["power"].p.max_current, _envelope_current(sim)
    mpc = MPC()
    mpc.prepare(case)
    (span,) = mpc.ranges
    assert span.actuator == "power.current_setpoint" and span.unit == "A"
    assert span.low == 0.0 and span.low_from.startswith("port")
    assert span.high <= rated and span.high <= envelope
    assert span.high == pytest.approx(min(rated, envelope)) and "envelope" in span.high_from
    assert mpc.stats()["ranges"]["power.current_setpoint"]["high"] == span.high
    action = CaseEnv(PRICE).definition
    assert (action.action_low.tolist(), action.action_high.tolist()) == ([span.low], [span.high])
    given = MPC(bounds={"current": (1.0, 6.8)})
    given.prepare(case)
    assert (given.ranges[0].low, given.ranges[0].high, given.ranges[0].high_from) == (1.0, 6.8, "given")


def test_mpc_plans_within_the_rated_and_trained_current():
    """Asked for the most formic acid with no constraint and no limits (price_following's
    plant, 10 min), the MPC plans the current at the top of its default range: the models'
    envelope, not the port's 0-1000 A (where it planned 115 A, over the supply's rating)."""
    data = yaml.safe_load(PRICE.read_text(encoding="utf-8"))
    data["duration"] = "10 min"
    data["case"].pop("price")
    data["case"].update(objective={"description": "most formic acid", "maximise": "production_kg"},
                        constraints={}, kpis={"production_kg": {"min": 0.0}},
                        controllers={"flat": data["case"]["controllers"]["flat"]},
                        expected={"flat": "pass"})
    case = ControlCase(parse_scenario(data, source="price_unconstrained.yaml"))
    mpc = MPC(move_s=300.0, blocks=(1,))
    mpc.prepare(case)
    plant = case.build()
    plant.initialize()
    planned = mpc.plan(0.0, plant.get_state())["power.current_setpoint"]
    top = min(plant.components["power"].p.max_current, _envelope_current(plant))
    assert planned <= top
    assert planned == pytest.approx(top, rel=1e-3)


def _short_ageing(tmp_path: Path, hours: float) -> Path:
    """The ageing case cut to ``hours``, its production threshold cut in proportion."""
    data = yaml.safe_load(AGEING.read_text(encoding="utf-8"))
    data["duration"] = f"{hours} h"
    data["case"]["kpis"]["production_kg"]["min"] *= hours / 12.0
    path = tmp_path / "ageing_short.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_cli_compare_selects_the_mpc(tmp_path):
    """``co2twin control compare CASE -c baseline -c mpc`` on the pH case: the table has an
    mpc column and the line of what its optimiser did; ``--json`` carries the same figures,
    and the MPC keeps the pH in band (the case's thresholds)."""
    case = CASES_DIR / "anolyte_ph.yaml"
    shown = co2twin("control", "compare", str(case), "-c", "baseline", "-c", "mpc", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "mpc" in shown.stdout and "solves" in shown.stdout and "ms per move" in shown.stdout
    data = co2twin("control", "run", str(case), "-c", "mpc", "--json", cwd=tmp_path)
    assert data.returncode == 0, data.stderr
    figures = json.loads(data.stdout)["controllers"]["mpc"]
    assert figures["passed"] is True
    assert figures["solver"]["solves"] >= figures["solver"]["moves"] > 0
    # the range it moved the pump in, and where that came from (the shipped controllers' limits)
    span = figures["solver"]["ranges"]["feed.anolyte_flow_setpoint"]
    assert (span["low"], span["high"], span["unit"]) == (1.0, 19.5, "mL/min")
    assert "limits" in span["high_from"]
    assert "mpc: feed.anolyte_flow_setpoint in [1, 19.5] mL/min" in shown.stdout
    assert figures["kpis"]["compute_ms_per_h"] > 0.0


def test_mpc_runs_are_reproducible(tmp_path):
    """Two runs of the same case give the same record bit for bit (the plan depends on the
    state alone: no randomness, no wall clock), and a reused MPC starts afresh."""
    case = load_case(_short_ageing(tmp_path, 1.0))
    mpc = MPC(move_s=900.0)
    first, second = run_case(case, mpc), run_case(case, mpc)
    assert first.frame.equals(second.frame)
    assert first.solver["moves"] == second.solver["moves"] == len(mpc.move_seconds)


def test_mpc_refuses_an_objective_it_cannot_predict():
    """A case whose objective the MPC has no prediction for fails before any run, naming
    the field, what it supports and what it found."""
    data = yaml.safe_load(AGEING.read_text(encoding="utf-8"))
    data["case"]["objective"] = {"description": "x", "maximise": "co2_utilisation_pct"}
    case = ControlCase(parse_scenario(data, source="odd.yaml"))
    with pytest.raises(ScenarioError) as raised:
        run_case(case, "mpc")
    text = str(raised.value)
    assert "odd.yaml" in text and "case.objective.maximise" in text and "co2_utilisation_pct" in text


def test_mpc_rejects_bad_settings():
    with pytest.raises(ValueError, match="blocks"):
        MPC(blocks=(1, 0))
    with pytest.raises(ValueError, match="move_s"):
        MPC(move_s=-5.0)

"""What a run with the solar and battery supply reports: limits judged only where defined,
the supply's KPIs, flags and energy balances, and the supply's signals in the scenario checks.

    scenario current ──▶ ems.current_request ──▶ ems ──▶ power ──▶ reactor (0 A at night)
                                                                     │
    run summary: kpis (+ supply), flags (+ supply), balances (+ energy_*), limits not evaluated
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from co2twin import kpi, parse_scenario
from co2twin.outputs import ResultsTarget
from co2twin.scenario import add_limit_flags, load_scenario
from co2twin.scenario_checks import recorded_signals
from co2twin.streaming import RunSummary, run_streamed
from cosim.errors import ScenarioError

SCENARIOS = Path(__file__).parents[1] / "scenarios"
CLOUDY = SCENARIOS / "solar_battery_cloudy.yaml"


@pytest.fixture
def cloudy(shipped_run):
    """The shipped cloudy day: the cell stops at night and whenever the battery runs low."""
    return shipped_run(CLOUDY)[1]


def _frame(current_density: list[float], fe: list[float], **more: list[float]) -> pd.DataFrame:
    frame = pd.DataFrame({"reactor.current_density": current_density, "reactor.fe_formate": fe, **more},
                         index=pd.Index(60.0 * np.arange(len(fe)), name="time_s"))
    frame.attrs = {"units": {"reactor.fe_formate": "1", "reactor.current_density": "mA/cm2",
                             "bus.unserved": "W"}}
    return frame


# -- limits where the signal is undefined --------------------------------------------------
def test_fe_limit_is_not_evaluated_where_no_current_flows():
    """FE is undefined at 0 A: those rows are neither outside the limit nor counted; a low FE
    with current is, and the not-evaluated time and its reason are reported."""
    frame = _frame([0.0, 0.0, 100.0, 100.0, 0.0, 0.0], [0.0, 0.0, 0.3, 0.9, 0.0, 0.0])
    limits = {"reactor.fe_formate": (0.5, None)}
    figures = kpi.kpis(frame, limits)
    assert figures["outside_limits"] == {"reactor.fe_formate": 60.0}
    assert figures["time_limits_not_evaluated_s"] == 3 * 60.0  # rows after the first
    assert figures["limits_not_evaluated"] == {"reactor.fe_formate": 180.0}
    [entry] = kpi.flags(frame, limits)
    assert (entry["rows"], entry["first_s"], entry["worst"]["value"]) == (1, 120.0, 0.3)
    [why] = kpi.not_evaluated(figures)
    assert why["signal"] == "reactor.fe_formate" and why["seconds"] == 180.0
    assert "undefined at 0 A" in why["why"] and "reactor.current_density" in why["evaluated_where"]
    add_limit_flags(frame, limits)
    assert frame["reactor.fe_formate:outside_limits"].tolist() == [0, 0, 1, 0, 0, 0]


def test_control_violation_integral_skips_rows_where_fe_is_undefined():
    """A test case's integral_outside counts a low FE with current, not FE 0 at 0 A."""
    from co2twin.control.kpis import _violations

    frame = _frame([0.0, 0.0, 100.0, 100.0], [0.0, 0.0, 0.3, 0.9])
    found = _violations(frame, {"reactor.fe_formate": (0.5, None)}, np.diff(frame.index.to_numpy()))
    assert found == {"reactor.fe_formate": pytest.approx(0.2 * 60.0, rel=1e-12)}


def test_fe_limit_is_judged_everywhere_when_it_cannot_tell_where_it_is_defined():
    """Without the current density recorded there is no telling: every row is judged, as before."""
    frame = _frame([0.0, 0.0, 100.0], [0.0, 0.0, 0.9]).drop(columns="reactor.current_density")
    figures = kpi.kpis(frame, {"reactor.fe_formate": (0.5, None)})
    assert figures["outside_limits"] == {"reactor.fe_formate": 60.0}
    assert "time_limits_not_evaluated_s" not in figures


def test_cloudy_day_reports_no_fe_violation_at_night_and_says_why(tmp_path):
    """`co2twin run solar_battery_cloudy --json`: no FE limit flag for the hours at 0 A; the
    time the FE limit was not evaluated equals the rows at 0 A, with the reason."""
    out = tmp_path / "cloudy.parquet"
    done = subprocess.run([sys.executable, "-m", "co2twin.cli", "run", str(CLOUDY), "-o", str(out), "--json"],
                          capture_output=True, encoding="utf-8", timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    frame = pd.read_parquet(out)
    stopped = float(np.count_nonzero(frame["reactor.current_density"].to_numpy()[1:] == 0.0)) * 60.0
    assert stopped > 6 * 3600  # the night
    assert not [f for f in report["flags"] if f["signal"] == "reactor.fe_formate"]
    assert report["kpis"]["time_limits_not_evaluated_s"] == stopped
    [entry] = report["limits_not_evaluated"]
    assert entry["signal"] == "reactor.fe_formate" and entry["seconds"] == stopped
    assert "faradaic efficiency is undefined" in entry["why"]
    assert not frame["reactor.fe_formate:outside_limits"].any()
    # the supply's figures are in the same report
    assert report["kpis"]["pv_energy_kWh"] > 0 and report["kpis"]["time_supply_limited_s"] > 0
    assert max(report["balances"][k] for k in kpi.SUPPLY_BALANCES) < 1e-9


# -- the supply's KPIs, flags and balances in co2twin.kpi ----------------------------------------
def test_supply_kpis_are_in_the_run_kpis_and_add_up(cloudy):
    """Shares of the load by source add up to 1; throughput = charged + discharged; capacity lost
    = start - end; the load's energy is the reactor's through the converter."""
    figures = kpi.kpis(cloudy)
    for key in ("pv_energy_kWh", "battery_throughput_kWh", "capacity_lost_Ah", "grid_energy_kWh",
                "grid_cost_EUR", "curtailed_pv_kWh", "load_share_pv", "load_share_battery",
                "load_share_grid"):
        assert key in figures and key in kpi.KPI_UNITS, key
    shares = [figures[f"load_share_{s}"] for s in ("pv", "battery", "grid", "unserved")]
    assert sum(shares) == pytest.approx(1.0, abs=1e-12)
    assert figures["load_share_pv"] > 0.5 and figures["load_share_battery"] > 0.1  # off grid
    assert figures["load_share_grid"] == 0.0 and figures["grid_cost_EUR"] == 0.0
    assert figures["battery_throughput_kWh"] == pytest.approx(
        figures["battery_charged_kWh"] + figures["battery_discharged_kWh"], rel=1e-12)
    assert figures["capacity_lost_Ah"] == pytest.approx(
        figures["capacity_start_Ah"] - figures["capacity_end_Ah"], rel=1e-12)
    assert figures["capacity_lost_Ah"] > 0
    assert figures["load_energy_kWh"] == pytest.approx(figures["energy_kWh"] / 0.95, rel=1e-9)
    assert "nights" not in figures  # per-night figures need the whole run: co2twin battery kpis


def test_supply_energy_balances_are_checked_every_step(cloudy):
    """The bus's, the battery's and their link's energy balances join the run's balances."""
    how = kpi.checks(cloudy)
    residuals = kpi.balances(cloudy)
    for name in kpi.SUPPLY_BALANCES:
        assert how[name].startswith("every step"), (name, how[name])
        assert residuals[name] < 1e-9, name
    thin = cloudy.iloc[::10]
    thin.attrs = cloudy.attrs
    assert "running totals" in kpi.checks(thin)["energy_battery"]
    assert kpi.balances(thin)["energy_battery"] < 1e-9
    broken = cloudy.copy()
    broken["battery.energy_out"] = broken["battery.energy_out"] * 1.01
    assert kpi.balances(broken)["energy_battery"] > 1e-3


def test_plant_without_supply_has_no_supply_balances_to_skip():
    """A plain plant run neither checks nor skips the supply's balances."""
    frame = _frame([100.0, 100.0], [0.9, 0.9])
    assert not set(kpi.checks(frame)) & set(kpi.SUPPLY_BALANCES)


def test_curtailment_is_a_supply_flag_with_duration_and_worst_case(cloudy):
    """ems.curtailed: how long the request was cut, and the worst gap between asked and set."""
    [entry] = [f for f in kpi.flags(cloudy) if f["signal"] == "ems.curtailed"]
    cut = cloudy["ems.curtailed"].to_numpy() > 0
    assert entry["kind"] == "supply" and entry["seconds"] == np.count_nonzero(cut[1:]) * 60.0
    gap = np.where(cut, cloudy["ems.current_request"] - cloudy["ems.current_setpoint"], -1.0)
    assert entry["worst"]["asked"] - entry["worst"]["got"] == gap.max()
    figures = kpi.kpis(cloudy)
    assert figures["time_supply_limited_s"] >= entry["seconds"]
    assert figures["flagged"]["ems.curtailed"] == entry["seconds"]
    assert "supply: current request cut" in kpi.describe_flag(entry)


def test_shortfall_flag_reports_the_largest_unserved_power():
    """bus.shortfall has no asked/got pair: its worst case is the largest unserved power."""
    frame = _frame([100.0] * 4, [0.9] * 4, **{"bus.shortfall": [0.0, 1.0, 1.0, 0.0],
                                              "bus.unserved": [0.0, 2.0, 7.5, 9.0]})
    [entry] = kpi.flags(frame, {})
    assert entry["worst"] == {"time_s": 120.0, "largest_signal": "bus.unserved", "largest": 7.5,
                              "unit": "W"}
    assert "worst 7.5 W (bus.unserved) at t = 120 s" in kpi.describe_flag(entry)


def test_streamed_summary_of_a_supply_run_equals_the_whole_one(tmp_path):
    """Summarised chunk by chunk, a supply run gives the same supply KPIs, flags, not-evaluated
    time and balances as summarised whole."""
    sc = load_scenario(CLOUDY)
    target = ResultsTarget(tmp_path / "r.parquet", "parquet")
    streamed = run_streamed(sc, target, progress=False, chunk_bytes=64 * 1024)
    streamed.commit()
    chunked = streamed.summary
    assert chunked.frame is None  # really chunked
    from cosim.recorder import read_results

    whole_frame = read_results(target.path)
    whole = RunSummary.of(whole_frame, whole_frame.attrs["scenario"]["limits"])
    for key, value in whole.figures.items():
        if isinstance(value, dict):
            assert chunked.figures[key] == pytest.approx(value, rel=1e-9), key
        else:
            assert chunked.figures[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    raised = {(f["kind"], f["signal"]) for f in whole.flags}
    assert {(f["kind"], f["signal"]) for f in chunked.flags} == raised
    for mine in chunked.flags:
        [theirs] = [f for f in whole.flags if f["signal"] == mine["signal"]]
        assert (mine["rows"], mine["seconds"], mine["worst"]) == (theirs["rows"], theirs["seconds"],
                                                                  theirs["worst"])
    for name in kpi.SUPPLY_BALANCES:
        assert chunked.residuals[name] < 1e-9 and name in whole.residuals


# -- the supply's signals in the scenario checks -------------------------------------------
def _cloudy(**top: object) -> dict:
    data = yaml.safe_load(CLOUDY.read_text())
    data.pop("output")
    data.update(top)
    return data


def test_limits_on_supply_signals_are_accepted_and_judged():
    """A limit on battery.soc is a known signal in a supply scenario, and the run judges it."""
    from co2twin import run

    data = _cloudy(limits={"battery.soc": {"low": 0.3}}, duration="6 h")
    frame = run(parse_scenario(data, base_dir=SCENARIOS), progress=False)
    soc = frame["battery.soc"].to_numpy()
    assert (soc < 0.3).any()
    [entry] = [f for f in kpi.flags(frame) if f["signal"] == "battery.soc"]
    assert entry["rows"] == np.count_nonzero(soc < 0.3)


def test_misspelt_or_absent_supply_signals_are_refused_by_name():
    """A misspelt supply signal gets the names it may have meant; a supply signal without a
    supply: section says what is missing."""
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(_cloudy(limits={"bus.grid_imprt": {"high": 10}}), base_dir=SCENARIOS)
    assert "limits.bus.grid_imprt: unknown signal 'bus.grid_imprt'" in str(caught.value)
    assert "did you mean bus.grid_import" in str(caught.value)
    plain = {"name": "p", "duration": 60, "step": 1, "limits": {"battery.soc": {"low": 0.2}}}
    with pytest.raises(ScenarioError, match=r"the supply's signals need a supply: section"):
        parse_scenario(plain)


def test_recorded_signals_of_a_supply_scenario_are_the_run_columns(cloudy):
    """What --plot --signals and record.signals may name: exactly the columns a run records (the
    supply's included, the current request at the energy manager)."""
    names = set(recorded_signals(parse_scenario(_cloudy(), base_dir=SCENARIOS)))
    recorded = {c for c in cloudy.columns if ":" not in c}
    assert names == recorded
    assert {"battery.soc", "bus.grid_import", "ems.current_request"} <= names
    data = _cloudy(record={"signals": ["battery.*", "reactor.*", "bus.*", "ems.*", "power.*"]})
    parse_scenario(data, base_dir=SCENARIOS)  # accepted
    with pytest.raises(ScenarioError, match=r"record.signals\[0\]"):
        parse_scenario(_cloudy(record={"signals": ["batery.*"]}), base_dir=SCENARIOS)


def test_signals_command_lists_the_supply_signals():
    """`co2twin signals`, where the errors send a user, lists the supply's signals too."""
    done = subprocess.run([sys.executable, "-m", "co2twin.cli", "signals"], capture_output=True,
                          encoding="utf-8", timeout=120, check=False, env={"PATH": "/usr/bin:/bin",
                                                                           "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    text = done.stdout[done.stdout.index("supply signals"):]
    for name in ("battery.soc", "bus.grid_import", "ems.curtailed", "pv.irradiance"):
        assert f"  {name} " in text, name

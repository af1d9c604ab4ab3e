"""Nothing silent: saturations, bounds, envelope exits, limit violations and skipped checks are
reported (which signal, how many rows and seconds, the worst case) in the summary, --json, the
KPIs and flag columns; and the smaller things a user hit (issue 9, point 7)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from co2twin import parse_scenario, run
from co2twin import kpi
from co2twin.scenario import build, load_scenario
from cosim import Component, Connection, Port, Simulation
from cosim.errors import ScenarioError, WiringError
from models.surrogate import EnvelopeWarning

CLI = [sys.executable, "-m", "co2twin.cli"]
ENV = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "COLUMNS")}
ENV.update(NO_COLOR="1", TERM="dumb")
PHYSICS = {"models": {"default": "physics"}}
ALL_BALANCES = {"charge", "carbon_cell", "carbon_feed", "carbon_separator", "tank", "recycle_link",
                "carbon_plant"}
#: 800 mL/min at 12 % CO2: the N2 controller (500 mL/min full scale) is asked for 704
SATURATED = "name: sat\nduration: 60\nstep: 1\ninputs: {current: 5, gas_flow: 800, co2_fraction: 12}\n"


def co2twin(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, encoding="utf-8",
                          errors="replace", timeout=180, env=ENV, check=False)


def scenario(**spec):
    return parse_scenario({"name": "t", "duration": 60, "step": 1, **PHYSICS, **spec},
                          source="t.yaml")


def entry(found, signal):
    hits = [e for e in found if e["signal"] == signal]
    assert len(hits) == 1, (signal, [e["signal"] for e in found])
    return hits[0]


# -- actuator saturation ------------------------------------------------------------------
def test_a_saturated_flow_controller_is_reported_with_asked_and_delivered():
    """800 mL/min at 12 %: the N2 controller is named, all rows and seconds, asked 704 vs 500,
    and what the cell got (596 mL/min at 16.1 %) beside what was asked."""
    frame = run(scenario(inputs={"current": 5, "gas_flow": 800, "co2_fraction": 12}))
    assert (frame["feed.n2_mfc_saturated"] == 1.0).all()
    assert (frame["feed.co2_mfc_saturated"] == 0.0).all()
    e = entry(kpi.flags(frame), "feed.n2_mfc_saturated")
    assert (e["kind"], e["rows"], e["of_rows"], e["seconds"]) == ("saturation", 61, 61, 60.0)
    worst = e["worst"]
    assert (worst["asked"], worst["got"], worst["unit"]) == (pytest.approx(704.0), 500.0, "mL/min")
    gas, fraction = worst["effects"]
    assert (gas["signal"], gas["asked"], gas["got"]) == ("feed.gas_flow", 800.0, pytest.approx(596.0))
    assert fraction["got"] == pytest.approx(100 * 96 / 596) and fraction["asked"] == 12.0
    assert "N2 flow controller" in kpi.describe_flag(e) and "feed.gas_flow 596 mL/min (asked 800)" \
        in kpi.describe_flag(e)
    figures = kpi.kpis(frame)
    assert figures["time_saturated_s"] == 60.0 and figures["flagged"]["feed.n2_mfc_saturated"] == 60.0


def test_saturation_in_the_run_summary_and_json(tmp_path):
    """`co2twin run` prints the saturation line; --json carries it in flags and the KPIs."""
    (tmp_path / "sat.yaml").write_text(SATURATED + "models: {default: physics}\n")
    done = co2twin("run", "sat.yaml", "-o", "r.csv", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if "feed.n2_mfc_saturated" in x)
    for fragment in ("N2 flow controller at its full scale", "for 60 s (61 of 61 rows)",
                     "asked 704 mL/min", "got 500", "feed.gas_flow 596 mL/min (asked 800)",
                     "feed.co2_fraction 16.11 % (asked 12)"):
        assert fragment in line, (fragment, line)
    done = co2twin("run", "sat.yaml", "-o", "r.csv", "--json", cwd=tmp_path)
    report = json.loads(done.stdout)
    assert report["kpis"]["time_saturated_s"] == 60.0
    found = entry(report["flags"], "feed.n2_mfc_saturated")
    assert found["worst"]["asked"] == pytest.approx(704.0) and found["worst"]["got"] == 500.0
    assert report["checks"]["carbon_plant"] == "every step (consecutive rows)"
    assert report["skipped_checks"] == {}


@pytest.mark.parametrize("spec, flag, asked, got", [
    ({"plant": {"power": {"max_current": 3.0}}, "inputs": {"current": 5}},
     "power.current_limited", 5.0, 3.0),
    ({"plant": {"power": {"slew_rate": 0.05}}, "inputs": {"current": {"steps": [[0, 1], [10, 5]]}}},
     "power.slew_limited", 5.0, 1.05),
    ({"inputs": {"current": 5, "catholyte_flow": 80}}, "feed.catholyte_pump_saturated", 80.0, 50.0),
    ({"inputs": {"current": 5, "anolyte_flow": 60}}, "feed.anolyte_pump_saturated", 60.0, 50.0),
])
def test_every_actuator_limit_raises_its_own_flag(spec, flag, asked, got):
    """Rated current, slew rate and pump full scales each raise a flag column and a report."""
    frame = run(scenario(**spec))
    e = entry(kpi.flags(frame), flag)
    assert e["kind"] == "saturation" and frame[flag].any()
    assert e["worst"]["asked"] == pytest.approx(asked) and e["worst"]["got"] == pytest.approx(got)


# -- bounds acting on estimates -------------------------------------------------------------
def _frame(columns, units=None):
    frame = pd.DataFrame(columns, index=pd.Index(np.arange(len(next(iter(columns.values())))) * 1.0,
                                                 name="time_s"))
    frame.attrs["units"] = units or {}
    return frame


def test_a_bound_on_one_estimate_is_reported_with_its_variable_and_correction():
    """Per-variable bound columns name the variable, the rows and the largest correction."""
    frame = _frame({"reactor.estimate_bounded": [0.0, 1.0, 1.0, 0.0],
                    "reactor.fe_formate_bounded": [0.0, 1.0, 1.0, 0.0],
                    "reactor.fe_formate_correction": [0.0, 0.02, 0.05, 0.0],
                    "reactor.cell_voltage_bounded": [0.0, 0.0, 0.0, 0.0],
                    "reactor.cell_voltage_correction": [0.0, 0.0, 0.0, 0.0]},
                   {"reactor.fe_formate_correction": "1"})
    found = kpi.flags(frame)
    assert [e["signal"] for e in found] == ["reactor.fe_formate_bounded"]
    e = found[0]
    assert (e["kind"], e["rows"], e["seconds"]) == ("bound", 2, 2.0)
    assert e["worst"]["correction"] == 0.05 and e["worst"]["time_s"] == 2.0
    assert "largest correction 0.05 (reactor.fe_formate_correction) at t = 2 s" in kpi.describe_flag(e)
    assert kpi.kpis(frame)["time_estimate_bounded_s"] == 2.0


def test_a_bound_without_per_variable_columns_says_what_is_not_known():
    """With only reactor.estimate_bounded, the report says the magnitude was not recorded."""
    e = entry(kpi.flags(_frame({"reactor.estimate_bounded": [0.0, 1.0, 0.0]})), "reactor.estimate_bounded")
    assert e["rows"] == 1 and "not recorded per variable" in kpi.describe_flag(e)


# -- envelope exits ---------------------------------------------------------------------------
def test_an_envelope_exit_names_the_input_its_value_and_the_envelope():
    """5 A on 1 cm2 (5000 mA/cm2) is outside every model's envelope: the report names the input
    furthest out, its value and the trained range (kept in the results' metadata)."""
    sc = parse_scenario({"name": "far", "duration": 20, "step": 1,
                         "plant": {"reactor": {"area_cm2": 1.0}},
                         "inputs": {"current": 5}, "models": {"envelope": "warn"}}, source="far.yaml")
    with pytest.warns(EnvelopeWarning):
        frame = run(sc)
    envelopes = frame.attrs["scenario"]["envelopes"]
    assert envelopes, "the run keeps each model's envelope"
    variable = next(iter(envelopes))
    e = entry(kpi.flags(frame), f"reactor.{variable}_outside_envelope")
    worst = e["worst"]
    assert worst["input"] == "current_density" and worst["value"] == pytest.approx(5000.0)
    low, high = envelopes[variable]["inputs"]["current_density"]
    assert (worst["low"], worst["high"]) == (low, high) and high < 5000.0
    assert "worst input current_density = 5000 mA/cm2" in kpi.describe_flag(e)
    assert "site-packages" not in worst["model"] and not worst["model"].startswith("/")
    assert kpi.kpis(frame)["time_outside_envelope_s"] == 20.0


# -- limits ---------------------------------------------------------------------------------
def test_a_limit_violation_is_reported_and_flagged_in_the_results(tmp_path):
    """Time outside a limit comes with rows, the worst value and when, and a flag column."""
    sc = scenario(inputs={"current": {"steps": [[0, 5], [30, 9]]}},
                  limits={"reactor.cell_voltage": {"high": 3.5}})
    frame = run(sc)
    flag = frame["reactor.cell_voltage:outside_limits"].to_numpy()
    assert np.array_equal(flag, (frame["reactor.cell_voltage"] > 3.5).to_numpy().astype(float))
    assert frame.attrs["units"]["reactor.cell_voltage:outside_limits"] == "1"
    e = entry(kpi.flags(frame), "reactor.cell_voltage")
    worst_row = frame["reactor.cell_voltage"].idxmax()
    assert e["kind"] == "limit" and e["rows"] == int(flag.sum())
    assert e["worst"]["value"] == frame["reactor.cell_voltage"].max()
    assert e["worst"]["time_s"] == worst_row
    assert "(above 3.5)" in kpi.describe_flag(e)


def test_limits_are_judged_on_the_true_value_of_a_faulted_sensor():
    """A drifting voltage sensor reads above the limit; the cell is not: no violation."""
    sc = scenario(inputs={"current": 5}, limits={"reactor.cell_voltage": {"high": 4.0}},
                  events=[{"at": 0, "type": "sensor_drift", "target": "reactor.cell_voltage",
                           "rate": 0.1}])
    frame = run(sc)
    assert frame["reactor.cell_voltage"].iloc[-1] > 4.0 > frame["reactor.cell_voltage:true"].max()
    assert not [e for e in kpi.flags(frame) if e["signal"] == "reactor.cell_voltage"]
    assert not frame["reactor.cell_voltage:outside_limits"].any()


# -- decimated runs: every balance checked, or named ------------------------------------------
@pytest.fixture(scope="module")
def thin():
    sc = parse_scenario({"name": "thin", "duration": 600, "step": 1, **PHYSICS,
                         "record": {"every": 10},
                         "inputs": {"current": {"steps": [[0, 4], [200, 7]]}, "recycle_fraction": 0.5,
                                    "product_draw": 2.0}}, source="thin.yaml")
    return run(sc)


def test_decimated_runs_check_the_step_balances_between_the_rows_kept(thin):
    """Every 10th step recorded: separator, tank and recycle balances are checked from running
    totals; anything left out is named with its reason."""
    residuals = kpi.balances(thin)
    assert {"carbon_separator", "tank", "recycle_link", "carbon_feed"} <= set(residuals)
    assert max(residuals.values()) < 1e-9, residuals
    assert set(residuals) | set(kpi.skipped_checks(thin)) == ALL_BALANCES
    how = kpi.checks(thin)
    assert how["tank"] == "between the recorded rows (1 in 10 steps), from running totals"
    assert "recorded rows (1 in 10 steps)" in how["charge"]
    for name, reason in kpi.skipped_checks(thin).items():
        assert reason and name in ALL_BALANCES


@pytest.mark.parametrize("column, balance", [
    ("separation.co2_vented", "carbon_separator"),
    ("separation.product_drawn", "tank"),
    ("feed.recycle_co2_fed", "recycle_link"),
])
def test_the_running_total_checks_see_an_imbalance(thin, column, balance):
    """A 1e-6 relative error in one total between two kept rows breaks its balance."""
    broken = thin.copy()
    broken.attrs = thin.attrs
    values = broken[column].to_numpy().copy()
    values[30:] += 1e-6 * values[30]
    broken[column] = values
    assert kpi.balances(broken)[balance] > 1e-9


def test_decimated_run_summary_and_json_name_how_each_balance_was_checked(tmp_path):
    """The summary lists each balance not checked at every step, and --json the skipped ones."""
    (tmp_path / "thin.yaml").write_text(
        "name: thin\nduration: 600\nstep: 1\nrecord: {every: 10}\nmodels: {default: physics}\n"
        "inputs: {current: 5, recycle_fraction: 0.5}\n")
    done = co2twin("run", "thin.yaml", "-o", "r.csv", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "  - tank: between the recorded rows (1 in 10 steps), from running totals" in done.stdout
    done = co2twin("run", "thin.yaml", "-o", "r.csv", "--json", cwd=tmp_path)
    report = json.loads(done.stdout)
    assert set(report["balances"]) | set(report["skipped_checks"]) == ALL_BALANCES
    assert report["checks"]["recycle_link"].startswith("between the recorded rows")


def test_a_balance_whose_signals_were_not_recorded_is_named_skipped():
    """Recording only some signals: the balances they cannot support are named, not dropped."""
    frame = run(scenario(inputs={"current": 5}, record={"signals": ["power.*", "reactor.*"]}))
    skipped = kpi.skipped_checks(frame)
    assert "feed.fresh_co2_rate" in skipped["carbon_feed"]
    assert set(kpi.balances(frame)) | set(skipped) == ALL_BALANCES


# -- point 7: the smaller things -------------------------------------------------------------
def test_signals_lists_every_name_whole_when_piped_and_the_plant_parameters():
    """`co2twin signals | cat`: one line per signal and parameter, nothing cut, parameters with
    default, unit, bounds and whether tunable."""
    from components.plant import STAGES

    done = co2twin("signals")
    assert done.returncode == 0 and "…" not in done.stdout
    lines = done.stdout.splitlines()
    for cname, cls in STAGES.items():
        for port in (*cls.outputs, *cls.inputs):
            assert any(line.split()[:1] == [f"{cname}.{port.name}"] for line in lines), port.name
        for p in cls.parameters:
            row = next(line.split() for line in lines if line.split()[:1] == [f"{cname}.{p.name}"])
            assert row[1] == f"{p.default:g}" and row[2] == p.unit
            assert ("yes" if p.tunable else "no") in row
    assert "plant parameters" in done.stdout


def test_signals_on_an_80_column_terminal_cuts_nothing():
    """On a narrow terminal the table falls back to whole lines: no ellipsis, every name whole."""
    from co2twin.cli.app import _print_rows

    console = Console(width=80, force_terminal=True, record=True, emoji=False)
    rows = [("reactor.outlet_co2_fraction_outside_envelope", "out", "[0, 1] 1",
             "1 when an input of the outlet_co2_fraction model was outside its training envelope")]
    _print_rows("signals", ("signal", "direction", "bounds", "description"), rows, console)
    text = console.export_text()
    assert "…" not in text and rows[0][0] in text and "training envelope" in text
    wide = Console(width=200, force_terminal=True, record=True, emoji=False)
    _print_rows("signals", ("signal", "direction", "bounds", "description"), rows, wide)
    assert rows[0][0] in wide.export_text() and "…" not in wide.export_text()


def test_envelope_warnings_print_paths_relative_to_the_package(tmp_path):
    """The warning names the model file as models/trained/..., not a whole absolute path."""
    import models

    (tmp_path / "far.yaml").write_text("name: far\nduration: 5\nstep: 1\n"
                                       "plant: {reactor: {area_cm2: 1}}\ninputs: {current: 5}\n")
    done = co2twin("run", "far.yaml", "-o", "r.csv", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "warning:" in done.stderr and "models/trained/" in done.stderr
    root = str(Path(models.__file__).resolve().parent.parent)
    assert root + os.sep not in done.stderr


def test_user_text_with_markup_and_emoji_codes_is_printed_as_written(tmp_path):
    """A name like ':x: [b]x[/b]' is shown literally by validate and run (no emoji, no bold)."""
    name = ":x: [b]x[/b] :thumbs_up:"
    (tmp_path / "m.yaml").write_text(f'name: "{name}"\nduration: 5\nstep: 1\n'
                                     "models: {default: physics}\n")
    done = co2twin("validate", "m.yaml", cwd=tmp_path)
    assert done.returncode == 0 and f"'{name}'" in done.stdout, done.stdout
    done = co2twin("run", "m.yaml", "-o", "r.csv", cwd=tmp_path)
    assert done.returncode == 0 and name in done.stdout
    assert "❌" not in done.stdout + done.stderr and "👍" not in done.stdout


class Echo(Component):
    """y = u: a link in a cycle."""

    inputs = (Port("u", "1"),)
    outputs = (Port("y", "1"),)

    def step(self, t, dt, inputs):
        return {"y": inputs["u"]}


def test_the_cycle_hint_gives_the_connection_syntax():
    """An undelayed cycle's hint shows [from, to, delayed], not a 'delayed: true' key."""
    with pytest.raises(WiringError) as info:
        Simulation({"a": Echo(), "b": Echo()},
                   [Connection("a.y", "b.u"), Connection("b.y", "a.u")], step=1.0)
    text = str(info.value)
    assert "[from, to, delayed]" in text and "delayed: true" not in text


def test_millisecond_steps_give_times_as_written():
    """1 ms steps: every recorded time is the decimal one (59.98, not 59.980000000000004), and a
    change at 59.98 s applies at that step."""
    sc = scenario(duration=60, step=0.001, record={"every": 10},
                  inputs={"current": {"steps": [[0, 2], [59.98, 4]]}},
                  events=[{"at": 30.007, "type": "set", "target": "humidity", "value": 50}])
    frame = run(sc)
    times = frame.index.to_numpy()
    assert all(repr(float(t)) == repr(round(float(t), 3)) for t in times)
    assert 59.98 in frame.index and frame.index[-1] == 60.0
    assert frame.loc[59.98, "power.current_setpoint"] == 2.0
    assert frame.loc[59.99, "power.current_setpoint"] == 4.0
    assert frame.attrs["events"][0][0] == 30.007


@pytest.mark.parametrize("every", [1, 10])
def test_a_state_restored_into_a_fresh_build_records_the_checkpoint_row(every):
    """A snapshot at 30 s restored into a new build of the same scenario: its results start
    again at the checkpoint row, which equals the original's, and continue identically."""
    sc = scenario(duration=60, inputs={"current": {"steps": [[0, 4], [40, 6]]}},
                  record={"every": every})
    first = build(sc)
    first.advance_to(30.0)
    state = first.get_state()
    whole = first.run(60.0, progress=False)
    second = build(sc)
    second.initialize()
    second.set_state(state)
    rest = second.run(60.0, progress=False)
    assert 30.0 in rest.index
    pd.testing.assert_frame_equal(rest.loc[30.0:], whole.loc[30.0:], check_exact=True)
    assert list(rest.index) == [0.0, *[t for t in whole.index if t >= 30.0]]


def test_every_duplicate_key_is_reported(tmp_path):
    """Three duplicates at two levels: all three, in file order, with where each key first was."""
    path = tmp_path / "dup.yaml"
    path.write_text("name: t\nduration: 60\nstep: 1\nstep: 2\n"
                    "inputs:\n  current: 1\n  current: 2\nname: u\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert info.value.problems == [
        "line 4, column 1: expected each key once, found 'step' again (duplicate key; first at line 3)",
        "line 7, column 3: expected each key once, found 'current' again (duplicate key; first at line 6)",
        "line 8, column 1: expected each key once, found 'name' again (duplicate key; first at line 1)",
    ]


def test_a_semicolon_csv_gets_a_delimiter_hint(tmp_path):
    """A CSV written with ';' (and decimal commas) is refused with a hint about the delimiter."""
    (tmp_path / "p.csv").write_text("time_s;current\n0;1,5\n60;2,5\n")
    with pytest.raises(ScenarioError) as info:
        parse_scenario({"name": "t", "duration": 60, "step": 1,
                        "inputs": {"current": {"csv": {"path": "p.csv", "column": "current"}}}},
                       source="t.yaml", base_dir=tmp_path)
    text = str(info.value)
    assert "expected column(s) 'time_s', 'current', found columns: 'time_s;current'" in text
    assert "the file seems to use ';' as delimiter; co2twin reads ','" in text

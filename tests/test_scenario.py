"""Scenario files: loading, validation against the plant, and what a valid one does in a run."""
from __future__ import annotations

from pathlib import Path

import pytest

from cosim.errors import ScenarioError
from co2twin.scenario import load_scenario, parse_scenario, run

HEAD = "name: t\nduration: 60\nstep: 1\n"
BASE = {"name": "t", "duration": 60, "step": 1}

BOMB = "".join(
    f"{a}: &{a} [{', '.join([f'*{prev}'] * 9) if prev else ', '.join(['lol'] * 9)}]\n"
    for prev, a in zip([None, "a", "b", "c", "d", "e", "f", "g"], "abcdefgh")
) + "name: t\nduration: 60\nstep: 1\n"


@pytest.fixture
def write_file(tmp_path: Path):
    """``write_file(name, content)`` writes text or bytes under ``tmp_path`` and returns the path."""

    def write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return write


def message(path: Path) -> str:
    """The ScenarioError text that loading ``path`` raises."""
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    return str(info.value)


def problems(data: dict) -> str:
    """The ScenarioError text that validating ``data`` (merged into BASE) raises."""
    with pytest.raises(ScenarioError) as info:
        parse_scenario({**BASE, **data}, source="sc.yaml")
    return str(info.value)


def column(frame, name: str, *times: float) -> list[float]:
    return [float(frame.loc[t, name]) for t in times]


# -- whatever arrives as a file ends in a ScenarioError naming the file ------------------
BAD_FILES = [
    ("empty", b"", ["expected a mapping", "empty"]),
    ("only-comment", b"# nothing here\n", ["expected a mapping", "empty"]),
    ("broken-yaml", b"name: [t\nduration: 60\n", ["line 2, column 9", "invalid YAML", "expected ','"]),
    ("list", b"- name: t\n- duration: 60\n", ["expected a mapping", "found a list"]),
    ("plain-string", b"just some words\n", ["expected a mapping", "found text 'just some words'"]),
    ("nul-bytes", b"name: t\x00\nduration: 60\nstep: 1\n", ["expected a YAML text file", "NUL byte"]),
    ("not-utf8", b"name: caf\xe9\nduration: 60\nstep: 1\n", ["UTF-8", "0xe9"]),
    ("nan", b"name: t\nduration: .nan\nstep: 1\n", ["duration: expected a finite number", "found nan"]),
    ("inf", b"name: t\nduration: 60\nstep: .inf\n", ["step: expected a finite number", "found inf"]),
    ("1e999", b"name: t\nduration: 1e999\nstep: 1\n", ["duration: expected a finite number", "found inf"]),
    ("400-digits", b"name: t\nduration: " + b"9" * 400 + b"\nstep: 1\n",
     ["duration: expected a number that fits in a 64-bit float", "found 999"]),
    ("zero-duration", b"name: t\nduration: 0\nstep: 1\n", ["duration: expected greater than 0", "found 0"]),
    ("negative-step", b"name: t\nduration: 60\nstep: -1\n", ["step: expected greater than 0", "found -1"]),
    ("not-whole-steps", b"name: t\nduration: 10.5\nstep: 1\n",
     ["duration: expected a whole number of steps of 1 s", "found 10.5 s"]),
    ("python-tag", b"name: !!python/object/apply:os.system ['true']\nduration: 60\nstep: 1\n",
     ["line 1", "!!python/object/apply:os.system", "not allowed"]),
    ("python-name-tag", b"name: !!python/name:os.system\nduration: 60\nstep: 1\n",
     ["!!python/name:os.system", "not allowed"]),
    ("duplicate-key", b"name: t\nduration: 60\nduration: 30\nstep: 1\n",
     ["line 3", "expected each key once", "'duration' again"]),
    ("unknown-key", HEAD.encode() + b"colour: blue\n", ["colour: unknown key"]),
    ("alias-bomb", BOMB.encode(), ["expected at most 200,000 YAML nodes"]),
    ("self-alias", b"a: &a [*a]\n", ["invalid YAML", "alias that contains itself"]),
    ("deep-nesting", b"name: " + b"[" * 5000 + b"]" * 5000 + b"\n", ["invalid YAML", "deeper nesting"]),
    ("number-key", HEAD.encode() + b"1: 2\n", ["expected text keys", "found 1"]),
    ("bool-duration", b"name: t\nduration: yes\nstep: 1\n", ["duration: expected a number, not a boolean"]),
    ("bad-duration-text", b"name: t\nduration: 5 parsecs\nstep: 1\n",
     ["duration: expected a duration", "'24 h'", "found '5 parsecs'"]),
    ("event-type", HEAD.encode() + b"events:\n  - {at: 1, type: explode}\n",
     ["events[0].type: expected one of", "'power_trip'", "found 'explode'"]),
    ("input-text", HEAD.encode() + b"inputs:\n  current: lots\n",
     ["inputs.current: expected a number or a mapping", "found 'lots'"]),
    ("steps-cell", HEAD.encode() + b"inputs:\n  current: {steps: [[0, 1], [10, 2], [20, .nan]]}\n",
     ["inputs.current.steps[2][1]: expected a finite number", "found nan"]),
    ("two-documents", HEAD.encode() + b"---\n" + HEAD.encode(), ["invalid YAML", "another document"]),
]


@pytest.mark.parametrize("content, fragments", [c[1:] for c in BAD_FILES], ids=[c[0] for c in BAD_FILES])
def test_bad_file_is_a_scenario_error_naming_file_path_and_problem(write_file, content, fragments):
    """A malformed file raises ScenarioError whose text names the file and the specific problem."""
    path = write_file("bad.yaml", content)
    text = message(path)
    assert text.startswith(f"{path}: "), text
    for fragment in fragments:
        assert fragment in text, (fragment, text)


def test_missing_file_is_a_scenario_error(tmp_path):
    """A path that does not exist gives ScenarioError naming it, not FileNotFoundError."""
    path = tmp_path / "nowhere.yaml"
    assert message(path) == f"{path}: no such file"


def test_directory_is_not_a_scenario(tmp_path):
    """A directory given as a scenario is refused with a ScenarioError."""
    assert "not a regular file" in message(tmp_path)


def test_unreadable_file_is_a_scenario_error(write_file, monkeypatch):
    """An OS error while reading (e.g. permission denied) becomes a ScenarioError naming the file."""
    path = write_file("locked.yaml", HEAD)

    def refuse(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refuse)
    assert message(path) == f"{path}: cannot read the file (Permission denied)"


def test_python_tags_never_execute(write_file, tmp_path):
    """Tags asking for Python objects are refused before anything runs: the file is not created."""
    target = tmp_path / "pwned"
    for i, tag in enumerate(["!!python/object/apply:os.system", "!!python/object/new:os.system"]):
        path = write_file(f"evil{i}.yaml", f"name: {tag} ['touch {target}']\nduration: 60\nstep: 1\n")
        assert "not allowed" in message(path)
    path = write_file("evil.yaml", f"!!python/object/apply:os.system ['touch {target}']\n")
    message(path)
    assert not target.exists()


def test_duplicate_keys_are_refused_at_any_depth(write_file):
    """A key repeated inside a nested mapping is an error, with its line."""
    path = write_file("dup.yaml", HEAD + "inputs:\n  current: 5\n  gas_flow: 100\n  current: 6\n")
    text = message(path)
    assert "line 7" in text and "'current' again" in text


def test_merge_keys_work_and_explicit_keys_override(write_file):
    """YAML merge keys (<<: *anchor) are plain data, not a refused tag; explicit keys win."""
    path = write_file("merge.yaml", (
        "name: t\nduration: 60\nstep: 1\n"
        "inputs:\n"
        "  gas_flow: &flow {constant: 100, unit: mL/min}\n"
        "  anolyte_flow: {<<: *flow, constant: 7}\n"
    ))
    sc = load_scenario(path)
    assert sc.inputs["gas_flow"].constant == 100
    assert sc.inputs["anolyte_flow"].constant == 7 and sc.inputs["anolyte_flow"].unit == "mL/min"


def test_exponent_numbers_without_a_dot_are_numbers(write_file):
    """``1e2`` (no dot) is read as a number, as in YAML 1.2, not as the text '1e2'."""
    path = write_file("exp.yaml", "name: t\nduration: 1e2\nstep: 5e-1\ninputs:\n  current: 2.5e0\n")
    sc = load_scenario(path)
    assert (sc.duration, sc.step, sc.inputs["current"].constant) == (100.0, 0.5, 2.5)


def test_loader_only_fields_cannot_come_from_the_file():
    """``base_dir`` and ``source`` are set by the loader; in a file they are unknown keys."""
    text = problems({"base_dir": "/etc", "source": "x"})
    assert "base_dir: unknown key" in text and "source: unknown key" in text


def test_ramp_takes_from_not_the_python_name():
    """A ramp's start value is spelled ``from``; ``initial`` is an unknown key."""
    text = problems({"inputs": {"current": {"ramp": {"initial": 1, "to": 2, "duration": 5}}}})
    assert "inputs.current.ramp.initial: unknown key" in text
    assert "inputs.current.ramp.from: required key missing" in text


def test_too_many_steps_are_refused_without_overflow():
    """Absurd step counts (1e12 steps, or 1e300 / 1e-300 overflowing to inf) are ScenarioErrors."""
    assert "expected at most 1,000,000,000 steps" in problems({"duration": 1e12})
    text = problems({"duration": 1e300, "step": 1e-300})
    assert "duration: expected at most 1,000,000,000 steps, found inf steps" in text
    assert "expected the run to end at a finite time" in problems({"start": 1.7e308, "duration": 1.7e308})


@pytest.mark.parametrize("key, data", [
    ("record.every", {"record": {"every": 10**400}}),
    ("rates.reactor", {"rates": {"reactor": 10**400}}),
    ("seed", {"seed": 10**400}),
])
def test_huge_integers_are_refused(key, data):
    """Integers beyond 64 bits in integer fields are refused, not overflowed later in the run."""
    assert f"{key}: expected less than 9223372036854775808" in problems(data)


def test_record_every_must_divide_the_steps_and_rates_fit_the_run():
    """Decimation must end on the last step; a component rate may not exceed the run."""
    text = problems({"record": {"every": 7}, "rates": {"reactor": 61, "pump": 2}})
    assert "record.every: expected a divisor of the run's 60 steps" in text and "found 7" in text
    assert "rates.reactor: expected at most the run's 60 steps, found 61" in text
    assert "rates.pump: unknown component" in text


# -- values against ports, units and parameters ------------------------------------------
def test_input_below_the_port_bound_names_path_and_bounds():
    """current: -1 is refused at inputs.current.constant with the port's bounds and unit."""
    assert problems({"inputs": {"current": -1}}) == (
        "sc.yaml: inputs.current.constant: expected a value in [0, 1000] A, found -1.0"
    )


def test_unit_must_convert_to_the_ports_unit():
    """unit: V on current is refused naming both units (conversions: tests/test_units.py)."""
    text = problems({"inputs": {"current": {"constant": 5, "unit": "V"}}})
    assert ("inputs.current.unit: expected a unit convertible to 'A' (the signal's unit), "
            "found 'V': 'V' measures electric potential, 'A' electric current") in text


def test_steps_values_and_times_are_checked():
    """Each steps entry is checked against the bounds, and times must increase."""
    text = problems({"inputs": {"current": {"steps": [[0, 1], [10, 2], [10, -3]]}}})
    assert "inputs.current.steps[2]: expected a time after 10 s, found 10" in text
    assert "inputs.current.steps[2]: expected a value in [0, 1000] A, found -3.0" in text


def test_ramp_ends_are_checked():
    """A ramp whose end value is outside the port bounds is refused at .ramp.to."""
    text = problems({"inputs": {"co2_fraction": {"ramp": {"from": 100, "to": 120, "duration": 10}}}})
    assert "inputs.co2_fraction.ramp.to: expected a value in [0, 100] %, found 120" in text


def test_unknown_and_internally_fed_inputs_are_refused():
    """Only the plant's unconnected inputs can be driven."""
    text = problems({"inputs": {"voltage": 3, "reactor.current": 3}})
    assert "inputs.voltage: unknown input 'voltage'; expected one of current" in text
    assert "inputs.reactor.current: reactor.current is fed by another component" in text


def test_empty_names_are_refused_as_keys():
    """An empty input or parameter name is refused, saying that the key is the problem."""
    text = problems({"inputs": {"": 5}, "plant": {"reactor": {"": 1}}})
    assert "inputs (a key): expected text of at least 1 character(s), found ''" in text
    assert "plant.reactor (a key): expected text of at least 1 character(s), found ''" in text


def test_one_input_cannot_be_driven_twice():
    """An input named twice (short name and component.port) is refused, not silently overridden."""
    text = problems({"inputs": {"current": 5, "power.current_setpoint": 6}})
    assert "inputs.power.current_setpoint: drives power.current_setpoint, which inputs.current" in text


def test_event_times_must_be_on_the_grid_and_inside_the_run():
    """Off-grid, past-the-end and at-the-end event times are refused at events[i].at."""
    text = problems({"step": 2, "events": [
        {"at": 3, "type": "power_trip"},
        {"at": 80, "type": "power_trip"},
        {"at": 60, "type": "power_trip"},
        {"at": 58, "type": "power_restore"},
    ]})
    assert "events[0].at: expected a multiple of the step (2 s) from the start, found 3" in text
    assert "events[1].at: expected a time within [0, 60) s, found 80" in text
    assert "events[2].at: expected a time within [0, 60) s, found 60" in text
    assert "events[3]" not in text


def test_event_times_count_from_the_start():
    """With start: 100 an event at 5 s is before the run; one at 105 s applies at 105 s."""
    assert "events[0].at: expected a time within [100, 160) s, found 5" in problems(
        {"start": 100, "events": [{"at": 5, "type": "power_trip"}]})
    sc = parse_scenario({**BASE, "start": 100, "events": [{"at": 105, "type": "power_trip"}]})
    frame = run(sc, progress=False)
    assert frame.index[0] == 100 and frame.index[-1] == 160
    assert [t for t, _ in frame.attrs["events"]] == [105.0]


def test_sensor_faults_need_a_measured_signal():
    """A sensor fault on a signal that is not a sensor reading is refused naming the signal."""
    text = problems({"events": [{"at": 1, "type": "sensor_bias", "target": "reactor.power", "offset": 1}]})
    assert "events[0].target: expected a measured signal (" in text
    assert "reactor.cell_voltage" in text and "found 'reactor.power'" in text


def test_sensor_faults_refuse_values_they_do_not_use():
    """A rate on a bias fault (or any value on a freeze) is refused, not silently ignored."""
    text = problems({"events": [
        {"at": 1, "type": "sensor_bias", "target": "reactor.cell_voltage", "rate": 0.1},
        {"at": 1, "type": "sensor_freeze", "target": "reactor.anolyte_ph", "std": 1},
    ]})
    assert "events[0].rate: unknown key for sensor_bias (it takes offset)" in text
    assert "events[1].std: unknown key for sensor_freeze (it takes no value)" in text


def test_fault_values_are_numbers_in_range():
    """A supply-drop fraction must be a number in [0, 1] (not yes/no); noise std a finite number >= 0."""
    text = problems({"events": [
        {"at": 1, "type": "co2_supply_drop", "fraction": True},
        {"at": 2, "type": "co2_supply_drop", "fraction": 1.5},
        {"at": 3, "type": "sensor_noise", "target": "feed.gas_flow", "std": float("nan")},
    ]})
    assert "events[0].fraction: expected a number, not a boolean, found True" in text
    assert "events[1].fraction: expected less than or equal to 1, found 1.5" in text
    assert "events[2].std: expected a finite number, found nan" in text


def test_parameter_events_need_a_tunable_parameter():
    """Parameter events on fixed or unknown parameters are refused; tunable ones are bounds-checked."""
    text = problems({"events": [
        {"at": 1, "type": "parameter", "target": "power.max_current", "value": 10},
        {"at": 1, "type": "parameter", "target": "reactor.nope", "value": 1},
        {"at": 1, "type": "parameter", "target": "feed.co2_supply_fraction", "value": 2},
    ]})
    assert "events[0].target: power.max_current cannot change during a run; tunable: " in text
    assert "feed.co2_supply_fraction" in text
    assert "events[1].target: unknown parameter 'reactor.nope'" in text
    assert "events[2].value: expected a value in [0, 1] 1, found 2.0" in text


def test_plant_parameters_are_known_and_in_bounds():
    """Unknown plant parameters and out-of-bounds values are refused with their YAML path."""
    text = problems({"plant": {"reactor": {"nope": 1}, "power": {"max_current": -5}, "pump": {}}})
    assert "plant.reactor.nope: unknown parameter; expected one of area_cm2" in text
    assert "plant.power.max_current: expected a value in [0, 1000] A, found -5.0" in text
    assert "plant.pump: unknown component; expected one of power, feed, reactor, separation" in text


def test_every_problem_in_a_file_is_reported_together(write_file):
    """Schema errors and plant checks in one file are all listed in one ScenarioError."""
    path = write_file("many.yaml", (
        "name: t\nduration: 60\nstep: 1\ncolour: blue\n"
        "inputs:\n  current: -1\n  gas_flow: {constant: 1, unit: mol/s}\n  humidity: wet\n"
        "plant:\n  reactor: {nope: 1, area_cm2: .inf}\n"
        "events:\n"
        "  - {at: 2.5, type: power_trip}\n"
        "  - {at: 1, type: explode}\n"
        "  - {at: 3, type: parameter, target: power.max_current, value: 1}\n"
    ))
    text = message(path)
    expected = [
        "colour: unknown key",
        "inputs.humidity: expected a number or a mapping",
        "plant.reactor.area_cm2: expected a finite number, found inf",
        "events[1].type: expected one of",
        "inputs.current.constant: expected a value in [0, 1000] A, found -1.0",
        "inputs.gas_flow.unit: expected a unit convertible to 'mL/min'",
        "plant.reactor.nope: unknown parameter",
        "events[0].at: expected a multiple of the step (1 s) from the start, found 2.5",
        "events[2].target: power.max_current cannot change during a run",
    ]
    assert text.startswith(f"{path}: {len(expected)} problems\n"), text
    for fragment in expected:
        assert f"\n  - {fragment}" in text, (fragment, text)


def test_plant_checks_still_run_when_the_timing_is_broken():
    """With a broken duration, value checks still run but no time checks are guessed."""
    text = problems({"duration": "soon", "inputs": {"current": -1},
                     "events": [{"at": 2.5, "type": "power_trip"}]})
    assert "duration: expected a duration" in text
    assert "inputs.current.constant: expected a value in [0, 1000] A" in text
    assert "events[0]" not in text


def test_limits_are_checked():
    """Operating limits must name a signal and have low <= high."""
    text = problems({"limits": {"reactor.cell_voltage": {"low": 5, "high": 4}, "nope.x": {"high": 1}}})
    assert "limits.reactor.cell_voltage: expected low <= high, found low 5 above high 4" in text
    assert "limits.nope.x: unknown signal" in text


def test_record_patterns_must_match_a_signal_and_output_must_be_a_results_format():
    """A record pattern matching nothing and an output file of unknown format are refused."""
    text = problems({"record": {"signals": ["reactor.*", "nothing.*"]}, "output": {"file": "r.xlsx"}})
    assert ("record.signals[1]: expected a signal name or pattern that matches a signal, "
            "found 'nothing.*'") in text
    assert "output.file: expected a .parquet or .csv file" in text


# -- durations, steps, ramps -------------------------------------------------------------
@pytest.mark.parametrize("text, seconds", [
    ("24 h", 86400.0), ("90 min", 5400.0), ("1.5 h", 5400.0), ("2 d", 172800.0),
    ("500 ms", 0.5), ("45s", 45.0), (120, 120.0),
])
def test_durations_as_text(text, seconds):
    """Durations and steps may be given as text with a unit, or as seconds."""
    sc = parse_scenario({"name": "t", "duration": text, "step": "500 ms"})
    assert sc.duration == seconds and sc.step == 0.5
    assert sc.steps == round(seconds / 0.5)


def test_steps_profile_drives_the_input():
    """A steps profile holds each value from its time on (rows lag by one step: zero-order hold)."""
    sc = parse_scenario({**BASE, "inputs": {"current": {"steps": [[0, 2.0], [20, 4.0], [40, 1.0]]}}})
    frame = run(sc, progress=False)
    assert column(frame, "power.current_setpoint", 1, 20, 21, 40, 41, 60) == [2, 2, 4, 4, 1, 1]
    assert frame.attrs["units"]["power.current_setpoint"] == "A"


def test_ramp_input_moves_linearly():
    """A ramp input goes from `from` to `to` over `duration`, starting `at` s after the start."""
    sc = parse_scenario({**BASE, "inputs": {"current": {"ramp": {"from": 1, "to": 3, "at": 10,
                                                                   "duration": 20}}}})
    frame = run(sc, progress=False)
    got = column(frame, "power.current_setpoint", 10, 11, 21, 31, 60)
    assert got == pytest.approx([1.0, 1.0, 2.0, 3.0, 3.0])


# -- CSV profiles -------------------------------------------------------------------------
CSV = "time_s,current_A\n0,2\n10,4\n30,4\n60,1\n"


def csv_scenario(write_file, csv_text: str = CSV, **spec) -> Path:
    write_file("sc/profiles/p.csv", csv_text)
    options = ", ".join(f"{k}: {v}" for k, v in spec.items())
    return write_file("sc/scenario.yaml", (
        f"{HEAD}inputs:\n  current:\n    csv: {{path: profiles/p.csv, column: current_A"
        f"{', ' + options if options else ''}}}\n"
    ))


def test_csv_profile_linear_is_read_relative_to_the_scenario(write_file, tmp_path, monkeypatch):
    """A CSV path is relative to the scenario file; linear interpolation between rows."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    frame = run(csv_scenario(write_file), progress=False)
    # row t holds the value sampled at t - 1
    got = column(frame, "power.current_setpoint", 1, 6, 11, 21, 46, 60)
    assert got == pytest.approx([2.0, 3.0, 4.0, 4.0, 2.5, 1.1])


def test_csv_profile_previous_holds_each_row(write_file):
    """interpolation: previous holds each row's value until the next row."""
    frame = run(csv_scenario(write_file, interpolation="previous"), progress=False)
    got = column(frame, "power.current_setpoint", 1, 6, 10, 11, 31, 60)
    assert got == [2.0, 2.0, 2.0, 4.0, 4.0, 4.0]


def test_csv_with_byte_order_mark_is_read(write_file):
    """A CSV saved by a spreadsheet (UTF-8 with BOM) has its first column found."""
    frame = run(csv_scenario(write_file, "\ufeff" + CSV), progress=False)
    assert column(frame, "power.current_setpoint", 6) == pytest.approx([3.0])


def test_csv_not_covering_the_run_is_refused_unless_held(write_file):
    """A table ending before the run ends is an error; hold: true holds its last value."""
    short = "time_s,current_A\n0,2\n30,3\n"
    text = message(csv_scenario(write_file, short))
    assert "inputs.current.csv: expected the table to cover the run [0, 60] s, found [0, 30] s" in text
    frame = run(csv_scenario(write_file, short, hold="true"), progress=False)
    assert column(frame, "power.current_setpoint", 31, 60) == [3.0, 3.0]


@pytest.mark.parametrize("csv_text, fragment", [
    ("time_s,amps\n0,1\n60,1\n", "p.csv: expected column(s) 'current_A', found columns: 'time_s', 'amps'"),
    ("time_s,current_A\n0,1\n10,abc\n60,1\n",
     "p.csv line 3, column 'current_A': expected a number, found 'abc'"),
    ("time_s,current_A\n0,1\n10\n60,1\n",
     "p.csv line 3, column 'current_A': expected a number, found a missing cell"),
    ("time_s,current_A\n0,1\n10,2\n10,3\n60,1\n",
     "p.csv line 4, column 'time_s': expected a time after 10, found 10"),
    ("time_s,current_A\n0,1\n10,inf\n60,1\n", "expected a finite number, found 'inf'"),
    ("time_s,current_A\n", "p.csv: expected at least one data row, found none"),
    ("time_s,current_A\n0,1\n10,-2\n60,1\n",
     "inputs.current.csv (p.csv line 3, column 'current_A'): expected a value in [0, 1000] A, found -2.0"),
])
def test_bad_csv_profiles_are_refused(write_file, csv_text, fragment):
    """Missing column, non-numeric or missing cell, non-increasing time, empty, out of bounds."""
    text = message(csv_scenario(write_file, csv_text))
    assert "inputs.current.csv" in text and fragment in text, text


def test_missing_csv_file_is_refused(write_file):
    """A CSV path with no file behind it is refused naming the path it looked at."""
    path = write_file("sc/scenario.yaml", HEAD + "inputs:\n  current: {csv: {path: gone.csv, column: c}}\n")
    text = message(path)
    assert "inputs.current.csv: expected a CSV file, found nothing at" in text
    assert str(path.parent / "gone.csv") in text


def test_non_utf8_csv_is_refused(write_file):
    """A CSV in another encoding gives a ScenarioError, not UnicodeDecodeError."""
    write_file("sc/profiles/p.csv", b"time_s,current_A\n0,1\n60,1 \xb5A\n")
    path = write_file("sc/scenario.yaml",
                      HEAD + "inputs:\n  current: {csv: {path: profiles/p.csv, column: current_A}}\n")
    assert "p.csv: expected UTF-8 text, found byte 0xb5" in message(path)


# -- events of every type apply ------------------------------------------------------------
def test_every_event_type_applies_and_is_logged(write_file):
    """Each event type of the schema is logged at its time and moves the signal it acts on."""
    write_file("p.csv", "time_s,current_A\n0,3.5\n4,3.5\n")
    path = write_file("events.yaml", """
name: events
duration: 130
step: 1
inputs:
  current: 5
events:
  - {at: 10, type: set, target: current, value: 3, unit: A}
  - {at: 20, type: ramp, target: current, to: 6, duration: 10}
  - {at: 35, type: profile, target: current, steps: [[0, 4], [5, 2]]}
  - {at: 45, type: profile, target: current, csv: {path: p.csv, column: current_A, hold: true}}
  - {at: 50, type: parameter, target: feed.co2_supply_fraction, value: 0.5}
  - {at: 55, type: co2_supply_restore}
  - {at: 60, type: pump_stop, pump: catholyte}
  - {at: 65, type: pump_restart, pump: catholyte}
  - {at: 70, type: co2_supply_drop, fraction: 0.25}
  - {at: 80, type: power_trip}
  - {at: 85, type: power_restore}
  - {at: 90, type: sensor_drift, target: reactor.cell_voltage, rate: 0.01}
  - {at: 90, type: sensor_bias, target: reactor.anolyte_ph, offset: -0.5}
  - {at: 90, type: sensor_freeze, target: reactor.cell_temperature}
  - {at: 90, type: sensor_noise, target: feed.gas_flow, std: 1.0}
  - {at: 100, type: sensor_clear, target: reactor.cell_voltage}
""")
    frame = run(load_scenario(path), progress=False)
    log = frame.attrs["events"]
    assert [t for t, _ in log] == [10, 20, 35, 45, 50, 55, 60, 65, 70, 80, 85, 90, 90, 90, 90, 100]
    texts = [text for _, text in log]
    for i, fragment in enumerate([
        "set power.current_setpoint = 3", "ramp power.current_setpoint 3 -> 6 over 10 s",
        "switch power.current_setpoint to steps", "switch power.current_setpoint to CSV p.csv",
        "feed.co2_supply_fraction: 1 -> 0.5", "CO2 supply restored", "catholyte pump stops",
        "catholyte pump restarts", "CO2 supply drops (feed.co2_supply_fraction: 1 -> 0.25)",
        "power supply trips", "power supply restored", "reactor.cell_voltage: drift",
        "reactor.anolyte_ph: bias by -0.5", "reactor.cell_temperature: freeze",
        "feed.gas_flow: noise with std 1", "reactor.cell_voltage: clear",
    ]):
        assert fragment in texts[i], (fragment, texts[i])

    setpoint = column(frame, "power.current_setpoint", 10, 11, 21, 26, 31, 36, 41, 46, 60)
    assert setpoint == pytest.approx([5, 3, 3, 4.5, 6, 4, 2, 3.5, 3.5])
    co2 = frame["feed.co2_flow"]
    assert co2[55] < 60 and co2[50] > 99 and co2[69] > 99          # parameter, restore
    assert co2[80] < 30                                             # supply drop to 25 %
    cath = frame["feed.catholyte_flow"]
    assert cath[60] > 5.5 and cath[65] < 0.1 and cath[70] > 5.5     # pump stop / restart
    current = frame["power.current"]
    assert current[80] > 1.9 and (current.loc[81:85] == 0).all() and current[86] > 1.9  # trip/restore

    drift = frame["reactor.cell_voltage"] - frame["reactor.cell_voltage:true"]
    assert drift[91] == pytest.approx(0.01) and drift[100] == pytest.approx(0.10)
    assert abs(frame["reactor.cell_voltage"][101] - frame["reactor.cell_voltage:true"][100]) < 0.005
    bias = frame["reactor.anolyte_ph"] - frame["reactor.anolyte_ph:true"]
    assert bias.loc[91:130].to_numpy() == pytest.approx(-0.5)
    frozen = frame["reactor.cell_temperature"].loc[91:130]
    assert frozen.nunique() == 1 and frame["reactor.cell_temperature:true"].loc[91:130].nunique() > 1
    noise = (frame["feed.gas_flow"] - frame["feed.gas_flow:true"]).loc[91:130]
    assert 0.3 < noise.std() < 3.0


def test_profile_event_csv_must_cover_the_rest_of_the_run(write_file):
    """A CSV switched in by an event (time 0 = event time) must reach the end, unless held."""
    write_file("p.csv", "time_s,current_A\n0,3.5\n4,3.5\n")
    path = write_file("ev.yaml", HEAD + "events:\n  - {at: 45, type: profile, target: current, "
                      "csv: {path: p.csv, column: current_A}}\n")
    text = message(path)
    assert ("events[0].csv: expected the table to cover the run from the event on [45, 60] s, "
            "found [45, 49] s") in text


def test_noise_is_reproducible_with_the_seed():
    """Same seed, same noisy readings; another seed, other readings."""
    events = [{"at": 0, "type": "sensor_noise", "target": "feed.gas_flow", "std": 1.0}]

    def readings(seed):
        sc = parse_scenario({**BASE, "duration": 20, "seed": seed, "events": events})
        return run(sc, progress=False)["feed.gas_flow"].to_numpy()

    assert (readings(3) == readings(3)).all()
    assert not (readings(3) == readings(4)).all()


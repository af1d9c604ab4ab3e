"""The ``co2twin`` command line, run as a subprocess the way a user runs it."""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cosim.recorder import read_results

CLI = [sys.executable, "-m", "co2twin.cli"]
SCENARIOS = sorted((Path(__file__).parents[1] / "scenarios").glob("*.yaml"))
SMALL = "name: small\nduration: 60\nstep: 1\ninputs:\n  current: 5\n"
ENV = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "COLUMNS")}
ENV.update(NO_COLOR="1", TERM="dumb")


def co2twin(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, encoding="utf-8",
                          errors="replace", timeout=120, env=ENV)


def no_traceback(done: subprocess.CompletedProcess) -> bool:
    return "Traceback" not in done.stdout + done.stderr


# -- bad scenarios: a clean one-line error, exit 1, no traceback, nothing written ---------
HEAD = b"name: t\nduration: 60\nstep: 1\n"
BOMB = "".join(
    f"{a}: &{a} [{', '.join([f'*{prev}'] * 9) if prev else ', '.join(['lol'] * 9)}]\n"
    for prev, a in zip([None, "a", "b", "c", "d", "e", "f", "g"], "abcdefgh")
).encode() + HEAD

BAD = [
    ("missing-file", None, ["no such file"]),
    ("empty", b"", ["expected a mapping", "empty"]),
    ("broken-yaml", b"name: [t\nduration: 60\n", ["line 2, column 9: invalid YAML"]),
    ("list", b"- name: t\n- step: 1\n", ["expected a mapping", "found a list"]),
    ("plain-string", b"run the plant please\n", ["found text 'run the plant please'"]),
    ("nul-bytes", HEAD + b"description: \x00\x01\x02\n", ["binary data"]),
    ("not-utf8", HEAD + b"description: \xff\xfe\n", ["UTF-8", "0xff"]),
    ("nan", b"name: t\nduration: .nan\nstep: 1\n", ["duration: expected a finite number, found nan"]),
    ("inf", b"name: t\nduration: 60\nstep: .inf\n", ["step: expected a finite number, found inf"]),
    ("1e999", b"name: t\nduration: 1e999\nstep: 1\n", ["duration: expected a finite number, found inf"]),
    ("400-digits", HEAD + b"inputs:\n  current: " + b"7" * 400 + b"\n",
     ["inputs.current.constant: expected a number that fits in a 64-bit float, found 777"]),
    ("zero-duration", b"name: t\nduration: 0\nstep: 1\n", ["duration: expected greater than 0, found 0"]),
    ("negative-step", b"name: t\nduration: 60\nstep: -2\n", ["step: expected greater than 0, found -2"]),
    ("not-whole-steps", b"name: t\nduration: 61\nstep: 2\n",
     ["duration: expected a whole number of steps of 2 s, found 61 s"]),
    ("python-tag", b"name: !!python/object/apply:os.system ['touch @PWNED@']\nduration: 60\nstep: 1\n",
     ["!!python/object/apply:os.system", "not allowed"]),
    ("python-tag-top", b"!!python/object/apply:subprocess.call [['touch', '@PWNED@']]\n",
     ["!!python/object/apply:subprocess.call", "not allowed"]),
    ("duplicate-key", HEAD + b"step: 2\n", ["line 4", "'step' again"]),
    ("unknown-key", HEAD + b"colour: blue\n", ["colour: unknown key"]),
    ("alias-bomb", BOMB, ["expected at most 200,000 YAML nodes"]),
    ("negative-current", HEAD + b"inputs:\n  current: -1\n",
     ["inputs.current.constant: expected a value in [0, 1000] A, found -1.0"]),
    ("volts-for-amps", HEAD + b"inputs:\n  current: {constant: 5, unit: V}\n",
     ["inputs.current.unit: expected a unit convertible to 'A'", "found 'V'"]),
    ("off-grid-event", HEAD + b"events:\n  - {at: 2.5, type: power_trip}\n",
     ["events[0].at: expected a multiple of the step (1 s) from the start, found 2.5"]),
    ("event-after-end", HEAD + b"events:\n  - {at: 90, type: power_trip}\n",
     ["events[0].at: expected a time within [0, 60) s, found 90"]),
    ("sensor-not-measured", HEAD + b"events:\n  - {at: 5, type: sensor_freeze, target: reactor.energy}\n",
     ["events[0].target: expected a measured signal", "found 'reactor.energy'"]),
    ("parameter-not-tunable",
     HEAD + b"events:\n  - {at: 5, type: parameter, target: reactor.area_cm2, value: 30}\n",
     ["events[0].target: reactor.area_cm2 cannot change during a run"]),
    ("unknown-plant-parameter", HEAD + b"plant:\n  reactor: {nope: 1}\n",
     ["plant.reactor.nope: unknown parameter"]),
    ("plant-out-of-bounds", HEAD + b"plant:\n  separation: {tank_volume_L: 0}\n",
     ["plant.separation.tank_volume_L: expected a value in [1e-06, 1e+06] L, found 0.0"]),
    ("missing-csv", HEAD + b"inputs:\n  current: {csv: {path: nowhere.csv, column: current_A}}\n",
     ["inputs.current.csv: expected a CSV file, found nothing at", "nowhere.csv"]),
    ("markup-in-key", HEAD + b'"[/]": 1\n', ["[/]: unknown key"]),
]


@pytest.fixture(scope="module")
def refused(tmp_path_factory):
    """Every BAD scenario through `run -o ... --plot ...` and `validate`, in parallel."""
    root = tmp_path_factory.mktemp("refused")
    pwned = root / "pwned"
    jobs = {}
    for name, content, _ in BAD:
        folder = root / name
        folder.mkdir()
        scenario = folder / "scenario.yaml"
        if content is not None:
            scenario.write_bytes(content.replace(b"@PWNED@", str(pwned).encode()))
        out = folder / "out"
        jobs[name, "run"] = (["run", str(scenario), "-o", str(out / "results.csv"),
                              "--plot", str(out / "plot.png")], folder)
        jobs[name, "validate"] = (["validate", str(scenario)], folder)
    with ThreadPoolExecutor(max_workers=4) as pool:
        done = list(pool.map(lambda job: co2twin(*job[0], cwd=job[1]), jobs.values()))
    return root, pwned, dict(zip(jobs, done))


@pytest.mark.parametrize("command", ["run", "validate"])
@pytest.mark.parametrize("name, fragments", [(c[0], c[2]) for c in BAD], ids=[c[0] for c in BAD])
def test_bad_scenario_gives_one_clean_line_and_exit_1(refused, name, fragments, command):
    """A bad scenario: exit 1, one stderr line naming file and problem, no traceback, no output."""
    root, pwned, results = refused
    done = results[name, command]
    assert done.returncode == 1, done
    assert no_traceback(done), done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"{root / name / 'scenario.yaml'}: " in lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert done.stdout == ""
    assert not (root / name / "out").exists()
    assert sorted(p.name for p in (root / name).iterdir()) == (
        [] if name == "missing-file" else ["scenario.yaml"])
    assert not pwned.exists()


def test_several_problems_are_listed_together(tmp_path):
    """Every problem of a file appears on stderr, one per line, under a count."""
    path = tmp_path / "many.yaml"
    path.write_text("name: t\nduration: 60\nstep: 1\ncolour: blue\n"
                    "inputs:\n  current: -1\n  gas_flow: {constant: 1, unit: mol/s}\n"
                    "events:\n  - {at: 2.5, type: power_trip}\n")
    done = co2twin("run", str(path), "-o", str(tmp_path / "r.csv"))
    assert done.returncode == 1 and no_traceback(done)
    assert f"{path}: 4 problems" in done.stderr
    for fragment in ["- colour: unknown key", "- inputs.current.constant: expected a value in",
                     "- inputs.gas_flow.unit: expected a unit convertible to 'mL/min'",
                     "- events[0].at: expected a multiple"]:
        assert fragment in done.stderr
    assert not (tmp_path / "r.csv").exists()


# -- validate ---------------------------------------------------------------------------
def test_validate_accepts_the_shipped_scenarios():
    """`co2twin validate scenarios/*.yaml` exits 0 and reports each file ok."""
    done = co2twin("validate", *map(str, SCENARIOS))
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    for path in SCENARIOS:
        assert re.search(rf"^ok {re.escape(str(path))}: '", done.stdout, re.M), done.stdout


def test_validate_with_one_bad_file_among_good_ones_exits_1(tmp_path):
    """Good files are still reported ok; the bad one is reported invalid; exit code 1."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: t\nduration: 60\nstep: 0\n")
    done = co2twin("validate", str(SCENARIOS[0]), str(bad))
    assert done.returncode == 1 and no_traceback(done)
    assert f"ok {SCENARIOS[0]}" in done.stdout
    assert f"invalid {bad}: step: expected greater than 0, found 0" in done.stderr


def test_names_with_markup_characters_are_printed_literally(tmp_path):
    """A scenario named like rich markup ("[/]") validates and runs; the name is shown as is."""
    path = tmp_path / "markup.yaml"
    path.write_text('name: "[bold]x[/]"\nduration: 10\nstep: 1\n')
    done = co2twin("validate", str(path))
    assert done.returncode == 0, done.stderr
    assert "'[bold]x[/]', 10 steps of 1 s, 0 event(s)" in done.stdout
    done = co2twin("run", str(path), "-o", str(tmp_path / "r.csv"))
    assert done.returncode == 0 and no_traceback(done), done.stderr
    assert "[bold]x[/]: " in done.stdout


# -- run --------------------------------------------------------------------------------
def test_run_writes_csv_with_units_sidecar_and_a_png_plot(tmp_path):
    """`run -o out.csv --plot p.png`: CSV, its .meta.json with units and events, and a PNG."""
    path = tmp_path / "small.yaml"
    path.write_text(SMALL + "events:\n  - {at: 30, type: set, target: current, value: 4}\n")
    out, png = tmp_path / "res" / "out.csv", tmp_path / "plots" / "p.png"
    done = co2twin("run", str(path), "-o", str(out), "--plot", str(png))
    assert done.returncode == 0, done.stderr
    # stderr: only the estimate printed before the run (tests/test_long_runs.py)
    assert no_traceback(done) and done.stderr.startswith("estimated run: ")
    assert done.stderr.count("\n") == 1
    assert f"results: {out}   plot: {png}\n" in done.stdout and "mean_fe_formate" in done.stdout
    meta = json.loads(Path(str(out) + ".meta.json").read_text())
    assert meta["units"]["time_s"] == "s"
    assert meta["units"]["power.current"] == "A" and meta["units"]["reactor.cell_voltage"] == "V"
    assert meta["events"] == [[30.0, "set power.current_setpoint = 4"]]
    frame = read_results(out)
    assert len(frame) == 61 and frame.index[-1] == 60
    assert frame.attrs["units"]["feed.gas_flow"] == "mL/min"
    assert frame.loc[31, "power.current_setpoint"] == 4 and frame.loc[30, "power.current_setpoint"] == 5
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_run_writes_parquet_with_units_in_its_metadata(tmp_path):
    """`run -o out.parquet` writes Parquet whose metadata carries the units (read_results)."""
    path = tmp_path / "small.yaml"
    path.write_text(SMALL)
    out = tmp_path / "out.parquet"
    done = co2twin("run", str(path), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert out.read_bytes()[:4] == b"PAR1"
    assert not Path(str(out) + ".meta.json").exists()
    frame = read_results(out)
    assert len(frame) == 61
    assert frame.attrs["units"]["reactor.cell_voltage"] == "V"
    assert frame.attrs["units"]["separation.tank_formate_conc"] == "mol/L"
    assert frame.attrs["scenario"]["name"] == "small"


def test_run_json_prints_kpis_and_balances(tmp_path):
    """`run --json` prints one strict JSON object with KPIs and closed balances."""
    path = tmp_path / "small.yaml"
    path.write_text(SMALL)
    out = tmp_path / "out.csv"
    done = co2twin("run", str(path), "-o", str(out), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout, parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    assert report["scenario"] == "small" and report["output"] == str(out)
    assert report["kpis"]["duration_h"] == pytest.approx(60 / 3600)
    assert report["kpis"]["mean_current_A"] == pytest.approx(5.0, rel=1e-6)
    assert 0 < report["kpis"]["mean_fe_formate"] <= 1
    assert {"charge", "carbon_cell", "carbon_feed"} <= set(report["balances"])
    assert max(report["balances"].values()) < 1e-9
    assert out.exists()


def test_run_defaults_to_the_scenarios_output_file_in_the_working_directory(tmp_path):
    """Without -o the scenario's output.file is written, relative to the working directory."""
    path = tmp_path / "small.yaml"
    path.write_text(SMALL + "output: {file: here/small.csv}\n")
    work = tmp_path / "work"
    work.mkdir()
    done = co2twin("run", str(path), cwd=work)
    assert done.returncode == 0, done.stderr
    assert (work / "here" / "small.csv").exists() and (work / "here" / "small.csv.meta.json").exists()


@pytest.mark.parametrize("args, fragment", [
    (["-o", "r.xlsx"], "r.xlsx: expected a .parquet or .csv results file"),
    (["-o", "r.csv", "--plot", "p.jpg"], "p.jpg: expected a .png file for --plot"),
    (["-o", "adir.csv"], "adir.csv: expected a results file name, found a directory"),
])
def test_bad_output_options_are_refused_before_running(tmp_path, args, fragment):
    """Unknown result formats, non-PNG plots and directories as -o are clean errors; nothing written."""
    (tmp_path / "small.yaml").write_text(SMALL)
    (tmp_path / "adir.csv").mkdir()
    done = co2twin("run", "small.yaml", *args, cwd=tmp_path)
    assert done.returncode == 1 and no_traceback(done)
    assert fragment in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir.csv", "small.yaml"]
    assert list((tmp_path / "adir.csv").iterdir()) == []


def test_failed_plot_leaves_no_results_file(tmp_path):
    """When the plot cannot be drawn (key signals not recorded), no results file is left either."""
    (tmp_path / "feed.yaml").write_text(SMALL + "record: {signals: ['feed.*']}\n")
    done = co2twin("run", "feed.yaml", "-o", "r.csv", "--plot", "p.png", cwd=tmp_path)
    assert done.returncode == 1 and no_traceback(done)
    assert "none of the signals to plot were recorded" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feed.yaml"]


def test_json_report_never_contains_nan_or_infinity():
    """Non-finite KPI or balance values become null, so --json output stays strict JSON."""
    from co2twin.cli.console import json_safe as _json_safe

    report = _json_safe({"kpis": {"a": math.nan, "b": 1.5, "n": 10**400}, "balances": {"c": math.inf},
                         "list": [-math.inf, "x", True]})
    assert report == {"kpis": {"a": None, "b": 1.5, "n": 10**400}, "balances": {"c": None},
                      "list": [None, "x", True]}
    json.dumps(report, allow_nan=False)


# -- schema (what it allows: test_schema.py) ---------------------------------------------
def test_schema_prints_the_scenario_json_schema(scenario_schema):
    """`co2twin schema` prints ``co2twin.json_schema()`` as JSON on stdout."""
    done = co2twin("schema")
    assert done.returncode == 0 and no_traceback(done), done.stderr
    assert json.loads(done.stdout) == scenario_schema


def test_schema_to_a_file(tmp_path, scenario_schema):
    """`co2twin schema -o FILE` writes the same schema; an unwritable path is a clean error."""
    out = tmp_path / "scenario.schema.json"
    assert co2twin("schema", "-o", str(out)).returncode == 0
    assert json.loads(out.read_text()) == scenario_schema
    done = co2twin("schema", "-o", str(tmp_path / "no" / "such" / "dir" / "s.json"))
    assert done.returncode == 1 and no_traceback(done)
    assert "No such file or directory" in done.stderr

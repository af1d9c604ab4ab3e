"""``co2twin control run|compare|show``, run as a subprocess the way a user runs them."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

CLI = [sys.executable, "-m", "co2twin.cli"]
CASES = Path(__file__).parents[1] / "scenarios" / "control"
ENV = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "COLUMNS")}
ENV.update(NO_COLOR="1", TERM="dumb", COLUMNS="160")


def co2twin(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, encoding="utf-8",
                          errors="replace", timeout=300, env=ENV)


def test_compare_prints_json_writes_csv_and_plot(tmp_path):
    """compare runs every shipped controller: JSON verdicts as the case expects, a CSV table
    with a value and a verdict per controller, a PNG overlay; nothing else is written."""
    case = CASES / "tank_concentration.yaml"
    done = co2twin("control", "compare", str(case), "--json", "--csv", "kpis.csv",
                   "--plot", "overlay.png", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    expected = yaml.safe_load(case.read_text())["case"]["expected"]
    assert {n: ("pass" if c["passed"] else "fail") for n, c in report["controllers"].items()} == expected
    baseline = report["controllers"]["baseline"]
    assert baseline["kpis"]["tracking_iae"]["separation.tank_formate_conc"] > 0
    assert all(v["ok"] for v in baseline["verdicts"])
    with (tmp_path / "kpis.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    header = set(rows[0])
    assert {"kpi", "unit", "threshold", "baseline", "baseline ok", "open_loop", "open_loop ok"} <= header
    iae = next(r for r in rows if r["kpi"].startswith("tracking_iae"))
    assert iae["threshold"] == "<= 60" and iae["baseline ok"] == "true" and iae["open_loop ok"] == "false"
    assert (tmp_path / "overlay.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kpis.csv", "overlay.png"]


def test_run_prints_the_table_and_strict_fails_a_failing_controller(tmp_path):
    """run prints one column of KPIs with thresholds and the verdict; --strict exits 2 on FAIL."""
    case = str(CASES / "fe_dilution.yaml")
    done = co2twin("control", "run", case, "--controller", "open_loop", "--strict", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "time_outside_s" in done.stdout and "FAIL" in done.stdout and "verdict" in done.stdout
    done = co2twin("control", "run", case, "-c", "baseline", "--strict", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "pass" in done.stdout and "FAIL" not in done.stdout
    assert list(tmp_path.iterdir()) == []


def test_controllers_from_a_spec_file_and_a_python_class(tmp_path):
    """--controller takes a YAML file holding a controller spec, or module:Class (found beside
    the case file), as well as a shipped name."""
    spec = tmp_path / "faster.yaml"
    spec.write_text(yaml.safe_dump({"type": "ratio", "measurement": "power.current",
                                    "actuator": "anolyte_flow", "ratio": 2.0,
                                    "limits": {"low": 1, "high": 30}}))
    done = co2twin("control", "compare", str(CASES / "anolyte_ph.yaml"), "-c", str(spec),
                   "-c", "open_loop", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert list(json.loads(done.stdout)["controllers"]) == ["faster", "open_loop"]
    done = co2twin("control", "run", str(CASES / "price_following.yaml"),
                   "-c", "price_scheduler:CheapestHours", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["controllers"]["CheapestHours"]["passed"] is True


def test_bad_controller_and_bad_plot_name_fail_cleanly(tmp_path):
    """An unknown controller or a plot that is not .png: exit 1, one message, no traceback,
    nothing written."""
    case = str(CASES / "tank_concentration.yaml")
    done = co2twin("control", "run", case, "-c", "nonexistent", "--plot", "x.png", cwd=tmp_path)
    assert done.returncode == 1
    assert "expected one of the case's (baseline, no_anti_windup, open_loop)" in done.stderr
    assert "Traceback" not in done.stderr
    done = co2twin("control", "run", case, "-c", "baseline", "--plot", "x.jpg", cwd=tmp_path)
    assert done.returncode == 1 and "expected a .png file" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_show_describes_the_case():
    done = co2twin("control", "show", str(CASES / "anolyte_ph.yaml"))
    assert done.returncode == 0, done.stderr
    for text in ("minimise time_outside_s", "actuators: anolyte_flow",
                 "constraint: reactor.anolyte_ph in [13.3, 13.9]", "threshold: actuator_travel <= 200",
                 "controller onoff (onoff): expected to fail"):
        assert text in done.stdout

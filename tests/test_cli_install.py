"""The command line as a new user meets it after ``pip install .`` (not editable): no scenarios
beside the package, the package's folders inside site-packages, no ``train`` extra; and the
output of ``control show`` and ``sweep`` before anything runs. Run in process (typer's runner)
so that the installed layout can be stood in for by monkeypatching where co2twin looks."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

import co2twin.cli.battery as cli_battery
import co2twin.cli.models as cli_models
from co2twin.cli import app, console
from co2twin.control import load_case, run_case
from co2twin.control.kpis import case_thresholds
from models import battery_models, surrogate
from models.campaign import generate
from models.plantlog import write_log

REPO = Path(__file__).resolve().parents[1]
CASES = REPO / "scenarios" / "control"
#: a short scenario on the committed models (what a user's ./scenarios might hold)
SHORT = {**yaml.safe_load((REPO / "scenarios" / "baseline.yaml").read_text()), "duration": 30}
SHORT.pop("output", None)


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def flat(text: str) -> str:
    """The text with every run of whitespace one space (rich wraps long lines)."""
    return " ".join(text.split())


@pytest.fixture(scope="module")
def small_log(tmp_path_factory) -> Path:
    """A small plant log to score on: the report's own default campaign is 864k rows."""
    path = tmp_path_factory.mktemp("install") / "log.csv"
    write_log(generate(seed=0, n_points=8), path)
    return path


@pytest.fixture
def installed(tmp_path, monkeypatch) -> Path:
    """co2twin as ``pip install .`` lays it out: the packages in a site-packages folder without
    pyproject.toml or scenarios beside them; the working directory an empty folder."""
    site = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    monkeypatch.setattr(console, "SOURCE_ROOT", site)
    monkeypatch.setattr(cli_models, "SHIPPED_SCENARIOS", site / "scenarios")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


# -- 1. models report: the scenarios section is never skipped silently ------------------------

@pytest.mark.filterwarnings("ignore:.*the log differs from the one the model was trained on")
def test_report_runs_the_working_directory_scenarios_when_none_are_installed(installed, small_log):
    """No scenarios beside the installed package: ./scenarios of the working directory is run,
    and the report says which folder it used (JSON: folder; text: the table title and a note)."""
    (installed / "scenarios").mkdir()
    (installed / "scenarios" / "short.yaml").write_text(yaml.safe_dump(SHORT))
    done = invoke("models", "report", "--data", str(small_log), "--json", "--section", "scenarios")
    assert done.exit_code == 0, done.output
    section = json.loads(done.stdout)
    assert section["folder"] == str(installed / "scenarios") and section["skipped"] is None
    assert [r["scenario"] for r in section["runs"]] == ["short"] and section["runs"][0]["rows"] > 0
    done = invoke("models", "report", "--data", str(small_log))
    assert done.exit_code == 0, done.output
    assert f"scenarios in {installed / 'scenarios'}" in flat(done.stdout)
    assert (f"note: scenarios from the working directory ({installed / 'scenarios'}): none installed "
            f"with the package ({cli_models.SHIPPED_SCENARIOS})") in flat(done.stderr)


@pytest.mark.filterwarnings("ignore:.*the log differs from the one the model was trained on")
def test_report_says_the_scenarios_were_skipped_why_and_how_to_give_them(installed, small_log):
    """No scenarios folder anywhere: the section is reported skipped, with the folders looked at
    and --scenarios DIR, in the JSON and in the text; a --scenarios that is no folder is refused."""
    done = invoke("models", "report", "--data", str(small_log), "--json", "--section", "scenarios")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout) == {"folder": None, "runs": [], "skipped": (
        f"no scenarios folder: none installed with the package ({cli_models.SHIPPED_SCENARIOS}) and "
        f"none in the working directory ({installed / 'scenarios'}); give one with --scenarios DIR")}
    done = invoke("models", "report", "--data", str(small_log))
    assert done.exit_code == 0, done.output
    assert "scenarios: skipped: no scenarios folder: none installed with the package" in flat(done.stdout)
    assert "give one with --scenarios DIR" in flat(done.stdout)
    done = invoke("models", "report", "--data", str(small_log), "--json", "--section", "all",
                  "--no-scenarios")
    assert json.loads(done.stdout)["scenarios"] == {"folder": None, "runs": [],
                                                    "skipped": "--no-scenarios given"}
    done = invoke("models", "report", "--data", str(small_log), "--scenarios", "nowhere")
    assert done.exit_code == 1
    assert ("--scenarios nowhere: expected a folder of scenario files (*.yaml), found nothing there"
            in flat(done.stderr))


# -- 2. train: the default output is the package's folder only in a source checkout ----------

def _stub_trainer(monkeypatch, module: str) -> list[Path]:
    """A stand-in for a training module (no TensorFlow): records and writes where it is told."""
    calls: list[Path] = []

    def train(log: Any, *, out_dir: Path, **settings: Any) -> list[Any]:
        calls.append(Path(out_dir))
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "model.keras").write_text("stub")
        return []

    monkeypatch.setitem(sys.modules, module, SimpleNamespace(DEFAULTS={"epochs": 1}, train=train))
    return calls


@pytest.mark.parametrize("command", [("train", "--variables", "fe_formate", "--kind", "nn"),
                                     ("battery", "train", "--kind", "nn")])
def test_train_refuses_to_write_into_the_installed_package(installed, tmp_path, monkeypatch, command):
    """Installed (not a source checkout): train without --out exits 1 naming --out DIR and writes
    nothing (into site-packages or anywhere); with --out it trains into that folder."""
    site = console.SOURCE_ROOT
    # the committed models' folders as installed (the real ones stay untouched by the old code)
    monkeypatch.setattr(surrogate, "TRAINED_DIR", site / "models" / "trained")
    monkeypatch.setattr(battery_models, "TRAINED_DIR", site / "models" / "trained" / "battery")
    calls = _stub_trainer(monkeypatch, "models.battery_train" if command[0] == "battery" else "models.train")
    monkeypatch.setattr(cli_models, "_campaign", lambda seed: "campaign")
    monkeypatch.setattr(cli_battery, "_bench", lambda seed: "bench")
    before = sorted(tmp_path.rglob("*"))
    done = invoke(*command)
    assert done.exit_code == 1 and isinstance(done.exception, SystemExit), done.output
    message = flat(done.stderr)
    assert "--out: expected a folder to write into; the default, " in message
    assert "is inside the installed package, not a source checkout of co2twin. Give one with --out DIR" \
        in message
    assert calls == [] and sorted(tmp_path.rglob("*")) == before
    done = invoke(*command, "--out", "mine")
    assert done.exit_code == 0, done.output
    assert calls == [Path("mine")] and (installed / "mine" / "model.keras").is_file()


def test_the_committed_folders_are_the_default_in_a_source_checkout(tmp_path):
    """This checkout (pyproject.toml beside the packages) keeps the committed defaults; a folder
    outside it, or the packages in site-packages, do not."""
    assert (console.SOURCE_ROOT / "pyproject.toml").is_file()
    assert console.in_source_checkout(surrogate.TRAINED_DIR)
    assert console.in_source_checkout(battery_models.TRAINED_DIR)
    assert console.default_write_folder(surrogate.TRAINED_DIR, "--out") == surrogate.TRAINED_DIR
    assert not console.in_source_checkout(tmp_path)


# -- 3. train without the train extra --------------------------------------------------------

@pytest.mark.parametrize("command", [("train",), ("battery", "train")])
def test_train_without_keras_says_to_install_the_train_extra(tmp_path, monkeypatch, command):
    """Keras not importable: one line naming the extra and how to install it, exit 1, no
    traceback, nothing written."""
    monkeypatch.setitem(sys.modules, "keras", None)  # `import keras` raises ModuleNotFoundError
    for module in ("models.train", "models.battery_train"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    done = invoke(*command, "--out", str(tmp_path / "models"))
    assert done.exit_code == 1 and isinstance(done.exception, SystemExit), done.output
    name = " ".join(["co2twin", *command])
    assert flat(done.stderr).startswith(
        f'error: {name} needs the train extra: pip install ".[train]" in the co2twin source folder')
    assert "Traceback" not in done.output and not (tmp_path / "models").exists()


# -- 4. control show: units and one-sided bounds ---------------------------------------------

def test_control_show_prints_units_and_one_sided_bounds(tmp_path):
    """show resolves a KPI's unit from its signal (as compare does) and writes a bound open on
    one side as <= or >=, both sides as in [a, b], in the signal's unit."""
    done = invoke("control", "show", str(CASES / "tank_concentration.yaml"))
    assert done.exit_code == 0, done.output
    lines = done.stdout.splitlines()
    assert "  threshold: tracking_iae <= 60 mol/L*s (separation.tank_formate_conc)" in lines
    assert "  constraint: reactor.cell_voltage <= 4.5 V" in lines
    assert "  threshold: overshoot_pct <= 5 % (separation.tank_formate_conc)" in lines
    assert "  threshold: time_outside_s <= 0 s" in lines
    assert "signal unit" not in done.stdout and "[, " not in done.stdout
    done = invoke("control", "show", str(CASES / "anolyte_ph.yaml"))
    assert "  constraint: reactor.anolyte_ph in [13.3, 13.9] pH" in done.stdout.splitlines()
    assert ("  threshold: actuator_travel <= 200 mL/min (feed.anolyte_flow_setpoint)"
            in done.stdout.splitlines())
    done = invoke("control", "show", str(CASES / "fe_dilution.yaml"))
    assert "  constraint: reactor.fe_formate >= 0.7" in done.stdout.splitlines()
    case = yaml.safe_load((CASES / "tank_concentration.yaml").read_text())
    case["case"]["constraints"]["reactor.cell_voltage"] = {"high": 4300, "unit": "mV"}
    (tmp_path / "mv.yaml").write_text(yaml.safe_dump(case))
    done = invoke("control", "show", str(tmp_path / "mv.yaml"))
    assert "  constraint: reactor.cell_voltage <= 4.3 V" in done.stdout.splitlines()


def test_show_and_compare_give_each_threshold_the_same_unit():
    """The units show prints are those of a run's KPI rows (compare's table), label by label."""
    case = load_case(CASES / "tank_concentration.yaml")
    ran = {label: unit for label, _, unit in run_case(case, "open_loop").rows()}
    shown = {kpi if signal is None else f"{kpi}[{signal}]": unit
             for kpi, signal, _, unit in case_thresholds(case)}
    assert shown and all(ran[label] == unit for label, unit in shown.items())


# -- 5. sweep: the output folder is checked before the banner --------------------------------

def test_sweep_refuses_a_folder_of_other_files_before_announcing_it(tmp_path):
    """A folder with other files: exit 1 with the reason, no "N variants ... results in" banner
    first, and the folder left as it was."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("mine")
    done = invoke("sweep", str(REPO / "sweeps" / "pi_tuning.yaml"), "-o", str(mine), "--no-progress")
    assert done.exit_code == 1
    assert flat(done.stderr) == (f"error: {mine}: expected a new or empty folder for the sweep's results "
                                 "(or one of an earlier run of this sweep, to resume), found other "
                                 "files there")
    assert [p.name for p in mine.iterdir()] == ["thesis.tex"]

"""``co2twin data generate``, ``train``, ``models report|check|show`` and the run path, as a user runs
them."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from models.cards import ModelCard, card_path, model_path
from models.plantlog import read_log
from models.variables import VARIABLES

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "co2twin.cli"]
ENV = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "COLUMNS")}
ENV.update(NO_COLOR="1", TERM="dumb", COLUMNS="200")


def co2twin(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], cwd=cwd or REPO, capture_output=True, encoding="utf-8",
                          errors="replace", timeout=timeout, env=ENV)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """A small plant log from the CLI and fe_formate models trained on it by the CLI."""
    root = tmp_path_factory.mktemp("cli_models")
    log = root / "log.csv"
    done = co2twin("data", "generate", "-o", str(log), "--points", "24", "--seed", "4")
    assert done.returncode == 0, done.stderr
    out = root / "models"
    done = co2twin("train", "--data", str(log), "--variables", "fe_formate", "--epochs", "3",
                   "--out", str(out))
    assert done.returncode == 0, done.stderr
    return log, out


def test_data_generate_writes_a_readable_plant_log(trained):
    """The generated log reads back through the plant-log loader with measured and true columns."""
    log = read_log(trained[0])
    assert {"current_density", "cell_voltage", "true_cell_voltage", "experiment"} <= set(log.columns)
    assert log["experiment"].nunique() >= 24


def test_data_generate_spanish_columns(tmp_path):
    """--spanish writes the VALCO2T twin's column names, which read back as ours."""
    out = tmp_path / "log.csv"
    done = co2twin("data", "generate", "-o", str(out), "--points", "8", "--spanish")
    assert done.returncode == 0, done.stderr
    header = out.read_text().splitlines()[0].split(",")
    assert {"intensidad", "potencial_celda", "caudal_co2"} <= set(header)
    assert "cell_voltage" in read_log(out).columns


def test_data_generate_refuses_a_bad_suffix(tmp_path):
    """An output that is neither .parquet nor .csv is refused with exit 1 and nothing written."""
    done = co2twin("data", "generate", "-o", str(tmp_path / "log.xlsx"), "--points", "8")
    assert done.returncode == 1 and "log.xlsx" in done.stderr
    assert not list(tmp_path.iterdir())


def test_train_writes_model_and_card(trained):
    """`co2twin train` leaves a .keras file and a card per kind, with the envelope of its data."""
    _, out = trained
    for kind in ("nn", "hybrid"):
        assert model_path(out, "fe_formate", kind).is_file()
        card = ModelCard.read(card_path(out, "fe_formate", kind))
        assert card.kind == kind and card.training["epochs_run"] <= 3
        assert [i.name for i in card.inputs] == list(VARIABLES["fe_formate"].features)


def test_train_refuses_unknown_variable(tmp_path):
    """An unknown variable name is named in the error, exit 1, before any training."""
    done = co2twin("train", "--variables", "voltage", "--out", str(tmp_path))
    assert done.returncode == 1 and "voltage" in done.stderr
    assert not list(tmp_path.iterdir())


def test_models_report_json_shape(trained):
    """--json gives {variable: {split: {kind: {mae, rmse, r2}}}} with test/extrapolation and three kinds."""
    log, out = trained
    done = co2twin("models", "report", "--data", str(log), "--dir", str(out), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert set(result) == {"fe_formate"}
    assert set(result["fe_formate"]) == {"test", "extrapolation"}
    for split in result["fe_formate"].values():
        assert set(split) == {"physics", "nn", "hybrid"}
        for metrics in split.values():
            assert set(metrics) == {"mae", "rmse", "r2"} and metrics["mae"] >= 0


def test_models_report_json_sections(trained):
    """--section joint gives the joint fidelity per kind and split; --section all every section;
    beside models other than the committed ones the shipped scenarios are not run."""
    log, out = trained
    done = co2twin("models", "report", "--data", str(log), "--dir", str(out), "--json",
                   "--section", "joint")
    assert done.returncode == 0, done.stderr
    joint = json.loads(done.stdout)
    assert set(joint) == {"physics", "nn", "hybrid"}
    for split in joint["hybrid"].values():
        assert split["bounded_share"]["any"] == 0.0 and set(split["balances"]) == {
            "charge", "carbon_formate", "carbon_outlet"}
    done = co2twin("models", "report", "--data", str(log), "--dir", str(out), "--json", "--section", "all")
    assert done.returncode == 0, done.stderr
    everything = json.loads(done.stdout)
    assert set(everything) == {"metrics", "targets", "joint", "scenarios", "literature"}
    assert everything["scenarios"] == {"folder": None, "runs": [], "skipped": (
        "the shipped scenarios run on the committed models, not on the --dir ones; give scenarios "
        "for these with --scenarios DIR")}
    assert {e["variable"] for e in everything["literature"]} == {"fe_formate", "cell_voltage"}
    done = co2twin("models", "report", "--json", "--section", "nope")
    assert done.returncode == 1 and "--section 'nope'" in done.stderr


def test_models_report_writes_parity_plots(trained, tmp_path):
    """The table report prints pass/fail per fidelity target and writes one PNG per variable."""
    log, out = trained
    done = co2twin("models", "report", "--data", str(log), "--dir", str(out), "--plots", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "hybrid R2 >= 0.98 on test" in done.stdout
    assert "joint fidelity" in done.stdout and "published figures of merit" in done.stdout
    png = tmp_path / "fe_formate.parity.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_models_show_lists_the_committed_hybrids():
    """`models show` on the baseline names a hybrid model file for every variable."""
    done = co2twin("models", "show", "scenarios/baseline.yaml")
    assert done.returncode == 0, done.stderr
    for variable in VARIABLES:
        assert f"{variable}.hybrid.keras" in done.stdout, done.stdout


def test_baseline_runs_on_committed_hybrids_without_tensorflow(tmp_path):
    """The README's first command's scenario uses the committed hybrid models and never imports TensorFlow."""
    code = (
        "import sys\n"
        "from co2twin.scenario import load_scenario, run\nfrom co2twin.surrogates import load_models\n"
        "sc = load_scenario('scenarios/baseline.yaml')\n"
        "kinds = {v: s.kind for v, s in load_models(sc).surrogates.items()}\n"
        "frame = run(sc, progress=False)\n"
        "print(kinds)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    kinds, modules = done.stdout.strip().splitlines()[-2:]
    assert kinds == str({v: "hybrid" for v in VARIABLES})
    assert modules == "[]"

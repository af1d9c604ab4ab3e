"""``co2twin models report`` writes parity plots only where ``--plots DIR`` says.

Each run scores the committed models on the default campaign, regenerated in
memory (about 10 s).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# plain, wide output whatever the terminal running the tests
ENV = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "COLUMNS")}
ENV.update(NO_COLOR="1", TERM="dumb", COLUMNS="200")


def _report(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "co2twin", "models", "report", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300, check=False, env=ENV)


def test_json_report_writes_nothing_into_the_working_directory(tmp_path):
    """`models report --json` prints the metrics and leaves no results/ folder (no plots) in the cwd."""
    done = _report("--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert set(json.loads(done.stdout)) >= {"cell_voltage", "fe_formate"}
    assert not (tmp_path / "results").exists()
    assert list(tmp_path.iterdir()) == []


def test_table_report_writes_no_plots_without_plots_option(tmp_path):
    """The table report without `--plots` prints its tables and writes no file at all."""
    done = _report(cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "test split" in done.stdout
    assert list(tmp_path.iterdir()) == []

"""Where results go: safe default names, scenario paths kept inside the working directory,
no file overwritten that co2twin did not write, suffixes that agree with the format.

Run through the command line, as a user runs it, in a fresh working directory.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from co2twin.outputs import default_results_file, output_file_problems, safe_name
from cosim.recorder import read_results

CLI = [sys.executable, "-m", "co2twin"]
ENV = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "COLUMNS")}
ENV.update(NO_COLOR="1", TERM="dumb")
BODY = "duration: 20\nstep: 1\ninputs:\n  current: 5\n"


def co2twin(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, encoding="utf-8",
                          errors="replace", timeout=120, env=ENV)


def files(root: Path) -> list[str]:
    """Every file and folder under ``root``, relative, sorted."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A working directory inside tmp_path, so that anything written beside it shows."""
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


# -- default names ----------------------------------------------------------------------
@pytest.mark.parametrize("name, expected", [
    ("../../../x", "results/x.parquet"),
    ("A/B test 1/2", "results/A_B_test_1_2.parquet"),
    ("/etc/passwd", "results/etc_passwd.parquet"),
    ("..", "results/scenario.parquet"),
    ("baseline.v2", "results/baseline.v2.parquet"),
    ("long_run_24h", "results/long_run_24h.parquet"),
])
def test_default_results_name_is_a_safe_file_in_the_results_folder(tmp_path, work, name, expected):
    """A scenario without output.file writes results/<safe name>.parquet: never outside the
    working directory, never nested folders made from the name."""
    (work / "s.yaml").write_text(f"name: {name!r}\n" + BODY)
    done = co2twin("run", "s.yaml", cwd=work)
    assert done.returncode == 0, done.stderr
    assert f"results: {expected}" in done.stdout
    assert files(work) == ["results", expected, "s.yaml"]
    assert files(tmp_path) == ["work", *(f"work/{f}" for f in files(work))]
    assert read_results(work / expected).attrs["scenario"]["name"] == name


def test_safe_name_rules():
    """Words of letters and digits joined by _, inner dots and dashes kept, nothing hidden."""
    assert safe_name("../../../x") == "x"
    assert safe_name("A/B test 1/2") == "A_B_test_1_2"
    assert safe_name(".hidden") == "hidden"
    assert safe_name("Größe v1.0") == "Größe_v1.0"
    assert safe_name("nul") == "nul_"  # a name Windows reserves
    assert len(safe_name("x" * 500)) == 100
    assert default_results_file("a/b") == Path("results/a_b.parquet")


# -- output.file stays inside the working directory ---------------------------------------
@pytest.mark.parametrize("file, fragment", [
    ("../escaped.parquet", "which leads out of it"),
    ("results/../../escaped.parquet", "which leads out of it"),
    ("..\\escaped.parquet", "which leads out of it"),
    ("/tmp/escaped.parquet", "found the absolute path"),
    ("C:/escaped.parquet", "found the absolute path"),
])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_output_file_outside_the_working_directory_is_refused(tmp_path, work, file, fragment,
                                                             command):
    """validate and run refuse it, naming the file and the field; nothing is written."""
    (work / "s.yaml").write_text(f"name: s\n{BODY}output: {{file: '{file}'}}\n")
    done = co2twin(command, "s.yaml", cwd=work)
    assert done.returncode == 1, done.stdout
    assert "s.yaml: output.file: expected a relative path inside the working directory" in done.stderr
    assert fragment in done.stderr and "Traceback" not in done.stderr
    assert files(tmp_path) == ["work", "work/s.yaml"]


def test_output_file_inside_the_working_directory_is_fine(work):
    """A path that goes down and up again but stays inside is accepted."""
    (work / "s.yaml").write_text(f"name: s\n{BODY}output: {{file: 'a/../b/r.csv'}}\n")
    done = co2twin("run", "s.yaml", cwd=work)
    assert done.returncode == 0, done.stderr
    assert (work / "b" / "r.csv").is_file() and (work / "b" / "r.csv.meta.json").is_file()


def test_minus_o_may_write_outside_the_working_directory(tmp_path, work):
    """-o is the user's own choice: any place they can write to."""
    (work / "s.yaml").write_text("name: s\n" + BODY)
    target = tmp_path / "elsewhere" / "r.parquet"
    done = co2twin("run", "s.yaml", "-o", str(target), cwd=work)
    assert done.returncode == 0, done.stderr
    assert len(read_results(target)) == 21


# -- suffix and format --------------------------------------------------------------------
@pytest.mark.parametrize("output, fragment", [
    ("{file: x.xlsx, format: parquet}", "expected a file ending in .parquet (the format is parquet), "
     "found '.xlsx' in 'x.xlsx'"),
    ("{file: x.csv, format: parquet}", "expected a file ending in .parquet (the format is parquet), "
     "found '.csv' in 'x.csv'"),
    ("{file: x.parquet, format: csv}", "expected a file ending in .csv (the format is csv)"),
    ("{file: x, format: parquet}", "expected a file ending in .parquet (the format is parquet), "
     "found no suffix in 'x'"),
])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_suffix_contradicting_the_format_is_an_error(tmp_path, work, output, fragment, command):
    """Not Parquet bytes under an .xlsx or .csv name: refused at validation, nothing written."""
    (work / "s.yaml").write_text(f"name: s\n{BODY}output: {output}\n")
    done = co2twin(command, "s.yaml", cwd=work)
    assert done.returncode == 1, done.stdout
    assert f"s.yaml: output.file: {fragment}" in done.stderr
    assert files(tmp_path) == ["work", "work/s.yaml"]


def test_output_file_problems_gathers_path_and_suffix():
    """Both problems of one output.file are reported together."""
    problems = output_file_problems("/data/run.xlsx", "parquet")
    assert len(problems) == 2
    assert output_file_problems("results/run.parquet", None) == []


# -- overwriting --------------------------------------------------------------------------
@pytest.mark.parametrize("name, content", [
    ("notes.parquet", b"my own notes, not Parquet"),
    ("table.parquet", None),  # a Parquet file, but not written by co2twin
    ("data.csv", b"a,b\n1,2\n"),  # a CSV without co2twin's sidecar
])
def test_a_file_co2twin_did_not_write_is_not_overwritten(work, name, content):
    """Refused with a clear message and exit 1; the file is untouched; --overwrite replaces it."""
    target = work / name
    if content is None:
        pd.DataFrame({"x": [1.0, 2.0]}).to_parquet(target)
    else:
        target.write_bytes(content)
    before = target.read_bytes()
    (work / "s.yaml").write_text("name: s\n" + BODY)
    done = co2twin("run", "s.yaml", "-o", name, cwd=work)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"{name}: exists and is a file co2twin did not write" in done.stderr
    assert "--overwrite" in done.stderr
    assert target.read_bytes() == before
    assert files(work) == sorted([name, "s.yaml"])
    done = co2twin("run", "s.yaml", "-o", name, "--overwrite", cwd=work)
    assert done.returncode == 0, done.stderr
    assert len(read_results(target)) == 21


def test_the_scenario_file_itself_is_never_overwritten(work):
    """`-o s.yaml`, or output.file naming a YAML file, cannot replace it."""
    scenario = work / "s.yaml"
    scenario.write_text("name: s\n" + BODY)
    text = scenario.read_text()
    done = co2twin("run", "s.yaml", "-o", "s.yaml", cwd=work)
    assert done.returncode == 1 and "s.yaml: expected a .parquet or .csv results file" in done.stderr
    scenario.write_text(text + "output: {file: s.yaml, format: parquet}\n")
    done = co2twin("run", "s.yaml", cwd=work)
    assert done.returncode == 1 and "output.file: expected a file ending in .parquet" in done.stderr
    assert files(work) == ["s.yaml"]


@pytest.mark.parametrize("name", ["r.parquet", "r.csv"])
def test_results_co2twin_wrote_are_replaced_without_asking(work, name):
    """Running the same scenario again replaces its earlier results (metadata says whose)."""
    (work / "s.yaml").write_text("name: s\n" + BODY)
    assert co2twin("run", "s.yaml", "-o", name, cwd=work).returncode == 0
    (work / "s.yaml").write_text("name: s\nduration: 30\nstep: 1\ninputs:\n  current: 5\n")
    done = co2twin("run", "s.yaml", "-o", name, cwd=work)
    assert done.returncode == 0, done.stderr
    assert len(read_results(work / name)) == 31

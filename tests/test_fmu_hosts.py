"""The FMU in FMI hosts nobody here wrote: libcosim (``libcosimpy``, FMI Library) and Ecos
(``ecospy``, fmi4c; in process and in its C++ ``proxyfmu`` process).

Each case runs tests/fmu_hosts.py in a fresh process (a host crash fails one test, not the
session). They reproduce ``co2twin run`` to 1e-9, take communication steps shorter than the
internal step, create and destroy the simulation twice in one process (issue 10,
defect 1: the second fmi2Instantiate crashed both hosts) and survive a bad input.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fmu_kit import OUTPUTS, reference

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="linux64 binaries only"),
    pytest.mark.filterwarnings("ignore::models.surrogate.EnvelopeWarning"),
]
RUNNER = Path(__file__).with_name("fmu_hosts.py")
HOSTS = ["libcosim", "ecos"]


def _run(host: str, case: str, fmu: Path, cwd: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-I", str(RUNNER), host, case, str(fmu), json.dumps(OUTPUTS)],
                          capture_output=True, text=True, timeout=600, cwd=cwd, check=False, env=env)
    assert proc.returncode == 0, f"{host} {case}: exit {proc.returncode}\n{proc.stderr[-4000:]}"
    found: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return found


def _close(got: list[float], row: Any) -> None:
    for name, value in zip(OUTPUTS, got):
        assert abs(value - row[name]) <= 1e-9, name


@pytest.mark.parametrize("host", HOSTS)
def test_reproduces_co2twin_run(host: str, fmu_path: Path, tmp_path: Path) -> None:
    """1 s steps, the current stepped to 6.5 A at 120 s: co2twin run's values at 120 s and 300 s."""
    found = _run(host, "run", fmu_path, tmp_path)
    assert found["ok"]
    frame = reference(300.0, current={"steps": [[0, 5.0], [120, 6.5]]})
    _close(found["at_120"], frame.loc[120.0])
    _close(found["at_300"], frame.iloc[-1])


@pytest.mark.parametrize("host", HOSTS)
def test_half_second_steps(host: str, fmu_path: Path, tmp_path: Path) -> None:
    """0.5 s communication steps over the 1 s internal step = co2twin run at 0.5 s."""
    found = _run(host, "half", fmu_path, tmp_path)
    assert found["ok"]
    _close(found["at_36"], reference(36.0, step=0.5).iloc[-1])


@pytest.mark.parametrize("host", HOSTS)
def test_two_simulations_one_after_another(host: str, fmu_path: Path, tmp_path: Path) -> None:
    """Create, run, destroy, twice in one process: identical runs, no crash."""
    runs = _run(host, "lifecycle", fmu_path, tmp_path)["runs"]
    assert len(runs) == 2 and runs[0] == runs[1]
    _close(runs[0], reference(60.0).iloc[-1])


@pytest.mark.parametrize("host", HOSTS)
def test_bad_input_refused_or_clamped(host: str, fmu_path: Path, tmp_path: Path) -> None:
    """-1 A after 10 s. error: the value is refused (libcosim stops its run there, as it does on
    fmi2Error; Ecos goes on with the FMU still stepping on the last good value). clamp: 0 A,
    fmi2Warning, the run goes on and clamped_inputs counts it."""
    refused = _run(host, "bad_error", fmu_path, tmp_path)
    assert refused["current"] == 5.0 and refused["clamped"] == 0
    if host == "libcosim":
        assert refused["ok"] is False and refused["time"] == 10.0
    else:
        assert refused["ok"] is True and refused["time"] == 20.0
        assert refused["voltage"] == pytest.approx(reference(20.0)["reactor.cell_voltage"].iloc[-1],
                                                   abs=1e-9)  # not frozen: it kept stepping
    clamped = _run(host, "bad_clamp", fmu_path, tmp_path)
    assert clamped["ok"] is True and clamped["time"] == 20.0
    assert clamped["current"] == 0.0 and clamped["clamped"] >= 1


def test_ecos_proxyfmu_process_reproduces_co2twin_run(fmu_path: Path, tmp_path: Path) -> None:
    """Ecos's proxyfmu (a C++ process, bare environment: the loader starts Python) runs the FMU:
    co2twin run's values."""
    import importlib.util

    # the wheel ships proxyfmu without its execute bit: a copy that has it, first on PATH
    # (found without importing ecospy, which would load Ecos into this process)
    spec = importlib.util.find_spec("ecospy")
    assert spec is not None and spec.origin, "ecospy is not installed (the test extra has it)"
    source = Path(spec.origin).parent / "binaries" / "proxyfmu"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shutil.copy(source, bin_dir / "proxyfmu")
    os.chmod(bin_dir / "proxyfmu", 0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    found = _run("ecos-proxy", "run", fmu_path, tmp_path, env=env)
    assert found["ok"]
    frame = reference(300.0, current={"steps": [[0, 5.0], [120, 6.5]]})
    _close(found["at_300"], frame.iloc[-1])

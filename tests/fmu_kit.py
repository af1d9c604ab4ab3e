"""Helpers of the FMU tests: references from ``co2twin run``, value references, the C host.

The FMU tests export ``scenarios/baseline.yaml`` (tests/conftest.py, ``fmu_path``) and
compare what hosts get with an in-process run of the same scenario.
"""
from __future__ import annotations

import json
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "scenarios" / "baseline.yaml"
#: outputs the tests compare (a spread of states: electrochemistry, heat, accumulation)
OUTPUTS = ["reactor.cell_voltage", "reactor.fe_formate", "reactor.formate_production",
           "reactor.anolyte_ph", "reactor.cell_temperature", "separation.tank_formate_conc"]
#: an environment with nothing of Python in it: no PYTHONPATH, PYTHONHOME, virtualenv
BARE_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


@lru_cache(maxsize=32)
def _reference(end: float, step: float | None, inputs: str) -> Any:
    from co2twin.scenario import load_scenario, run

    scenario = load_scenario(BASELINE)
    data = scenario.model_dump(by_alias=True)
    data["inputs"].update(json.loads(inputs))
    data["duration"] = end
    if step is not None:
        data["step"] = step
    scenario = type(scenario).model_validate({**data, "base_dir": scenario.base_dir,
                                              "source": scenario.source})
    return run(scenario, progress=False)


def reference(end: float, *, step: float | None = None, **inputs: Any) -> Any:
    """``co2twin run`` of the baseline to ``end`` s (at ``step`` s), some inputs replaced."""
    return _reference(float(end), step, json.dumps(inputs, sort_keys=True)).copy()


def started_slave(fmu_dir: Path, model: Any, name: str = "inst") -> Any:
    """An FMPy ``FMU2Slave`` of the unpacked FMU, instantiated and out of initialisation at t = 0."""
    from fmpy.fmi2 import FMU2Slave

    slave = FMU2Slave(guid=model.guid, unzipDirectory=str(fmu_dir),
                      modelIdentifier=model.coSimulation.modelIdentifier, instanceName=name)
    slave.instantiate()
    slave.setupExperiment(startTime=0.0)
    slave.enterInitializationMode()
    slave.exitInitializationMode()
    return slave


def vr(model: Any, name: str) -> int:
    """The value reference of variable ``name``."""
    return next(v.valueReference for v in model.modelVariables if v.name == name)


def vr_list(model: Any, names: list[str]) -> str:
    """Value references as the C host takes them: ``"10,12,..."``."""
    return ",".join(str(vr(model, n)) for n in names)


def host(fmi_host: Path, *args: Any, env: dict[str, str] | None = None, timeout: float = 300,
         check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the C host (tests/fmi_host.c) with ``args``; by default it must exit 0."""
    proc = subprocess.run([str(fmi_host), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, check=False, env=env)
    if check:
        assert proc.returncode == 0, f"fmi_host {' '.join(map(str, args))}: exit {proc.returncode}\n" \
                                     f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc


def results(stdout: str, label: str) -> dict[int, float]:
    """``{vr: value}`` of the C host's ``LABEL vr value`` lines."""
    out = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == label:
            out[int(parts[1])] = float(parts[2])
    return out


def statuses(stdout: str) -> list[tuple[str, str]]:
    """The C host's ``NAME value`` lines, in order."""
    return [(p[0], p[1]) for p in (line.split() for line in stdout.splitlines()) if len(p) == 2]

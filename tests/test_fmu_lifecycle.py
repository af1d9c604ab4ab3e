"""Issue 10, defect 1: any number of instantiate/free cycles in one process, each from a fresh
unpack folder that the host deletes after use, and several instances at once, all give the
same results. Before, the second fmi2Instantiate failed (the FMU's packages stayed in
sys.modules, pointing into the first, deleted folder) and hosts crashed.

::

    one process:  unpack d1 -> instantiate -> run -> free -> delete d1
                  unpack d2 -> instantiate -> run (kept)
                  unpack d3 -> instantiate -> run      (two live instances, two folders)
                  free d2 instance, delete d2 -> reset d3 instance -> run -> free, delete d3
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fmu_kit import BARE_ENV, OUTPUTS, host, reference, results, vr, vr_list

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="linux64 binaries only")


def test_c_host_reinstantiates_from_fresh_folders(fmi_host: Path, fmu_unzip, fmu_model) -> None:
    """Three unpack folders in one C process, each deleted after use: four identical runs."""
    folders = [fmu_unzip(f"d{i}") for i in (1, 2, 3)]
    proc = host(fmi_host, "lifecycle", fmu_model.guid, 200, 1.0, vr_list(fmu_model, OUTPUTS), *folders,
                env=BARE_ENV)
    runs = [results(proc.stdout, f"R{i}") for i in (1, 2, 3, 4)]
    assert all(r == runs[0] for r in runs), runs
    ref = reference(200.0).iloc[-1]
    for name in OUTPUTS:
        assert abs(runs[0][vr(fmu_model, name)] - ref[name]) <= 1e-9, name
    assert not any(f.exists() for f in folders)  # the host really deleted them


_SIMULATE_TWICE = r"""
import json, sys
import fmpy
names = json.loads(sys.argv[2])
runs = []
for _ in range(3):   # each call unpacks into a new temporary folder and deletes it afterwards
    result = fmpy.simulate_fmu(sys.argv[1], stop_time=60.0, output_interval=1.0, output=names)
    runs.append([float(result[n][-1]) for n in names])
print(json.dumps({"runs": runs, "cosim_imported_by_host": "cosim" in sys.modules}))
"""


def test_simulate_fmu_repeatedly_in_one_process(fmu_path: Path, tmp_path: Path) -> None:
    """FMPy's simulate_fmu three times in a fresh process that never imports cosim itself."""
    proc = subprocess.run([sys.executable, "-c", _SIMULATE_TWICE, str(fmu_path), json.dumps(OUTPUTS)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    runs = found["runs"]
    assert runs[0] == runs[1] == runs[2]
    ref = reference(60.0).iloc[-1]
    for name, value in zip(OUTPUTS, runs[0]):
        assert abs(value - ref[name]) <= 1e-9, name


_TWO_FOLDERS = r"""
import json, shutil, sys
from fmpy import read_model_description
from fmpy.fmi2 import FMU2Slave
first, second, guid = sys.argv[1], sys.argv[2], sys.argv[3]
vrs = json.loads(sys.argv[4])
def start(folder, name):
    s = FMU2Slave(guid=guid, unzipDirectory=folder, modelIdentifier="Co2Twin", instanceName=name)
    s.instantiate(); s.setupExperiment(startTime=0.0); s.enterInitializationMode()
    s.exitInitializationMode()
    return s
a = start(first, "a")
b = start(second, "b")            # two live instances from two folders
for k in range(30):
    a.doStep(float(k), 1.0); b.doStep(float(k), 1.0)
ra = a.getReal(vrs)
a.terminate(); a.freeInstance()
shutil.rmtree(first)              # the first folder is gone; b goes on, reset and all
b.reset(); b.setupExperiment(startTime=0.0); b.enterInitializationMode(); b.exitInitializationMode()
for k in range(30):
    b.doStep(float(k), 1.0)
rb = b.getReal(vrs)
c = start(second, "c")            # and a third instance from the second folder
for k in range(30):
    c.doStep(float(k), 1.0)
print(json.dumps([ra, rb, c.getReal(vrs)]))
"""


def test_two_folders_live_at_once_then_one_deleted(fmu_unzip, fmu_model, tmp_path: Path) -> None:
    """Instances from two unpack folders side by side; after one folder is deleted the other
    instance resets and a new one starts, all with the same results."""
    first, second = fmu_unzip("first"), fmu_unzip("second")
    vrs = [vr(fmu_model, n) for n in OUTPUTS]
    proc = subprocess.run([sys.executable, "-c", _TWO_FOLDERS, str(first), str(second), fmu_model.guid,
                           json.dumps(vrs)], capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    ra, rb, rc = json.loads(proc.stdout.strip().splitlines()[-1])
    assert ra == rb == rc
    ref = reference(30.0).iloc[-1]
    for name, value in zip(OUTPUTS, ra):
        assert abs(value - ref[name]) <= 1e-9, name

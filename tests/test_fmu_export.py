"""The exported FMU (``co2twin fmu build``): FMPy, a C host, validation, state, the CLI.

Lifecycle, communication steps, statuses, serialised states, the self-contained bundle and
third-party hosts have files of their own (tests/test_fmu_*.py).
"""
from __future__ import annotations

import math
import subprocess
import sys
import zipfile
from pathlib import Path

import fmpy
import numpy as np
import pytest

from fmu_kit import BARE_ENV, OUTPUTS, host, reference, results, started_slave, vr, vr_list

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="linux64 binaries only")


def test_model_description_is_valid(fmu_path: Path, fmu_model) -> None:
    """FMPy validates it; units, input bounds, capabilities and log categories are declared."""
    assert fmpy.validation.validate_fmu(str(fmu_path)) == []
    variables = {v.name: v for v in fmu_model.modelVariables}
    assert variables["current"].unit == "A" and variables["reactor.cell_voltage"].unit == "V"
    assert variables["ambient_temperature"].unit == "degC"
    assert variables["reactor.specific_energy"].unit == "kWh/kmol"
    assert float(variables["current"].min) == 0.0 and float(variables["current"].max) > 5.0
    assert {v.causality for v in fmu_model.modelVariables} == {"input", "output", "parameter"}
    cs = fmu_model.coSimulation
    assert cs.canGetAndSetFMUstate and cs.canSerializeFMUstate
    assert cs.canHandleVariableCommunicationStepSize
    assert {c.name for c in fmu_model.logCategories} == {
        "logEvents", "logStatusWarning", "logStatusError", "logStatusFatal"}
    names = zipfile.ZipFile(fmu_path).namelist()
    assert "binaries/linux64/Co2Twin_pythonfmu.so" in names
    assert "resources/models/trained/cell_voltage.hybrid.keras" in names
    assert "resources/co2twin_build.json" in names


def test_simulate_fmu_with_input_table_matches_run(fmu_path: Path) -> None:
    """FMPy's simulate_fmu with a current table reproduces `co2twin run` to 1e-9."""
    steps = [[0, 5.0], [120, 6.5], [240, 3.0]]
    end = 360.0
    table = np.array([(0.0, 5.0), (120.0, 5.0), (120.0, 6.5), (240.0, 6.5), (240.0, 3.0), (end, 3.0)],
                     dtype=[("time", np.float64), ("current", np.float64)])
    result = fmpy.simulate_fmu(str(fmu_path), stop_time=end, output_interval=1.0, input=table,
                               output=OUTPUTS)
    frame = reference(end, current={"steps": steps})
    assert np.allclose(result["time"], frame.index.to_numpy(), rtol=0, atol=1e-12)
    for name in OUTPUTS:
        np.testing.assert_allclose(result[name], frame[name].to_numpy(), rtol=0, atol=1e-9,
                                   err_msg=name)




def test_state_rolls_back_exactly(fmu_dir: Path, fmu_model) -> None:
    """fmi2GetFMUstate/fmi2SetFMUstate: a branch replayed from a saved state is bit-identical."""
    slave = started_slave(fmu_dir, fmu_model)
    outs = [vr(fmu_model, n) for n in OUTPUTS]
    current = vr(fmu_model, "current")
    t = 0.0
    for _ in range(50):
        slave.doStep(t, 1.0)
        t += 1.0
    state = slave.getFMUstate()
    t0 = t

    def branch() -> list[float]:
        tt = t0
        slave.setReal([current], [6.0])
        for _ in range(30):
            slave.doStep(tt, 1.0)
            tt += 1.0
        return slave.getReal(outs)

    first = branch()
    slave.setFMUstate(state)
    slave.setReal([current], [5.0])
    assert branch() == first
    slave.freeFMUstate(state)
    slave.terminate()
    slave.freeInstance()


def test_c_host_two_instances_and_reset(fmi_host: Path, fmu_dir: Path, fmu_model) -> None:
    """A C process loads the FMU (RTLD_LOCAL, as FMIL): two instances, 1,000 steps, reset, rerun."""
    outs = [vr(fmu_model, n) for n in OUTPUTS]
    proc = host(fmi_host, "run", fmu_dir, fmu_model.guid, 1000, 1.0, f"{vr(fmu_model, 'current')}=6.0",
                vr_list(fmu_model, OUTPUTS))
    a, b, a2 = (results(proc.stdout, label) for label in ("A", "B", "A2"))
    assert "NAN 3" in proc.stdout.splitlines(), proc.stdout  # fmi2Error for a NaN input
    ref_a = reference(1000.0, current=6.0).iloc[-1]
    ref_b = reference(1000.0).iloc[-1]
    for name, v in zip(OUTPUTS, outs):
        assert abs(a[v] - ref_a[name]) <= 1e-9, name
        assert abs(b[v] - ref_b[name]) <= 1e-9, name
        assert a2[v] == a[v], name


def test_fmu_never_imports_tensorflow(fmu_path: Path, tmp_path: Path) -> None:
    """A fresh FMPy process running the FMU never loads TensorFlow or Keras."""
    code = ("import sys, fmpy; fmpy.simulate_fmu(sys.argv[1], stop_time=5.0, output_interval=1.0); "
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code, str(fmu_path)], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-2:] == ["False", "False"]


def test_step_larger_than_internal_step(fmu_path: Path) -> None:
    """Communication steps of 10 internal steps land on `co2twin run`'s grid points exactly."""
    result = fmpy.simulate_fmu(str(fmu_path), stop_time=300.0, output_interval=10.0,
                               output=["reactor.cell_voltage"])
    frame = reference(300.0)
    np.testing.assert_allclose(result["reactor.cell_voltage"],
                               frame["reactor.cell_voltage"].to_numpy()[::10], rtol=0, atol=1e-9)


def test_build_reports_missing_scenario(tmp_path: Path) -> None:
    """A missing scenario file is a CosimError naming it, and no FMU is written."""
    from cosim.errors import CosimError
    from fmu.build import build_fmu

    with pytest.raises(CosimError, match="missing.yaml"):
        build_fmu(tmp_path / "missing.yaml", tmp_path / "x.fmu")
    assert not (tmp_path / "x.fmu").exists()


def test_parameters_rebuild_the_simulation(fmu_dir: Path, fmu_model) -> None:
    """Area, internal step and a model choice set in initialisation mode = the same scenario run."""
    from fmpy.fmi2 import FMU2Slave

    from co2twin.scenario import load_scenario, run
    from fmu_kit import BASELINE

    slave = FMU2Slave(guid=fmu_model.guid, unzipDirectory=str(fmu_dir),
                      modelIdentifier=fmu_model.coSimulation.modelIdentifier, instanceName="params")
    slave.instantiate()
    slave.setupExperiment(startTime=0.0)
    slave.enterInitializationMode()
    slave.setReal([vr(fmu_model, "reactor.area_cm2"), vr(fmu_model, "step_size")], [30.0, 2.0])
    slave.setString([vr(fmu_model, "models.cell_voltage")], ["physics"])
    slave.exitInitializationMode()
    for k in range(50):
        slave.doStep(2.0 * k, 2.0)
    got = slave.getReal([vr(fmu_model, n) for n in OUTPUTS])
    slave.terminate()
    slave.freeInstance()
    scenario = load_scenario(BASELINE)
    data = scenario.model_dump(by_alias=True)
    data.update(duration=100.0, step=2.0, plant={"reactor": {"area_cm2": 30.0}})
    data["models"]["cell_voltage"] = "physics"
    frame = run(type(scenario).model_validate({**data, "base_dir": scenario.base_dir}), progress=False)
    np.testing.assert_allclose(got, frame[OUTPUTS].iloc[-1].to_numpy(), rtol=0, atol=1e-9)


def test_loader_reports_missing_libpython(fmi_host: Path, fmu_dir: Path, fmu_model, tmp_path: Path) -> None:
    """A libpython that cannot be loaded fails fmi2Instantiate with a message naming the override."""
    missing = tmp_path / "no_libpython.so"
    proc = host(fmi_host, "run", fmu_dir, fmu_model.guid, 1, 1.0, "", "10", check=False,
                env={**BARE_ENV, "CO2TWIN_LIBPYTHON": str(missing)})
    assert proc.returncode == 3
    assert "logStatusError] co2twin loader: no shared libpython of CPython 3." in proc.stderr
    assert str(missing) in proc.stderr and "set CO2TWIN_LIBPYTHON" in proc.stderr


def test_cli_build_errors(tmp_path: Path) -> None:
    """(`co2twin fmu modelica` is tested in tests/test_fmu_openmodelica.py.)"""
    from typer.testing import CliRunner

    from co2twin.cli.fmu import fmu_app

    result = CliRunner().invoke(fmu_app, ["build", "--scenario", str(tmp_path / "missing.yaml"),
                                          "-o", str(tmp_path / "x.fmu")])
    assert result.exit_code == 1 and "missing.yaml" in result.output
    assert not (tmp_path / "x.fmu").exists()


def test_c_host_soak_100k_steps_without_memory_growth(fmi_host: Path, fmu_dir: Path, fmu_model) -> None:
    """100,000 doSteps of 1 s with setReal/getReal each step: RSS grows < 5 MB from 10 % to 100 %."""
    proc = host(fmi_host, "soak", fmu_dir, fmu_model.guid, 100000, vr(fmu_model, "current"),
                vr_list(fmu_model, OUTPUTS), timeout=600)
    rss = {int(p[1]): int(p[2]) for p in (line.split() for line in proc.stdout.splitlines())
           if len(p) == 3 and p[0] == "RSS"}
    growth_kb = rss[100] - rss[10]
    seconds = next(float(line.split()[1]) for line in proc.stdout.splitlines()
                   if line.startswith("SECONDS"))
    print(f"soak: 100000 doSteps in {seconds:.1f} s, RSS {rss[10]} -> {rss[100]} kB")
    assert growth_kb < 5 * 1024, f"RSS grew {growth_kb} kB over 90,000 steps"
    values = list(results(proc.stdout, "OUT").values())
    assert len(values) == len(OUTPUTS) and all(math.isfinite(v) for v in values)

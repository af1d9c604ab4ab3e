"""The exported FMU (``co2twin fmu build``): FMPy, a C host, validation, robustness, state."""
from __future__ import annotations

import math
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import fmpy  # noqa: E402
import numpy as np
import pytest
import pythonfmu  # noqa: E402,F401

from co2twin.scenario import load_scenario, run

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "scenarios" / "baseline.yaml"
OUTPUTS = ["reactor.cell_voltage", "reactor.fe_formate", "reactor.formate_production",
           "reactor.anolyte_ph", "reactor.cell_temperature", "separation.tank_formate_conc"]
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="linux64 binaries only")


@pytest.fixture(scope="session")
def fmu_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The baseline scenario's FMU, built once per session."""
    from fmu.build import build_fmu

    return build_fmu(BASELINE, tmp_path_factory.mktemp("fmu") / "co2twin.fmu")


@pytest.fixture(scope="session")
def model(fmu_path: Path):
    return fmpy.read_model_description(str(fmu_path))


@pytest.fixture(scope="session")
def unzipped(fmu_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The FMU extracted once, as a C host sees it."""
    folder = tmp_path_factory.mktemp("fmu_unzipped")
    with zipfile.ZipFile(fmu_path) as z:
        z.extractall(folder)
    return folder


@pytest.fixture(scope="session")
def host(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/fmi_host.c compiled with the system compiler."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.fail("the C host test needs gcc (`.ci/run` installs it)")
    host = tmp_path_factory.mktemp("host") / "fmi_host"
    subprocess.run([gcc, "-O1", "-o", str(host), str(ROOT / "tests" / "fmi_host.c"), "-ldl"],
                   check=True)
    return host


def _reference(end: float, **inputs: object):
    """In-process run of the baseline to ``end`` s with some inputs replaced."""
    scenario = load_scenario(BASELINE)
    data = scenario.model_dump(by_alias=True)
    data["inputs"].update(inputs)
    scenario = type(scenario).model_validate({**data, "duration": end, "base_dir": scenario.base_dir,
                                              "source": scenario.source})
    return run(scenario, progress=False)


def _vr(model, name: str) -> int:
    return next(v.valueReference for v in model.modelVariables if v.name == name)


def test_model_description_is_valid(fmu_path: Path, model) -> None:
    assert fmpy.validation.validate_fmu(str(fmu_path)) == []
    units = {v.name: v.unit for v in model.modelVariables}
    assert units["current"] == "A" and units["reactor.cell_voltage"] == "V"
    assert units["ambient_temperature"] == "degC" and units["reactor.specific_energy"] == "kWh/kmol"
    assert {v.causality for v in model.modelVariables} == {"input", "output", "parameter"}
    assert model.coSimulation.canGetAndSetFMUstate
    names = zipfile.ZipFile(fmu_path).namelist()
    assert "binaries/linux64/Co2Twin_pythonfmu.so" in names
    assert "resources/models/trained/cell_voltage.hybrid.keras" in names
    assert "resources/co2twin_build.json" in names


def test_simulate_fmu_with_input_table_matches_run(fmu_path: Path) -> None:
    steps = [[0, 5.0], [120, 6.5], [240, 3.0]]
    end = 360.0
    table = np.array([(0.0, 5.0), (120.0, 5.0), (120.0, 6.5), (240.0, 6.5), (240.0, 3.0), (end, 3.0)],
                     dtype=[("time", np.float64), ("current", np.float64)])
    result = fmpy.simulate_fmu(str(fmu_path), stop_time=end, output_interval=1.0, input=table,
                               output=OUTPUTS)
    frame = _reference(end, current={"steps": steps})
    assert np.allclose(result["time"], frame.index.to_numpy(), rtol=0, atol=1e-12)
    for name in OUTPUTS:
        np.testing.assert_allclose(result[name], frame[name].to_numpy(), rtol=0, atol=1e-9,
                                   err_msg=name)


def _slave(fmu_path: Path, model, name: str = "inst"):
    from fmpy.fmi2 import FMU2Slave

    slave = FMU2Slave(guid=model.guid, unzipDirectory=str(fmpy.extract(str(fmu_path))),
                      modelIdentifier=model.coSimulation.modelIdentifier, instanceName=name)
    slave.instantiate()
    slave.setupExperiment(startTime=0.0)
    slave.enterInitializationMode()
    slave.exitInitializationMode()
    return slave


def test_state_rolls_back_exactly(fmu_path: Path, model) -> None:
    slave = _slave(fmu_path, model)
    outs = [_vr(model, n) for n in OUTPUTS]
    current = _vr(model, "current")
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


def test_bad_inputs_give_error_status_not_crash(fmu_path: Path, model) -> None:
    from fmpy.fmi1 import FMICallException

    slave = _slave(fmu_path, model)
    current = _vr(model, "current")
    with pytest.raises(FMICallException) as err:
        slave.setReal([current], [math.nan])
    assert err.value.status == 3  # fmi2Error
    slave.setReal([current], [-1.0])  # out of bounds: refused, the next step is discarded
    with pytest.raises(FMICallException) as err:
        slave.doStep(0.0, 1.0)
    assert err.value.status == 2  # fmi2Discard
    slave.doStep(0.0, 1.0)  # still usable, with the last good value
    assert slave.getReal([current]) == [5.0]
    slave.terminate()
    slave.freeInstance()


def test_c_host_two_instances_and_reset(host: Path, unzipped: Path, model) -> None:
    """A C process loads the FMU (RTLD_LOCAL, as FMIL): two instances, 1,000 steps, reset, rerun."""
    outs = [_vr(model, n) for n in OUTPUTS]
    proc = subprocess.run(
        [str(host), str(unzipped), model.guid, "1000", "1.0", f"{_vr(model, 'current')}=6.0",
         ",".join(map(str, outs))],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    got: dict[str, dict[int, float]] = {}
    lines = proc.stdout.split("\n")
    for line in lines:
        parts = line.split()
        if len(parts) == 3:
            got.setdefault(parts[0], {})[int(parts[1])] = float(parts[2])
    assert "NAN 3" in lines, proc.stdout  # fmi2Error for a NaN input
    a = _reference(1000.0, current=6.0).iloc[-1]
    b = _reference(1000.0).iloc[-1]
    for name, vr in zip(OUTPUTS, outs):
        assert abs(got["A"][vr] - a[name]) <= 1e-9, name
        assert abs(got["B"][vr] - b[name]) <= 1e-9, name
        assert got["A2"][vr] == got["A"][vr], name


def test_fmu_never_imports_tensorflow(fmu_path: Path) -> None:
    code = ("import sys, fmpy; fmpy.simulate_fmu(sys.argv[1], stop_time=5.0, output_interval=1.0); "
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code, str(fmu_path)], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-2:] == ["False", "False"]


def test_step_larger_than_internal_step(fmu_path: Path) -> None:
    result = fmpy.simulate_fmu(str(fmu_path), stop_time=300.0, output_interval=10.0,
                               output=["reactor.cell_voltage"])
    frame = _reference(300.0)
    np.testing.assert_allclose(result["reactor.cell_voltage"],
                               frame["reactor.cell_voltage"].to_numpy()[::10], rtol=0, atol=1e-9)


def test_build_reports_missing_scenario(tmp_path: Path) -> None:
    from cosim.errors import CosimError
    from fmu.build import build_fmu

    with pytest.raises(CosimError):
        build_fmu(tmp_path / "missing.yaml", tmp_path / "x.fmu")


def test_parameters_rebuild_the_simulation(fmu_path: Path, model) -> None:
    from fmpy.fmi2 import FMU2Slave

    slave = FMU2Slave(guid=model.guid, unzipDirectory=str(fmpy.extract(str(fmu_path))),
                      modelIdentifier=model.coSimulation.modelIdentifier, instanceName="params")
    slave.instantiate()
    slave.setupExperiment(startTime=0.0)
    slave.enterInitializationMode()
    slave.setReal([_vr(model, "reactor.area_cm2"), _vr(model, "step_size")], [30.0, 2.0])
    slave.setString([_vr(model, "models.cell_voltage")], ["physics"])
    slave.exitInitializationMode()
    for k in range(50):
        slave.doStep(2.0 * k, 2.0)
    got = slave.getReal([_vr(model, n) for n in OUTPUTS])
    slave.terminate()
    slave.freeInstance()
    scenario = load_scenario(BASELINE)
    data = scenario.model_dump(by_alias=True)
    data.update(duration=100.0, step=2.0, plant={"reactor": {"area_cm2": 30.0}})
    data["models"]["cell_voltage"] = "physics"
    frame = run(type(scenario).model_validate({**data, "base_dir": scenario.base_dir}), progress=False)
    np.testing.assert_allclose(got, frame[OUTPUTS].iloc[-1].to_numpy(), rtol=0, atol=1e-9)


def test_loader_reports_missing_libpython(host: Path, unzipped: Path, model, tmp_path: Path) -> None:
    """A libpython that cannot be loaded fails fmi2Instantiate with a message naming the override."""
    proc = subprocess.run([str(host), str(unzipped), model.guid, "1", "1.0", "", "10"],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={"CO2TWIN_LIBPYTHON": str(tmp_path / "no_libpython.so")})
    assert proc.returncode == 3
    assert "cannot load libpython" in proc.stderr and "CO2TWIN_LIBPYTHON" in proc.stderr


def test_cli_build_errors(tmp_path: Path) -> None:
    """(`co2twin fmu modelica` is tested in tests/test_fmu_openmodelica.py.)"""
    from typer.testing import CliRunner

    from co2twin.cli.fmu import fmu_app

    result = CliRunner().invoke(fmu_app, ["build", "--scenario", str(tmp_path / "missing.yaml"),
                                          "-o", str(tmp_path / "x.fmu")])
    assert result.exit_code == 1 and "missing.yaml" in result.output
    assert not (tmp_path / "x.fmu").exists()


def test_c_host_soak_100k_steps_without_memory_growth(host: Path, unzipped: Path, model) -> None:
    """100,000 doSteps of 1 s with setReal/getReal each step: RSS grows < 5 MB from 10 % to 100 %."""
    outs = ",".join(str(_vr(model, n)) for n in OUTPUTS)
    proc = subprocess.run(
        [str(host), str(unzipped), model.guid, "soak", "100000", str(_vr(model, "current")), outs],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rss = {int(p[1]): int(p[2]) for p in (line.split() for line in proc.stdout.splitlines())
           if len(p) == 3 and p[0] == "RSS"}
    growth_kb = rss[100] - rss[10]
    seconds = next(float(line.split()[1]) for line in proc.stdout.splitlines()
                   if line.startswith("SECONDS"))
    print(f"soak: 100000 doSteps in {seconds:.1f} s, RSS {rss[10]} -> {rss[100]} kB")
    assert growth_kb < 5 * 1024, f"RSS grew {growth_kb} kB over 90,000 steps"
    values = [float(p[2]) for p in (line.split() for line in proc.stdout.splitlines())
              if len(p) == 3 and p[0] == "OUT"]
    assert len(values) == len(OUTPUTS) and all(math.isfinite(v) for v in values)

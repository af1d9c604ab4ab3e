"""FMU components in scenario files: wiring, checks, the CLI, and the exported twin round trip."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import fmpy  # noqa: E402,F401
import numpy as np
import pandas as pd
import pytest
import pythonfmu  # noqa: E402
import yaml

from cosim.errors import FMUError, ScenarioError
from co2twin.scenario import json_schema, load_scenario, run
from fmu.slave import OUTPUT_SIGNALS

ROOT = Path(__file__).resolve().parent.parent
PI_SCRIPT = Path(__file__).parent / "fmus" / "pi_controller.py"
pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="linux64 binaries only"),
    pytest.mark.filterwarnings("ignore::models.surrogate.EnvelopeWarning"),
]

#: the plant inputs a closed-loop scenario drives (the current comes from the controller)
PLANT_INPUTS = {
    "gas_flow": 100.0, "co2_fraction": 100.0, "anolyte_flow": 5.57, "catholyte_flow": 5.57,
    "anolyte_conc": 1.0, "catholyte_conc": 1.0, "humidity": 90.0, "ambient_temperature": 25.0,
}
CURRENT_STEPS = [[0, 5.0], [120, 6.5], [240, 3.0]]


@pytest.fixture(scope="session")
def pi_controller_fmu(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The PI controller FMU of tests/fmus/pi_controller.py, built once per session."""
    dest = tmp_path_factory.mktemp("pi_fmu")
    return Path(pythonfmu.FmuBuilder.build_FMU(
        PI_SCRIPT, dest=dest, canGetAndSetFMUstate=True, canSerializeFMUstate=True))


@pytest.fixture(scope="session")
def twin_fmu(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The baseline scenario exported as an FMU (``co2twin fmu build``), built once per session."""
    from fmu.build import build_fmu

    return build_fmu(ROOT / "scenarios" / "baseline.yaml",
                     tmp_path_factory.mktemp("twin_fmu") / "co2twin.fmu")


@pytest.fixture
def folder(tmp_path: Path, pi_controller_fmu: Path) -> Path:
    """A scenario folder holding ``fmus/pi.fmu``."""
    (tmp_path / "fmus").mkdir()
    shutil.copy(pi_controller_fmu, tmp_path / "fmus" / "pi.fmu")
    return tmp_path


def write(folder: Path, data: dict[str, Any], name: str = "scenario.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def closed_loop(**extra: Any) -> dict[str, Any]:
    """The plant with the PI controller setting the current from the delayed cell voltage."""
    data: dict[str, Any] = {
        "name": "pi_loop", "duration": "10 min", "step": 1.0,
        "components": {"pi": {"type": "fmu", "path": "fmus/pi.fmu",
                              "parameters": {"kp": 1.0, "ki": 0.2}}},
        "connections": [["reactor.cell_voltage", "pi.measurement", "delayed"],
                        ["pi.control", "power.current_setpoint"]],
        "inputs": {**PLANT_INPUTS, "pi.setpoint": 3.6},
    }
    data.update(extra)
    return data


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    return info.value.problems


def test_pi_controller_holds_the_voltage(folder: Path) -> None:
    """The PI FMU closes the voltage loop; its signals are recorded like any other."""
    frame = run(write(folder, closed_loop()), progress=False)
    assert "pi.control" in frame.columns and "pi.setpoint" in frame.columns
    np.testing.assert_allclose(frame["power.current"], frame["pi.control"], rtol=1e-12)
    late = frame.loc[300.0:, "reactor.cell_voltage"]
    assert late.between(3.55, 3.65).all()
    assert abs(frame["reactor.cell_voltage"].iloc[-1] - 3.6) < 0.01


def test_pi_controller_events_limits_and_record(folder: Path) -> None:
    """Events, limits and record patterns accept the FMU's ports and parameters."""
    data = closed_loop(
        events=[{"at": 120, "type": "set", "target": "pi.setpoint", "value": 3.4, "unit": "V"},
                {"at": 60, "type": "parameter", "target": "pi.kp", "value": 2.0}],
        limits={"pi.control": {"high": 20.0}},
        record={"signals": ["reactor.cell_voltage", "pi.*"]},
    )
    frame = run(write(folder, data), progress=False)
    assert set(frame.columns) == {"reactor.cell_voltage", "pi.control", "pi.setpoint",
                                  # limit flags of the limited signals recorded
                                  "pi.control:outside_limits", "reactor.cell_voltage:outside_limits"}
    assert frame.loc[100.0, "pi.setpoint"] == 3.6 and frame.loc[130.0, "pi.setpoint"] == 3.4
    assert abs(frame["reactor.cell_voltage"].iloc[-1] - 3.4) < 0.01


def test_pi_controller_through_the_cli(folder: Path) -> None:
    """``co2twin run`` runs a scenario with an FMU component and writes its signals."""
    path = write(folder, closed_loop())
    out = folder / "out.parquet"
    command = [sys.executable, "-m", "co2twin.cli", "run", str(path), "-o", str(out), "--no-progress"]
    done = subprocess.run(command, check=False, cwd=ROOT, capture_output=True, encoding="utf-8",
                          timeout=600)
    assert done.returncode == 0, done.stderr
    frame = pd.read_parquet(out)
    assert "pi.control" in frame.columns
    assert abs(frame["reactor.cell_voltage"].iloc[-1] - 3.6) < 0.01


def test_exported_twin_round_trips(tmp_path: Path, twin_fmu: Path) -> None:
    """The exported twin imported as the only component equals the native run to 1e-9."""
    shutil.copy(twin_fmu, tmp_path / "co2twin.fmu")
    inputs: dict[str, Any] = {**PLANT_INPUTS, "current": {"steps": CURRENT_STEPS}}
    common = {"duration": "6 min", "step": 1.0, "seed": 1}
    native = write(tmp_path, {"name": "native", **common, "inputs": inputs}, "native.yaml")
    imported = write(tmp_path, {
        "name": "imported", **common, "plant": False,
        "components": {"twin": {"type": "fmu", "path": "co2twin.fmu"}},
        "inputs": {f"twin.{k}": v for k, v in inputs.items()},
    }, "imported.yaml")
    ours, theirs = run(imported, progress=False), run(native, progress=False)
    np.testing.assert_array_equal(ours.index, theirs.index)
    outputs = [c for c in theirs.columns if c.replace(".", "_", 1) in
               {c.removeprefix("twin.") for c in ours.columns}]
    assert "reactor.cell_voltage" in outputs and len(outputs) == len(OUTPUT_SIGNALS)
    for name in outputs:
        np.testing.assert_allclose(ours["twin." + name.replace(".", "_", 1)], theirs[name],
                                   rtol=0, atol=1e-9, err_msg=name)


def test_every_problem_is_named_at_once(folder: Path) -> None:
    """Missing and non-FMU files, a name clash, bad ports, units and driving are all reported."""
    (folder / "notes.fmu").write_text("not a zip archive")
    data = closed_loop()
    data["components"].update({
        "ghost": {"type": "fmu", "path": "fmus/ghost.fmu"},
        "junk": {"type": "fmu", "path": "notes.fmu"},
        "reactor": {"type": "fmu", "path": "fmus/pi.fmu"},
    })
    data["components"]["pi"]["parameters"]["kd"] = 1.0
    data["connections"] += [
        ["reactor.current_density", "pi.setpoint"],
        ["pi.control", "pi.nope"],
        ["pi.control", "power.current_setpoint", "later"],
    ]
    data["inputs"]["pi.measurement"] = 3.0
    found = problems_of(write(folder, data))
    expected = {
        "components.ghost.path": "no such FMU file",
        "components.junk.path": "not an FMU",
        "components.reactor": "the plant already has a component named 'reactor'",
        "components.pi.parameters.kd": "unknown parameter",
        "connections[2]": "unit mismatch",
        "connections[3]": "pi has no input port 'nope'",
        "connections[4]": "expected a list [from, to] or [from, to, delayed]",
        "inputs.pi.measurement": "fed by another component",
    }
    for where, text in expected.items():
        assert any(p.startswith(where + ":") and text in p for p in found), (where, found)
    assert not any(p.startswith("inputs.pi.setpoint") for p in found), found
    assert len(found) == len(expected), found


def test_connection_problems(folder: Path) -> None:
    """An input fed twice and an undelayed cycle are connection problems."""
    data = closed_loop(connections=[
        ["reactor.cell_voltage", "pi.measurement"],
        ["pi.control", "power.current_setpoint"],
        ["reactor.cell_voltage", "power.cell_voltage"],
    ])
    found = problems_of(write(folder, data))
    assert any(p.startswith("connections[2]: power.cell_voltage is already fed") for p in found)
    data["connections"].pop()
    found = problems_of(write(folder, data))
    assert len(found) == 1 and found[0].startswith("connections: undelayed cycle"), found


def test_components_only_scenario_checks(folder: Path) -> None:
    """Without the plant, plant names and plant faults are unknown."""
    data = {"name": "alone", "duration": 10, "step": 1.0, "plant": False,
            "components": {"pi": {"type": "fmu", "path": "fmus/pi.fmu"}},
            "inputs": {"current": 5.0, "pi.measurement": 3.0},
            "events": [{"at": 1, "type": "power_trip"}]}
    found = problems_of(write(folder, data))
    assert any(p.startswith("inputs.current: unknown input") for p in found), found
    assert any(p.startswith("events[0].type: power_trip acts on the plant") for p in found), found
    frame = run(write(folder, {**data, "inputs": {"pi.measurement": 3.0}, "events": []}),
                progress=False)
    assert list(frame.columns) == ["pi.control", "pi.measurement", "pi.setpoint"]


def test_schema_describes_components_and_connections() -> None:
    """The JSON schema has the new sections; connections are [from, to(, delayed)] lists."""
    props = json_schema()["properties"]
    assert {"components", "connections"} <= set(props)
    item = props["connections"]["items"]
    assert item["type"] == "array" and item["prefixItems"][2] == {"const": "delayed"}
    assert {"const": False, "type": "boolean"} in props["plant"]["oneOf"]


def test_export_refuses_a_scenario_without_the_plant(folder: Path) -> None:
    """Only the standard plant is exported; a components-only scenario is refused."""
    from fmu.build import build_fmu

    path = write(folder, {"name": "alone", "duration": 10, "step": 1.0, "plant": False,
                          "components": {"pi": {"type": "fmu", "path": "fmus/pi.fmu"}}})
    with pytest.raises(FMUError, match="standard plant"):
        build_fmu(path, folder / "out.fmu")


def test_an_fmu_scenario_runs_its_variants_one_at_a_time(folder: Path) -> None:
    """An FMU component steps one run at a time: a sweep's chunk of such a scenario runs each
    variant alone (co2twin.variant_runs), each with its own set point."""
    from co2twin.ensemble import scalar_components
    from co2twin.variant_runs import run_variants

    scenario = load_scenario(write(folder, closed_loop()))
    assert [c.split(" ")[0] for c in scalar_components(scenario)] == ["pi"]
    result = run_variants(scenario, [{"inputs.pi.setpoint": 3.4}, {"inputs.pi.setpoint": 3.7}],
                          keep=["reactor.cell_voltage"])
    long = result.frame_long()
    last = long.groupby("variant")["reactor.cell_voltage"].last()
    assert abs(last[0] - 3.4) < 0.01 and abs(last[1] - 3.7) < 0.01
    assert list(result.kpis()["variant"]) == [0, 1]

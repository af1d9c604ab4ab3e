"""Importing a foreign FMI 2.0 co-simulation FMU as a component (``fmu.importer.FMUComponent``).

The foreign FMU is a PI controller built with PythonFMU from ``tests/fmus/pi_controller.py``
once per session; the bad FMUs are edited copies of its ZIP archive.
"""
from __future__ import annotations

import gc
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import fmpy
import pytest
import pythonfmu

from components.plant import build_plant
from cosim import Connection, Simulation, SimulationError
from cosim.errors import FMUError
from fmu.importer import FMUComponent

SCRIPT = Path(__file__).parent / "fmus" / "pi_controller.py"


@pytest.fixture(scope="session")
def pi_fmu(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The PI controller FMU, built once per session (state get/set and serialisation on)."""
    dest = tmp_path_factory.mktemp("fmus")
    return Path(pythonfmu.FmuBuilder.build_FMU(
        SCRIPT, dest=dest, canGetAndSetFMUstate=True, canSerializeFMUstate=True))


@pytest.fixture
def edited(pi_fmu: Path, tmp_path: Path) -> Callable[..., Path]:
    """Factory of edited copies of the PI FMU: ``edit(xml)`` rewrites the model description,
    ``drop(name)`` says which archive members to leave out."""

    def make(name: str, edit: Callable[[str], str] = lambda x: x,
             drop: Callable[[str], bool] = lambda n: False) -> Path:
        out = tmp_path / f"{name}.fmu"
        with zipfile.ZipFile(pi_fmu) as src, zipfile.ZipFile(out, "w") as dst:
            for item in src.namelist():
                if drop(item):
                    continue
                data = src.read(item)
                if item == "modelDescription.xml":
                    data = edit(data.decode()).encode()
                dst.writestr(item, data)
        return out

    return make


def closed_loop(pi: FMUComponent, setpoint: float = 3.6) -> Simulation:
    """The plant with ``pi`` driving the current set point from the delayed cell voltage."""
    components, connections = build_plant()
    components["pi"] = pi
    connections += [
        Connection("reactor.cell_voltage", "pi.measurement", delayed=True),
        Connection("pi.control", "power.current_setpoint"),
    ]
    sim = Simulation(components, connections, step=1.0)
    sim.set("pi.setpoint", setpoint)
    return sim


# -- ports from the model description ------------------------------------------------------------
def test_ports_units_bounds_and_starts_come_from_the_model_description(pi_fmu):
    """Inputs, outputs and parameters carry the FMU's names, units, bounds and start values."""
    pi = FMUComponent(pi_fmu)
    assert isinstance(pi, FMUComponent) and type(pi).__name__ == "FMU_PIController"
    ins = {p.name: (p.unit, p.lower, p.upper, p.start) for p in pi.inputs}
    assert ins == {"measurement": ("V", 0.0, 100.0, 0.0), "setpoint": ("V", 0.0, 10.0, 3.5)}
    assert [(p.name, p.unit, p.lower, p.upper) for p in pi.outputs] == [("control", "A", 0.0, 50.0)]
    params = {p.name: (p.unit, p.default, p.lower, p.upper, p.tunable) for p in pi.parameters}
    assert params == {"kp": ("1", 2.0, 0.0, 1000.0, True), "ki": ("1", 1.0, 0.0, 1000.0, False),
                      "control_max": ("A", 20.0, 0.0, 50.0, False)}
    assert type(pi).input_port("setpoint").description == "value to reach"
    assert "integral" not in {p.name for p in pi.inputs + pi.outputs}  # locals stay inside


def test_parameters_are_checked_like_any_component(pi_fmu):
    """Keyword parameters override the FMU's start values within its min/max bounds."""
    assert FMUComponent(pi_fmu, kp=5.0).p.kp == 5.0
    with pytest.raises(ValueError, match=r"kp: expected a finite number in \[0, 1000\]"):
        FMUComponent(pi_fmu, kp=-1.0)
    with pytest.raises(ValueError, match="unknown parameter"):
        FMUComponent(pi_fmu, gain=1.0)


def test_measured_marks_ports_that_see_sensor_faults(pi_fmu):
    """``measured`` names the inputs reading a sensor; an unknown name is refused."""
    pi = FMUComponent(pi_fmu, measured=["measurement"])
    assert [p.measured for p in pi.inputs] == [True, False]
    with pytest.raises(FMUError, match="measured names no input or output: nope"):
        FMUComponent(pi_fmu, measured=["nope"])


def test_unit_matched_by_its_si_definition(edited):
    """A unit named otherwise but defined like a co2twin unit (BaseUnit) maps to that unit."""
    fmu = edited("volt", lambda x: x.replace('name="V"', 'name="volt"').replace('unit="V"', 'unit="volt"'))
    assert {p.name: p.unit for p in FMUComponent(fmu).inputs} == {"measurement": "V", "setpoint": "V"}


def test_co2twin_unit_defined_otherwise_is_refused(edited):
    """A co2twin unit name the FMU defines differently (V as millivolt) is an FMUError, never rescaled."""
    fmu = edited("millivolt", lambda x: x.replace('s="-3" A="-1"/>', 's="-3" A="-1" factor="0.001"/>'))
    with pytest.raises(FMUError, match=r"millivolt\.fmu: variable 'measurement' has unit 'V', but the "
                                       r"FMU defines 'V' otherwise than co2twin does"):
        FMUComponent(fmu)


def test_celsius_by_definition_is_degc_and_kelvin_is_refused(edited):
    """A unit defined as K + 273.15 is degC; plain kelvin matches no co2twin unit."""
    units = ('<Unit name="Cel"><BaseUnit K="1" offset="273.15"/></Unit>'
             '<Unit name="K"><BaseUnit K="1"/></Unit></UnitDefinitions>')

    def setpoint_in(unit: str) -> Callable[[str], str]:
        return lambda x: x.replace("</UnitDefinitions>", units).replace(
            '<Real start="3.5" unit="V"', f'<Real start="3.5" unit="{unit}"')

    fmu = edited("cel", setpoint_in("Cel"))
    assert FMUComponent(fmu).input_port("setpoint").unit == "degC"
    fmu = edited("kelvin", setpoint_in("K"))
    with pytest.raises(FMUError, match=r"variable 'setpoint' has unit 'K'.*matches no co2twin unit"):
        FMUComponent(fmu)


def test_unknown_unit_names_variable_and_unit(edited):
    """A unit that is neither a co2twin unit nor defined like one is an FMUError."""
    siemens = '<Unit name="A/V"><BaseUnit kg="-1" m="-2" s="3" A="2"/></Unit></UnitDefinitions>'
    fmu = edited("gain_unit", lambda x: x.replace('<Real start="2" ', '<Real start="2" unit="A/V" ')
                 .replace("</UnitDefinitions>", siemens))
    with pytest.raises(FMUError, match=r"gain_unit\.fmu: variable 'kp' has unit 'A/V', which is not "
                                       r"a co2twin unit and its BaseUnit definition matches no co2twin unit"):
        FMUComponent(fmu)
    undefined = edited("undefined", lambda x: x.replace('<Real start="2" ', '<Real start="2" unit="A/V" '))
    with pytest.raises(FMUError, match=r'undefined\.fmu: invalid modelDescription\.xml: The unit "A/V" '
                                       r'of variable "kp" \(line \d+\) is not defined'):
        FMUComponent(undefined)


# -- stepping ----------------------------------------------------------------------------------------
def test_step_sets_inputs_does_step_and_reads_outputs(pi_fmu):
    """``step`` advances the PI law; ``dt == 0`` only reads the outputs."""
    pi = FMUComponent(pi_fmu, kp=3.0)
    pi.initialize(0.0)
    u = {"measurement": 3.0, "setpoint": 3.5}
    first = pi.step(0.0, 0.0, u)
    assert pi.step(0.0, 0.0, u) == first  # no doStep, no integration
    assert pi.step(0.0, 1.0, u) == {"control": pytest.approx(3.0 * 0.5 + 1.0 * 0.5)}
    assert pi.step(1.0, 1.0, u) == {"control": pytest.approx(3.0 * 0.5 + 1.0 * 1.0)}
    pi.close()


def test_reinitialize_reuses_the_instance_and_close_frees_it(pi_fmu):
    """A second initialize resets the one instance; close frees it, deletes the files, is idempotent."""
    pi = FMUComponent(pi_fmu)
    u = {"measurement": 3.0, "setpoint": 3.5}
    pi.initialize(0.0)
    trace = [pi.step(k, 1.0, u)["control"] for k in range(3)]
    slave, directory = pi._res["slave"], Path(pi._res["dir"])
    pi.initialize(0.0)
    assert pi._res["slave"] is slave
    assert [pi.step(k, 1.0, u)["control"] for k in range(3)] == trace
    pi.close()
    pi.close()
    assert not directory.exists()
    with pytest.raises(FMUError, match="step\\(\\) before initialize\\(\\) or after close\\(\\)"):
        pi.step(3.0, 1.0, u)
    pi.initialize(0.0)  # a closed component may run again, on a new instance
    assert [pi.step(k, 1.0, u)["control"] for k in range(3)] == trace
    directory = Path(pi._res["dir"])
    del pi
    gc.collect()
    assert not directory.exists()


def test_garbage_collection_frees_the_instance(pi_fmu):
    """A component dropped without close() still frees its instance and extracted files."""
    pi = FMUComponent(pi_fmu)
    pi.initialize(0.0)
    directory = Path(pi._res["dir"])
    del pi
    gc.collect()
    assert not directory.exists()


def test_closed_loop_settles_the_cell_voltage(pi_fmu):
    """The PI FMU drives power.current_setpoint so that the cell voltage settles at 3.6 V."""
    sim = closed_loop(FMUComponent(pi_fmu, kp=1.0, ki=0.2), setpoint=3.6)
    frame = sim.run(600)
    assert frame.attrs["units"]["pi.control"] == "A"
    settled = frame.loc[300:, "reactor.cell_voltage"]
    assert settled.between(3.59, 3.61).all()
    assert frame["power.current"].iloc[-1] == pytest.approx(frame["pi.control"].iloc[-1])
    assert frame.loc[0, "pi.control"] != frame["pi.control"].iloc[-1]


def test_tunable_parameter_reaches_the_fmu(pi_fmu):
    """A tunable parameter changed during a run reaches the FMU; a fixed one is refused."""
    sim = closed_loop(FMUComponent(pi_fmu, kp=1.0, ki=0.2))
    sim.advance_to(100)
    before = sim.get("pi.control")
    sim.set_parameter("pi.kp", 50.0)
    sim.set("pi.setpoint", 3.8)
    sim.step()
    error = 3.8 - sim.get("pi.measurement")
    assert sim.get("pi.control") > before + 40 * error
    with pytest.raises(SimulationError, match="ki is fixed during a run"):
        sim.set_parameter("pi.ki", 1.0)


@pytest.mark.parametrize("serialize", [True, False])
def test_checkpoint_rollback_reproduces_the_trace(edited, pi_fmu, serialize):
    """Simulation.set_state rolls the FMU back: the same run after the checkpoint gives the same trace."""
    fmu = pi_fmu if serialize else edited(
        "handles", lambda x: x.replace('canSerializeFMUstate="true"', 'canSerializeFMUstate="false"'))
    sim = closed_loop(FMUComponent(fmu, kp=1.0, ki=0.2))
    sim.advance_to(120)
    state = sim.get_state()
    assert isinstance(state["components"]["pi"]["fmu"], bytes) == serialize
    sim.set("pi.setpoint", 3.8)
    first = sim.run(300).loc[120:]
    sim.set_state(state)
    assert sim.time == 120 and sim.get("pi.setpoint") == 3.6
    sim.set("pi.setpoint", 3.8)
    second = sim.run(300).loc[120:]
    assert first.equals(second)
    assert first["pi.control"].nunique() > 10


def test_checkpoint_refused_when_the_fmu_cannot_save_state(edited):
    """An FMU without canGetAndSetFMUstate runs, but get_state says why it cannot checkpoint."""
    fmu = edited("nostate", lambda x: x.replace('canGetAndSetFMUstate="true"',
                                                'canGetAndSetFMUstate="false"'))
    sim = closed_loop(FMUComponent(fmu))
    sim.advance_to(5)
    with pytest.raises(FMUError, match=r"nostate\.fmu: the FMU cannot save its state"):
        sim.get_state()


# -- bad FMUs ----------------------------------------------------------------------------------------
def test_not_a_zip(tmp_path):
    """A file that is not a ZIP archive is refused naming the file."""
    bad = tmp_path / "text.fmu"
    bad.write_text("not an archive")
    with pytest.raises(FMUError, match=r"text\.fmu: not an FMU \(an FMU is a ZIP archive"):
        FMUComponent(bad)


def test_missing_file(tmp_path):
    """A path that does not exist is refused naming it."""
    with pytest.raises(FMUError, match=r"absent\.fmu: no such FMU file"):
        FMUComponent(tmp_path / "absent.fmu")


def test_missing_model_description(edited):
    """An archive without modelDescription.xml is refused."""
    fmu = edited("nomd", drop=lambda n: n == "modelDescription.xml")
    with pytest.raises(FMUError, match=r"nomd\.fmu: no modelDescription\.xml"):
        FMUComponent(fmu)


@pytest.mark.parametrize("version", ["3.0", "1.0"])
def test_wrong_fmi_version(edited, version):
    """FMI 1.0 and 3.0 model descriptions are refused naming the version found."""
    fmu = edited(f"fmi{version}", lambda x: x.replace('fmiVersion="2.0"', f'fmiVersion="{version}"'))
    with pytest.raises(FMUError, match=rf"fmiVersion is '{re.escape(version)}'; co2twin imports FMI 2\.0"):
        FMUComponent(fmu)


def test_model_exchange_only(edited):
    """An FMU without a CoSimulation element (model exchange only) is refused."""
    fmu = edited("me", lambda x: x.replace("<CoSimulation ", "<ModelExchange "))
    with pytest.raises(FMUError, match=r"me\.fmu: no CoSimulation element .*ModelExchange only"):
        FMUComponent(fmu)


def test_missing_binary_for_this_platform(edited):
    """An FMU without a binary for this platform is refused naming the platform and what it has."""
    fmu = edited("nobin", drop=lambda n: n.startswith(f"binaries/{fmpy.platform}/"))
    with pytest.raises(FMUError, match=rf"nobin\.fmu: no binary for this platform \({fmpy.platform}\)"
                                       r".*binaries for win64"):
        FMUComponent(fmu)


def test_invalid_model_description(edited):
    """A model description that breaks the FMI 2.0 schema is refused with the validator's message."""
    fmu = edited("invalid", lambda x: x.replace('causality="input"', 'causality="sideways"', 1))
    with pytest.raises(FMUError, match=r"invalid\.fmu: invalid modelDescription\.xml: .*sideways"):
        FMUComponent(fmu)

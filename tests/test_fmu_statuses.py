"""Issue 10, defect 2: statuses agree with the log, and fmi2Terminated is true only when the
FMU cannot continue.

Before, an out-of-bounds input made fmi2SetReal return OK while logging an error, the next
doStep return fmi2Discard and fmi2Terminated then say true, so standard hosts ended the run.
Now (parameter ``on_bad_input``): ``error`` refuses the value at the set call with fmi2Error;
``clamp`` sets the nearest bound with fmi2Warning and counts it in ``clamped_inputs``; the
message of each call comes with the category of its status.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from fmu_kit import BARE_ENV, host, reference, statuses, vr

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="linux64 binaries only"),
    pytest.mark.filterwarnings("ignore::models.surrogate.EnvelopeWarning"),
]
OK, WARNING, DISCARD, ERROR = 0, 1, 2, 3
TERMINATED = 3  # fmi2StatusKind fmi2Terminated


def test_c_host_bad_input_error_then_clamp(fmi_host: Path, fmu_dir: Path, fmu_model) -> None:
    """Out of bounds: fmi2Error at the set call (on_bad_input=error), the run goes on; then
    fmi2Warning and the bound (clamp); a doStep at a wrong time is an error, not an end."""
    proc = host(fmi_host, "bad", fmu_dir, fmu_model.guid, vr(fmu_model, "current"),
                vr(fmu_model, "on_bad_input"), vr(fmu_model, "clamped_inputs"), env=BARE_ENV)
    assert statuses(proc.stdout) == [
        ("SET", "3"), ("TERMINATED", "0"), ("STEP", "0"), ("VALUE", "5"),
        ("SETSTRING", "0"), ("CLAMP", "1"), ("VALUE", "0"), ("STEP", "0"), ("COUNT", "1"),
        ("TERMINATED", "0"), ("WRONGTIME", "3"), ("TERMINATED", "0"), ("STEP", "0"),
    ]
    log = proc.stderr.splitlines()
    assert any(line.startswith("[bad 3 logStatusError] input current: expected a finite value in [0, ")
               and "found -1.0; refused (on_bad_input = error)" in line for line in log), proc.stderr
    assert any(line.startswith("[bad 1 logStatusWarning] input current: -1.0 is outside [0, ")
               and "clamped to 0.0 (on_bad_input = clamp)" in line for line in log), proc.stderr
    assert any(line.startswith("[bad 3 logStatusError] fmi2DoStep: current time 5.0 s differs")
               for line in log), proc.stderr
    # every message's category is its status's own (fmi2OK messages only with logging on)
    for line in log:
        if line.startswith("[bad "):
            status, category = line[1:].split("]")[0].split()[1:3]
            expected = {"0": "logEvents", "1": "logStatusWarning", "3": "logStatusError"}[status]
            assert category == expected, line


def _start(fmu_dir: Path, model, name: str, *, logging: bool = False, messages: list | None = None):
    """An initialised FMPy instance; ``messages`` collects (status, category, text) of its log."""
    from fmpy.fmi2 import (FMU2Slave, fmi2CallbackAllocateMemoryTYPE, fmi2CallbackFreeMemoryTYPE,
                           fmi2CallbackFunctions, fmi2CallbackLoggerTYPE)

    callbacks = None
    if messages is not None:
        from fmpy import calloc, free

        # no FMPy logger proxy: it keeps one logger for the whole process. The loader passes
        # each message as a format without arguments, '%' doubled.
        def logger(component, instance, status, category, message):
            messages.append((status, category.decode(), message.decode().replace("%%", "%")))

        callbacks = fmi2CallbackFunctions()
        callbacks.logger = fmi2CallbackLoggerTYPE(logger)
        callbacks.allocateMemory = fmi2CallbackAllocateMemoryTYPE(calloc)
        callbacks.freeMemory = fmi2CallbackFreeMemoryTYPE(free)
    slave = FMU2Slave(guid=model.guid, unzipDirectory=str(fmu_dir), modelIdentifier="Co2Twin",
                      instanceName=name)
    slave.instantiate(callbacks=callbacks, loggingOn=logging)
    slave._keep = callbacks  # the callbacks must outlive the instance
    slave.setupExperiment(startTime=0.0)
    slave.enterInitializationMode()
    slave.exitInitializationMode()
    return slave


def _status(call) -> int:
    from fmpy.fmi1 import FMICallException

    try:
        call()
    except FMICallException as exc:
        return int(exc.status)
    return OK


def test_a_refused_call_sets_nothing(fmu_dir: Path, fmu_model) -> None:
    """One bad value refuses the whole fmi2SetReal call: the good value beside it is not set."""
    slave = _start(fmu_dir, fmu_model, "atomic")
    current, gas = vr(fmu_model, "current"), vr(fmu_model, "gas_flow")
    assert _status(lambda: slave.setReal([current, gas], [6.0, -5.0])) == ERROR
    assert _status(lambda: slave.setReal([current], [math.inf])) == ERROR  # refused by the loader
    assert slave.getReal([current, gas]) == [5.0, 100.0]
    for k in range(5):
        slave.doStep(float(k), 1.0)
    assert slave.getReal([vr(fmu_model, "reactor.cell_voltage")])[0] == pytest.approx(
        reference(5.0)["reactor.cell_voltage"].iloc[-1], abs=1e-9)
    slave.terminate()
    slave.freeInstance()


def test_clamp_sets_the_bound_with_a_warning(fmu_dir: Path, fmu_model) -> None:
    """on_bad_input=clamp: fmi2Warning, the nearest bound, counted in clamped_inputs, logged as
    logStatusWarning; a bad on_bad_input value is refused."""
    messages: list = []
    slave = _start(fmu_dir, fmu_model, "clamp", messages=messages)
    mode, current = vr(fmu_model, "on_bad_input"), vr(fmu_model, "current")
    assert _status(lambda: slave.setString([mode], ["ignore"])) == ERROR
    assert slave.getString([mode]) == [b"error"]
    slave.setString([mode], ["clamp"])
    messages.clear()
    status = slave.fmi2SetReal(slave.component, *_reals([current], [5000.0]))
    assert status == WARNING
    upper = float(next(v.max for v in fmu_model.modelVariables if v.name == "current"))
    assert slave.getReal([current]) == [upper]
    assert slave.getInteger([vr(fmu_model, "clamped_inputs")]) == [1]
    assert [(s, c) for s, c, _ in messages] == [(WARNING, "logStatusWarning")]
    assert "5000.0 is outside" in messages[0][2] and "on_bad_input = clamp" in messages[0][2]
    slave.doStep(0.0, 1.0)
    assert slave.getBooleanStatus(TERMINATED) is False
    slave.terminate()
    slave.freeInstance()


def _reals(vrs: list[int], values: list[float]):
    """The arguments of a raw fmi2SetReal (FMPy's setReal does not return the status)."""
    from fmpy.fmi2 import fmi2Real, fmi2ValueReference

    return (fmi2ValueReference * len(vrs))(*vrs), len(vrs), (fmi2Real * len(values))(*values)


def test_wrong_calls_are_errors_not_fatal(fmu_dir: Path, fmu_model) -> None:
    """Unknown value references, a fixed parameter after initialisation, a negative step:
    fmi2Error with a logStatusError message each, and the instance goes on."""
    messages: list = []
    slave = _start(fmu_dir, fmu_model, "wrong", messages=messages)
    area = vr(fmu_model, "reactor.area_cm2")
    assert _status(lambda: slave.setReal([9999], [1.0])) == ERROR
    assert _status(lambda: slave.getReal([9999])) == ERROR
    assert _status(lambda: slave.setReal([area], [30.0])) == ERROR  # fixed: only before exitInit
    assert slave.getReal([area]) == [25.0]
    assert _status(lambda: slave.doStep(0.0, -1.0)) == ERROR
    assert {(s, c) for s, c, _ in messages} == {(ERROR, "logStatusError")}
    assert any("parameter reactor.area_cm2 is fixed" in m for *_, m in messages)
    for k in range(3):
        slave.doStep(float(k), 1.0)
    assert slave.getBooleanStatus(TERMINATED) is False
    slave.terminate()
    slave.freeInstance()


def test_terminated_only_when_the_simulation_cannot_go_on(fmu_dir: Path, fmu_model) -> None:
    """A model that cannot be loaded leaves no simulation: fmi2Error and fmi2Terminated true;
    fmi2Reset brings the instance back."""
    messages: list = []
    slave = _start(fmu_dir, fmu_model, "broken", messages=messages)
    slave.reset()
    slave.setupExperiment(startTime=0.0)
    slave.enterInitializationMode()
    slave.setString([vr(fmu_model, "models.cell_voltage")], ["missing.keras"])
    assert _status(slave.exitInitializationMode) == ERROR
    assert slave.getBooleanStatus(TERMINATED) is False  # nothing failed mid-run yet
    assert _status(lambda: slave.doStep(0.0, 1.0)) == ERROR
    assert slave.getBooleanStatus(TERMINATED) is True
    assert any(c == "logStatusError" and "missing.keras" in m for _, c, m in messages)
    slave.reset()
    assert slave.getBooleanStatus(TERMINATED) is False
    slave.setupExperiment(startTime=0.0)
    slave.enterInitializationMode()
    slave.exitInitializationMode()
    for k in range(5):
        slave.doStep(float(k), 1.0)
    assert slave.getReal([vr(fmu_model, "reactor.cell_voltage")])[0] == pytest.approx(
        reference(5.0)["reactor.cell_voltage"].iloc[-1], abs=1e-9)
    slave.terminate()
    slave.freeInstance()


def test_fmi2ok_messages_follow_debug_logging(fmu_dir: Path, fmu_model) -> None:
    """logEvents (fmi2OK) messages reach the host only with logging on; they say where the FMU
    runs from."""
    quiet: list = []
    slave = _start(fmu_dir, fmu_model, "quiet", messages=quiet)
    slave.doStep(0.0, 1.0)
    slave.freeInstance()
    assert quiet == []
    loud: list = []
    slave = _start(fmu_dir, fmu_model, "loud", logging=True, messages=loud)
    slave.doStep(0.0, 1.0)
    slave.freeInstance()
    events = [m for s, c, m in loud if (s, c) == (OK, "logEvents")]
    assert any(m.startswith("fmi2Instantiate: Python 3.") for m in events), loud
    assert any("instance loud: scenario " in m and str(fmu_dir / "resources" / "models" / "trained") in m
               for m in events), loud

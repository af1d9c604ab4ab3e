"""Issue 10, defect 4: the FMU state can be serialised (canSerializeFMUstate="true").

A state serialised by one instance and restored into a freshly instantiated one continues
bit for bit, in the same process (FMPy) and in another process (the C host, through a
file). Bytes that are not a state of this FMU are refused with fmi2Error before they reach
Python.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from fmu_kit import BARE_ENV, OUTPUTS, host, results, started_slave, vr, vr_list

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="linux64 binaries only"),
    pytest.mark.filterwarnings("ignore::models.surrogate.EnvelopeWarning"),
]


def test_state_file_restored_in_another_process(fmi_host: Path, fmu_dir: Path, fmu_model,
                                                tmp_path: Path) -> None:
    """C host: 100 steps, state to a file, 100 more; a second process restores it into a new
    instance and takes the same 100 steps: identical to the last bit."""
    state = tmp_path / "state.bin"
    outputs = vr_list(fmu_model, OUTPUTS)
    saved = host(fmi_host, "save", fmu_dir, fmu_model.guid, 100, 1.0, outputs, state, env=BARE_ENV)
    restored = host(fmi_host, "restore", fmu_dir, fmu_model.guid, 100, 1.0, outputs, state, env=BARE_ENV)
    assert "DESERIALIZE 0" in restored.stdout.splitlines()
    assert results(restored.stdout, "S") == results(saved.stdout, "S")
    assert len(results(saved.stdout, "S")) == len(OUTPUTS)
    assert state.read_bytes().startswith(f"co2twin-fmu-state/1 {fmu_model.guid} ".encode())


@pytest.mark.parametrize("damage", ["truncated", "altered", "foreign"])
def test_damaged_or_foreign_bytes_are_refused(fmi_host: Path, fmu_dir: Path, fmu_model, tmp_path: Path,
                                              damage: str) -> None:
    """fmi2DeSerializeFMUstate: fmi2Error with a message saying what is wrong."""
    state = tmp_path / "state.bin"
    host(fmi_host, "save", fmu_dir, fmu_model.guid, 5, 1.0, "10", state, env=BARE_ENV)
    data = state.read_bytes()
    if damage == "truncated":
        data = data[:-10]
    elif damage == "altered":
        data = data[:-1] + bytes([data[-1] ^ 1])
    else:
        data = data.replace(fmu_model.guid.encode(), b"00000000-0000-0000-0000-000000000000")
    state.write_bytes(data)
    proc = host(fmi_host, "restore", fmu_dir, fmu_model.guid, 5, 1.0, "10", state, env=BARE_ENV)
    assert "DESERIALIZE 3" in proc.stdout.splitlines()
    assert "logStatusError] fmi2DeSerializeFMUstate: expected " in proc.stderr
    expected = "truncated or altered" if damage != "foreign" else "a state serialised by this FMU"
    assert expected in proc.stderr




def test_serialised_state_continues_bit_for_bit_in_a_new_instance(fmu_dir: Path, fmu_model) -> None:
    """FMPy: a state taken after an input change, clamping and a refined grid (0.5 s steps)
    carries all of it into a new instance, which continues identically."""
    a = started_slave(fmu_dir, fmu_model, "a")
    vrs = [vr(fmu_model, n) for n in [*OUTPUTS, "current"]]
    current, mode = vr(fmu_model, "current"), vr(fmu_model, "on_bad_input")
    a.setString([mode], ["clamp"])
    t = 0.0
    for _ in range(40):
        a.doStep(t, 0.5)
        t += 0.5
    a.setReal([current], [-1.0])  # clamped to 0 A: fmi2Warning, clamped_inputs = 1
    for _ in range(5):
        a.doStep(t, 0.5)
        t += 0.5
    a.setReal([current], [6.5])
    for _ in range(5):
        a.doStep(t, 0.5)
        t += 0.5
    data = a.serializeFMUstate(a.getFMUstate())
    t0 = t
    for _ in range(60):
        a.doStep(t, 0.5)
        t += 0.5
    expected = a.getReal(vrs)
    a.terminate()
    a.freeInstance()

    b = started_slave(fmu_dir, fmu_model, "b")
    b.setFMUstate(b.deSerializeFMUstate(data))
    assert b.getString([mode]) == [b"clamp"]
    assert b.getInteger([vr(fmu_model, "clamped_inputs")]) == [1]
    t = t0
    for _ in range(60):
        b.doStep(t, 0.5)
        t += 0.5
    assert b.getReal(vrs) == expected
    b.terminate()
    b.freeInstance()

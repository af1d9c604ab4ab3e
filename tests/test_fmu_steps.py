"""Issue 10, defect 3: doStep advances by any positive h, not only multiples of the internal step.

A step that ends between internal grid points refines the internal step once and for all
(fmu/slave.py): from then on the FMU is ``co2twin run`` at the finer step, so each case is
checked against a run at that step. Before, h = 0.5 s or 1.5 s over a 1 s internal step
returned fmi2Discard, and OpenModelica's default 3600 s / 500 intervals = 7.2 s stopped at
its first step.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from fmu_kit import BARE_ENV, OUTPUTS, host, reference, results, started_slave, vr, vr_list

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="linux64 binaries only")

END = 36.0


@pytest.mark.parametrize(("h", "internal"), [
    (1.0, 1.0),    # on the grid: co2twin run itself
    (3.0, 1.0),
    (0.5, 0.5),    # shorter than the internal step
    (1.5, 0.5),    # between grid points: refined to 0.5 s
    (7.2, 0.2),    # OpenModelica's 3600 s / 500 intervals
    (0.3, 0.1),
])
def test_c_host_any_step_matches_a_run_at_the_finer_step(fmi_host: Path, fmu_dir: Path, fmu_model,
                                                         h: float, internal: float) -> None:
    """doSteps of h from 0 to 36 s = `co2twin run` at the internal step that h refines to."""
    proc = host(fmi_host, "steps", fmu_dir, fmu_model.guid, h, END, vr_list(fmu_model, OUTPUTS),
                env=BARE_ENV)
    got = results(proc.stdout, "S")
    ref = reference(END, step=internal).iloc[-1]
    for name in OUTPUTS:
        assert abs(got[vr(fmu_model, name)] - ref[name]) <= 1e-9, (name, h)
    last = float(next(line.split()[1] for line in proc.stdout.splitlines() if line.startswith("LAST")))
    assert last == pytest.approx(END, abs=1e-9)  # fmi2LastSuccessfulTime


def test_c_host_refuses_a_step_no_grid_can_reach(fmi_host: Path, fmu_dir: Path, fmu_model) -> None:
    """h = pi s would need an internal step below 1 ms: fmi2Error naming the step, no crash."""
    proc = host(fmi_host, "steps", fmu_dir, fmu_model.guid, 3.14159265358979, 10.0, "10", check=False,
                env=BARE_ENV)
    assert proc.returncode == 3 and "doStep failed: status 3" in proc.stderr
    assert "logStatusError] fmi2DoStep: t + h = 3.14159265358979 s cannot be put on a grid" in proc.stderr




def test_partial_step_is_integrated_not_held(fmu_dir: Path, fmu_model) -> None:
    """1 s steps to 100 s (= co2twin run), then 0.5 s steps: the half steps integrate the
    dynamics (the warming cell sits between its 1 s neighbours) and track a 0.5 s run."""
    slave = started_slave(fmu_dir, fmu_model, "partial")
    vrs = [vr(fmu_model, n) for n in OUTPUTS]
    for k in range(100):
        slave.doStep(float(k), 1.0)
    at_100 = dict(zip(OUTPUTS, slave.getReal(vrs)))
    coarse = reference(101.0)
    for name in OUTPUTS:
        assert abs(at_100[name] - coarse[name].iloc[-2]) <= 1e-9, name  # the grid: exact
    slave.doStep(100.0, 0.5)
    at_100_5 = dict(zip(OUTPUTS, slave.getReal(vrs)))
    t = "reactor.cell_temperature"
    assert coarse[t].iloc[-2] < at_100_5[t] < coarse[t].iloc[-1]
    for k in range(1, 40):
        slave.doStep(100.0 + 0.5 * k, 0.5)
    at_120 = dict(zip(OUTPUTS, slave.getReal(vrs)))
    fine = reference(120.0, step=0.5).iloc[-1]
    for name in OUTPUTS:
        np.testing.assert_allclose(at_120[name], fine[name], rtol=1e-3, err_msg=name)
    slave.terminate()
    slave.freeInstance()


def test_a_refused_step_leaves_the_fmu_usable(fmu_dir: Path, fmu_model) -> None:
    """After an unreachable h (fmi2Error, state unchanged) the host may go on with a good h."""
    from fmpy.fmi1 import FMICallException

    slave = started_slave(fmu_dir, fmu_model, "refused")
    vrs = [vr(fmu_model, n) for n in OUTPUTS]
    with pytest.raises(FMICallException) as err:
        slave.doStep(0.0, 3.14159265358979)
    assert err.value.status == 3
    for k in range(10):
        slave.doStep(float(k), 1.0)
    ref = reference(10.0).iloc[-1]
    for name, value in zip(OUTPUTS, slave.getReal(vrs)):
        assert abs(value - ref[name]) <= 1e-9, name
    slave.terminate()
    slave.freeInstance()

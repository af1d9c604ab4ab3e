"""The FMU with the solar and battery supply (``co2twin fmu build --supply``), in FMPy and in
third-party hosts (libcosim, Ecos; tests/fmu_hosts.py).

    host ──irradiance, price, current──▶ [pv ─▶ ems ─▶ power ─▶ reactor ─▶ bus ─▶ battery]
         ◀──battery.soc, battery.capacity, bus.grid_import, bus.<flows>, ...──┘

The FMU is built once for this module (about a minute). It reproduces ``co2twin run`` of the
packed scenario to 1e-9; more sun fills the battery and cuts the grid import; the bus's and
the battery's energy balances close on the FMU's outputs.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from co2twin.scenario import load_scenario, run
from components.dc_bus import FLOWS
from cosim.errors import FMUError
from fmu.build import DEFAULT_SUPPLY_SCENARIO, build_fmu
from fmu.slave import INPUT_NAMES, SUPPLY_INPUTS, SUPPLY_OUTPUT_SIGNALS

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="linux64 binaries only"),
    pytest.mark.filterwarnings("ignore::models.surrogate.EnvelopeWarning"),
]
RUNNER = Path(__file__).with_name("fmu_hosts.py")
#: outputs compared with co2twin run
COMPARED = ["battery.soc", "battery.capacity", "bus.grid_import", "bus.grid_energy", "pv.power",
            "power.current", "reactor.cell_voltage"]
BALANCE = ["pv.power", "bus.load", *(f"bus.{f}" for f in FLOWS), "battery.stored_energy",
           "battery.energy_in", "battery.energy_out", "battery.losses", "battery.fade_energy"]


@pytest.fixture(scope="module")
def supply_fmu(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``co2twin fmu build --supply`` (the command line, default supply scenario), once per module."""
    folder = tmp_path_factory.mktemp("fmu_supply")
    out = folder / "supply.fmu"
    proc = subprocess.run([sys.executable, "-m", "co2twin.cli", "fmu", "build", "--supply", "-o", str(out)],
                          capture_output=True, text=True, timeout=900, cwd=folder, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "FMU:" in proc.stdout
    return out


def _reference(end: float, irradiance: Any) -> Any:
    """``co2twin run`` of the packed scenario to ``end`` s with the supply's irradiance profile."""
    sc = load_scenario(DEFAULT_SUPPLY_SCENARIO)
    data = sc.model_dump(by_alias=True, exclude_unset=True)
    data["duration"] = end
    data["supply"]["irradiance"] = irradiance
    scenario = type(sc).model_validate({**data, "base_dir": sc.base_dir, "source": sc.source})
    return run(scenario, progress=False)


def _fmpy(fmu: Path, irradiance: float, end: float, outputs: list[str]) -> Any:
    import fmpy

    signal = np.array([(0.0, irradiance, 0.2)], dtype=[("time", float), ("irradiance", float),
                                                       ("price", float)])
    return fmpy.simulate_fmu(str(fmu), stop_time=end, output_interval=60.0, input=signal, output=outputs)


def test_model_description_has_the_supply_inputs_and_outputs(supply_fmu: Path) -> None:
    """Inputs irradiance (W/m2) and price (EUR/kWh) after the plant's, whose value references stay;
    outputs state of charge, capacity and grid import with their units; FMPy's validation is clean."""
    import fmpy

    md = fmpy.read_model_description(str(supply_fmu), validate=True)
    by_name = {v.name: v for v in md.modelVariables}
    inputs = [v.name for v in md.modelVariables if v.causality == "input"]
    assert inputs == [*INPUT_NAMES, *SUPPLY_INPUTS]
    assert [by_name[n].valueReference for n in INPUT_NAMES] == list(range(len(INPUT_NAMES)))
    assert (by_name["irradiance"].unit, by_name["price"].unit) == ("W/m2", "EUR/kWh")
    for name, unit in (("battery.soc", "1"), ("battery.capacity", "Ah"), ("bus.grid_import", "W"),
                       ("bus.grid_energy", "kWh"), ("bus.cost", "EUR")):
        assert by_name[name].causality == "output" and by_name[name].unit == unit, name
    assert {v.name for v in md.modelVariables if v.causality == "output"} >= set(SUPPLY_OUTPUT_SIGNALS)


def test_fmpy_reproduces_co2twin_run_and_the_sun_fills_the_battery(supply_fmu: Path) -> None:
    """6 h at night and in sun (800 W/m2): the FMU's outputs are co2twin run's to 1e-9; the night
    empties the battery and imports from the grid, the sun fills it and imports nothing."""
    end = 6 * 3600.0
    found = {}
    for irradiance in (0.0, 800.0):
        got = _fmpy(supply_fmu, irradiance, end, COMPARED)
        ref = _reference(end, irradiance)
        assert len(got) == len(ref)
        for name in COMPARED:
            np.testing.assert_allclose(got[name], ref[name].to_numpy(), rtol=1e-9, atol=1e-9, err_msg=name)
        found[irradiance] = got[-1]
    night, sun = found[0.0], found[800.0]
    assert sun["battery.soc"] > 0.9 and night["battery.soc"] < 0.2
    assert night["bus.grid_energy"] > 0.05 and sun["bus.grid_energy"] == 0.0
    assert night["bus.grid_import"] > 0.0 == sun["bus.grid_import"]
    assert sun["pv.power"] > 50.0 and night["pv.power"] == 0.0


def test_energy_balances_close_on_the_fmu_outputs(supply_fmu: Path) -> None:
    """From the FMU's outputs alone: the bus's flows balance every step, the battery's stored
    energy changes by charged - discharged - losses - fade (relative 1e-9)."""
    got = _fmpy(supply_fmu, 300.0, 4 * 3600.0, BALANCE)  # clouded: PV, battery and grid all at work
    f = {name: got[name] for name in BALANCE}
    sources = f["pv.power"] + f["bus.battery_to_load"] + f["bus.grid_to_load"] + f["bus.grid_to_battery"] \
        + f["bus.unserved"]
    sinks = f["bus.load"] + f["bus.pv_to_battery"] + f["bus.grid_to_battery"] + f["bus.pv_export"] \
        + f["bus.pv_curtailed"]
    assert np.max(np.abs(sources - sinks) / np.maximum(sinks, 1e-300)) < 1e-9
    assert f["bus.battery_to_load"].max() > 0 or f["bus.pv_to_battery"].max() > 0
    d = {name: np.diff(f[f"battery.{name}"]) for name in ("stored_energy", "energy_in", "energy_out",
                                                         "losses", "fade_energy")}
    residual = d["stored_energy"] - (d["energy_in"] - d["energy_out"] - d["losses"] - d["fade_energy"])
    scale = np.maximum(np.abs(d["energy_in"]), np.abs(d["energy_out"])).max()
    assert scale > 0 and np.max(np.abs(residual)) / scale < 1e-9


def test_fmu_state_with_the_supply_continues_bit_for_bit(supply_fmu: Path, tmp_path: Path) -> None:
    """A serialised state (battery charge and ageing, the bus's totals, the held irradiance)
    restored continues exactly as the run it was taken from."""
    import fmpy
    from fmu_kit import started_slave, vr

    md = fmpy.read_model_description(str(supply_fmu))
    slave = started_slave(Path(fmpy.extract(str(supply_fmu), unzipdir=str(tmp_path / "u"))), md)
    names = ["battery.soc", "battery.capacity", "bus.grid_energy", "reactor.cell_voltage", "irradiance"]
    refs = [vr(md, n) for n in names]
    slave.setReal([vr(md, "irradiance")], [600.0])
    for k in range(10):
        slave.doStep(60.0 * k, 60.0)
    saved = slave.serializeFMUstate(slave.getFMUstate())
    runs = []
    for restored in (False, True):  # on from the state, then back to it and on again
        if restored:
            slave.setFMUstate(slave.deSerializeFMUstate(saved))
        for k in range(10, 20):
            slave.doStep(60.0 * k, 60.0)
        runs.append(slave.getReal(refs))
    slave.terminate()
    slave.freeInstance()
    assert runs[0] == runs[1] and runs[0][-1] == 600.0


@pytest.mark.parametrize("host", ["libcosim", "ecos"])
def test_third_party_host_runs_the_supply(host: str, supply_fmu: Path, tmp_path: Path) -> None:
    """libcosim / Ecos, 60 s steps: an hour of night, then irradiance 800 W/m2 set by the host for
    an hour: co2twin run's values at both points, and the battery charges once the sun is up."""
    proc = subprocess.run([sys.executable, "-I", str(RUNNER), host, "supply", str(supply_fmu),
                           json.dumps(COMPARED)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path, check=False)
    assert proc.returncode == 0, f"{host}: exit {proc.returncode}\n{proc.stderr[-4000:]}"
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found["ok"]
    ref = _reference(7200.0, {"steps": [[0, 0.0], [3600, 800.0]]})
    for label, t in (("at_3600", 3600.0), ("at_7200", 7200.0)):
        for name, value in zip(COMPARED, found[label], strict=True):
            assert abs(value - ref.loc[t, name]) <= 1e-9, (label, name)
    soc = COMPARED.index("battery.soc")
    assert found["at_7200"][soc] > found["at_3600"][soc]
    pv = COMPARED.index("pv.power")
    assert found["at_3600"][pv] == 0.0 and found["at_7200"][pv] > 50.0


def test_supply_option_needs_a_scenario_with_a_supply(tmp_path: Path) -> None:
    """--supply with a scenario without a supply: section is refused, naming the file, before building."""
    baseline = Path(__file__).parents[1] / "scenarios" / "baseline.yaml"
    with pytest.raises(FMUError, match=r"baseline.yaml: --supply .* expected a scenario with a supply: "
                                       r"section, found none"):
        build_fmu(baseline, tmp_path / "x.fmu", supply=True)
    assert not (tmp_path / "x.fmu").exists()

"""Drive the co2twin FMU in third-party FMI hosts; run by tests/test_fmu_hosts.py as a script.

    python fmu_hosts.py HOST CASE FMU OUTPUTS_JSON

HOST is ``libcosim`` (libcosimpy: libcosim, which loads FMUs with the FMI Library), ``ecos``
(ecospy: Ecos, which loads them with fmi4c, in this process) or ``ecos-proxy`` (Ecos running
the FMU in its own ``proxyfmu`` process, a C++ program: no Python of ours there). Each case
runs in a fresh process that never imports co2twin itself, and prints one JSON line:

* ``run``: 1 s steps to 300 s, the current set to 6.5 A at 120 s -> ``{"at_120": [...], "at_300": [...]}``
* ``half``: 0.5 s steps to 36 s -> ``{"at_36": [...]}``
* ``supply`` (an FMU built with ``--supply``): 60 s steps to 3600 s at night, then irradiance
  800 W/m2 to 7200 s -> ``{"at_3600": [...], "at_7200": [...]}``
* ``lifecycle``: the same 60 s run twice, each simulation created, run and destroyed (the
  host unpacks the FMU anew and deletes the folder) -> ``{"runs": [[...], [...]]}``
* ``bad_error`` / ``bad_clamp``: after 10 s the current is set to -1 A with on_bad_input
  error / clamp, then 10 more steps are asked for -> what the host reports, the time
  reached, the current and ``clamped_inputs``.
"""
from __future__ import annotations

import json
import sys
from typing import Any


class Libcosim:
    """One libcosim execution with the FMU as its only slave."""

    def __init__(self, fmu: str, h: float, strings: dict[str, str] | None = None) -> None:
        from libcosimpy.CosimExecution import CosimExecution
        from libcosimpy.CosimLogging import CosimLogLevel, log_output_level
        from libcosimpy.CosimManipulator import CosimManipulator
        from libcosimpy.CosimObserver import CosimObserver
        from libcosimpy.CosimSlave import CosimLocalSlave

        log_output_level(CosimLogLevel.ERROR)
        self.h = h
        self.ex = CosimExecution.from_step_size(round(h * 1e9))
        self.idx = self.ex.add_local_slave(CosimLocalSlave(fmu_path=fmu, instance_name="twin"))
        self.obs = CosimObserver.create_last_value()
        self.ex.add_observer(self.obs)
        self.man = CosimManipulator.create_override()
        self.ex.add_manipulator(self.man)
        self.refs = {v.name.decode(): v.reference for v in self.ex.slave_variables(self.idx)}
        for name, value in (strings or {}).items():
            self.ex.string_initial_value(self.idx, self.refs[name], value)

    def until(self, t: float) -> bool:
        return bool(self.ex.simulate_until(round(t * 1e9)))

    def set(self, name: str, value: float) -> None:
        self.man.slave_real_values(self.idx, [self.refs[name]], [value])

    def reals(self, names: list[str]) -> list[float]:
        return list(self.obs.last_real_values(self.idx, [self.refs[n] for n in names]))

    def integer(self, name: str) -> int:
        return int(self.obs.last_integer_values(self.idx, [self.refs[name]])[0])

    def time(self) -> float:
        return self.ex.status().current_time / 1e9

    def close(self) -> None:
        self.ex.stop()
        del self.ex, self.obs, self.man


class Ecos:
    """One Ecos simulation with the FMU as its only model (in process, as ``twin``)."""

    proxy = False

    def __init__(self, fmu: str, h: float, strings: dict[str, str] | None = None) -> None:
        from ecospy import EcosSimulation, EcosSimulationStructure

        self.h = h
        structure = EcosSimulationStructure()
        structure.add_model("twin", f"proxyfmu://localhost?file={fmu}" if self.proxy else fmu)
        if strings:
            structure.add_parameter_set("initial", {f"twin::{k}": v for k, v in strings.items()})
        self.sim = EcosSimulation(structure=structure, step_size=h)
        if not self.sim.init(parameter_set="initial" if strings else None):
            raise RuntimeError("Ecos could not initialise the FMU")

    def until(self, t: float) -> bool:
        self.sim.step(round((t - self.sim.get_time()) / self.h))
        return abs(self.sim.get_time() - t) < 1e-9

    def set(self, name: str, value: float) -> None:
        self.sim.set_real(f"twin::{name}", value)

    def reals(self, names: list[str]) -> list[float]:
        return [self.sim.get_real(f"twin::{n}") for n in names]

    def integer(self, name: str) -> int:
        return int(self.sim.get_integer(f"twin::{name}"))

    def time(self) -> float:
        return float(self.sim.get_time())

    def close(self) -> None:
        self.sim.terminate()
        self.sim.free()


class EcosProxy(Ecos):
    """Ecos with the FMU in a ``proxyfmu`` process (found on PATH)."""

    proxy = True


HOSTS = {"libcosim": Libcosim, "ecos": Ecos, "ecos-proxy": EcosProxy}


def _set_between(sim: Any, t1: float, name: str, value: float, t2: float,
                 outputs: list[str]) -> dict[str, Any]:
    """Run to ``t1``, set input ``name``, run on to ``t2``: ``ok`` and the outputs at both
    times (``at_<t1>``, ``at_<t2>``)."""
    ok = sim.until(t1)
    before = sim.reals(outputs)
    sim.set(name, value)
    ok = sim.until(t2) and ok
    return {"ok": ok, f"at_{t1:g}": before, f"at_{t2:g}": sim.reals(outputs)}


def main(host: str, case: str, fmu: str, outputs: list[str]) -> dict[str, Any]:
    make = HOSTS[host]
    if case == "run":
        sim = make(fmu, 1.0)
        found = _set_between(sim, 120.0, "current", 6.5, 300.0, outputs)
    elif case == "supply":  # the FMU of `co2twin fmu build --supply`: night, then sun at 3600 s
        sim = make(fmu, 60.0)
        found = _set_between(sim, 3600.0, "irradiance", 800.0, 7200.0, outputs)
    elif case == "half":
        sim = make(fmu, 0.5)
        found = {"ok": sim.until(36.0), "at_36": sim.reals(outputs)}
    elif case == "lifecycle":
        runs = []
        for _ in range(2):
            sim = make(fmu, 1.0)
            sim.until(60.0)
            runs.append(sim.reals(outputs))
            sim.close()
        return {"runs": runs}
    elif case in ("bad_error", "bad_clamp"):
        mode = case.removeprefix("bad_")
        sim = make(fmu, 1.0, {"on_bad_input": mode})
        sim.until(10.0)
        sim.set("current", -1.0)
        try:
            ok, problem = sim.until(20.0), ""
        except Exception as exc:  # noqa: BLE001 - what the host reports is the result
            ok, problem = False, str(exc)
        found = {"ok": ok, "problem": problem, "time": sim.time(), "current": sim.reals(["current"])[0],
                 "clamped": sim.integer("clamped_inputs"), "voltage": sim.reals(["reactor.cell_voltage"])[0]}
    else:
        raise SystemExit(f"unknown case {case!r}")
    sim.close()
    return found


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]))))

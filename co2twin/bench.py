"""``co2twin bench``: speed figures measured side by side in one run on this machine.

Keys of :func:`measure` are stable; later work adds keys, never renames them.
"""
from __future__ import annotations

import platform
import time
from itertools import pairwise
from pathlib import Path
from typing import Any
from collections.abc import Callable, Mapping

from cosim.component import Component
from cosim.simulation import Simulation

__all__ = ["measure", "noop_plant", "surrogate_speed", "fmu_speed", "service_speed", "BENCH_24H", "FMU_KEYS"]

#: keys added by :func:`fmu_speed` (``None`` when PythonFMU or FMPy is missing)
FMU_KEYS: tuple[str, ...] = ("fmu_build_s", "fmu_instantiate_s", "fmu_steps_per_s",
                             "fmu_inprocess_steps_per_s", "fmu_vs_inprocess_ratio",
                             "fmu_size_mb", "fmu_cold_instantiate_s")

# A fresh interpreter with only the standard library (-I -S) loads the FMU's binary with
# ctypes, as a C host would, and instantiates and initialises it: the loader finds Python
# already running and every package comes from the FMU's own bundle.
_COLD_INSTANTIATE = r"""
import ctypes, pathlib, sys
folder, guid = sys.argv[1], sys.argv[2]
lib = ctypes.CDLL(str(pathlib.Path(folder, "binaries", "linux64", "Co2Twin.so")))
class Callbacks(ctypes.Structure):
    _fields_ = [(n, ctypes.c_void_p) for n in ("logger", "alloc", "free", "step", "env")]
lib.fmi2Instantiate.restype = ctypes.c_void_p
lib.fmi2Instantiate.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p,
                                ctypes.POINTER(Callbacks), ctypes.c_int, ctypes.c_int]
callbacks = Callbacks()
uri = pathlib.Path(folder, "resources").as_uri().encode()
c = lib.fmi2Instantiate(b"cold", 1, guid.encode(), uri, ctypes.byref(callbacks), 0, 0)
assert c, "fmi2Instantiate failed"
for name in ("fmi2EnterInitializationMode", "fmi2ExitInitializationMode"):
    getattr(lib, name).argtypes = [ctypes.c_void_p]
    assert getattr(lib, name)(ctypes.c_void_p(c)) == 0, name
print("numpy" in sys.modules and sys.modules["numpy"].__file__.startswith(folder))
"""

#: the 24 h benchmark scenario (same as scenarios/long_run_24h.yaml in spirit)
BENCH_24H: dict[str, Any] = {
    "name": "bench-24h",
    "description": "24 h at 1 s steps with CO2 recycle and product-tank accumulation",
    "duration": "24 h",
    "step": 1.0,
    "inputs": {"current": 5.0, "recycle_fraction": 0.5},
}


class _NoOp(Component):
    """A component with another's ports that returns constant outputs: pure engine cost.

    Ports are class attributes (the engine's port lookups are class methods), so
    :meth:`like` makes a subclass carrying the template's ports.
    """

    def __init__(self, template: Component) -> None:
        super().__init__()
        self._out = {p.name: p.start for p in template.outputs}

    @classmethod
    def like(cls, template: Component) -> _NoOp:
        ports = {"inputs": template.inputs, "outputs": template.outputs}
        return type(f"NoOp{type(template).__name__}", (cls,), ports)(template)

    def step(self, t: float, dt: float, inputs: Mapping[str, Any]) -> dict[str, Any]:
        return self._out


def noop_plant() -> Simulation:
    """The plant's wiring and ports with no-op components."""
    from components.plant import build_plant

    components, connections = build_plant()
    noop = {name: _NoOp.like(comp) for name, comp in components.items()}
    return Simulation(noop, connections, step=1.0)


def _steps_per_s(sim: Simulation, steps: int, repeat: int) -> float:
    sim.initialize()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        sim.advance_to(sim.time + steps * sim.step_size)
        best = min(best, time.perf_counter() - t0)
    return steps / best


def measure(*, steps: int = 20_000, repeat: int = 3) -> dict[str, Any]:
    """Engine-only and full-plant steps/s, their ratio, the 24 h scenario's wall time, surrogate
    speed, and the exported FMU vs the same plant in process (:func:`fmu_speed`)."""
    from components.plant import build_plant

    from .scenario import parse_scenario, run

    engine = _steps_per_s(noop_plant(), steps, repeat)
    components, connections = build_plant()
    plant = _steps_per_s(Simulation(components, connections, step=1.0), steps, repeat)
    scenario = parse_scenario(BENCH_24H, source="<bench>")
    t0 = time.perf_counter()
    frame = run(scenario, progress=False)
    wall = time.perf_counter() - t0
    from models.selection import model_set

    components, connections = build_plant(models=model_set(default="hybrid"))
    hybrid = _steps_per_s(Simulation(components, connections, step=1.0), steps, repeat)
    return {
        "engine_steps_per_s": round(engine, 1),
        "plant_steps_per_s": round(plant, 1),
        "plant_vs_engine_ratio": round(plant / engine, 4),
        "hybrid_plant_steps_per_s": round(hybrid, 1),
        "hybrid_vs_physics_ratio": round(hybrid / plant, 4),
        "scenario_24h_wall_s": round(wall, 3),
        "scenario_24h_steps": scenario.steps,
        "scenario_24h_rows": len(frame),
        **surrogate_speed(),
        **fmu_speed(steps=min(steps, 5_000), repeat=repeat),
        **service_speed(),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def service_speed() -> dict[str, float]:
    """The service's figures: execution rows a worker writes per second (SQLite, every step
    recorded) and the median time of one control-session ``advance`` over HTTP on loopback."""
    from co2twin.service.loadtest import measure as service_measure

    return service_measure()


def _best_of(fn: Callable[[], Any], calls: int, repeat: int = 5) -> float:
    """Best mean seconds per call of ``fn`` over ``repeat`` rounds of ``calls`` calls."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t0) / calls)
    return best


def surrogate_speed(model: str | None = None, batch: int = 10_000) -> dict[str, Any]:
    """NumPy runtime vs Keras on one model: one-sample latency, and batch throughput.

    ``model`` defaults to the committed hybrid cell-voltage network. Keras is
    imported here only (the bench is not the run path); without TensorFlow the
    Keras figures are ``None``.
    """
    import numpy as np

    from models.cards import model_path
    from models.runtime import load_keras
    from models.surrogate import TRAINED_DIR

    path = model or model_path(TRAINED_DIR, "cell_voltage", "hybrid")
    net = load_keras(path)
    k = sum(net.input_sizes)
    rng = np.random.default_rng(0)
    one = rng.uniform(0.5, 1.5, size=(1, k))
    values = list(one[0])
    ours = _best_of(lambda: net.predict_one(values), 2000)
    x = rng.uniform(0.5, 1.5, size=(batch, k))
    batch_s = _best_of(lambda: net.predict(x), 5)
    figures: dict[str, Any] = {
        "runtime_one_sample_us": round(ours * 1e6, 2),
        "batch_samples_per_s": round(batch / batch_s, 1),
        "keras_one_sample_us": None,
        "runtime_vs_keras_speedup": None,
    }
    try:
        import keras
    except ImportError:
        return figures
    kmodel = keras.saving.load_model(path, compile=False)
    edges = np.cumsum([0, *net.input_sizes])
    inputs = [one[:, a:b].astype("float32") for a, b in pairwise(edges)]
    kmodel(inputs)
    theirs = _best_of(lambda: kmodel(inputs), 200)
    figures["keras_one_sample_us"] = round(theirs * 1e6, 1)
    figures["runtime_vs_keras_speedup"] = round(theirs / ours, 1)
    return figures


def fmu_speed(*, steps: int = 5_000, repeat: int = 3) -> dict[str, Any]:
    """The exported FMU under FMPy's ``FMU2Slave`` vs the same plant in process.

    Builds the FMU of the default scenario once into a temporary
    directory (``fmu_build_s``), then times extracting + reading the model
    description + instantiating + initialising it (``fmu_instantiate_s``), and
    ``steps`` doSteps of 1 s (``fmu_steps_per_s``, best of ``repeat``). The
    in-process figure runs the same scenario's simulation (same models, same
    recorded signals as the slave), one 1 s ``advance_to`` per step, timed in
    rounds alternating with the FMU's. ``fmu_size_mb`` is the FMU file's size;
    ``fmu_cold_instantiate_s`` the wall time of a fresh process that has only the standard
    library loading the extracted FMU's binary and instantiating and initialising it
    (Python start, the FMU's bundled packages imported, the plant built). Without PythonFMU
    or FMPy the figures are ``None`` and ``fmu_note`` says why.
    """
    import shutil
    import tempfile

    figures: dict[str, Any] = dict.fromkeys(FMU_KEYS)
    try:
        import fmpy
        import pythonfmu  # noqa: F401
        from fmpy.fmi2 import FMU2Slave
    except ImportError as exc:
        figures["fmu_note"] = f"FMU figures need PythonFMU and FMPy: {exc}"
        return figures
    from fmu.build import DEFAULT_SCENARIO, build_fmu

    from .scenario import build, load_scenario

    tmp = Path(tempfile.mkdtemp(prefix="co2twin_bench_fmu_"))
    slave = None
    try:
        t0 = time.perf_counter()
        path = build_fmu(DEFAULT_SCENARIO, tmp / "co2twin.fmu")
        figures["fmu_build_s"] = round(time.perf_counter() - t0, 3)
        figures["fmu_size_mb"] = round(path.stat().st_size / 1e6, 1)

        t0 = time.perf_counter()
        unzipped = fmpy.extract(str(path), unzipdir=str(tmp / "unzipped"))
        md = fmpy.read_model_description(str(path))
        slave = FMU2Slave(guid=md.guid, unzipDirectory=unzipped,
                          modelIdentifier=md.coSimulation.modelIdentifier, instanceName="bench")
        slave.instantiate()
        slave.setupExperiment(startTime=0.0)
        slave.enterInitializationMode()
        slave.exitInitializationMode()
        figures["fmu_instantiate_s"] = round(time.perf_counter() - t0, 3)

        sim = build(load_scenario(DEFAULT_SCENARIO))
        sim.record(["power.current"])  # as fmu/slave.py does
        sim.initialize()
        fmu_rate, sim_rate = _side_by_side(slave, sim, steps, repeat)
        figures["fmu_steps_per_s"] = round(fmu_rate, 1)
        figures["fmu_inprocess_steps_per_s"] = round(sim_rate, 1)
        figures["fmu_vs_inprocess_ratio"] = round(fmu_rate / sim_rate, 4)
        figures["fmu_cold_instantiate_s"] = _cold_instantiate_s(Path(unzipped), md.guid)
    finally:
        if slave is not None:
            slave.terminate()
            slave.freeInstance()
        shutil.rmtree(tmp, ignore_errors=True)
    return figures


def _side_by_side(slave: Any, sim: Simulation, steps: int, repeat: int) -> tuple[float, float]:
    """Steps/s of the FMU and of the simulation in process, best of ``repeat`` alternating rounds."""
    fmu_t = 0.0
    best_fmu = best_sim = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(steps):
            slave.doStep(fmu_t, 1.0)
            fmu_t += 1.0
        best_fmu = min(best_fmu, time.perf_counter() - t0)
        t0 = time.perf_counter()
        for _ in range(steps):
            sim.advance_to(sim.time + 1.0)
        best_sim = min(best_sim, time.perf_counter() - t0)
    return steps / best_fmu, steps / best_sim


def _cold_instantiate_s(folder: Path, guid: str) -> float:
    """Wall seconds of a fresh, standard-library-only process instantiating the FMU in ``folder``."""
    import subprocess
    import sys

    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", _COLD_INSTANTIATE, str(folder), guid],
                          capture_output=True, text=True, timeout=600, check=False)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0 or proc.stdout.split()[-1:] != ["True"]:
        raise RuntimeError(f"cold instantiation of the FMU in {folder} failed:\n{proc.stderr[-2000:]}")
    return round(seconds, 3)

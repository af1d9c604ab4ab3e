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

__all__ = ["measure", "noop_plant", "surrogate_speed", "fmu_speed", "service_speed", "gym_speed",
           "recorded_speed", "bare_simpy_steps_per_s", "ensemble_speed", "BENCH_24H", "BENCH_GYM",
           "BENCH_ENSEMBLE", "FMU_KEYS", "sweep_speed", "BENCH_SWEEP", "supply_speed", "BENCH_SUPPLY",
           "mpc_speed", "BENCH_MPC"]

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
        self._values = tuple(self._out.values())

    @classmethod
    def like(cls, template: Component) -> _NoOp:
        ports = {"inputs": template.inputs, "outputs": template.outputs}
        return type(f"NoOp{type(template).__name__}", (cls,), ports)(template)

    def step(self, t: float, dt: float, inputs: Mapping[str, Any]) -> dict[str, Any]:
        return self._out

    def step_values(self, t: float, dt: float, values: tuple[Any, ...]) -> tuple[Any, ...]:
        """The positional step the plant's components offer, so that the engine's cost is
        measured on the path the plant takes (:meth:`cosim.Component.step_values`)."""
        return self._values


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

    # first, while this process holds little: the workers' peak memory would otherwise carry
    # what the bench imported before (TensorFlow for the Keras comparison: ~500 MB more)
    sweep = sweep_speed(variants=5 * steps)  # 100,000 variants at the default 20,000 steps
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
        **gym_speed(steps=min(steps, 5_000), repeat=repeat),
        **recorded_speed(repeat=min(repeat, 2)),
        **ensemble_speed(repeat=min(repeat, 2)),
        **sweep,
        **supply_speed(steps=min(steps, 10_000), repeat=repeat),
        **mpc_speed(),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


#: the plant the supply bench drives, with and without the supply of the sunny-day scenario
#: (scenarios/solar_battery_sunny.yaml: 100 W PV, 4-cell 5 Ah battery with hybrid ageing)
BENCH_SUPPLY: dict[str, Any] = {
    "name": "bench-supply",
    "step": 60.0,
    "inputs": {"current": 6.0},
    "models": {"envelope": "physics"},
    "record": {"signals": ["power.current"]},
    "supply": {"pv": {"peak_power": 100, "latitude": 40, "day_of_year": 172, "tilt": 30},
               "battery": {"cells_series": 4, "capacity": 5.0, "initial_soc": 0.6},
               "ems": {"grid_limit": 0, "min_current": 1.0}, "ageing": "hybrid"},
}


def supply_speed(steps: int = 10_000, repeat: int = 3) -> dict[str, float]:
    """The plant with the solar and battery supply attached (:data:`BENCH_SUPPLY`) and the
    same plant without it, side by side at 60 s steps over clear days and nights:
    ``supply_plant_steps_per_s``, ``supply_baseline_plant_steps_per_s`` and
    ``supply_vs_plant_ratio``."""
    from .scenario import build, parse_scenario

    with_supply = {**BENCH_SUPPLY, "duration": (repeat + 1) * steps * 60.0}
    plain = {k: v for k, v in with_supply.items() if k != "supply"}
    sims = [build(parse_scenario(data, source="<bench>")) for data in (with_supply, plain)]
    best = [float("inf"), float("inf")]
    for sim in sims:
        sim.initialize()
    for _ in range(repeat):  # interleaved, so that a busy machine slows both alike
        for i, sim in enumerate(sims):
            t0 = time.perf_counter()
            sim.advance_to(sim.time + steps * sim.step_size)
            best[i] = min(best[i], time.perf_counter() - t0)
    supplied, plant = steps / best[0], steps / best[1]
    return {"supply_plant_steps_per_s": round(supplied, 1),
            "supply_baseline_plant_steps_per_s": round(plant, 1),
            "supply_vs_plant_ratio": round(supplied / plant, 4)}


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


#: the plant :func:`gym_speed` runs as an environment: the hybrid plant at 1 s steps
BENCH_GYM: dict[str, Any] = {
    "name": "bench-gym",
    "description": "the hybrid plant at 1 s steps, the current moved by an agent",
    "duration": "24 h",
    "step": 1.0,
    "inputs": {"current": 5.0},
}


def gym_speed(*, steps: int = 5_000, repeat: int = 3) -> dict[str, float]:
    """Gymnasium environment steps/s with one engine step per environment step (an agent
    moving the current within 1-6.8 A every step), and the same plant advanced plainly
    (``gym_hybrid_steps_per_s``, as ``hybrid_plant_steps_per_s``), measured in turns of 200
    steps in one run (``2 * repeat * steps`` steps each side, the best turn of each), so that
    their ratio holds on a loaded machine. The environment is timed without Gymnasium's
    wrappers (``gymnasium.make`` adds its checker); its reset, which builds the simulation,
    is not in the time."""
    import numpy as np

    from components.plant import build_plant
    from models.selection import model_set

    from .control.gym_env import CaseEnv, EnvConfig, case_from_scenario
    from .scenario import parse_scenario

    case = case_from_scenario(parse_scenario(BENCH_GYM, source="<bench>"), ["current"],
                              ["power.current", "reactor.cell_voltage", "separation.tank_formate_conc"])
    env = CaseEnv(case, EnvConfig(control_interval=1, kpis_at_end=False,
                                  action_bounds={"current": (1.0, 6.8)}))
    # short turns, many of them, best of each side: a burst of load on a shared machine
    # then spoils a few turns of one side, not the ratio
    chunk = min(steps, 200)
    turns = max(1, 2 * repeat * steps // chunk)
    actions = np.random.default_rng(0).uniform(-1.0, 1.0, size=(turns * chunk, 1)).astype(np.float32)
    components, connections = build_plant(models=model_set(default="hybrid"))
    sim = Simulation(components, connections, step=1.0)
    sim.initialize()
    env.reset(seed=0)
    best_env = best_plain = float("inf")
    for turn in range(turns):
        t0 = time.perf_counter()
        sim.advance_to(sim.time + chunk * sim.step_size)
        best_plain = min(best_plain, time.perf_counter() - t0)
        t0 = time.perf_counter()
        for action in actions[turn * chunk:(turn + 1) * chunk]:
            env.step(action)
        best_env = min(best_env, time.perf_counter() - t0)
    env.close()
    gym_rate, plain_rate = chunk / best_env, chunk / best_plain
    return {"gym_env_steps_per_s": round(gym_rate, 1),
            "gym_hybrid_steps_per_s": round(plain_rate, 1),
            "gym_vs_hybrid_ratio": round(gym_rate / plain_rate, 4)}


def bare_simpy_steps_per_s(steps: int = 100_000) -> float:
    """Steps/s of a bare SimPy loop: 4 processes, each yielding a timeout of 1 per step, and
    nothing else (the floor any SimPy-driven run is measured against)."""
    import simpy  # the engine's own dependency, imported bare here on purpose

    env = simpy.Environment()

    def process() -> Any:
        while True:
            yield env.timeout(1)

    for _ in range(4):
        env.process(process())
    t0 = time.perf_counter()
    env.run(until=steps)
    return steps / (time.perf_counter() - t0)


def recorded_speed(*, repeat: int = 2) -> dict[str, float]:
    """The 24 h hybrid scenario (:data:`BENCH_24H`: 86,400 steps, every signal recorded every
    step) run as ``co2twin run`` runs it (build, run, frame with its derived columns), in steps
    per wall second, beside a bare 4-process SimPy loop (:func:`bare_simpy_steps_per_s`),
    measured in turns in one run, best of ``repeat`` each, so that their ratio holds on a
    loaded machine.

    And what bounds that ratio: the same run with every component's outputs held at their first
    step's (:func:`_hold_outputs`: the engine, SimPy, the recorder and the frame alone,
    ``recorded_engine_steps_per_s``), so that the components' own time a step is the
    difference; ``recorded_bound_vs_bare_ratio`` is the ratio the run would reach if the
    engine cost no more than the bare loop (bare step / (bare step + the components' time))."""
    from .scenario import add_derived_columns, build, parse_scenario, run

    scenario = parse_scenario(BENCH_24H, source="<bench>")
    best_bare = best_run = best_held = 0.0
    for _ in range(repeat):
        best_bare = max(best_bare, bare_simpy_steps_per_s())
        t0 = time.perf_counter()
        run(scenario, progress=False)
        best_run = max(best_run, scenario.steps / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        sim = _hold_outputs(build(scenario))
        add_derived_columns(sim.run(scenario.end, progress=False), scenario)
        best_held = max(best_held, scenario.steps / (time.perf_counter() - t0))
    components_s = max(1.0 / best_run - 1.0 / best_held, 0.0)
    bare_s = 1.0 / best_bare
    return {"bare_simpy_steps_per_s": round(best_bare, 1),
            "recorded_24h_steps_per_s": round(best_run, 1),
            "recorded_vs_bare_ratio": round(best_run / best_bare, 4),
            "recorded_engine_steps_per_s": round(best_held, 1),
            "recorded_bound_vs_bare_ratio": round(bare_s / (bare_s + components_s), 4)}


def _hold_outputs(sim: Simulation) -> Simulation:
    """``sim`` with each component's ``step_values`` replaced, on the instance (the engine takes
    an instance's own), by one returning its first step's outputs: what is left of a step is
    the engine's, SimPy's and the recorder's cost. Only for timing: the physics stops."""
    for component in sim.components.values():
        held: list[Any] = []

        def step_values(t: float, dt: float, values: tuple[Any, ...], _step: Any = component.step_values,
                        _held: list[Any] = held) -> Any:
            if not _held:
                _held.append(tuple(_step(t, dt, values)))
            return _held[0]

        component.step_values = step_values  # type: ignore[method-assign]
    return sim


#: the scenario of :func:`sweep_speed`: one minute of the physics plant at 1 s steps
BENCH_SWEEP: dict[str, Any] = {
    "name": "bench-sweep",
    "description": "60 s at 1 s steps, physics models: a short run, so the sweep's own costs show",
    "duration": 60,
    "step": 1.0,
    "inputs": {"current": 5.0},
}


def sweep_speed(*, variants: int = 100_000, chunk_size: int | None = None,
                workers: int = 2) -> dict[str, Any]:
    """``co2twin sweep`` on a LocalCluster of ``workers`` processes: ``variants`` Monte Carlo
    variants (cell current uniform 3-7 A, membrane resistance normal) of :data:`BENCH_SWEEP`
    (60 steps each), in chunks of ``chunk_size`` ensembles (default: 2,000, fewer so that each
    worker gets at least two chunks); each variant's KPIs and balances written, no signals
    kept (``every`` 60). Variants per wall second from the plan to the
    merged KPI table (cluster start included), and each worker's peak resident memory, bounded
    by the chunk size (an ensemble holds rows x ~70 columns x chunk_size x 8 bytes, plus its
    KPI and balance tables) over the worker's baseline."""
    import shutil
    import tempfile

    from .sweep import run_sweep
    from .sweep_spec import parse_sweep_spec

    chunk_size = chunk_size or max(1, min(2_000, variants // (2 * workers)))
    spec = parse_sweep_spec({"sweep": {
        "scenario": BENCH_SWEEP, "samples": variants, "seed": 0, "chunk_size": chunk_size,
        "distributions": {"inputs.current": {"dist": "uniform", "low": 3.0, "high": 7.0},
                          "plant.reactor.r_membrane": {"dist": "normal", "mean": 1.5, "std": 0.1}},
        "keep": {"every": 60}, "retries": 0}}, source="<bench>")
    tmp = Path(tempfile.mkdtemp(prefix="co2twin_bench_sweep_"))
    try:
        run = run_sweep(spec, tmp / "sweep", workers=workers)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"sweep_variants": variants, "sweep_chunk_size": chunk_size, "sweep_workers": workers,
            "sweep_variants_per_s": round(variants / run.seconds, 1),
            "sweep_variant_steps_per_s": round(variants * 60 / run.seconds, 1),
            "sweep_peak_worker_rss_mb": run.summary["peak_rss_mb_per_worker"]}


#: the scenario :func:`ensemble_speed` runs: the hybrid plant at 1 s steps, every 10th row kept
BENCH_ENSEMBLE: dict[str, Any] = {
    "name": "bench-ensemble",
    "description": "the hybrid plant at 1 s steps with CO2 recycle, varied current and cell area",
    "duration": 100,
    "step": 1.0,
    "inputs": {"current": 5.0, "recycle_fraction": 0.5},
    "record": {"every": 10},
}


def ensemble_speed(*, n: int = 10_000, steps: int = 100, single_steps: int = 1_000,
                   repeat: int = 2) -> dict[str, Any]:
    """Variant-steps/s of an ensemble of ``n`` hybrid-plant variants (``run_ensemble`` whole:
    building, the variants' checks, the run, recording every 10th row), against the steps/s
    of the same scenario run alone (``co2twin.run``, over ``single_steps`` steps so that its
    build does not dominate), alternating ``repeat`` turns of each, best of each side."""
    import numpy as np

    from .ensemble import run_ensemble
    from .scenario import parse_scenario, run

    ensemble = parse_scenario({**BENCH_ENSEMBLE, "duration": steps}, source="<bench>")
    single = parse_scenario({**BENCH_ENSEMBLE, "duration": single_steps}, source="<bench>")
    rng = np.random.default_rng(0)
    variants = [{"inputs.current": float(c), "plant.reactor.area_cm2": float(a)}
                for c, a in zip(rng.uniform(3.0, 7.0, n), rng.uniform(20.0, 30.0, n), strict=True)]
    best_ens = best_one = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        run(single, progress=False)
        best_one = min(best_one, time.perf_counter() - t0)
        t0 = time.perf_counter()
        run_ensemble(ensemble, variants, keep=["power.current", "reactor.cell_voltage"])
        best_ens = min(best_ens, time.perf_counter() - t0)
    ens_rate, one_rate = n * steps / best_ens, single_steps / best_one
    return {"ensemble_variants": n, "ensemble_steps": steps,
            "ensemble_scenario_steps_per_s": round(ens_rate, 1),
            "ensemble_single_steps_per_s": round(one_rate, 1),
            "ensemble_vs_single_ratio": round(ens_rate / one_rate, 2)}



#: the MPC bench's case: ageing_voltage_limit (scenarios/control/) as data, so the bench needs
#: no scenario file: 12 h at 10 s steps, a fast-ageing catalyst, the cell voltage kept <= 3.9 V
BENCH_MPC: dict[str, Any] = {
    "name": "bench-mpc",
    "description": "most formic acid under a 3.9 V limit as the catalyst ages (the oracle MPC)",
    "duration": "12 h",
    "step": 10,
    "seed": 3,
    "plant": {"reactor": {"ageing_hours": 8.0}},
    "case": {
        "objective": {"description": "most HCOOH within 3.9 V", "maximise": "production_kg"},
        "constraints": {"reactor.cell_voltage": {"high": 3.9}},
        "measurements": ["reactor.cell_voltage", "power.current"],
        "actuators": ["current"],
        "kpis": {"production_kg": {"min": 0.0}},
        "controllers": {"fixed": {"type": "open_loop", "actuator": "current", "output": {"constant": 5.0}}},
    },
}


def mpc_speed(*, moves: int = 8) -> dict[str, float]:
    """``mpc_solve_ms``: the median wall time of one move of the oracle MPC (co2twin.control.mpc)
    over the first ``moves`` moves of :data:`BENCH_MPC` at its default settings (15 min moves,
    a 1 h horizon in three blocks): restoring its model twin from the plant's checkpoint, the
    SLSQP solve and every prediction it runs."""
    from .control import MPC, ControlCase
    from .scenario import parse_scenario

    case = ControlCase(parse_scenario(BENCH_MPC, source="<bench>"))
    mpc = MPC(bounds={"current": (1.0, 6.8)})
    plant = case.build()
    mpc.prepare(case)
    plant.initialize()
    for _ in range(moves):
        t = plant.time
        for actuator, value in mpc.plan(t, plant.get_state()).items():
            plant.set(actuator, value)
        plant.advance_to(t + mpc.move)
    return {"mpc_solve_ms": round(float(mpc.stats()["median_move_ms"]), 1)}

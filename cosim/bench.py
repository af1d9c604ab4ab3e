"""``co2twin bench``: speed figures measured side by side in one run on this machine.

Keys of :func:`measure` are stable; later work adds keys, never renames them.
"""
from __future__ import annotations

import platform
import time
from typing import Any, Callable, Mapping

from .component import Component
from .simulation import Simulation

__all__ = ["measure", "noop_plant", "surrogate_speed", "BENCH_24H"]

#: the 24 h benchmark scenario (same as scenarios/long_run_24h.yaml in spirit)
BENCH_24H: dict[str, Any] = {
    "name": "bench-24h",
    "description": "24 h at 1 s steps with CO2 recycle and product-tank accumulation",
    "duration": "24 h",
    "step": 1.0,
    "inputs": {"current": 5.0, "recycle_fraction": 0.5},
}


class _NoOp(Component):
    """A component with another's ports that returns constant outputs: pure engine cost."""

    def __init__(self, template: Component) -> None:
        super().__init__()
        self.inputs = template.inputs
        self.outputs = template.outputs
        self._out = {p.name: p.start for p in template.outputs}

    def step(self, t: float, dt: float, inputs: Mapping[str, Any]) -> dict[str, Any]:
        return self._out


def noop_plant() -> Simulation:
    """The plant's wiring and ports with no-op components."""
    from components.plant import build_plant

    components, connections = build_plant()
    noop = {name: _NoOp(comp) for name, comp in components.items()}
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
    """Engine-only and full-plant steps/s, their ratio, and the 24 h scenario's wall time."""
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
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


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
    inputs = [one[:, a:b].astype("float32") for a, b in zip(edges[:-1], edges[1:])]
    kmodel(inputs)
    theirs = _best_of(lambda: kmodel(inputs), 200)
    figures["keras_one_sample_us"] = round(theirs * 1e6, 1)
    figures["runtime_vs_keras_speedup"] = round(theirs / ours, 1)
    return figures

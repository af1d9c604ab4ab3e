"""``co2twin bench``: speed figures measured side by side in one run on this machine.

Keys of :func:`measure` are stable; later work adds keys, never renames them.
"""
from __future__ import annotations

import platform
import time
from typing import Any, Mapping

from .component import Component
from .simulation import Simulation

__all__ = ["measure", "noop_plant", "BENCH_24H"]

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
    return {
        "engine_steps_per_s": round(engine, 1),
        "plant_steps_per_s": round(plant, 1),
        "plant_vs_engine_ratio": round(plant / engine, 4),
        "scenario_24h_wall_s": round(wall, 3),
        "scenario_24h_steps": scenario.steps,
        "scenario_24h_rows": len(frame),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }

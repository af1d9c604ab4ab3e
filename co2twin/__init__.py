"""co2twin: a digital twin of a CO2-to-formic-acid electroreduction pilot plant.

The application layer: scenario files for this plant (schema, checks, building),
running them, and the KPIs and balances of a run. The engine lives in :mod:`cosim`,
the plant stages in :mod:`components`, the physics and surrogates in :mod:`models`.

>>> from co2twin import load_scenario, run
>>> frame = run("scenarios/baseline.yaml")  # doctest: +SKIP
"""
from __future__ import annotations

from cosim.errors import CosimError, FMUError, ModelError, ScenarioError, SimulationError, WiringError
from cosim.simulation import Simulation

from .kpi import balances, kpis
from .scenario import (
    Scenario,
    build,
    json_schema,
    load_scenario,
    parse_scenario,
    run,
    validate,
)

schema = json_schema

__all__ = [
    "CosimError", "FMUError", "ModelError", "Scenario", "ScenarioError", "Simulation",
    "SimulationError", "WiringError", "balances", "build", "json_schema", "kpis",
    "load_scenario", "parse_scenario", "run", "schema", "validate",
]

"""co2twin's co-simulation engine: components, connections, master algorithm, recorder.

``load_scenario``, ``run`` and ``Scenario`` are loaded on first use, because
scenarios know the plant (``components``), which itself builds on this package.
"""
from __future__ import annotations

from typing import Any

from .component import Component
from .errors import (
    CosimError,
    FMUError,
    ModelError,
    ScenarioError,
    SimulationError,
    WiringError,
)
from .events import Event, RampInput, SensorFault, SetInput, SetParameter, SwitchProfile
from .graph import Connection, Graph
from .ports import Parameter, Port
from .profiles import Constant, Profile, Ramp, Shifted, Steps, Table
from .recorder import Recorder, read_results, write_results
from .simulation import Simulation

__all__ = [
    "Component", "Connection", "Constant", "CosimError", "Event", "FMUError", "Graph",
    "ModelError", "Parameter", "Port", "Profile", "Ramp", "RampInput", "Recorder",
    "Scenario", "ScenarioError", "SensorFault", "SetInput", "SetParameter", "Shifted",
    "Simulation", "SimulationError", "Steps", "SwitchProfile", "Table", "WiringError",
    "build", "load_scenario", "read_results", "run", "write_results",
]

_LAZY = {"Scenario", "load_scenario", "run", "build"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import scenario

        return getattr(scenario, name)
    raise AttributeError(f"module 'cosim' has no attribute {name!r}")

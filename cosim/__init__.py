"""A co-simulation engine: components, ports, connections, master algorithm, recorder.

It knows no plant, no model and no FMU: co2twin's plant (``components``) and its
application (``co2twin``) build on it, and another twin could too.
"""
from __future__ import annotations

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
    "ScenarioError", "SensorFault", "SetInput", "SetParameter", "Shifted",
    "Simulation", "SimulationError", "Steps", "SwitchProfile", "Table", "WiringError",
    "read_results", "write_results",
]

"""The plant stages of co2twin, each a plain :class:`cosim.Component`."""
from __future__ import annotations

from .feed import Feed
from .plant import FAULTS, INPUTS, LIMITS, STAGES, build_plant, resolve_input
from .power import PowerSupply
from .reactor import Reactor
from .separation import Separation

__all__ = [
    "FAULTS", "Feed", "INPUTS", "LIMITS", "PowerSupply", "Reactor", "STAGES", "Separation",
    "build_plant", "resolve_input",
]

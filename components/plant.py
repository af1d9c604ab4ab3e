"""The standard plant: which components, how they are wired, what a scenario may drive.

::

    power ──current──▶ reactor ──gas, formate──▶ separation
      ▲                  ▲  │                        │
      └─cell_voltage─────┼──┘ (delayed)              │
    feed ──flows, concentrations──┘                   │
      ▲──────────── co2_recycle_flow (delayed) ──────┘
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from collections.abc import Callable, Mapping

from cosim import Component, Connection, SetParameter, WiringError

from .feed import Feed
from .power import PowerSupply
from .reactor import Reactor
from .separation import Separation

if TYPE_CHECKING:
    from models.model_set import ModelSet

__all__ = ["STAGES", "INPUTS", "FAULTS", "LIMITS", "UNDEFINED_WHEN_ZERO", "KEY_SIGNALS", "SETPOINTS",
           "FLAGS", "Flag", "build_plant", "resolve_input", "recorded_as"]

#: component name -> class, in the order they are declared to the engine
STAGES: dict[str, type[Component]] = {
    "power": PowerSupply,
    "feed": Feed,
    "reactor": Reactor,
    "separation": Separation,
}

_WIRES = [
    ("power.current", "reactor.current"),
    ("feed.gas_flow", "reactor.gas_flow"),
    ("feed.co2_fraction", "reactor.co2_fraction"),
    ("feed.anolyte_flow", "reactor.anolyte_flow"),
    ("feed.catholyte_flow", "reactor.catholyte_flow"),
    ("feed.anolyte_conc", "reactor.anolyte_conc"),
    ("feed.catholyte_conc", "reactor.catholyte_conc"),
    ("feed.humidity", "reactor.humidity"),
    ("reactor.co2_out_rate", "separation.co2_rate"),
    ("reactor.h2_rate", "separation.h2_rate"),
    ("reactor.n2_rate", "separation.n2_rate"),
    ("reactor.formate_rate", "separation.formate_rate"),
    ("feed.catholyte_flow", "separation.catholyte_flow"),
]
_FEEDBACK = [
    ("reactor.cell_voltage", "power.cell_voltage"),
    ("separation.co2_recycle_flow", "feed.co2_recycle"),
]

#: short scenario names of the plant's external inputs -> ``component.port``
INPUTS: dict[str, str] = {
    "current": "power.current_setpoint",
    "gas_flow": "feed.gas_flow_setpoint",
    "co2_fraction": "feed.co2_fraction_setpoint",
    "anolyte_flow": "feed.anolyte_flow_setpoint",
    "catholyte_flow": "feed.catholyte_flow_setpoint",
    "anolyte_conc": "feed.anolyte_conc_setpoint",
    "catholyte_conc": "feed.catholyte_conc_setpoint",
    "humidity": "feed.humidity_setpoint",
    "ambient_temperature": "reactor.ambient_temperature",
    "recycle_fraction": "separation.recycle_fraction",
    "product_draw": "separation.product_draw",
}

#: plant faults -> the parameter change each one is. Arguments come from the scenario.
FAULTS: dict[str, Callable[..., SetParameter]] = {
    "pump_stop": lambda at, pump: SetParameter(
        at, f"feed.{pump}_pump_on", 0.0, label=f"{pump} pump stops"),
    "pump_restart": lambda at, pump: SetParameter(
        at, f"feed.{pump}_pump_on", 1.0, label=f"{pump} pump restarts"),
    "co2_supply_drop": lambda at, fraction: SetParameter(
        at, "feed.co2_supply_fraction", fraction, label="CO2 supply drops"),
    "co2_supply_restore": lambda at: SetParameter(
        at, "feed.co2_supply_fraction", 1.0, label="CO2 supply restored"),
    "power_trip": lambda at: SetParameter(
        at, "power.output_enabled", 0.0, label="power supply trips"),
    "power_restore": lambda at: SetParameter(
        at, "power.output_enabled", 1.0, label="power supply restored"),
}

#: operating limits for the "time outside limits" KPI: signal -> (low, high), None = open
LIMITS: dict[str, tuple[float | None, float | None]] = {
    "reactor.cell_voltage": (None, 4.5),
    "reactor.current_density": (None, 300.0),
    "reactor.cell_temperature": (None, 60.0),
    "reactor.anolyte_ph": (12.0, None),
    "reactor.fe_formate": (0.5, None),
}

#: signals that are undefined on some rows, where no limit can judge them: signal ->
#: (the column that is 0 on those rows, why the signal is undefined there). The reactor
#: reports FE 0 at 0 A (no charge passed, so no share of it went to formate); a night on
#: solar power is then no FE violation.
UNDEFINED_WHEN_ZERO: dict[str, tuple[str, str]] = {
    "reactor.fe_formate": ("reactor.current_density",
                           "no current through the cell: the faradaic efficiency is undefined at 0 A"),
}


def resolve_input(name: str) -> str:
    """Scenario input name (``current`` or ``power.current_setpoint``) -> ``component.port``."""
    return INPUTS.get(name, name)


_SOURCES = {target: source for source, target in _WIRES}


def recorded_as(signal: str) -> str:
    """The column a signal is recorded in: a connected input (``reactor.gas_flow``) is
    recorded as the output that feeds it without delay (``feed.gas_flow``)."""
    return _SOURCES.get(signal, signal)


@dataclass(frozen=True)
class Flag:
    """A 0/1 output that is 1 while a device or a model did not do what it was asked.

    ``asked`` and ``got`` name the columns of what was asked and what came (both in
    one unit); ``effects`` pairs of (set point, actual) columns that show what it did
    to the plant downstream; ``largest`` a column whose largest magnitude over the flagged
    rows says how far, where no asked/got pair does. A run's summary reports each flag
    that was raised.
    """

    column: str
    kind: str  # saturation | bound | envelope | supply
    what: str
    asked: str | None = None
    got: str | None = None
    effects: tuple[tuple[str, str], ...] = ()
    largest: str | None = None


_CELL_GAS = (("feed.gas_flow_setpoint", "feed.gas_flow"),
             ("feed.co2_fraction_setpoint", "feed.co2_fraction"))

#: every flag the standard plant raises (the reactor's envelope flags, one per
#: estimated variable, are read from the columns ``reactor.<variable>_outside_envelope``)
FLAGS: tuple[Flag, ...] = (
    Flag("feed.co2_mfc_saturated", "saturation", "CO2 flow controller at its full scale",
         "feed.co2_mfc_request", "feed.co2_mfc_flow", _CELL_GAS),
    Flag("feed.n2_mfc_saturated", "saturation", "N2 flow controller at its full scale",
         "feed.n2_mfc_request", "feed.n2_mfc_flow", _CELL_GAS),
    Flag("feed.anolyte_pump_saturated", "saturation", "anolyte pump at its full scale",
         "feed.anolyte_flow_setpoint", "feed.anolyte_flow"),
    Flag("feed.catholyte_pump_saturated", "saturation", "catholyte pump at its full scale",
         "feed.catholyte_flow_setpoint", "feed.catholyte_flow"),
    Flag("power.current_limited", "saturation", "power supply at its rated current",
         "power.current_setpoint", "power.current"),
    Flag("power.voltage_limited", "saturation",
         "power supply at its compliance voltage (current reduced)",
         "power.current_setpoint", "power.current"),
    Flag("power.slew_limited", "saturation", "current held back by the slew rate",
         "power.current_setpoint", "power.current"),
    Flag("reactor.estimate_bounded", "bound",
         "surrogate estimates bounded to keep the charge and carbon balances"),
)

#: signal -> the set point it follows (plots draw both)
SETPOINTS: dict[str, str] = {
    "power.current": "power.current_setpoint",
    "feed.gas_flow": "feed.gas_flow_setpoint",
    "feed.co2_fraction": "feed.co2_fraction_setpoint",
    "feed.anolyte_flow": "feed.anolyte_flow_setpoint",
    "feed.catholyte_flow": "feed.catholyte_flow_setpoint",
    "feed.anolyte_conc": "feed.anolyte_conc_setpoint",
    "feed.catholyte_conc": "feed.catholyte_conc_setpoint",
    "feed.humidity": "feed.humidity_setpoint",
    "feed.co2_mfc_flow": "feed.co2_mfc_request",
    "feed.n2_mfc_flow": "feed.n2_mfc_request",
}


def build_plant(
    parameters: Mapping[str, Mapping[str, float]] | None = None,
    models: ModelSet | None = None,
) -> tuple[dict[str, Component], list[Connection]]:
    """Instantiate the four stages with parameter overrides and return them with their wiring.

    ``models`` gives the reactor its surrogates; without it the reactor runs on physics.
    """
    parameters = dict(parameters or {})
    unknown = sorted(set(parameters) - set(STAGES))
    if unknown:
        raise WiringError(
            f"unknown plant component(s) {', '.join(unknown)}; known: {', '.join(STAGES)}"
        )
    components = {name: cls(**parameters.get(name, {})) for name, cls in STAGES.items()
                  if name != "reactor"}
    components["reactor"] = Reactor(models=models, **parameters.get("reactor", {}))
    components = {name: components[name] for name in STAGES}
    connections = [Connection(a, b) for a, b in _WIRES]
    connections += [Connection(a, b, delayed=True) for a, b in _FEEDBACK]
    return components, connections

#: signals worth a look after a run: (column, axis label)
KEY_SIGNALS: list[tuple[str, str]] = [
    ("power.current", "current [A]"),
    ("reactor.cell_voltage", "cell voltage [V]"),
    ("reactor.fe_formate", "FE formate [1]"),
    ("reactor.formate_production", "formate [g/h]"),
    ("reactor.outlet_co2_fraction", "outlet CO2 [%]"),
    ("reactor.anolyte_ph", "anolyte pH"),
    ("reactor.cell_temperature", "cell temperature [degC]"),
    ("separation.tank_formate_conc", "tank formate [mol/L]"),
]

"""The solar and battery supply of a scenario: built beside the plant, and what a run shows of it.

A scenario's ``supply:`` section (:class:`co2twin.scenario_schema.SupplySpec`) adds four
components to the standard plant (the wiring is drawn in :mod:`components.dc_bus`):
``pv`` (:class:`~components.pv.PVArray`), ``battery`` (:class:`~components.battery.Battery`,
with the chosen ageing model), ``ems`` (:class:`~components.dc_bus.EnergyManager`) and
``bus`` (:class:`~components.dc_bus.DCBus`). The current the scenario asks for (its
``current`` input, events on it, or a controller driving it) becomes the energy manager's
``current_request``; the manager's ``current_setpoint`` drives the power supply, curtailed
when PV, battery and grid cannot carry the electrolyser's power ``P = V * I``.

:func:`supply_kpis` and :func:`supply_balances` read a run's results: energy by source and
sink, grid cost, battery health and cycles, time curtailed, how long the plant ran after
each sunset; and the bus's and the battery's energy balances, recomputed from the
recorded flows and counters.
"""
from __future__ import annotations

from pathlib import Path
from collections.abc import Collection
from typing import Any

import numpy as np
import pandas as pd

from components.battery import LIMIT_SIGNALS, Battery
from components.dc_bus import FLOWS, DCBus, EnergyManager
from components.plant import Flag, resolve_input
from components.pv import PVArray
from cosim.errors import ModelError, ScenarioError
from cosim.graph import Connection
from cosim.units import converter
from models.battery_models import ageing_model

from .scenario_schema import InputSpec, ProfileEvent, RampEvent, Scenario, SetEvent, SupplySpec
from .supply_schema import CLASSES, PROFILE_PORTS, SHARED

__all__ = ["COMPONENTS", "CURRENT_REQUEST", "MANAGER_SETPOINT", "attach_supply", "supply_kpis",
           "supply_balances",
           "runs_after_sunset", "SUPPLY_KPI_UNITS", "SUPPLY_FLAGS", "checked_wiring",
           "redirect_current", "redirect_event", "driven_input"]

#: the supply's components, by the name their signals carry
COMPONENTS = tuple(CLASSES)
#: where the scenario's current request goes when a supply is attached
CURRENT_REQUEST = "ems.current_request"
#: what then drives the power supply's current set point: the request, curtailed
MANAGER_SETPOINT = "ems.current_setpoint"
_SETPOINT = "power.current_setpoint"

_WIRES = [
    (MANAGER_SETPOINT, _SETPOINT),
    ("pv.power", "ems.pv_power"),
    ("pv.power", "bus.pv_power"),
    ("reactor.power", "bus.load_power"),
    *((f"ems.{name}", f"bus.{name}") for name in ("price", "grid_allowance", "grid_first", "grid_charge",
                                                 "battery_discharge_limit", "battery_charge_limit")),
    ("bus.battery_power", "battery.power_request"),
]
_FEEDBACK = [
    ("reactor.cell_voltage", "ems.cell_voltage"),
    *((f"battery.{name}", f"ems.battery_{name}") for name in LIMIT_SIGNALS),
]


def checked_wiring() -> list[Connection]:
    """The supply's wiring as the scenario checks see it (:class:`co2twin.scenario_checks.Semantics`):
    all but the manager's set point to the power supply, which stays free, since what
    drives it in the scenario (the ``current`` input, events, a controller) is moved to
    :data:`CURRENT_REQUEST` by :func:`attach_supply`."""
    return ([Connection(a, b) for a, b in _WIRES if b != _SETPOINT]
            + [Connection(a, b, delayed=True) for a, b in _FEEDBACK])


def driven_input(target: str, external_inputs: Collection[str]) -> str:
    """The input of a built simulation (its unconnected ``external_inputs``) that the scenario
    input ``target`` (``component.port``) drives: itself, or with a supply, for the power
    supply's current set point, :data:`CURRENT_REQUEST` (what :func:`attach_supply` moves
    the ``current`` input, events on it and an agent's current to)."""
    if target == _SETPOINT and target not in external_inputs and CURRENT_REQUEST in external_inputs:
        return CURRENT_REQUEST
    return target


def redirect_current(connections: list[Connection]) -> list[Connection]:
    """``connections`` with those that drive the power supply's current set point (a
    controller's) moved to :data:`CURRENT_REQUEST`: with a supply, they ask the manager."""
    return [Connection(c.source, CURRENT_REQUEST, delayed=c.delayed) if c.target == _SETPOINT else c
            for c in connections]


def attach_supply(scenario: Scenario, components: dict[str, Any], connections: list[Connection]
                  ) -> Scenario:
    """Add the supply's components and wiring to a plant being built (in place).

    Returns the scenario to drive the simulation with: the current request moved to
    :data:`CURRENT_REQUEST`, the supply's profiles added to its inputs.
    """
    spec = scenario.supply
    if spec is None:
        return scenario
    if not scenario.has_plant:
        raise ScenarioError("supply: expected the standard plant (the supply feeds its power supply), "
                            "found plant: false", scenario.source)
    taken = sorted(set(COMPONENTS) & set(components))
    if taken:
        raise ScenarioError(f"supply: the supply's components are named {', '.join(COMPONENTS)}; "
                            f"rename the scenario's component(s) {', '.join(taken)}", scenario.source)
    components.update(_components(scenario, spec))
    connections[:] = redirect_current(connections)
    connections += [Connection(a, b) for a, b in _WIRES]
    connections += [Connection(a, b, delayed=True) for a, b in _FEEDBACK]
    return scenario.model_copy(update={"inputs": _inputs(scenario, spec),
                                       "events": [redirect_event(e) for e in scenario.events]})


def _components(scenario: Scenario, spec: SupplySpec) -> dict[str, Any]:
    directory = None
    if spec.ageing_directory is not None:
        directory = Path(spec.ageing_directory)
        if not directory.is_absolute():
            directory = scenario.base_dir / directory
    try:
        ageing = ageing_model(spec.ageing, directory)
    except ModelError as exc:
        raise ScenarioError(f"supply.ageing: {exc}", scenario.source) from None
    shared = {name: getattr(spec, name) for name in SHARED}
    return {
        "pv": PVArray(**spec.pv.model_dump(), clear_sky=0.0 if spec.irradiance is not None else 1.0),
        "battery": Battery(ageing, **spec.battery.model_dump()),
        "ems": EnergyManager(**spec.ems.model_dump(), **shared),
        "bus": DCBus(**spec.bus.model_dump(), **shared),
    }


def _inputs(scenario: Scenario, spec: SupplySpec) -> dict[str, InputSpec]:
    """The scenario's inputs with the current request moved, plus the supply's profiles."""
    inputs = {(CURRENT_REQUEST if resolve_input(name) == _SETPOINT else name): value
              for name, value in scenario.inputs.items()}
    profiles = dict(zip(PROFILE_PORTS, (getattr(spec, key) for key in PROFILE_PORTS), strict=True))
    if profiles["ambient_temperature"] is None:  # the plant's ambient, when the scenario drives it
        profiles["ambient_temperature"] = next((value for name, value in scenario.inputs.items()
                                                if resolve_input(name) == "reactor.ambient_temperature"),
                                               None)
    if profiles["battery_temperature"] is None:
        profiles["battery_temperature"] = profiles["ambient_temperature"]
    for key, profile in profiles.items():
        if profile is not None:
            component, port = PROFILE_PORTS[key]
            target = f"{component}.{port}"
            inputs[target] = _in_unit(profile, CLASSES[component].input_port(port).unit)
    return inputs


def _in_unit(spec: InputSpec, unit: str) -> InputSpec:
    """A profile with its numbers in the port's unit (a CSV profile is converted when read)."""
    if spec.unit is None or spec.unit == unit or spec.csv is not None:
        return spec
    convert = converter(spec.unit, unit)
    update: dict[str, Any] = {"unit": unit}
    if spec.constant is not None:
        update["constant"] = convert(spec.constant)
    if spec.steps is not None:
        update["steps"] = [(t, convert(v)) for t, v in spec.steps]
    if spec.ramp is not None:
        update["ramp"] = spec.ramp.model_copy(update={"initial": convert(spec.ramp.initial),
                                                      "to": convert(spec.ramp.to)})
    return spec.model_copy(update=update)


def redirect_event(event: Any) -> Any:
    """An event on the ``current`` input, moved to the energy manager's request (with a supply)."""
    if isinstance(event, (SetEvent, RampEvent, ProfileEvent)) and resolve_input(event.target) == _SETPOINT:
        return event.model_copy(update={"target": CURRENT_REQUEST})
    return event


# -- what a run shows ---------------------------------------------------------------------
SUPPLY_KPI_UNITS = {
    "pv_energy_kWh": "kWh", "load_energy_kWh": "kWh", "battery_charged_kWh": "kWh",
    "battery_discharged_kWh": "kWh", "battery_throughput_kWh": "kWh", "battery_losses_kWh": "kWh",
    "grid_energy_kWh": "kWh", "export_energy_kWh": "kWh", "curtailed_pv_kWh": "kWh", "unserved_kWh": "kWh",
    "grid_cost_EUR": "EUR", "load_share_pv": "1", "load_share_battery": "1", "load_share_grid": "1",
    "load_share_unserved": "1", "solar_fraction": "1", "state_of_health_start": "1",
    "state_of_health_end": "1", "capacity_start_Ah": "Ah", "capacity_end_Ah": "Ah", "capacity_lost_Ah": "Ah",
    "equivalent_cycles": "1", "time_curtailed_s": "s", "runtime_after_sunset_min": "min",
}

#: the supply's flags: each is 1 while the supply did not give what was asked of it
SUPPLY_FLAGS: tuple[Flag, ...] = (
    Flag("ems.curtailed", "supply", "current request cut for lack of power (PV, battery, grid at the price)",
         "ems.current_request", "ems.current_setpoint"),
    Flag("bus.shortfall", "supply", "the cell drew more than PV, battery and grid could give (unserved)",
         largest="bus.unserved"),
    Flag("battery.request_clipped", "supply", "battery asked beyond its limits (state of charge, ratings)",
         "bus.battery_power", "battery.power"),
)


def _span(frame: pd.DataFrame, column: str) -> float:
    return float(frame[column].iloc[-1] - frame[column].iloc[0])


def supply_kpis(frame: pd.DataFrame, *, nights: bool = True) -> dict[str, Any]:
    """The supply's KPIs from a run's results (absent when the run had no supply).

    Energies over the run (kWh); ``battery_throughput_kWh``: charged + discharged at the
    terminals; ``load_share_{pv,battery,grid,unserved}``: where the energy the
    electrolyser's supply took from the bus came from (they add up to 1);
    ``solar_fraction``: the load's energy that came from PV, directly or through the
    battery (PV charged / all charged of the battery's share); ``capacity_lost_Ah``:
    capacity at the start less at the end; ``runtime_after_sunset_min`` (with
    ``nights``): the mean over the nights of :func:`runs_after_sunset`, which needs every
    row of the run (a run summarised chunk by chunk leaves it out).
    """
    if "bus.load_energy" not in frame:
        return {}
    out: dict[str, Any] = {
        "pv_energy_kWh": _span(frame, "bus.pv_energy"), "load_energy_kWh": _span(frame, "bus.load_energy"),
        "grid_energy_kWh": _span(frame, "bus.grid_energy"),
        "export_energy_kWh": _span(frame, "bus.pv_export_energy"),
        "curtailed_pv_kWh": _span(frame, "bus.pv_curtailed_energy"),
        "unserved_kWh": _span(frame, "bus.unserved_energy"), "grid_cost_EUR": _span(frame, "bus.cost"),
    }
    if "battery.energy_in" in frame:
        out.update({
            "battery_charged_kWh": _span(frame, "battery.energy_in"),
            "battery_discharged_kWh": _span(frame, "battery.energy_out"),
            "battery_losses_kWh": _span(frame, "battery.losses"),
            "state_of_health_start": float(frame["battery.state_of_health"].iloc[0]),
            "state_of_health_end": float(frame["battery.state_of_health"].iloc[-1]),
            "capacity_start_Ah": float(frame["battery.capacity"].iloc[0]),
            "capacity_end_Ah": float(frame["battery.capacity"].iloc[-1]),
            "equivalent_cycles": _span(frame, "battery.equivalent_cycles"),
        })
        out["battery_throughput_kWh"] = out["battery_charged_kWh"] + out["battery_discharged_kWh"]
        out["capacity_lost_Ah"] = out["capacity_start_Ah"] - out["capacity_end_Ah"]
    load = out["load_energy_kWh"]
    if load > 0:
        direct = _span(frame, "bus.pv_to_load_energy")
        from_battery = _span(frame, "bus.battery_to_load_energy")
        out["load_share_pv"] = direct / load
        out["load_share_battery"] = from_battery / load
        out["load_share_grid"] = _span(frame, "bus.grid_to_load_energy") / load
        out["load_share_unserved"] = out["unserved_kWh"] / load
        charged = _span(frame, "bus.pv_to_battery_energy") + _span(frame, "bus.grid_to_battery_energy")
        pv_share = _span(frame, "bus.pv_to_battery_energy") / charged if charged > 0 else 1.0
        out["solar_fraction"] = (direct + from_battery * pv_share) / load
    if "ems.curtailed" in frame and len(frame) > 1:
        spacing = float(np.median(np.diff(frame.index.to_numpy())))
        out["time_curtailed_s"] = float(np.count_nonzero(frame["ems.curtailed"].to_numpy()[1:] > 0)) * spacing
    found = runs_after_sunset(frame) if nights else []
    if found:
        out["runtime_after_sunset_min"] = float(np.mean([n["minutes"] for n in found]))
        out["nights"] = found
    return out


def runs_after_sunset(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """For each sunset in the run: how long the plant ran on at the current it was asked for.

    A night starts where ``pv.sun_elevation`` falls through 0 and ends at the next
    sunrise (or the run's end); the plant runs until the energy manager first
    curtails the request. Each night: ``sunset_h``, ``minutes`` run, and ``through``
    (True when it ran the whole night).
    """
    needed = {"pv.sun_elevation", "ems.curtailed"}
    if not needed <= set(frame.columns):
        return []
    t = frame.index.to_numpy(float)
    up = frame["pv.sun_elevation"].to_numpy() > 0.0
    cut = frame["ems.curtailed"].to_numpy() > 0.0
    sunsets = np.flatnonzero(up[:-1] & ~up[1:]) + 1
    nights = []
    for s in sunsets:
        after = np.flatnonzero(up[s:])
        end = s + int(after[0]) if after.size else len(t) - 1
        stops = np.flatnonzero(cut[s:end + 1])
        through = stops.size == 0
        stop = end if through else s + int(stops[0])
        nights.append({"sunset_h": float(t[s] / 3600.0), "minutes": float((t[stop] - t[s]) / 60.0),
                       "through": bool(through)})
    return nights


def supply_balances(frame: pd.DataFrame) -> dict[str, float]:
    """Largest relative residual, over the recorded rows, of the supply's energy balances.

    ``bus``: PV + battery discharge + grid + unserved = load + battery charge + export +
    curtailed, recomputed from the recorded flows (W), each row scaled by its largest
    flow. ``battery``: stored-energy change = charged - discharged - losses - fade,
    from the recorded counters between consecutive rows (exact under decimation too),
    scaled by the largest of them. ``bus_battery``: the power the bus asked of the
    battery against what the battery gave.
    """
    out: dict[str, float] = {}
    cols = set(frame.columns)
    flows = [f"bus.{name}" for name in FLOWS]
    if {"pv.power", "bus.load", *flows} <= cols:
        f = {name: frame[f"bus.{name}"].to_numpy() for name in FLOWS}
        pv, load = frame["pv.power"].to_numpy(), frame["bus.load"].to_numpy()
        residual = (pv + f["battery_to_load"] + f["grid_to_load"] + f["grid_to_battery"] + f["unserved"]
                    - load - f["pv_to_battery"] - f["grid_to_battery"] - f["pv_export"] - f["pv_curtailed"])
        scale = np.maximum.reduce([np.abs(v) for v in (pv, load, *f.values())])
        out["bus"] = _relative(residual, scale)
    counters = ["battery.stored_energy", "battery.energy_in", "battery.energy_out", "battery.losses",
                "battery.fade_energy"]
    if set(counters) <= cols and len(frame) > 1:
        values = [frame[c].to_numpy() for c in counters]
        stored, e_in, e_out, loss, fade = (np.diff(v) for v in values)
        residual = stored - (e_in - e_out - loss - fade)
        scale = np.maximum.reduce([np.abs(v) for v in (stored, e_in, e_out, loss, fade)])
        # a change below the counters' resolution (their last bits) is no imbalance
        floor = 2.0 * sum(np.spacing(np.maximum(np.abs(v[:-1]), np.abs(v[1:]))) for v in values)
        out["battery"] = _relative(np.where(np.abs(residual) <= floor, 0.0, residual), scale)
    if {"bus.battery_power", "battery.power"} <= cols:
        asked, given = frame["bus.battery_power"].to_numpy(), frame["battery.power"].to_numpy()
        out["bus_battery"] = _relative(asked - given, np.maximum(np.abs(asked), np.abs(given)))
    return out


def _relative(residual: np.ndarray, scale: np.ndarray) -> float:
    """Largest ``|residual| / scale`` over rows, where both are not exactly zero."""
    scale = np.maximum(scale, 1e-300)
    ratio = np.where(residual == 0.0, 0.0, np.abs(residual) / scale)
    return float(np.max(ratio, initial=0.0))

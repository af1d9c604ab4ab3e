"""The DC bus between PV, battery, grid and the electrolyser's power supply, and its energy manager.

::

    pv.power ─────────────┬──▶ ems.pv_power                 ems: what may be drawn this step
    battery.<limits> ─────┼──▶ ems.battery_* (delayed)        (current set point, grid use)
    reactor.cell_voltage ─┼──▶ ems.cell_voltage (delayed)
    scenario current ─────┼──▶ ems.current_request
                          │    ems.current_setpoint ──▶ power.current_setpoint
                          └──▶ bus.pv_power
    reactor.power ───────────▶ bus.load_power                bus: who supplies what was drawn
    ems.{grid_allowance, grid_first, grid_charge, battery_*_limit, price} ──▶ bus
    bus.battery_power ───────▶ battery.power_request

**EnergyManager** (``ems``) steps before the power supply. It knows this step's PV
power, the battery's exact limits for the step (:func:`components.battery.power_limits`
from the battery's state) and the grid's terms at this step's ``price``: import up to
``grid_limit`` while the price is at most ``import_price_limit``; the grid before the
battery while it is at most ``grid_first_price``; the grid charges the battery while it
is at most ``grid_charge_price``. From the power available it curtails the current the
operator asks for: the electrolyser's power ``P = V * I`` (through the supply's
``converter_efficiency``) must fit, with ``V`` the last cell voltage raised by
``voltage_margin`` (and at least ``min_cell_voltage``, the voltage of a cell at low
current: after a stop the last voltage is the open-circuit one). The battery counts with
what it can sustain, at most its energy above ``soc_min`` over ``hold_time`` (a minute's
charge does not start the plant, and the current tapers as the battery empties); the bus
may still draw on its full limit. Below ``min_current`` the electrolyser stops rather than
run at a trickle, and once stopped it restarts only when ``restart_current`` can flow.
``curtailed`` is 1 when the request was cut.

**DCBus** (``bus``) steps after the reactor, on the power the electrolyser drew
(``reactor.power`` / ``converter_efficiency``). PV feeds the load first; the deficit
comes from the battery then the grid (the grid first when the manager says so); the
rest is ``unserved``: the power the cell drew beyond what the sources could give in
this step, because the manager set the current from the last step's voltage (it is 0
unless the voltage rose by more than the margin in one step with the battery empty
and no grid). Surplus PV charges the battery, then is exported (up to
``export_limit``), then curtailed. Every flow is an output (W, over the step) and is
accumulated (kWh), with the grid's cost. ``balance_residual`` is the step's sources (PV,
battery discharge, grid import, unserved) minus its sinks (load, battery charge, export,
curtailed PV): rounding only.

Both work for floats and NumPy arrays. On floats their steps are ``_step_floats``, the same
arithmetic unrolled (the engine's positional ``step_values`` and ``step`` both take it);
arrays go through the general steps.
"""
from __future__ import annotations

import math
from typing import Any, ClassVar
from collections.abc import Mapping, Sequence

from cosim import Component, Parameter, Port
from models.electrochemistry import SCALAR, namespace

from .battery import LIMIT_SIGNALS, limits_floats, power_limits

__all__ = ["EnergyManager", "DCBus", "FLOWS"]

_KWH = 3.6e6
_PRICE_MAX = 1e4


class EnergyManager(Component):
    """Current set point and grid use from this step's PV, battery limits and price."""

    #: arrays of variants (an ensemble) take the general step; its parameters stay floats
    #: (an ensemble refuses ``supply.*`` paths: the float step checks inputs and state only)
    supports_arrays: ClassVar[bool] = True

    inputs = (
        Port("current_request", "A", 0.0, 1000.0, "current the operator asks for", start=5.0),
        Port("cell_voltage", "V", 0.0, 100.0, "last cell voltage (feedback)", start=0.0, measured=True),
        Port("pv_power", "W", 0.0, 1e9, "PV power over this step"),
        Port("price", "EUR/kWh", -_PRICE_MAX, _PRICE_MAX, "grid energy price now", start=0.2),
        Port("battery_ocv", "V", 0.0, 1e4, "battery open-circuit voltage"),
        Port("battery_resistance", "Ohm", 0.0, 1e4, "battery internal resistance"),
        Port("battery_discharge_energy", "kWh", 0.0, 1e6, "battery energy above its soc_min"),
        Port("battery_charge_energy", "kWh", 0.0, 1e6, "battery room below its soc_max"),
        Port("battery_max_discharge_current", "A", 0.0, 1e5, "battery discharge rating"),
        Port("battery_max_charge_current", "A", 0.0, 1e5, "battery charge rating"),
        Port("battery_charge_efficiency", "1", 0.0, 1.0, "battery coulombic efficiency", start=1.0),
    )
    outputs = (
        Port("current_setpoint", "A", 0.0, 1000.0, "current the power supply is asked for"),
        Port("current_limit", "A", 0.0, math.inf, "largest current the available power carries"),
        Port("curtailed", "1", 0.0, 1.0, "1 while the request is cut for lack of power"),
        Port("available_power", "W", 0.0, math.inf, "PV + sustained battery + grid power for the load"),
        Port("grid_allowance", "W", 0.0, 1e9, "grid import allowed this step"),
        Port("grid_first", "1", 0.0, 1.0, "1: the grid supplies the load before the battery"),
        Port("grid_charge", "W", 0.0, 1e9, "grid power asked to charge the battery"),
        Port("battery_discharge_limit", "W", 0.0, 1e9, "largest battery discharge this step"),
        Port("battery_charge_limit", "W", 0.0, 1e9, "largest battery charge this step"),
        Port("price", "EUR/kWh", -_PRICE_MAX, _PRICE_MAX, "grid energy price this step", start=0.2),
    )
    parameters = (
        Parameter("grid_limit", 0.0, "W", "largest grid import (0: off grid)", 0.0, 1e9, tunable=True),
        Parameter("import_price_limit", 1000.0, "EUR/kWh", "import from the grid only at or below",
                  -_PRICE_MAX, _PRICE_MAX, tunable=True),
        Parameter("grid_first_price", -1000.0, "EUR/kWh",
                  "at or below: the grid supplies the load before the battery", -_PRICE_MAX, _PRICE_MAX,
                  tunable=True),
        Parameter("grid_charge_price", -1000.0, "EUR/kWh", "at or below: the grid charges the battery",
                  -_PRICE_MAX, _PRICE_MAX, tunable=True),
        Parameter("converter_efficiency", 0.95, "1", "DC bus to cell (the electrolyser's supply)",
                  0.01, 1.0),
        Parameter("voltage_margin", 0.02, "1", "headroom on the last cell voltage", 0.0, 1.0),
        Parameter("min_cell_voltage", 3.0, "V", "cell voltage assumed at least", 0.0, 100.0),
        Parameter("min_current", 0.5, "A", "below this the electrolyser stops rather than trickle",
                  0.0, 1000.0),
        Parameter("restart_current", 1.0, "A", "a stopped electrolyser restarts when this can flow",
                  0.0, 1000.0),
        Parameter("hold_time", 600.0, "s", "the battery counts with its energy over this time at most",
                  1.0, 1e7),
    )
    state_names = ("_running",)

    def initialize(self, t0: float) -> None:
        self._running: Any = True

    def step(self, t: float, dt: float, inputs: Mapping[str, Any]) -> dict[str, Any]:
        values = _EMS_INPUTS_OF(inputs)
        if namespace(*values, self._running) is SCALAR:
            return dict(zip(_EMS_OUTPUTS, self._step_floats(dt, values), strict=True))
        return self._step_general(t, dt, inputs)

    def step_values(self, t: float, dt: float, values: tuple[Any, ...]) -> Sequence[Any]:
        """:meth:`step` with positional inputs and outputs, the engine's path: on floats the
        float step's tuple itself (what :meth:`step` puts in its dict), else :meth:`step`."""
        if namespace(*values, self._running) is SCALAR:
            return self._step_floats(dt, values)
        return super().step_values(t, dt, values)

    def _step_floats(self, dt: float, values: tuple[Any, ...]) -> tuple[Any, ...]:
        """:meth:`_step_general` on floats: the same operations in the same order (``min(a, b)``
        written ``b if b < a else a``, what it returns; ``where`` an ``if``). Inputs and
        outputs in the order of the ports."""
        p = self.p
        (request, cell_voltage, pv, price, ocv, resistance, discharge_energy, charge_energy,
         max_discharge, max_charge, efficiency) = values
        discharge, charge = limits_floats(ocv, resistance, discharge_energy, charge_energy, max_discharge,
                                          max_charge, efficiency, dt)
        grid_ok = price <= p.import_price_limit
        grid = p.grid_limit if grid_ok else 0.0
        grid_charge = (charge if charge < grid else grid) if grid_ok and price <= p.grid_charge_price \
            else 0.0
        sustained = discharge_energy * 3.6e6 / p.hold_time
        sustained = sustained if sustained < discharge else discharge
        available = pv + sustained + grid
        voltage = cell_voltage * (1.0 + p.voltage_margin)
        low = p.min_cell_voltage
        voltage = low if low > voltage else voltage
        limit = available * p.converter_efficiency / (1e-9 if voltage < 1e-9 else voltage)
        setpoint = limit if limit < request else request
        if self._running:
            floor = p.min_current
        else:
            floor, restart = p.min_current, p.restart_current
            floor = restart if restart > floor else floor
        if setpoint < request and setpoint < floor:
            setpoint = 0.0
        if dt > 0.0:
            self._running = setpoint > 0.0
        return (setpoint, limit, 1.0 if setpoint < request else 0.0, available, grid,
                1.0 if grid_ok and price <= p.grid_first_price else 0.0, grid_charge, discharge, charge,
                price)

    def _step_general(self, t: float, dt: float, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """The step in the namespace of its inputs: arrays of variants, the reference of floats."""
        p = self.p
        price = inputs["price"]
        xp = namespace(price, inputs["pv_power"], inputs["current_request"], inputs["battery_ocv"])
        battery = {name: inputs[f"battery_{name}"] for name in LIMIT_SIGNALS}
        discharge, charge = power_limits(**battery, dt=dt)
        grid_ok = price <= p.import_price_limit
        grid = xp.where(grid_ok, p.grid_limit, 0.0)
        grid_first = xp.where(grid_ok & (price <= p.grid_first_price), 1.0, 0.0)
        grid_charge = xp.where(grid_ok & (price <= p.grid_charge_price), xp.minimum(grid, charge), 0.0)
        sustained = xp.minimum(discharge, inputs["battery_discharge_energy"] * 3.6e6 / p.hold_time)
        available = inputs["pv_power"] + sustained + grid
        voltage = xp.maximum(inputs["cell_voltage"] * (1.0 + p.voltage_margin), p.min_cell_voltage)
        limit = available * p.converter_efficiency / xp.maximum(voltage, 1e-9)
        request = inputs["current_request"]
        setpoint = xp.minimum(request, limit)
        floor = xp.where(self._running, p.min_current, xp.maximum(p.min_current, p.restart_current))
        setpoint = xp.where((setpoint < request) & (setpoint < floor), 0.0, setpoint)
        if dt > 0.0:
            self._running = setpoint > 0.0
        return {"current_setpoint": setpoint, "current_limit": limit,
                "curtailed": xp.where(setpoint < request, 1.0, 0.0), "available_power": available,
                "grid_allowance": grid, "grid_first": grid_first, "grid_charge": grid_charge,
                "battery_discharge_limit": discharge, "battery_charge_limit": charge, "price": price}


#: the bus's flows (W over the step) and the totals it keeps of them (kWh), in its output order
FLOWS = ("pv_to_load", "pv_to_battery", "pv_export", "pv_curtailed", "battery_to_load", "grid_to_load",
         "grid_to_battery", "unserved")


class DCBus(Component):
    """Who supplies the power the electrolyser drew: PV, battery, grid, in the manager's order."""

    #: arrays of variants (an ensemble) take the general step; its parameters stay floats
    #: (an ensemble refuses ``supply.*`` paths: the float step checks inputs and state only)
    supports_arrays: ClassVar[bool] = True

    inputs = (
        Port("pv_power", "W", 0.0, 1e9, "PV power over the step"),
        Port("load_power", "W", 0.0, 1e9, "power the electrolyser cell drew over the step"),
        Port("price", "EUR/kWh", -_PRICE_MAX, _PRICE_MAX, "grid energy price", start=0.2),
        Port("grid_allowance", "W", 0.0, 1e9, "grid import allowed this step"),
        Port("grid_first", "1", 0.0, 1.0, "1: the grid before the battery"),
        Port("grid_charge", "W", 0.0, 1e9, "grid power asked to charge the battery"),
        Port("battery_discharge_limit", "W", 0.0, 1e9, "largest battery discharge this step"),
        Port("battery_charge_limit", "W", 0.0, 1e9, "largest battery charge this step"),
    )
    outputs = (
        Port("load", "W", 0.0, 1e9, "power the electrolyser's supply takes from the bus"),
        Port("converter_loss", "W", 0.0, 1e9, "lost in the electrolyser's supply"),
        *(Port(name, "W", 0.0, 1e9, f"{name.replace('_', ' ')} over the step") for name in FLOWS),
        Port("battery_power", "W", -1e9, 1e9, "battery terminal power asked: + discharge, - charge"),
        Port("grid_import", "W", 0.0, 1e9, "grid import over the step"),
        Port("shortfall", "1", 0.0, 1.0, "1 when the sources could not give all the load drew"),
        Port("balance_residual", "W", -1e9, 1e9, "sources - sinks of the step: rounding only"),
        Port("pv_energy", "kWh", 0.0, math.inf, "PV energy since the start"),
        Port("load_energy", "kWh", 0.0, math.inf, "energy the electrolyser's supply took"),
        *(Port(f"{name}_energy", "kWh", 0.0, math.inf, f"{name.replace('_', ' ')} since the start")
          for name in FLOWS),
        Port("grid_energy", "kWh", 0.0, math.inf, "grid energy imported since the start"),
        Port("cost", "EUR", -math.inf, math.inf, "grid imports paid less exports earned since the start"),
    )
    parameters = (
        Parameter("converter_efficiency", 0.95, "1", "DC bus to cell (the electrolyser's supply)", 0.01, 1.0),
        Parameter("export_limit", 0.0, "W", "largest export of surplus PV to the grid", 0.0, 1e9,
                  tunable=True),
        Parameter("export_price", 0.0, "EUR/kWh", "what exported energy earns", -_PRICE_MAX, _PRICE_MAX,
                  tunable=True),
    )
    state_names = ("_totals", "_cost")

    def initialize(self, t0: float) -> None:
        self._totals: dict[str, Any] = dict.fromkeys(("pv", "load", *FLOWS, "grid"), 0.0)
        self._cost: Any = 0.0

    def step(self, t: float, dt: float, inputs: Mapping[str, Any]) -> dict[str, Any]:
        values = _BUS_INPUTS_OF(inputs)
        if namespace(*values, self._cost) is SCALAR:
            return dict(zip(_BUS_OUTPUTS, self._step_floats(dt, values), strict=True))
        return self._step_general(t, dt, inputs)

    def step_values(self, t: float, dt: float, values: tuple[Any, ...]) -> Sequence[Any]:
        """:meth:`step` with positional inputs and outputs, the engine's path: on floats the
        float step's tuple itself (what :meth:`step` puts in its dict), else :meth:`step`."""
        if namespace(*values, self._cost) is SCALAR:
            return self._step_floats(dt, values)
        return super().step_values(t, dt, values)

    def _step_floats(self, dt: float, values: tuple[Any, ...]) -> tuple[Any, ...]:
        """:meth:`dispatch` and :meth:`_step_general` on floats, in one: the same operations in
        the same order (``min(a, b)`` written ``b if b < a else a``, what it returns; ``where``
        an ``if``), the totals kept in the same dict. Inputs and outputs in the order of the
        ports."""
        p = self.p
        pv, load_power, price, grid, grid_first, grid_charge, discharge, room = values
        # dispatch
        load = load_power / p.converter_efficiency
        pv_to_load = load if load < pv else pv
        deficit = load - pv_to_load
        surplus = pv - pv_to_load
        first = grid_first > 0.5
        grid_early = (grid if grid < deficit else deficit) if first else 0.0
        battery_to_load = deficit - grid_early
        battery_to_load = discharge if discharge < battery_to_load else battery_to_load
        if first:
            grid_to_load = grid_early + 0.0
        else:
            rest = deficit - battery_to_load
            grid_to_load = grid_early + (grid if grid < rest else rest)
        unserved = deficit - battery_to_load - grid_to_load
        unserved = 0.0 if unserved < 0.0 else unserved
        pv_to_battery = room if room < surplus else surplus
        headroom, spare = room - pv_to_battery, grid - grid_to_load
        headroom = spare if spare < headroom else headroom
        if battery_to_load > 0.0:
            grid_to_battery = 0.0
        else:
            grid_to_battery = headroom if headroom < grid_charge else grid_charge
            grid_to_battery = 0.0 if grid_to_battery < 0.0 else grid_to_battery
        rest = surplus - pv_to_battery
        export_limit = p.export_limit
        pv_export = export_limit if export_limit < rest else rest
        pv_curtailed = rest - pv_export
        # the step
        grid_import = grid_to_load + grid_to_battery
        sources = pv + battery_to_load + grid_import + unserved
        sinks = load + pv_to_battery + grid_to_battery + pv_export + pv_curtailed
        totals = self._totals
        totals["pv"] = pv_energy = totals["pv"] + pv * dt / _KWH
        totals["load"] = load_energy = totals["load"] + load * dt / _KWH
        totals["pv_to_load"] = e_pv_to_load = totals["pv_to_load"] + pv_to_load * dt / _KWH
        totals["pv_to_battery"] = e_pv_to_battery = totals["pv_to_battery"] + pv_to_battery * dt / _KWH
        totals["pv_export"] = e_pv_export = totals["pv_export"] + pv_export * dt / _KWH
        totals["pv_curtailed"] = e_pv_curtailed = totals["pv_curtailed"] + pv_curtailed * dt / _KWH
        totals["battery_to_load"] = e_battery_to_load = (totals["battery_to_load"]
                                                         + battery_to_load * dt / _KWH)
        totals["grid_to_load"] = e_grid_to_load = totals["grid_to_load"] + grid_to_load * dt / _KWH
        totals["grid_to_battery"] = e_grid_to_battery = (totals["grid_to_battery"]
                                                         + grid_to_battery * dt / _KWH)
        totals["unserved"] = e_unserved = totals["unserved"] + unserved * dt / _KWH
        totals["grid"] = grid_energy = totals["grid"] + grid_import * dt / _KWH
        self._cost = cost = self._cost + (grid_import * price - pv_export * p.export_price) * dt / _KWH
        return (  # in the order of the outputs (_BUS_OUTPUTS)
            load, load_power * (1.0 / p.converter_efficiency - 1.0),  # converter_loss
            pv_to_load, pv_to_battery, pv_export, pv_curtailed, battery_to_load, grid_to_load,
            grid_to_battery, unserved,
            battery_to_load - pv_to_battery - grid_to_battery,  # battery_power
            grid_import, 1.0 if unserved > 0.0 else 0.0, sources - sinks,
            pv_energy, load_energy, e_pv_to_load, e_pv_to_battery, e_pv_export, e_pv_curtailed,
            e_battery_to_load, e_grid_to_load, e_grid_to_battery, e_unserved, grid_energy, cost,
        )

    def _step_general(self, t: float, dt: float, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """The step in the namespace of its inputs: arrays of variants, the reference of floats."""
        flows = self.dispatch(inputs)
        pv, load = inputs["pv_power"], flows["load"]
        grid = flows["grid_to_load"] + flows["grid_to_battery"]
        sources = pv + flows["battery_to_load"] + grid + flows["unserved"]
        sinks = load + flows["pv_to_battery"] + flows["grid_to_battery"] + flows["pv_export"] \
            + flows["pv_curtailed"]
        totals = self._totals
        for name, value in (("pv", pv), ("load", load), *((f, flows[f]) for f in FLOWS), ("grid", grid)):
            totals[name] = totals[name] + value * dt / _KWH
        self._cost = self._cost + (grid * inputs["price"] - flows["pv_export"] * self.p.export_price) \
            * dt / _KWH
        xp = namespace(load, pv)
        return {
            **flows,
            "converter_loss": inputs["load_power"] * (1.0 / self.p.converter_efficiency - 1.0),
            "battery_power": flows["battery_to_load"] - flows["pv_to_battery"] - flows["grid_to_battery"],
            "grid_import": grid, "shortfall": xp.where(flows["unserved"] > 0.0, 1.0, 0.0),
            "balance_residual": sources - sinks,
            "pv_energy": totals["pv"], "load_energy": totals["load"],
            **{f"{f}_energy": totals[f] for f in FLOWS}, "grid_energy": totals["grid"], "cost": self._cost,
        }

    def dispatch(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """The step's flows (W): PV to the load, the deficit from battery and grid, the surplus away."""
        pv = inputs["pv_power"]
        load = inputs["load_power"] / self.p.converter_efficiency
        xp = namespace(pv, load, inputs["grid_first"])
        grid, discharge = inputs["grid_allowance"], inputs["battery_discharge_limit"]
        pv_to_load = xp.minimum(pv, load)
        deficit = load - pv_to_load
        surplus = pv - pv_to_load
        first = inputs["grid_first"] > 0.5
        grid_early = xp.where(first, xp.minimum(deficit, grid), 0.0)
        battery_to_load = xp.minimum(deficit - grid_early, discharge)
        grid_to_load = grid_early + xp.where(
            first, 0.0, xp.minimum(deficit - battery_to_load, grid))
        unserved = xp.maximum(deficit - battery_to_load - grid_to_load, 0.0)
        room = inputs["battery_charge_limit"]
        pv_to_battery = xp.minimum(surplus, room)
        headroom = xp.minimum(room - pv_to_battery, grid - grid_to_load)
        grid_to_battery = xp.where(battery_to_load > 0.0, 0.0,
                                   xp.maximum(xp.minimum(inputs["grid_charge"], headroom), 0.0))
        rest = surplus - pv_to_battery
        pv_export = xp.minimum(rest, self.p.export_limit)
        return {"load": load, "pv_to_load": pv_to_load, "pv_to_battery": pv_to_battery,
                "pv_export": pv_export, "pv_curtailed": rest - pv_export,
                "battery_to_load": battery_to_load, "grid_to_load": grid_to_load,
                "grid_to_battery": grid_to_battery, "unserved": unserved}


#: the managers' and the bus's inputs and outputs in the order of the ports, as their
#: ``_step_floats`` take and return them (written in this order: a change of the ports must
#: change them)
_EMS_INPUTS = ("current_request", "cell_voltage", "pv_power", "price", "battery_ocv", "battery_resistance",
               "battery_discharge_energy", "battery_charge_energy", "battery_max_discharge_current",
               "battery_max_charge_current", "battery_charge_efficiency")
_EMS_OUTPUTS = ("current_setpoint", "current_limit", "curtailed", "available_power", "grid_allowance",
                "grid_first", "grid_charge", "battery_discharge_limit", "battery_charge_limit", "price")
_EMS_INPUTS_OF = EnergyManager.positional(_EMS_INPUTS, _EMS_OUTPUTS)
_BUS_INPUTS = ("pv_power", "load_power", "price", "grid_allowance", "grid_first", "grid_charge",
               "battery_discharge_limit", "battery_charge_limit")
_BUS_OUTPUTS = ("load", "converter_loss", "pv_to_load", "pv_to_battery", "pv_export", "pv_curtailed",
                "battery_to_load", "grid_to_load", "grid_to_battery", "unserved", "battery_power",
                "grid_import", "shortfall", "balance_residual", "pv_energy", "load_energy",
                "pv_to_load_energy", "pv_to_battery_energy", "pv_export_energy", "pv_curtailed_energy",
                "battery_to_load_energy", "grid_to_load_energy", "grid_to_battery_energy",
                "unserved_energy", "grid_energy", "cost")
_BUS_INPUTS_OF = DCBus.positional(_BUS_INPUTS, _BUS_OUTPUTS)

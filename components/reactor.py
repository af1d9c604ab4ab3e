"""Reactor stage: the electrochemical flow cell, stepped on the physics baseline."""
from __future__ import annotations

import math
from typing import Any, Mapping

from cosim import Component, Parameter, Port
from models import electrochemistry as ec

__all__ = ["Reactor"]

_BOUNDS = {
    "fe_max": (0.0, 1.0), "supply_utilisation": (0.0, 1.0), "fe_no_catholyte": (0.0, 1.0),
    "fe_ageing_loss": (0.0, 1.0), "de_dt": (-1.0, 1.0), "smooth_order": (1.0, 50.0),
    "area_cm2": (1e-3, 1e6), "anolyte_volume_L": (1e-6, 1e3), "heat_capacity": (1e-3, 1e9),
    "ageing_charge_Ah": (1e-9, math.inf), "ageing_hours": (1e-9, math.inf),
    "j_onset": (1e-9, math.inf), "j0_cathode": (1e-15, math.inf), "j0_anode": (1e-15, math.inf),
    "catholyte_flow_ref": (1e-9, math.inf), "c_residual": (1e-9, math.inf),
}


def _cell_parameters() -> tuple[Parameter, ...]:
    return tuple(
        Parameter(name, default, unit, doc, *_BOUNDS.get(name, (0.0, math.inf)))
        for name, default, unit, doc in ec.CellParameters.described()
    )


class Reactor(Component):
    """CO2 electroreduction flow cell (galvanostatic).

    Dynamic state: cell temperature (heat from overvoltage, losses to ambient
    and to the electrolytes), net hydroxide of the anolyte compartment (its pH),
    and catalyst ageing (charge passed, hours on stream). Production rates are
    evaluated at the end of each step with the inputs held over it, and the
    cumulative quantities (``energy``, ``charge_passed``, ``formate_produced``)
    advance by ``rate * dt`` so they agree with the recorded rates exactly.
    """

    inputs = (
        Port("current", "A", 0.0, 1000.0, "cell current", start=0.0),
        Port("gas_flow", "mL/min", 0.0, 20000.0, "gas flow into the cathode", start=100.0),
        Port("co2_fraction", "%", 0.0, 100.0, "CO2 share of that gas", start=100.0),
        Port("anolyte_flow", "mL/min", 0.0, 1000.0, "anolyte flow", start=5.57),
        Port("catholyte_flow", "mL/min", 0.0, 1000.0, "catholyte flow", start=5.57),
        Port("anolyte_conc", "mol/L", 0.0, 20.0, "anolyte KOH concentration", start=1.0),
        Port("catholyte_conc", "mol/L", 0.0, 20.0, "catholyte concentration", start=1.0),
        Port("humidity", "%", 0.0, 100.0, "gas relative humidity", start=90.0),
        Port("ambient_temperature", "degC", -40.0, 80.0, "ambient temperature", start=25.0),
    )
    outputs = (
        Port("current_density", "mA/cm2", 0.0, 1e6, "current per cathode area"),
        Port("cell_voltage", "V", 0.0, 100.0, "cell voltage", start=0.0, measured=True),
        Port("fe_formate", "1", 0.0, 1.0, "faradaic efficiency to formate"),
        Port("fe_h2", "1", 0.0, 1.0, "faradaic efficiency to hydrogen", start=1.0),
        Port("formate_rate", "mol/s", 0.0, 1.0, "formate production"),
        Port("formate_production", "g/h", 0.0, 1e6, "formate production (as HCOO-)"),
        Port("h2_rate", "mol/s", 0.0, 1.0, "hydrogen production"),
        Port("co2_in_rate", "mol/s", 0.0, 1.0, "CO2 entering the cell"),
        Port("co2_out_rate", "mol/s", 0.0, 1.0, "CO2 leaving the cell unreacted"),
        Port("carbonate_rate", "mol/s", 0.0, 1.0, "CO2 lost as carbonate (crossover)"),
        Port("n2_rate", "mol/s", 0.0, 1.0, "diluent N2 passing through"),
        Port("outlet_gas_flow", "mL/min", 0.0, 20000.0, "dry outlet gas flow"),
        Port("outlet_co2_fraction", "%", 0.0, 100.0, "CO2 in the dry outlet gas", measured=True),
        Port("outlet_h2_fraction", "%", 0.0, 100.0, "H2 in the dry outlet gas", measured=True),
        Port("single_pass_conversion", "%", 0.0, 100.0, "CO2 fed that became formate"),
        Port("anolyte_ph", "pH", -2.0, 16.0, "anolyte pH at the outlet", start=14.0, measured=True),
        Port("cell_temperature", "degC", -40.0, 200.0, "cell temperature", start=25.0, measured=True),
        Port("power", "W", 0.0, 1e6, "electrical power"),
        Port("energy", "kWh", 0.0, math.inf, "electrical energy since the start"),
        Port("charge_passed", "Ah", 0.0, math.inf, "charge through the catalyst, ever"),
        Port("formate_produced", "mol", 0.0, math.inf, "formate produced since the start"),
        Port("co2_fed", "mol", 0.0, math.inf, "CO2 fed to the cell since the start"),
        Port("catalyst_damage", "1", 0.0, 1.0, "ageing state, 0 fresh, 1 fully aged"),
    )
    parameters = _cell_parameters() + (
        Parameter("initial_temperature", 25.0, "degC", "cell temperature at the start", -40.0, 200.0),
        Parameter("initial_charge_Ah", 0.0, "Ah", "charge the catalyst had passed before", 0.0, math.inf),
        Parameter("initial_hours", 0.0, "h", "hours on stream the catalyst had before", 0.0, math.inf),
    )
    state_names = (
        "_temperature", "_oh", "_charge_ah", "_hours", "_energy", "_formate", "_co2_fed", "_heat",
    )

    def initialize(self, t0: float) -> None:
        values = vars(self.p)
        self._cell = ec.CellParameters(**{k: values[k] for k in ec.CellParameters.__dataclass_fields__})
        self._temperature = self.p.initial_temperature
        self._oh = None
        self._charge_ah = self.p.initial_charge_Ah
        self._hours = self.p.initial_hours
        self._energy = 0.0
        self._formate = 0.0
        self._co2_fed = 0.0
        self._heat = 0.0

    def step(self, t: float, dt: float, inputs: Mapping[str, Any]) -> dict[str, Any]:
        c = self._cell
        current = inputs["current"]
        gas = inputs["gas_flow"]
        x = inputs["co2_fraction"]
        q_an, q_cat = inputs["anolyte_flow"], inputs["catholyte_flow"]
        c_an, c_cat = inputs["anolyte_conc"], inputs["catholyte_conc"]
        ambient = inputs["ambient_temperature"]
        xp = ec.namespace(current, gas, x, q_an, q_cat, c_an, c_cat, ambient)

        if self._oh is None:
            # start at the steady state of a flowing anolyte; a stagnant one has none (it
            # would be 1e9 s of OH- consumption), so it starts fresh
            steady = ec.hydroxide_step(c_an, c_an, q_an, current, c.anolyte_volume_L, 1e9, xp)
            self._oh = xp.where(q_an / 60000.0 > 1e-12, steady, c_an)
        else:
            self._oh = ec.hydroxide_step(self._oh, c_an, q_an, current, c.anolyte_volume_L, dt, xp)
        conductance = c.ua_ambient + c.electrolyte_heat * (q_an + q_cat) / 60.0
        self._temperature = ec.first_order_step(
            self._temperature, ambient + self._heat / conductance,
            conductance / c.heat_capacity, dt, xp,
        )
        self._charge_ah = self._charge_ah + current * dt / 3600.0
        self._hours = self._hours + xp.where(current > 0.0, dt / 3600.0, 0.0)
        damage = ec.catalyst_damage(self._charge_ah, self._hours, c, xp)

        co2_in = ec.gas_mol_s(gas * x / 100.0)
        formate, carbonate, fe = ec.faradaic_split(current, co2_in, x, gas, q_cat, damage, c, xp)
        h2 = (current - formate * ec.Z_FORMATE * ec.F) / (ec.Z_H2 * ec.F)
        co2_out = co2_in - formate - carbonate
        n2 = ec.gas_mol_s(gas * (1.0 - x / 100.0))
        outlet = co2_out + n2 + h2
        ph = ec.ph_from_hydroxide(self._oh, xp)
        voltage = ec.cell_voltage(
            current, self._temperature, ph, c_an, c_cat, q_cat, inputs["humidity"], damage, c, xp
        )
        power = voltage * current
        self._heat = xp.maximum(voltage - c.e_thermoneutral, 0.0) * current
        self._energy = self._energy + power * dt / 3.6e6
        self._formate = self._formate + formate * dt
        self._co2_fed = self._co2_fed + co2_in * dt
        safe_outlet = xp.maximum(outlet, 1e-300)
        return {
            "current_density": ec.current_density(current, c.area_cm2),
            "cell_voltage": voltage,
            "fe_formate": fe,
            "fe_h2": 1.0 - fe,
            "formate_rate": formate,
            "formate_production": formate * ec.M_HCOO * 3600.0,
            "h2_rate": h2,
            "co2_in_rate": co2_in,
            "co2_out_rate": co2_out,
            "carbonate_rate": carbonate,
            "n2_rate": n2,
            "outlet_gas_flow": ec.gas_ml_min(outlet),
            "outlet_co2_fraction": 100.0 * co2_out / safe_outlet,
            "outlet_h2_fraction": 100.0 * h2 / safe_outlet,
            "single_pass_conversion": 100.0 * formate / xp.maximum(co2_in, 1e-300),
            "anolyte_ph": ph,
            "cell_temperature": self._temperature,
            "power": power,
            "energy": self._energy,
            "charge_passed": self._charge_ah,
            "formate_produced": self._formate,
            "co2_fed": self._co2_fed,
            "catalyst_damage": damage,
        }

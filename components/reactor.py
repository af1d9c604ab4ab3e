"""Reactor stage: the electrochemical flow cell, stepped on the physics baseline."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any
from collections.abc import Mapping

from cosim import Component, Parameter, Port
from models import electrochemistry as ec
from models.balance import close
from models.variables import VARIABLES

if TYPE_CHECKING:
    from models.surrogate import ModelSet

__all__ = ["Reactor"]

_BOUNDS = {
    "fe_max": (0.0, 1.0), "supply_utilisation": (0.0, 1.0), "fe_no_catholyte": (0.0, 1.0),
    "fe_ageing_loss": (0.0, 1.0), "de_dt": (-1.0, 1.0), "smooth_order": (1.0, 50.0),
    "area_cm2": (1e-3, 1e6), "anolyte_volume_L": (1e-6, 1e3), "heat_capacity": (1e-3, 1e9),
    "ageing_charge_Ah": (1e-9, math.inf), "ageing_hours": (1e-9, math.inf),
    "j_onset": (1e-9, math.inf), "j0_cathode": (1e-15, math.inf), "j0_anode": (1e-15, math.inf),
    "catholyte_flow_ref": (1e-9, math.inf), "c_residual": (1e-9, math.inf),
}


#: per variable: its envelope flag, bound flag and correction columns
_COLUMNS_OF = {v: (f"{v}_outside_envelope", f"{v}_bounded", f"{v}_correction") for v in VARIABLES}
_FLAG_COLUMNS = ("estimate_bounded", *(c for cols in _COLUMNS_OF.values() for c in cols))


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

    ``models`` (a :class:`models.surrogate.ModelSet`) replaces the physics of
    cell voltage, FE to formate, outlet CO2 fraction and anolyte pH by
    surrogates, variable by variable. Their estimates pass through the balances
    (:func:`models.balance.close`). The trained models estimate FE under the
    ceiling the charge and the CO2 fed allow and, for the outlet CO2 side, the
    carbonate demand per electron, from which carbonate, CO2 out and the outlet
    fraction follow by the carbon balance: any such estimate is a consistent
    state, and no bound acts. Other estimates (a network of the plain value, the
    VALCO2T models) are bounded where needed: FE to [0, ceiling], an outlet CO2
    fraction to what the CO2 left allows, voltage and pH to their physical
    ranges, so charge and carbon close every step whatever a network says.
    ``<variable>_bounded`` is 1 in a step where a bound acted on that variable and
    ``<variable>_correction`` says by how much (in the variable's unit);
    ``estimate_bounded`` is 1 where any did. ``<variable>_outside_envelope`` is 1
    where a model input was outside its training envelope.
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
        Port("carbonate_lost", "mol", 0.0, math.inf, "CO2 lost as carbonate since the start"),
        Port("catalyst_damage", "1", 0.0, 1.0, "ageing state, 0 fresh, 1 fully aged"),
        Port("formate_outlet_conc", "g/L", 0.0, 1e6,
             "formate (as HCOO-) in the catholyte leaving the cell"),
        Port("specific_energy", "kWh/kmol", 0.0, 1e9, "electrical energy per formate produced"),
        Port("energy_per_kg", "kWh/kg", 0.0, 1e9, "electrical energy per kg of formic acid (HCOOH)"),
        Port("estimate_bounded", "1", 0.0, 1.0, "1 when a surrogate estimate had to be bounded "
             "to keep the balances"),
    ) + tuple(
        Port(f"{v}_outside_envelope", "1", 0.0, 1.0,
             f"1 when an input of the {v} model was outside its training envelope")
        for v in VARIABLES
    ) + tuple(
        Port(f"{v}_bounded", "1", 0.0, 1.0,
             f"1 when a bound acted on the {v} estimate to keep a balance or a physical range")
        for v in VARIABLES
    ) + tuple(
        Port(f"{v}_correction", spec.unit, 0.0, math.inf,
             f"how far a bound moved the {v} estimate (0 when none acted)")
        for v, spec in VARIABLES.items()
    )
    parameters = _cell_parameters() + (
        Parameter("initial_temperature", 25.0, "degC", "cell temperature at the start", -40.0, 200.0),
        Parameter("initial_charge_Ah", 0.0, "Ah", "charge the catalyst had passed before", 0.0, math.inf),
        Parameter("initial_hours", 0.0, "h", "hours on stream the catalyst had before", 0.0, math.inf),
    )
    state_names = (
        "_temperature", "_oh", "_charge_ah", "_hours", "_energy", "_formate", "_co2_fed",
        "_carbonate", "_heat",
    )

    def __init__(self, models: ModelSet | None = None, **parameters: float) -> None:
        super().__init__(**parameters)
        self.models = models if models is not None and models.surrogates else None
        # the outlet CO2 side comes as a carbonate demand per electron (a trained model, or
        # physics), or as an outlet fraction (a model of the plain value, the VALCO2T one)
        outlet = "outlet_co2_fraction"
        self._by_demand = self.models is None or self.models.kind(outlet) == "physics" or (
            self.models.estimates(outlet) == "carbonate_demand")

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
        self._carbonate = 0.0
        self._heat = 0.0

    def get_state(self) -> dict[str, Any]:
        """The dynamic state and parameters, and the surrogates' state (which have warned)."""
        state = super().get_state()
        if self.models is not None:
            state["__models__"] = self.models.get_state()
        return state

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`get_state` returned; after a rollback to before an envelope
        warning, that warning is given again."""
        super().set_state(state)
        if self.models is not None:
            self.models.set_state(state["__models__"])

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
        n2 = ec.gas_mol_s(gas * (1.0 - x / 100.0))
        formate, carbonate, fe = ec.faradaic_split(current, co2_in, x, gas, q_cat, damage, c, xp)
        # the Nernst term reads the OH- activity (the 25 degC scale); the reported pH is a
        # probe's at the cell temperature
        voltage = ec.cell_voltage(current, self._temperature, ec.ph_from_hydroxide(self._oh, xp),
                                  c_an, c_cat, q_cat, inputs["humidity"], damage, c, xp)
        ph = ec.ph_from_hydroxide(self._oh, xp, ec.ph_scale(self._temperature, c))
        h2 = (current - formate * ec.Z_FORMATE * ec.F) / (ec.Z_H2 * ec.F)
        co2_out = co2_in - formate - carbonate
        flags: dict[str, Any] = {}
        limits: dict[str, tuple[Any, Any]] = {}
        if self.models is not None:
            voltage, ph, formate, h2, co2_out, carbonate, fe, limits, flags = self._estimate(
                self.models, t + dt, inputs, voltage, ph, fe, co2_in, n2, co2_out, xp)
        outlet = co2_out + n2 + h2
        power = voltage * current
        self._heat = xp.maximum(voltage - c.e_thermoneutral, 0.0) * current
        self._energy = self._energy + power * dt / 3.6e6
        self._formate = self._formate + formate * dt
        self._co2_fed = self._co2_fed + co2_in * dt
        self._carbonate = self._carbonate + carbonate * dt
        safe_outlet = xp.maximum(outlet, 1e-300)
        formate_mol_h = formate * 3600.0
        out = {
            "current_density": ec.current_density(current, c.area_cm2),
            "cell_voltage": voltage,
            "fe_formate": fe,
            "fe_h2": 1.0 - fe,
            "formate_rate": formate,
            "formate_production": formate_mol_h * ec.M_HCOO,
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
            "carbonate_lost": self._carbonate,
            "catalyst_damage": damage,
            "formate_outlet_conc": xp.where(
                q_cat > 0.0, formate * ec.M_HCOO * 60000.0 / xp.maximum(q_cat, 1e-300), 0.0),
            "specific_energy": xp.where(
                formate_mol_h > 1e-12, power / xp.maximum(formate_mol_h, 1e-300), 0.0),
            "energy_per_kg": xp.where(
                formate_mol_h > 1e-12, power / xp.maximum(formate_mol_h * ec.M_HCOOH, 1e-300), 0.0),
        }
        if self.models is None:
            zero = current * 0.0
            out.update(dict.fromkeys(_FLAG_COLUMNS, zero))
            return out
        bounded = current * 0.0
        for v, (outside, flag_name, correction_name) in _COLUMNS_OF.items():
            out[outside] = flags[v]
            out[flag_name], out[correction_name] = limits[v]
            bounded = xp.maximum(bounded, limits[v][0])
        out["estimate_bounded"] = bounded
        return out

    def _estimate(self, m: ModelSet, t: float, inputs: Mapping[str, Any], voltage: Any, ph: Any,
                  fe: Any, co2_in: Any, n2: Any, co2_out: Any, xp: Any) -> tuple[Any, ...]:
        """Surrogate estimates of the four variables, closed through the balances.

        ``m`` is ``self.models``, passed in once the caller has seen it is set.
        Returns ``voltage, ph, formate, h2, co2_out, carbonate, fe, limits, flags``;
        ``limits`` holds ``(bounded, correction)`` per variable.
        """
        c = self._cell
        current = inputs["current"]
        x = inputs["co2_fraction"]
        signals = {
            "current": current,
            "current_density": ec.current_density(current, c.area_cm2),
            "gas_flow": inputs["gas_flow"],
            "co2_fraction": x,
            "humidity": inputs["humidity"],
            "anolyte_flow": inputs["anolyte_flow"],
            "catholyte_flow": inputs["catholyte_flow"],
            "anolyte_conc": inputs["anolyte_conc"],
            "catholyte_conc": inputs["catholyte_conc"],
            "ambient_temperature": inputs["ambient_temperature"],
            "cell_temperature": self._temperature,
            "charge_passed": self._charge_ah,
        }
        demand = ec.carbonate_demand(x, c)
        if self._by_demand:
            carbon = demand
        else:
            outlet_phys = co2_out + n2 + (current * (1.0 - fe)) / (ec.Z_H2 * ec.F)
            carbon = 100.0 * co2_out / xp.maximum(outlet_phys, 1e-300)
        physics = {"cell_voltage": voltage, "anolyte_ph": ph, "fe_formate": fe,
                   "outlet_co2_fraction": carbon}
        ceiling = ec.fe_ceiling(current, co2_in, xp)
        est, flags = m.estimate_all(signals, physics, t, {"fe_formate": ceiling})
        closed = close(current, co2_in, n2, est["fe_formate"], est["outlet_co2_fraction"],
                       demand=self._by_demand, physics_demand=demand, xp=xp)
        v_raw, ph_raw = est["cell_voltage"], est["anolyte_ph"]
        voltage = xp.minimum(xp.maximum(v_raw, 0.0), 100.0)
        ph = xp.minimum(xp.maximum(ph_raw, -2.0), 16.0)
        v_moved, ph_moved = abs(voltage - v_raw), abs(ph - ph_raw)
        limits = {
            "fe_formate": (closed.fe_bounded, closed.fe_correction),
            "outlet_co2_fraction": (closed.carbon_bounded, closed.carbon_correction),
            "cell_voltage": (xp.where(v_moved > 0.0, 1.0, 0.0), v_moved),
            "anolyte_ph": (xp.where(ph_moved > 0.0, 1.0, 0.0), ph_moved),
        }
        return (voltage, ph, closed.formate, closed.h2, closed.co2_out, closed.carbonate, closed.fe,
                limits, flags)

"""Reactor stage: the electrochemical flow cell, stepped on the physics baseline."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar
from collections.abc import Mapping, Sequence

import numpy as np

from cosim import Component, Parameter, Port
from models import electrochemistry as ec
from models.balance import close
from models.variables import FEATURES, VARIABLES

if TYPE_CHECKING:
    from models.bank import PendingBatch
    from models.model_set import ModelSet

__all__ = ["Reactor"]

_BOUNDS = {
    "fe_max": (0.0, 1.0), "supply_utilisation": (0.0, 1.0), "fe_no_catholyte": (0.0, 1.0),
    "fe_ageing_loss": (0.0, 1.0), "de_dt": (-1.0, 1.0), "smooth_order": (1.0, 50.0),
    "area_cm2": (1e-3, 1e6), "anolyte_volume_L": (1e-6, 1e3), "heat_capacity": (1e-3, 1e9),
    "ageing_charge_Ah": (1e-9, math.inf), "ageing_hours": (1e-9, math.inf),
    "j_onset": (1e-9, math.inf), "j0_cathode": (1e-15, math.inf), "j0_anode": (1e-15, math.inf),
    "catholyte_flow_ref": (1e-9, math.inf), "c_residual": (1e-9, math.inf),
}


# the constants of models.electrochemistry the float step inlines (same values, same bits)
_F = ec.F
_ZF = ec.Z_FORMATE * ec.F
_ZH = ec.Z_H2 * ec.F
_KW = ec.KW
_ML_MIN_PER_MOL_S = ec.gas_ml_min(1.0)
_PKW_25 = ec.pkw_water(25.0)
# Reactor._estimate_floats names the flag outputs of these variables, in this order, and hands
# the surrogates their signals by position: the features, then current and ambient temperature
# (models.surrogate.SIGNALS)
if tuple(VARIABLES) != ("cell_voltage", "fe_formate", "outlet_co2_fraction", "anolyte_ph"):
    raise ImportError(f"components/reactor.py: the float step names the flag outputs of "
                      f"cell_voltage, fe_formate, outlet_co2_fraction, anolyte_ph; "
                      f"models.variables.VARIABLES has {tuple(VARIABLES)}")
_SIGNAL_ORDER = ("current_density", "gas_flow", "co2_fraction", "humidity", "anolyte_flow",
                 "catholyte_flow", "anolyte_conc", "catholyte_conc", "cell_temperature",
                 "charge_passed")
if tuple(FEATURES) != _SIGNAL_ORDER:
    raise ImportError(f"components/reactor.py: the float step hands the surrogates "
                      f"{', '.join(_SIGNAL_ORDER)}, current, ambient_temperature in this order; "
                      f"models.variables.FEATURES has {tuple(FEATURES)}")

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

    ``models`` (a :class:`models.model_set.ModelSet`) replaces the physics of
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
    #: steps arrays of variants too (an ensemble, :mod:`co2twin.ensemble`)
    supports_arrays: ClassVar[bool] = True

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
        xp = ec.namespace(inputs["current"], inputs["gas_flow"], inputs["co2_fraction"],
                          inputs["anolyte_flow"], inputs["catholyte_flow"], inputs["anolyte_conc"],
                          inputs["catholyte_conc"], inputs["ambient_temperature"])
        if xp is ec.SCALAR and self._oh is not None:
            return dict(zip(_OUTPUT_NAMES, self._step_floats(t, dt, _INPUTS_OF(inputs)), strict=True))
        return self._step_general(t, dt, inputs, xp)

    def step_values(self, t: float, dt: float, values: tuple[Any, ...]) -> Sequence[Any]:
        """:meth:`step` with positional inputs and outputs, the engine's path: on numbers after
        the first step the float step's tuple itself (what :meth:`step` puts in its dict),
        else :meth:`step` (arrays of variants, the first step)."""
        if self._oh is not None and ec.namespace(*values) is ec.SCALAR:
            return self._step_floats(t, dt, values)
        return super().step_values(t, dt, values)

    def _step_general(self, t: float, dt: float, inputs: Mapping[str, Any], xp: Any) -> dict[str, Any]:
        """:meth:`step` through the physics functions of :mod:`models.electrochemistry` in the
        namespace ``xp``: arrays of variants (an ensemble), and the first step of floats.
        :meth:`_step_floats` is the same arithmetic on floats, in the same order."""
        c = self._cell
        current = inputs["current"]
        gas = inputs["gas_flow"]
        x = inputs["co2_fraction"]
        q_an, q_cat = inputs["anolyte_flow"], inputs["catholyte_flow"]
        c_an, c_cat = inputs["anolyte_conc"], inputs["catholyte_conc"]
        ambient = inputs["ambient_temperature"]

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
        signals, started = self._start_models(inputs, xp)
        try:
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
                    self.models, t + dt, inputs, signals, started, voltage, ph, fe, co2_in, n2,
                    co2_out, xp)
        except BaseException:
            if started is not None:
                started.close()  # no thread may go on into the buffers of the next step
            raise
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
        out.update(_flag_outputs(flags, limits, current, xp))
        return out

    def _start_models(self, inputs: Mapping[str, Any], xp: Any,
                      ) -> tuple[dict[str, Any], PendingBatch | None]:
        """What the surrogates read (:meth:`_model_signals`) and, on arrays of variants, their
        networks begun (:meth:`models.model_set.ModelSet.start_batch`): in the batch threads
        (:func:`models.bank.batch_threads`) while :meth:`_step_general`'s physics runs in the
        caller's, and :meth:`_estimate` takes their result."""
        if self.models is None:
            return {}, None
        signals = self._model_signals(inputs)
        if xp is ec.SCALAR:
            return signals, None
        return signals, self.models.start_batch(signals, np.broadcast(*signals.values()).shape[0])

    def _step_floats(self, t: float, dt: float, values: tuple[Any, ...]) -> tuple[Any, ...]:
        """:meth:`step` on plain floats after the first step (the single run's every step),
        inputs and outputs by position in the order of :attr:`inputs` and :attr:`outputs`
        (no dict to build or read: the engine calls it through :meth:`step_values`).

        The physics functions of :mod:`models.electrochemistry` inlined, with the same
        operations in the same order, so the bits are those of :meth:`_step_general` in the
        :data:`~models.electrochemistry.SCALAR` namespace (tests/test_fast_paths.py checks).
        A branch taken with ``where`` there is a conditional here (``max(a, b)`` is written
        ``b if b > a else a``, which is what ``max`` returns); what could raise (``exp``,
        ``**``) is still evaluated wherever the general path evaluates it.
        """
        c = self._cell
        exp = math.exp
        current, gas, x, q_an, q_cat, c_an, c_cat, humidity, ambient = values

        # ec.hydroxide_step
        oh = self._oh
        volume = c.anolyte_volume_L
        q = q_an / 60000.0
        sink = current / _F
        decay = exp(-q * dt / volume)
        steady = c_an - sink / (1e-300 if q < 1e-300 else q)
        self._oh = oh = (steady + (oh - steady) * decay) if q > 1e-12 else oh - sink / volume * dt
        # ec.first_order_step of the temperature
        conductance = c.ua_ambient + c.electrolyte_heat * (q_an + q_cat) / 60.0
        target = ambient + self._heat / conductance
        self._temperature = temperature = target + (self._temperature - target) * exp(
            -(conductance / c.heat_capacity) * dt)
        self._charge_ah = charge = self._charge_ah + current * dt / 3600.0
        self._hours = hours = self._hours + (dt / 3600.0 if current > 0.0 else 0.0)
        damage = -math.expm1(-(charge / c.ageing_charge_Ah + hours / c.ageing_hours))

        co2_in = gas * x / 100.0 / _ML_MIN_PER_MOL_S
        n2 = gas * (1.0 - x / 100.0) / _ML_MIN_PER_MOL_S
        j, cat_stop, formate, carbonate, demand, safe_current, fe = _split_floats(
            c, current, gas, x, q_cat, co2_in, damage)
        voltage, ph = _voltage_ph_floats(c, oh, temperature, j, c_an, c_cat, cat_stop, humidity, damage)
        h2 = (current - formate * ec.Z_FORMATE * _F) / _ZH
        co2_out = co2_in - formate - carbonate
        m = self.models
        if m is not None:
            (voltage, ph, formate, h2, co2_out, carbonate, fe, flag_outputs) = self._estimate_floats(
                m, t + dt, values, j, temperature, charge, voltage, ph, fe, co2_in, n2, co2_out,
                demand, safe_current)
        outlet = co2_out + n2 + h2
        power = voltage * current
        heat = voltage - c.e_thermoneutral
        self._heat = (0.0 if heat < 0.0 else heat) * current
        self._energy = energy = self._energy + power * dt / 3.6e6
        self._formate = produced = self._formate + formate * dt
        self._co2_fed = fed = self._co2_fed + co2_in * dt
        self._carbonate = lost = self._carbonate + carbonate * dt
        safe_outlet = 1e-300 if outlet < 1e-300 else outlet
        formate_mol_h = formate * 3600.0
        return (  # in the order of the outputs (_OUTPUT_NAMES), the model flags last
            j,  # current_density
            voltage,
            fe,
            1.0 - fe,  # fe_h2
            formate,
            formate_mol_h * ec.M_HCOO,  # formate_production
            h2,
            co2_in,
            co2_out,
            carbonate,
            n2,
            outlet * _ML_MIN_PER_MOL_S,  # outlet_gas_flow
            100.0 * co2_out / safe_outlet,  # outlet_co2_fraction
            100.0 * h2 / safe_outlet,  # outlet_h2_fraction
            100.0 * formate / (1e-300 if co2_in < 1e-300 else co2_in),  # single_pass_conversion
            ph,
            temperature,
            power,
            energy,
            charge,
            produced,
            fed,
            lost,
            damage,
            (formate * ec.M_HCOO * 60000.0 / (1e-300 if q_cat < 1e-300 else q_cat)
             if q_cat > 0.0 else 0.0),  # formate_outlet_conc
            (power / (1e-300 if formate_mol_h < 1e-300 else formate_mol_h)
             if formate_mol_h > 1e-12 else 0.0),  # specific_energy
            (power / (1e-300 if formate_mol_h * ec.M_HCOOH < 1e-300 else formate_mol_h * ec.M_HCOOH)
             if formate_mol_h > 1e-12 else 0.0),  # energy_per_kg
            *((current * 0.0,) * len(_FLAG_COLUMNS) if m is None else flag_outputs),
        )

    def _estimate_floats(self, m: ModelSet, t: float, values: tuple[Any, ...], j: float,
                         temperature: float, charge: float, voltage: float, ph: float, fe: float,
                         co2_in: float, n2: float, co2_out: float, demand: float,
                         safe_current: float) -> tuple[Any, ...]:
        """:meth:`_estimate` on plain floats, inlined the same way as :meth:`_step_floats`;
        ``values`` are the inputs in port order; returns ``voltage, ph, formate, h2, co2_out,
        carbonate, fe`` and the flag outputs as a tuple in the order of the outputs.
        The surrogates take their signals and physics values by position
        (:meth:`models.model_set.ModelSet.estimate_sample`): building the dicts of the general
        call cost as much per step as the rest of this method."""
        current, gas, x, q_an, q_cat, c_an, c_cat, humidity, ambient = values
        if self._by_demand:
            carbon = demand
        else:
            outlet_phys = co2_out + n2 + (current * (1.0 - fe)) / _ZH
            carbon = 100.0 * co2_out / (1e-300 if outlet_phys < 1e-300 else outlet_phys)
        supply = co2_in * _ZF / safe_current  # ec.fe_ceiling
        # by position: the signals in models.surrogate.SIGNALS order (checked at import), the
        # variables in SAMPLE_VARIABLES order (voltage, pH, FE, outlet CO2 side)
        (v_raw, ph_raw, fe_est, carbon_est), flags = m.estimate_sample(
            (j, gas, x, humidity, q_an, q_cat, c_an, c_cat, temperature, charge, current, ambient),
            (voltage, ph, fe, carbon), (1.0, 1.0, 1.0 if supply > 1.0 else supply, 1.0), t)
        (fe, formate, h2, carbonate, co2_out, fe_correction, carbon_correction, fe_bounded,
         carbon_bounded) = close(current, co2_in, n2, fe_est, carbon_est,
                                 demand=self._by_demand, physics_demand=demand)
        voltage = 0.0 if v_raw < 0.0 else v_raw
        voltage = 100.0 if voltage > 100.0 else voltage
        ph = -2.0 if ph_raw < -2.0 else ph_raw
        ph = 16.0 if ph > 16.0 else ph
        v_moved, ph_moved = abs(voltage - v_raw), abs(ph - ph_raw)
        v_bounded = 1.0 if v_moved > 0.0 else 0.0
        ph_bounded = 1.0 if ph_moved > 0.0 else 0.0
        # the largest of the bound flags, from current * 0.0 in the order of VARIABLES, as
        # the general path takes it (max(a, b) is b only where b > a)
        bounded = current * 0.0
        bounded = v_bounded if v_bounded > bounded else bounded
        bounded = fe_bounded if fe_bounded > bounded else bounded
        bounded = carbon_bounded if carbon_bounded > bounded else bounded
        bounded = ph_bounded if ph_bounded > bounded else bounded
        # the flag outputs in the order of the outputs (_OUTPUT_NAMES: VARIABLES order in each
        # group); ``flags`` come in SAMPLE_VARIABLES order (voltage, pH, FE, outlet CO2)
        flag_outputs = (
            bounded,
            flags[0], flags[2], flags[3], flags[1],
            v_bounded, fe_bounded, carbon_bounded, ph_bounded,
            v_moved, fe_correction, carbon_correction, ph_moved,
        )
        return voltage, ph, formate, h2, co2_out, carbonate, fe, flag_outputs

    def _model_signals(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """What the surrogates read, by signal name (models.variables.FEATURES)."""
        current = inputs["current"]
        return {
            "current": current,
            "current_density": ec.current_density(current, self._cell.area_cm2),
            "gas_flow": inputs["gas_flow"],
            "co2_fraction": inputs["co2_fraction"],
            "humidity": inputs["humidity"],
            "anolyte_flow": inputs["anolyte_flow"],
            "catholyte_flow": inputs["catholyte_flow"],
            "anolyte_conc": inputs["anolyte_conc"],
            "catholyte_conc": inputs["catholyte_conc"],
            "ambient_temperature": inputs["ambient_temperature"],
            "cell_temperature": self._temperature,
            "charge_passed": self._charge_ah,
        }

    def _estimate(self, m: ModelSet, t: float, inputs: Mapping[str, Any],
                  signals: Mapping[str, Any], started: PendingBatch | None, voltage: Any, ph: Any,
                  fe: Any, co2_in: Any, n2: Any, co2_out: Any, xp: Any) -> tuple[Any, ...]:
        """Surrogate estimates of the four variables, closed through the balances.

        ``m`` is ``self.models``, passed in once the caller has seen it is set; ``signals``
        what the models read (:meth:`_model_signals`); ``started`` the networks begun on
        them (arrays of variants), or None.
        Returns ``voltage, ph, formate, h2, co2_out, carbonate, fe, limits, flags``;
        ``limits`` holds ``(bounded, correction)`` per variable.
        """
        c = self._cell
        current = inputs["current"]
        x = inputs["co2_fraction"]
        demand = ec.carbonate_demand(x, c)
        if self._by_demand:
            carbon = demand
        else:
            outlet_phys = co2_out + n2 + (current * (1.0 - fe)) / (ec.Z_H2 * ec.F)
            carbon = 100.0 * co2_out / xp.maximum(outlet_phys, 1e-300)
        physics = {"cell_voltage": voltage, "anolyte_ph": ph, "fe_formate": fe,
                   "outlet_co2_fraction": carbon}
        ceiling = ec.fe_ceiling(current, co2_in, xp)
        if xp is ec.SCALAR:
            est, flags = m.estimate_all(signals, physics, t, {"fe_formate": ceiling})
        else:
            est, flags = m.estimate_all_batch(signals, physics, t, {"fe_formate": ceiling}, started)
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


def _flag_outputs(flags: Mapping[str, Any], limits: Mapping[str, tuple[Any, Any]], current: Any,
                  xp: Any) -> dict[str, Any]:
    """:meth:`Reactor._step_general`'s flag outputs: per variable its envelope flag, bound flag
    and correction, then ``estimate_bounded``, the largest bound flag (from ``current * 0.0``
    in the order of VARIABLES, as the float step takes it)."""
    out: dict[str, Any] = {}
    bounded = current * 0.0
    for v, (outside, flag_name, correction_name) in _COLUMNS_OF.items():
        out[outside] = flags[v]
        out[flag_name], out[correction_name] = limits[v]
        bounded = xp.maximum(bounded, limits[v][0])
    out["estimate_bounded"] = bounded
    return out


def _split_floats(c: ec.CellParameters, current: float, gas: float, x: float, q_cat: float,
                  co2_in: float, damage: float) -> tuple[float, ...]:
    """:func:`models.electrochemistry.faradaic_split` on floats, inlined for
    :meth:`Reactor._step_floats`: ``j, exp(-q_cat / flow_ref), formate, carbonate, demand,
    max(current, 1e-300), fe``."""
    exp = math.exp
    # ec.faradaic_split
    j = current * 1000.0 / c.area_cm2
    order = c.smooth_order
    fe_kin = c.fe_max * -math.expm1(-j / c.j_onset) * (1.0 - c.fe_ageing_loss * damage)
    cat_stop = exp(-q_cat / c.catholyte_flow_ref)  # the voltage takes it too
    fe_kin = fe_kin * (1.0 - (1.0 - c.fe_no_catholyte) * cat_stop)
    a = fe_kin * j
    b = c.j_lim_ref * (x / 100.0) * ((0.0 if gas < 0.0 else gas) / 100.0) ** c.flow_exponent
    a = a * b / (a**order + b**order + 1e-300) ** (1.0 / order)  # ec._soft_min
    a = a * c.area_cm2 / 1000.0 / _ZF
    b = c.supply_utilisation * co2_in
    formate = a * b / (a**order + b**order + 1e-300) ** (1.0 / order)
    remaining = co2_in - formate
    demand = c.carbonate_per_electron * (x / 100.0)  # ec.carbonate_demand
    electrons = demand * current / _F
    carbonate = remaining * (electrons / (electrons + remaining + 1e-300))
    safe_current = 1e-300 if current < 1e-300 else current
    fe = formate * _ZF / safe_current
    return j, cat_stop, formate, carbonate, demand, safe_current, fe


def _voltage_ph_floats(c: ec.CellParameters, oh: float, temperature: float, j: float, c_an: float,
                       c_cat: float, cat_stop: float, humidity: float, damage: float,
                       ) -> tuple[float, float]:
    """:func:`models.electrochemistry.cell_voltage` (its Nernst term on the 25 degC pH scale)
    and the reported pH (:func:`~models.electrochemistry.ph_from_hydroxide` on
    :func:`~models.electrochemistry.ph_scale`) on floats, inlined for :meth:`Reactor._step_floats`."""
    exp = math.exp
    # ec.cell_voltage, its Nernst term from ec.ph_from_hydroxide on the 25 degC scale
    s = math.sqrt(oh * oh + 4.0 * _KW)
    oh_activity = (oh + s) / 2.0 if oh >= 0.0 else 2.0 * _KW / (1e-300 if s - oh < 1e-300 else s - oh)
    ph25 = 14.0 + math.log10(oh_activity)
    kelvin_ratio = (temperature + 273.15) / 298.15
    warmer = temperature - 25.0
    activation = exp(c.j0_tc * warmer)
    voltage = (
        c.e_eq + c.de_dt * warmer
        + 0.05916 * kelvin_ratio * (14.0 - ph25)
        + c.tafel_cathode * kelvin_ratio * math.asinh(j / (2.0 * c.j0_cathode * activation))
        + c.tafel_anode * kelvin_ratio * math.asinh(j / (2.0 * c.j0_anode * activation))
        + (c.r_membrane * (1.0 + c.dry_membrane_factor * (1.0 - humidity / 100.0))
           + c.r_anolyte / ((0.0 if c_an < 0.0 else c_an) + c.c_residual)
           + c.r_catholyte * (1.0 + c.catholyte_stop_factor * cat_stop)
           / ((0.0 if c_cat < 0.0 else c_cat) + c.c_residual))
        * exp(-c.conductivity_tc * warmer) * j / 1000.0
        + c.voltage_ageing * damage
    )
    # ec.ph_from_hydroxide on ec.ph_scale at the cell temperature
    kelvin = temperature + 273.15
    pkw = 14.0 - c.ph_temperature * (_PKW_25 - (4470.99 / kelvin - 6.0875 + 0.01706 * kelvin))
    kw = 10.0 ** (-pkw)
    s = math.sqrt(oh * oh + 4.0 * kw)
    ph = pkw + math.log10((oh + s) / 2.0 if oh >= 0.0 else 2.0 * kw / (1e-300 if s - oh < 1e-300 else s - oh))
    return voltage, ph


#: the inputs and outputs in the order of the ports, as :meth:`Reactor._step_floats` takes and
#: returns them (its tuple is written in this order: a change of the ports must change it)
_INPUT_NAMES = ("current", "gas_flow", "co2_fraction", "anolyte_flow", "catholyte_flow",
                "anolyte_conc", "catholyte_conc", "humidity", "ambient_temperature")
_OUTPUT_NAMES = (
    "current_density", "cell_voltage", "fe_formate", "fe_h2", "formate_rate", "formate_production",
    "h2_rate", "co2_in_rate", "co2_out_rate", "carbonate_rate", "n2_rate", "outlet_gas_flow",
    "outlet_co2_fraction", "outlet_h2_fraction", "single_pass_conversion", "anolyte_ph",
    "cell_temperature", "power", "energy", "charge_passed", "formate_produced", "co2_fed",
    "carbonate_lost", "catalyst_damage", "formate_outlet_conc", "specific_energy", "energy_per_kg",
    "estimate_bounded",
    *(f"{v}_outside_envelope" for v in VARIABLES), *(f"{v}_bounded" for v in VARIABLES),
    *(f"{v}_correction" for v in VARIABLES),
)
_INPUTS_OF = Reactor.positional(_INPUT_NAMES, _OUTPUT_NAMES)

"""Physics baseline of the CO2-to-formate flow cell: pure functions, scalars or arrays.

This is the single home of the cell physics. The reactor component uses it,
and surrogate work reuses it as the physics half of hybrid (physics + learned
residual) models. Every function takes plain floats or NumPy arrays of equal
shape (one element per scenario variant); ``xp`` selects the maths namespace
(:data:`SCALAR` for floats, :mod:`numpy` for arrays; see :func:`namespace`).

Units: current A, current density mA/cm2, gas flows mL/min at 25 degC / 1 atm,
molar flows mol/s, concentrations mol/L, temperatures degC, potentials V.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from types import SimpleNamespace
from typing import Any, cast

import numpy as np

__all__ = [
    "F", "Z_FORMATE", "Z_H2", "M_HCOO", "M_HCOOH", "M_H2", "MOLAR_VOLUME_L", "KW",
    "SCALAR", "namespace", "CellParameters", "gas_mol_s", "gas_ml_min",
    "current_density", "catalyst_damage", "faradaic_split", "fe_ceiling", "carbonate_demand",
    "carbonate_from_demand", "carbonate_loss", "hydroxide_step",
    "ph_from_hydroxide", "pkw_water", "ph_scale", "cell_voltage", "first_order_step",
]

F = 96485.33  # C/mol
Z_FORMATE = 2
Z_H2 = 2
M_HCOO = 45.02  # g/mol
M_HCOOH = 46.03  # g/mol
M_H2 = 2.016  # g/mol
MOLAR_VOLUME_L = 24.465  # L/mol, ideal gas at 25 degC and 1 atm
KW = 1.0e-14  # (mol/L)^2, water ion product at 25 degC
_ML_MIN_PER_MOL_S = MOLAR_VOLUME_L * 1000.0 * 60.0


def _where(cond: Any, a: Any, b: Any) -> Any:
    return a if cond else b


#: math namespace for plain floats; far faster than NumPy ufuncs on scalars.
SCALAR = SimpleNamespace(
    exp=math.exp, expm1=math.expm1, log=math.log, log10=math.log10, sqrt=math.sqrt, tanh=math.tanh,
    arcsinh=math.asinh, minimum=min, maximum=max, where=_where,
)


_NDARRAY = np.ndarray
_LN10 = math.log(10.0)


def namespace(*values: Any) -> Any:
    """:data:`SCALAR` when every value is a plain number, else :mod:`numpy`."""
    for v in values:
        # a float is never an array: its exact type check is the cheap common case
        if type(v) is not float and isinstance(v, _NDARRAY):
            return np
    return SCALAR


def _field(default: float, unit: str, doc: str) -> Any:
    return field(default=default, metadata={"unit": unit, "doc": doc})


@dataclass(frozen=True)
class CellParameters:
    """Constants of the physics baseline; each field carries its unit and meaning.

    Defaults describe a 25 cm2 Sn gas-diffusion cathode in 1 M KOH at 25 degC,
    giving 85-90 % FE to formate at 200 mA/cm2 with pure CO2 and cell voltages
    inside the pilot's 2.8-4.5 V over 50-300 mA/cm2 (about 2.9, 3.6 and 4.1 V
    at 50, 200 and 300 mA/cm2).
    """

    area_cm2: float = _field(25.0, "cm2", "cathode area")
    fe_max: float = _field(0.90, "1", "best FE to formate of a fresh catalyst")
    j_onset: float = _field(25.0, "mA/cm2", "FE rises as 1 - exp(-j/j_onset)")
    j_lim_ref: float = _field(400.0, "mA/cm2", "CO2 mass-transport limit at pure CO2, 100 mL/min")
    flow_exponent: float = _field(0.3, "1", "j_lim grows as (gas flow / 100 mL/min)^this")
    supply_utilisation: float = _field(0.95, "1", "largest share of fed CO2 the cell can reduce")
    smooth_order: float = _field(4.0, "1", "sharpness of the soft minimum between limits")
    carbonate_per_electron: float = _field(0.20, "mol/mol", "CO2 lost as carbonate per mol e- at pure CO2")
    fe_no_catholyte: float = _field(0.30, "1", "FE multiplier with the catholyte flow stopped")
    catholyte_flow_ref: float = _field(0.5, "mL/min", "catholyte flow scale of that effect")
    e_eq: float = _field(1.40, "V", "equilibrium cell potential at 25 degC, pH 14 anolyte")
    de_dt: float = _field(-0.0008, "V/K", "temperature coefficient of e_eq")
    tafel_cathode: float = _field(0.055, "V", "cathode Tafel slope per e-fold at 25 degC")
    j0_cathode: float = _field(1.0e-6, "mA/cm2", "cathode exchange current density at 25 degC")
    tafel_anode: float = _field(0.030, "V", "anode (OER) Tafel slope per e-fold at 25 degC")
    j0_anode: float = _field(1.0e-3, "mA/cm2", "anode exchange current density at 25 degC")
    j0_tc: float = _field(0.05, "1/K", "relative rise of the exchange current densities per K")
    r_membrane: float = _field(1.5, "Ohm*cm2", "membrane area resistance, humid, 25 degC")
    r_anolyte: float = _field(1.0, "Ohm*cm2", "anolyte gap area resistance at 1 mol/L, 25 degC")
    r_catholyte: float = _field(1.5, "Ohm*cm2", "catholyte gap area resistance at 1 mol/L, 25 degC")
    c_residual: float = _field(0.01, "mol/L", "conductivity floor as equivalent concentration")
    conductivity_tc: float = _field(0.02, "1/K", "relative conductivity rise per K")
    dry_membrane_factor: float = _field(0.5, "1", "membrane resistance rise at 0 % humidity")
    catholyte_stop_factor: float = _field(2.0, "1", "catholyte resistance rise with the flow stopped")
    ageing_charge_Ah: float = _field(5000.0, "Ah", "charge that ages the catalyst by 1 - 1/e")
    ageing_hours: float = _field(2000.0, "h", "operating time that ages it by 1 - 1/e")
    fe_ageing_loss: float = _field(0.5, "1", "share of FE lost by a fully aged catalyst")
    voltage_ageing: float = _field(0.5, "V", "voltage rise of a fully aged catalyst")
    anolyte_volume_L: float = _field(0.010, "L", "anolyte compartment volume")
    ph_temperature: float = _field(1.0, "1", "share of water's ion-product change with temperature "
                                   "in the reported pH (1: a probe at the cell temperature, 0: the "
                                   "25 degC scale)")
    heat_capacity: float = _field(800.0, "J/K", "cell heat capacity")
    ua_ambient: float = _field(0.6, "W/K", "heat loss to ambient")
    e_thermoneutral: float = _field(1.48, "V", "voltage above which electrical power becomes heat")
    electrolyte_heat: float = _field(4.18, "J/(mL*K)", "volumetric heat capacity of electrolytes")

    def replace(self, **changes: float) -> CellParameters:
        return CellParameters(**{**asdict(self), **changes})

    @classmethod
    def described(cls) -> list[tuple[str, float, str, str]]:
        """``(name, default, unit, description)`` for every field."""
        # every field is made by _field, with a float default
        return [(f.name, cast(float, f.default), f.metadata["unit"], f.metadata["doc"]) for f in fields(cls)]


def gas_mol_s(flow_ml_min: Any) -> Any:
    """Gas flow in standard mL/min -> mol/s."""
    return flow_ml_min / _ML_MIN_PER_MOL_S


def gas_ml_min(rate_mol_s: Any) -> Any:
    """Molar flow in mol/s -> standard mL/min."""
    return rate_mol_s * _ML_MIN_PER_MOL_S


def current_density(current_a: Any, area_cm2: float) -> Any:
    """Current density in mA/cm2, as the plant reports it (I * 1000 / A)."""
    return current_a * 1000.0 / area_cm2


def catalyst_damage(charge_ah: Any, hours: Any, p: CellParameters, xp: Any = SCALAR) -> Any:
    """Ageing state in [0, 1): 0 fresh, -> 1 fully aged, from charge passed and time on stream."""
    # -expm1(-x), not 1 - exp(-x): a fresh catalyst (x ~ 1e-6) keeps full precision
    return -xp.expm1(-(charge_ah / p.ageing_charge_Ah + hours / p.ageing_hours))


def _soft_min(a: Any, b: Any, order: float) -> Any:
    """Smooth minimum of non-negative a and b (0 if either is 0)."""
    if type(a) is _NDARRAY and type(b) is _NDARRAY and isinstance(order, float) and order == 4.0:
        # arrays at the default order (an ensemble's every step): the fourth powers as two
        # squares, several times faster than NumPy's general power and within an ulp or two
        # of it; floats keep ** (their bits are the single run's)
        a2, b2 = a * a, b * b
        return a * b / (a2 * a2 + b2 * b2 + 1e-300) ** 0.25
    return a * b / (a**order + b**order + 1e-300) ** (1.0 / order)


def faradaic_split(
    current_a: Any,
    co2_in_mol_s: Any,
    co2_percent: Any,
    gas_flow_ml_min: Any,
    catholyte_flow_ml_min: Any,
    damage: Any,
    p: CellParameters,
    xp: Any = SCALAR,
) -> tuple[Any, Any, Any]:
    """Formate and carbonate production and FE to formate.

    Returns ``(formate_mol_s, carbonate_mol_s, fe_formate)``. The kinetic FE
    (low at low current density, capped by ``fe_max`` and ageing, cut when the
    catholyte stops) is bounded by the CO2 mass-transport limit (scales with
    the CO2 fraction and gas flow) and by the CO2 supply, through soft minima.
    Carbonate takes part of the CO2 left, so formate + carbonate < CO2 fed.
    """
    j = current_density(current_a, p.area_cm2)
    x = co2_percent / 100.0
    fe_kin = p.fe_max * -xp.expm1(-j / p.j_onset) * (1.0 - p.fe_ageing_loss * damage)
    fe_kin = fe_kin * (
        1.0 - (1.0 - p.fe_no_catholyte) * xp.exp(-catholyte_flow_ml_min / p.catholyte_flow_ref)
    )
    j_formate = fe_kin * j
    j_lim = p.j_lim_ref * x * (xp.maximum(gas_flow_ml_min, 0.0) / 100.0) ** p.flow_exponent
    j_formate = _soft_min(j_formate, j_lim, p.smooth_order)
    formate = j_formate * p.area_cm2 / 1000.0 / (Z_FORMATE * F)
    formate = _soft_min(formate, p.supply_utilisation * co2_in_mol_s, p.smooth_order)
    carbonate = carbonate_loss(co2_in_mol_s - formate, current_a, co2_percent, p)
    fe = formate * (Z_FORMATE * F) / xp.maximum(current_a, 1e-300)
    return formate, carbonate, fe


def fe_ceiling(current_a: Any, co2_in_mol_s: Any, xp: Any = SCALAR) -> Any:
    """The largest FE to formate the charge and the CO2 fed allow: min(1, CO2 in * z F / I).

    Formate can take at most every electron (FE 1) and every CO2 molecule fed; with no
    current the CO2 sets no limit (1).
    """
    supply = co2_in_mol_s * (Z_FORMATE * F) / xp.maximum(current_a, 1e-300)
    return xp.minimum(supply, 1.0)


def carbonate_demand(co2_percent: Any, p: CellParameters) -> Any:
    """CO2 the crossover would take as carbonate per electron (mol/mol), with CO2 to spare.

    Proportional to the CO2 fraction; :func:`carbonate_from_demand` saturates it at the
    CO2 actually left.
    """
    return p.carbonate_per_electron * (co2_percent / 100.0)


def carbonate_from_demand(remaining_mol_s: Any, demand_mol_s: Any) -> Any:
    """CO2 lost as carbonate (mol/s) out of the ``remaining`` CO2 for a crossover ``demand``.

    ``remaining * demand / (demand + remaining)``: for any demand >= 0 the loss lies in
    [0, remaining], so CO2 out = remaining - loss is never negative.
    """
    # remaining * (a share <= 1): never more than is left, even when the flows are
    # so small that products lose precision
    return remaining_mol_s * (demand_mol_s / (demand_mol_s + remaining_mol_s + 1e-300))


def carbonate_loss(remaining_mol_s: Any, current_a: Any, co2_percent: Any, p: CellParameters) -> Any:
    """CO2 lost as carbonate (mol/s) out of the ``remaining`` CO2 not reduced to formate.

    Crossover demand (:func:`carbonate_demand` per electron) grows with current and CO2
    fraction; the loss saturates at what is left, so formate + carbonate never exceeds
    the CO2 fed.
    """
    return carbonate_from_demand(remaining_mol_s, carbonate_demand(co2_percent, p) * current_a / F)


def hydroxide_step(
    c_oh: Any, c_in: Any, flow_ml_min: Any, current_a: Any, volume_l: float, dt: float,
    xp: Any = SCALAR,
) -> Any:
    """Net hydroxide (OH- minus H+, mol/L) of the anolyte compartment after ``dt`` s.

    Well-mixed compartment fed at ``c_in``; the anode consumes OH- at I/F mol/s.
    Integrated exactly for inputs held over the step (stable for any ``dt``).
    """
    q = flow_ml_min / 60000.0  # L/s
    sink = current_a / F  # mol/s
    decay = xp.exp(-q * dt / volume_l)
    steady = c_in - sink / xp.maximum(q, 1e-300)
    stirred = steady + (c_oh - steady) * decay
    stagnant = c_oh - sink / volume_l * dt
    return xp.where(q > 1e-12, stirred, stagnant)


def ph_from_hydroxide(c_net: Any, xp: Any = SCALAR, pkw: Any = None) -> Any:
    """pH from net hydroxide (mol/L) by charge balance [OH-] - [H+] = c_net, [OH-][H+] = Kw.

    ``pkw`` is -log10 Kw (default 14, water at 25 degC; :func:`ph_scale` gives it at the
    cell temperature).
    """
    kw: Any
    if pkw is None:
        kw = KW
    elif type(pkw) is _NDARRAY:  # exp: several times faster than NumPy's power of 10 (an ulp or so)
        kw = np.exp(pkw * -_LN10)
    else:
        kw = 10.0 ** (-pkw)
    s = xp.sqrt(c_net * c_net + 4.0 * kw)
    # s - c_net > 0 wherever that branch is taken; the floor only spares the other branch
    oh = xp.where(c_net >= 0.0, (c_net + s) / 2.0, 2.0 * kw / xp.maximum(s - c_net, 1e-300))
    return (14.0 if pkw is None else pkw) + xp.log10(oh)


def pkw_water(temperature_c: Any) -> Any:
    """-log10 Kw of water at ``temperature_c`` (Harned and Owen's fit, 0-60 degC)."""
    kelvin = temperature_c + 273.15
    return 4470.99 / kelvin - 6.0875 + 0.01706 * kelvin


_PKW_25 = 4470.99 / 298.15 - 6.0875 + 0.01706 * 298.15


def ph_scale(temperature_c: Any, p: CellParameters) -> Any:
    """-log10 Kw of the reported pH: 14 at 25 degC, following water's ion product with the
    temperature as far as ``p.ph_temperature`` says (1: a probe at the cell temperature)."""
    return 14.0 - p.ph_temperature * (_PKW_25 - pkw_water(temperature_c))


def cell_voltage(
    current_a: Any,
    temperature_c: Any,
    anolyte_ph: Any,
    anolyte_conc: Any,
    catholyte_conc: Any,
    catholyte_flow_ml_min: Any,
    humidity_percent: Any,
    damage: Any,
    p: CellParameters,
    xp: Any = SCALAR,
) -> Any:
    """Cell voltage: equilibrium + Nernst (anolyte pH) + Tafel overpotentials + ohmic + ageing."""
    j = current_density(current_a, p.area_cm2)
    kelvin_ratio = (temperature_c + 273.15) / 298.15
    e_eq = p.e_eq + p.de_dt * (temperature_c - 25.0)
    nernst = 0.05916 * kelvin_ratio * (14.0 - anolyte_ph)
    # exchange currents rise with temperature (Arrhenius, linearised exponent around 25 degC),
    # which outweighs the wider Tafel slope: overpotentials fall as the cell warms
    activation = xp.exp(p.j0_tc * (temperature_c - 25.0))
    eta_c = p.tafel_cathode * kelvin_ratio * xp.arcsinh(j / (2.0 * p.j0_cathode * activation))
    eta_a = p.tafel_anode * kelvin_ratio * xp.arcsinh(j / (2.0 * p.j0_anode * activation))
    # compounded, so resistances stay positive and finite at any temperature the ports allow
    warm = xp.exp(-p.conductivity_tc * (temperature_c - 25.0))
    r_mem = p.r_membrane * (1.0 + p.dry_membrane_factor * (1.0 - humidity_percent / 100.0))
    r_an = p.r_anolyte / (xp.maximum(anolyte_conc, 0.0) + p.c_residual)
    stop = 1.0 + p.catholyte_stop_factor * xp.exp(-catholyte_flow_ml_min / p.catholyte_flow_ref)
    r_cat = p.r_catholyte * stop / (xp.maximum(catholyte_conc, 0.0) + p.c_residual)
    ohmic = (r_mem + r_an + r_cat) * warm * j / 1000.0
    return e_eq + nernst + eta_c + eta_a + ohmic + p.voltage_ageing * damage


def first_order_step(y: Any, target: Any, rate: Any, dt: float, xp: Any = SCALAR) -> Any:
    """Exact step of dy/dt = rate * (target - y) with target and rate held over ``dt``."""
    return target + (y - target) * xp.exp(-rate * dt)

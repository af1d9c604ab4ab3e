"""The "physical asset": a higher-fidelity simulator that plays the real pilot plant.

The real plant's data are not public, so surrogates are trained on this plant's
log instead. It reuses :mod:`models.electrochemistry` where that fits (gas
conversions, anolyte OH- balance, pH, the voltage skeleton) and departs from the
twin's physics baseline the way real cells do, each departure a smooth function
of the operating point:

- gas-diffusion-electrode flooding at high current density and low gas flow
  (an instantaneous logistic part plus a slow state that builds over minutes
  and recovers more slowly): FE to formate falls (H2 rises), voltage rises;
- FE falls above ~38 degC (and a little below ~22 degC); resistances follow a
  lower activation energy (``cell.conductivity_tc``) than the twin's;
- bubble resistance: an extra ohmic term growing with current density
  (gas hold-up in the catholyte gap), reduced by catholyte flow;
- catalyst ageing: a fast initial FE loss then a slow linear one, and a voltage
  drift, both in charge passed (and hours), replacing the twin's exponential law;
- carbonate crossover scaling with catholyte concentration;
- anolyte: the twin's OH- balance plus CO2 crossing the membrane, which
  neutralises 2 OH- per CO2, in a larger compartment; the reported pH is the OH-
  activity's (Davies equation at the anolyte's ionic strength), where the twin's
  is ideal; both follow Kw at the cell temperature;
- sensor noise, gains and offsets on measured outputs and measured inputs.

The true values keep the physics exact: FE_formate + FE_H2 = 1, Faraday's law,
CO2 in = out + formate + carbonate, formate <= CO2 fed, pH from the OH- balance.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple
from collections.abc import Mapping

import numpy as np

from models import electrochemistry as ec
from models.plantlog import BOUNDS

__all__ = [
    "Sensor", "SENSORS", "ReferenceParameters", "ReferencePlant", "INPUTS", "reference_cell", "ph_at",
    "log_activity",
    "twin_baseline",
]

#: inputs a schedule gives, each (n_experiments, n_steps)
INPUTS = ("current", "gas_flow", "co2_fraction", "humidity", "anolyte_flow", "catholyte_flow",
          "anolyte_conc", "catholyte_conc", "ambient_temperature")


class Sensor(NamedTuple):
    """A measured signal: ``measured = gain * true + offset + noise * N(0, 1)``, clipped
    to the plant log's physical bounds."""

    signal: str
    unit: str
    noise: float
    offset: float = 0.0
    gain: float = 1.0


#: default sensors: analyser/instrument noise (1 sigma), calibration offsets and gains
SENSORS: tuple[Sensor, ...] = (
    Sensor("cell_voltage", "V", 0.005, 0.010),
    Sensor("fe_formate", "1", 0.010, -0.010),
    Sensor("outlet_h2_fraction", "%", 0.10, 0.05),
    Sensor("outlet_co2_fraction", "%", 0.30, -0.30),
    # a two-point calibrated probe: an offset much larger than the models' errors would decide,
    # rather than the models, which of them scores better against the true pH
    Sensor("anolyte_ph", "pH", 0.02, 0.01),
    Sensor("cell_temperature", "degC", 0.10, 0.20),
    Sensor("formate_production", "g/h", 0.02, 0.0, 0.98),
    Sensor("gas_flow", "mL/min", 0.50, 0.0, 1.01),
    Sensor("co2_fraction", "%", 0.20),
    Sensor("humidity", "%", 1.0, -1.0),
    Sensor("anolyte_flow", "mL/min", 0.02, 0.0, 0.98),
    Sensor("catholyte_flow", "mL/min", 0.02, 0.0, 1.02),
    Sensor("ambient_temperature", "degC", 0.20, 0.30),
)


def reference_cell() -> ec.CellParameters:
    """The twin's :class:`CellParameters` with the values a real cell shows instead.

    fe_max 0.90 -> 0.94 and j_onset 25 -> 30 mA/cm2 (a good Sn/Bi GDE: FE near 0.70 at
    39 mA/cm2, 0.90-0.92 at 200 and 0.83-0.85 at 300 mA/cm2 when fresh, as published
    cells report, up to 0.93 at its best); j_lim_ref 400 -> 360 and flow_exponent
    0.3 -> 0.45 (thicker GDE, mass transport more sensitive to gas flow);
    carbonate_per_electron 0.20 -> 0.24 (at 1 M catholyte); tafel_anode 0.030 -> 0.027 V
    and r_membrane 1.5 -> 1.2 Ohm*cm2 (better anode, thinner membrane; offsets the bubble
    term so voltages stay near the published 3.1 V at 100 and 3.5 V at 140 mA/cm2);
    conductivity_tc 0.02 -> 0.013 1/K (lower activation energy, ~11 instead of
    ~15 kJ/mol); anolyte_volume_L 0.010 -> 0.014; heat_capacity 800 -> 550 J/K and
    ua_ambient 0.6 -> 0.8 W/K (lighter, less insulated cell).
    fe_ageing_loss and voltage_ageing are unused: ageing follows the reference law.
    """
    return ec.CellParameters().replace(
        fe_max=0.94, j_onset=30.0, j_lim_ref=360.0, flow_exponent=0.45,
        carbonate_per_electron=0.24, tafel_anode=0.027, r_membrane=1.2, conductivity_tc=0.013,
        anolyte_volume_L=0.014, heat_capacity=550.0, ua_ambient=0.8,
    )


def _field(default: Any, unit: str, doc: str) -> Any:
    if callable(default):
        return field(default_factory=default, metadata={"unit": unit, "doc": doc})
    return field(default=default, metadata={"unit": unit, "doc": doc})


@dataclass(frozen=True)
class ReferenceParameters:
    """Every constant of the reference plant, each with its unit and meaning."""

    cell: ec.CellParameters = _field(reference_cell, "-", "base cell constants (see reference_cell)")
    j_flood_ref: float = _field(380.0, "mA/cm2", "flooding midpoint at 100 mL/min gas flow")
    flood_flow_exponent: float = _field(0.5, "1", "flooding midpoint grows as (gas/100)^this")
    flood_width: float = _field(35.0, "mA/cm2", "width of the flooding logistic")
    flood_instant_share: float = _field(0.4, "1", "share of flooding that follows j at once")
    flood_build_s: float = _field(240.0, "s", "time constant of the flooding state, building")
    flood_recover_s: float = _field(600.0, "s", "time constant of the flooding state, recovering")
    flood_fe_loss: float = _field(0.30, "1", "relative FE loss of a fully flooded GDE")
    flood_voltage: float = _field(0.08, "V", "voltage rise of a fully flooded GDE")
    fe_hot_c: float = _field(38.0, "degC", "FE starts falling above this temperature")
    fe_hot_slope: float = _field(0.008, "1/K", "relative FE loss per K above fe_hot_c")
    fe_cold_c: float = _field(22.0, "degC", "FE starts falling below this temperature")
    fe_cold_slope: float = _field(0.004, "1/K", "relative FE loss per K below fe_cold_c")
    fe_temp_width: float = _field(3.0, "K", "smoothness of those corners (softplus width)")
    r_bubble: float = _field(2.0, "Ohm*cm2", "bubble resistance at bubble_j_ref, no catholyte flow")
    bubble_j_ref: float = _field(200.0, "mA/cm2", "current density scale of bubble hold-up")
    bubble_flow_ref: float = _field(4.0, "mL/min", "catholyte flow that halves bubble resistance")
    carbonate_conc_exponent: float = _field(0.5, "1", "carbonate grows as (c_cat / 1 mol/L)^this")
    carbonate_to_anolyte: float = _field(0.2, "mol/mol", "share of carbonate CO2 that acidifies "
                                         "the anolyte (2 OH- per CO2)")
    ph_activity: float = _field(1.0, "1", "share of the OH- activity coefficient (Davies "
                                "equation at the anolyte's ionic strength) in the reported pH; "
                                "0: ideal, pH from the OH- concentration")
    pkw_temperature: float = _field(1.0, "1", "share of the temperature dependence of Kw "
                                    "(Harned-Owen) in the reported pH; 0: pH on the 25 degC scale")
    age_fe_fast: float = _field(0.05, "1", "fast early relative FE loss (break-in)")
    age_fast_Ah: float = _field(400.0, "Ah", "charge scale of the fast FE loss (about 80 h at 5 A)")
    age_fe_per_Ah: float = _field(3.0e-5, "1/Ah", "slow relative FE loss per Ah after that")
    age_fe_per_h: float = _field(2.0e-5, "1/h", "relative FE loss per hour on stream")
    age_v_fast: float = _field(0.08, "V", "early voltage rise")
    age_v_fast_Ah: float = _field(400.0, "Ah", "charge scale of the early voltage rise")
    age_v_per_Ah: float = _field(1.0e-4, "V/Ah", "slow voltage drift per Ah")
    sensors: tuple[Sensor, ...] = _field(SENSORS, "-", "measured signals: noise, offset, gain")

    def replace(self, **changes: Any) -> ReferenceParameters:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return ReferenceParameters(**{**values, **changes})

    @classmethod
    def described(cls) -> list[tuple[str, Any, str, str]]:
        """``(name, default, unit, description)`` for every field."""
        d = cls()
        return [(f.name, getattr(d, f.name), f.metadata["unit"], f.metadata["doc"]) for f in fields(cls)]

    def sensor(self, signal: str) -> Sensor:
        for s in self.sensors:
            if s.signal == signal:
                return s
        raise KeyError(f"no sensor for {signal!r}; sensors: {[s.signal for s in self.sensors]}")


_pkw = ec.pkw_water
_PKW_25 = _pkw(25.0)


def ph_at(c_net: Any, pkw: Any) -> Any:
    """pH from net hydroxide (mol/L) with water's ion product 10^-pkw (charge balance);
    :func:`models.electrochemistry.ph_from_hydroxide` is the case pkw = 14."""
    kw = 10.0 ** -pkw
    s = np.sqrt(c_net * c_net + 4.0 * kw)
    oh = np.where(c_net >= 0.0, (c_net + s) / 2.0, 2.0 * kw / (s - c_net))
    return pkw + np.log10(oh)


def log_activity(ionic_strength: Any, temp_c: Any) -> Any:
    """log10 of the activity coefficient of a monovalent ion (Davies equation) at an ionic
    strength in mol/L (a KOH anolyte's: its K+ concentration) and temperature.

    A pH probe reads the OH- activity, not its concentration: in 1 M KOH about 0.1 pH below
    the ideal value, in 3 M about 0.1 above. The Debye-Hueckel A grows with temperature
    (0.509 at 25 degC).
    """
    i = np.maximum(ionic_strength, 0.0)
    a = 0.509 * (1.0 + 0.0016 * (temp_c - 25.0))
    return -a * (np.sqrt(i) / (1.0 + np.sqrt(i)) - 0.3 * i)


def _softplus(u: Any, width: float) -> Any:
    return width * np.logaddexp(0.0, u / width)


def _soft_min(a: Any, b: Any, order: float) -> Any:
    return a * b / (a**order + b**order + 1e-300) ** (1.0 / order)


def _steady_hydroxide(c_an: Any, q_an: Any, current: Any, volume: float) -> Any:
    return np.where(q_an > 0.0, ec.hydroxide_step(c_an, c_an, q_an, current, volume, 1e9, np), c_an)


def _schedule_inputs(schedule: Mapping[str, Any], dt: float) -> dict[str, np.ndarray]:
    """Every input of :data:`INPUTS` as float arrays of one (n_exp, n_steps) shape."""
    missing = [k for k in INPUTS if k not in schedule]
    if missing or not dt > 0.0:
        raise ValueError(f"schedule lacks inputs {missing}" if missing else f"dt must be > 0 s, got {dt}")
    u = {k: np.asarray(schedule[k], dtype=float) for k in INPUTS}
    shape = u["current"].shape
    if len(shape) != 2 or any(v.shape != shape for v in u.values()):
        raise ValueError(f"schedule inputs must share one (n_exp, n_steps) shape; got "
                         f"{ {k: v.shape for k, v in u.items()} }")
    return u


class ReferencePlant:
    """The simulated pilot plant, vectorised over experiments."""

    def __init__(self, params: ReferenceParameters | None = None, seed: int = 0) -> None:
        self.params = params if params is not None else ReferenceParameters()
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def simulate(self, schedule: Mapping[str, Any], dt: float = 1.0) -> dict[str, np.ndarray]:
        """Step the plant; returns true signals, each (n_experiments, n_steps).

        ``schedule``: every name in :data:`INPUTS` as (n_exp, n_steps) arrays (held
        over each step of ``dt`` s) and optional per-experiment starts
        ``initial_charge_Ah``, ``initial_hours`` (default 0), ``initial_temperature``
        (default the first ambient), ``initial_hydroxide`` (default fresh anolyte,
        the feed concentration), ``initial_flooding`` (default 0). Column k is the
        state at the end of step k. Besides the outputs the result holds the inputs
        (true values) and ``flooding``, the effective GDE flooding (0 dry, 1 flooded).
        """
        u = _schedule_inputs(schedule, dt)
        current = u["current"]
        n_exp = current.shape[0]

        def start(name: str, default: Any) -> np.ndarray:
            return np.broadcast_to(np.asarray(schedule.get(name, default), dtype=float), (n_exp,)).copy()

        charge = start("initial_charge_Ah", 0.0)[:, None] + np.cumsum(current, axis=1) * dt / 3600.0
        hours = start("initial_hours", 0.0)[:, None] + np.cumsum(current > 0.0, axis=1) * dt / 3600.0
        j = ec.current_density(current, self.params.cell.area_cm2)
        x = u["co2_fraction"] / 100.0
        co2_in = ec.gas_mol_s(u["gas_flow"] * x)
        n2 = ec.gas_mol_s(u["gas_flow"] * (1.0 - x))
        res = self._integrate(
            self._drivers(u, j, x, co2_in, charge, hours), dt,
            temp=start("initial_temperature", u["ambient_temperature"][:, 0]),
            oh=start("initial_hydroxide", u["anolyte_conc"][:, 0]), flood=start("initial_flooding", 0.0))
        formate, carbonate = res["formate_rate"], res["carbonate_rate"]
        fe = formate * (ec.Z_FORMATE * ec.F) / np.maximum(current, 1e-300)
        h2 = (current - formate * ec.Z_FORMATE * ec.F) / (ec.Z_H2 * ec.F)
        co2_out = co2_in - formate - carbonate
        outlet = np.maximum(co2_out + n2 + h2, 1e-300)
        res.update(
            fe_formate=fe, fe_h2=1.0 - fe, h2_rate=h2, co2_in_rate=co2_in, co2_out_rate=co2_out,
            # the share first: pure CO2 at rest gives exactly 100 %, not 100 % + 1 ulp
            n2_rate=n2, outlet_co2_fraction=100.0 * (co2_out / outlet),
            outlet_h2_fraction=100.0 * (h2 / outlet), formate_production=formate * ec.M_HCOO * 3600.0,
            current_density=j, charge_passed=charge, hours_on_stream=hours, **u,
        )
        return res

    def _drivers(self, u: Mapping[str, np.ndarray], j: np.ndarray, x: np.ndarray, co2_in: np.ndarray,
                 charge: np.ndarray, hours: np.ndarray) -> list[np.ndarray]:
        """What the step loop reads, all known before it runs: one (n_steps, n_exp) array each,
        in the order :meth:`_integrate` unpacks them."""
        p, c = self.params, self.params.cell
        current, gas = u["current"], u["gas_flow"]
        q_an, q_cat = u["anolyte_flow"], u["catholyte_flow"]
        c_an, c_cat = u["anolyte_conc"], u["catholyte_conc"]
        gas_pos = np.maximum(gas, 0.0)
        j_flood = p.j_flood_ref * (gas_pos / 100.0) ** p.flood_flow_exponent
        flood_eq = 0.5 * (1.0 + np.tanh((j - j_flood) / (2.0 * p.flood_width)))
        age_fe = (1.0 - p.age_fe_fast * -np.expm1(-charge / p.age_fast_Ah)
                  - p.age_fe_per_Ah * charge - p.age_fe_per_h * hours)
        fe_base = (c.fe_max * -np.expm1(-j / c.j_onset) * np.maximum(age_fe, 0.0)
                   * (1.0 - (1.0 - c.fe_no_catholyte) * np.exp(-q_cat / c.catholyte_flow_ref)))
        j_lim = c.j_lim_ref * x * (gas_pos / 100.0) ** c.flow_exponent
        demand = (c.carbonate_per_electron * x * current / ec.F
                  * np.maximum(c_cat, 0.0) ** p.carbonate_conc_exponent)
        v_extra = (p.r_bubble * (j / p.bubble_j_ref) / (1.0 + q_cat / p.bubble_flow_ref) * j / 1000.0
                   + p.age_v_fast * -np.expm1(-charge / p.age_v_fast_Ah) + p.age_v_per_Ah * charge)
        conductance = c.ua_ambient + c.electrolyte_heat * (q_an + q_cat) / 60.0
        supply = c.supply_utilisation * co2_in
        return [np.ascontiguousarray(a.T) for a in (
            current, j, u["ambient_temperature"], conductance, q_an, c_an, q_cat, c_cat, u["humidity"],
            flood_eq, fe_base, j_lim, supply, co2_in, demand, v_extra)]

    def _integrate(self, cols: list[np.ndarray], dt: float, *, temp: np.ndarray, oh: np.ndarray,
                   flood: np.ndarray) -> dict[str, np.ndarray]:
        """Step the states (temperature, anolyte OH-, flooding) from their starts; returns the
        per-step results, each (n_exp, n_steps)."""
        p, c = self.params, self.params.cell
        n_steps, n_exp = cols[0].shape
        out = {k: np.empty((n_steps, n_exp)) for k in (
            "cell_voltage", "formate_rate", "carbonate_rate", "anolyte_ph", "cell_temperature", "flooding")}
        heat = np.zeros(n_exp)
        carbonate = np.zeros(n_exp)
        build, recover = dt / p.flood_build_s, dt / p.flood_recover_s
        acid = 2.0 * p.carbonate_to_anolyte * ec.F
        to_mol = c.area_cm2 / 1000.0 / (ec.Z_FORMATE * ec.F)
        for k in range(n_steps):
            (cur, jk, amb, g, qa, ca, qc, cc, hum, feq, feb, jl, sup, cin, dem, vx) = (a[k] for a in cols)
            flood = feq + (flood - feq) * np.exp(-np.where(feq > flood, build, recover))
            temp = ec.first_order_step(temp, amb + heat / g, g / c.heat_capacity, dt, np)
            oh = ec.hydroxide_step(oh, ca, qa, cur + acid * carbonate, c.anolyte_volume_L, dt, np)
            f = p.flood_instant_share * feq + (1.0 - p.flood_instant_share) * flood
            hot = _softplus(temp - p.fe_hot_c, p.fe_temp_width) * p.fe_hot_slope
            cold = _softplus(p.fe_cold_c - temp, p.fe_temp_width) * p.fe_cold_slope
            fe_kin = feb * np.maximum(1.0 - hot - cold, 0.0) * (1.0 - p.flood_fe_loss * f)
            formate = _soft_min(_soft_min(fe_kin * jk, jl, c.smooth_order) * to_mol, sup, c.smooth_order)
            remaining = cin - formate
            carbonate = remaining * (dem / (dem + remaining + 1e-300))
            volt = (ec.cell_voltage(cur, temp, ec.ph_from_hydroxide(oh, np), ca, cc, qc, hum, 0.0, c, np)
                    + vx + p.flood_voltage * f)
            ph = (ph_at(oh, 14.0 - p.pkw_temperature * (_PKW_25 - _pkw(temp)))
                  + p.ph_activity * log_activity(ca, temp))
            heat = np.maximum(volt - c.e_thermoneutral, 0.0) * cur
            for name, value in (("cell_voltage", volt), ("formate_rate", formate),
                                ("carbonate_rate", carbonate), ("anolyte_ph", ph),
                                ("cell_temperature", temp), ("flooding", f)):
                out[name][k] = value
        return {k: np.ascontiguousarray(v.T) for k, v in out.items()}

    def measure(self, true: Mapping[str, np.ndarray], rng: np.random.Generator | None = None,
                ) -> dict[str, np.ndarray]:
        """Sensor readings of every signal in ``params.sensors`` present in ``true``.

        FE to formate reads 0 with no current (no product to analyse). Readings are
        clipped to the plant log's physical bounds. ``rng`` defaults to the plant's own.
        """
        rng = self.rng if rng is None else rng
        measured = {}
        for s in self.params.sensors:
            if s.signal not in true:
                continue
            value = np.asarray(true[s.signal], dtype=float)
            reading = s.gain * value + s.offset + s.noise * rng.standard_normal(value.shape)
            if s.signal == "fe_formate" and "current" in true:
                reading = np.where(np.asarray(true["current"]) > 0.0, reading, 0.0)
            measured[s.signal] = np.clip(reading, *BOUNDS[s.signal])
        return measured


def twin_baseline(true: Mapping[str, np.ndarray], cell: ec.CellParameters | None = None,
                  ) -> dict[str, np.ndarray]:
    """The twin's physics baseline at the same inputs, cell temperature and catalyst age.

    Uses the twin's steady anolyte (its own OH- balance). This is what a hybrid model
    starts from; the reference minus this is the residual it must learn.
    """
    c = cell if cell is not None else ec.CellParameters()
    current = true["current"]
    x = true["co2_fraction"]
    damage = ec.catalyst_damage(true["charge_passed"], true["hours_on_stream"], c, np)
    co2_in = ec.gas_mol_s(true["gas_flow"] * x / 100.0)
    formate, carbonate, fe = ec.faradaic_split(
        current, co2_in, x, true["gas_flow"], true["catholyte_flow"], damage, c, np)
    h2 = (current - formate * ec.Z_FORMATE * ec.F) / (ec.Z_H2 * ec.F)
    co2_out = co2_in - formate - carbonate
    outlet = np.maximum(co2_out + ec.gas_mol_s(true["gas_flow"] * (1.0 - x / 100.0)) + h2, 1e-300)
    oh = _steady_hydroxide(true["anolyte_conc"], true["anolyte_flow"], current, c.anolyte_volume_L)
    ph = ec.ph_from_hydroxide(oh, np, ec.ph_scale(true["cell_temperature"], c))
    volt = ec.cell_voltage(current, true["cell_temperature"], ec.ph_from_hydroxide(oh, np),
                           true["anolyte_conc"],
                           true["catholyte_conc"], true["catholyte_flow"], true["humidity"],
                           damage, c, np)
    return {"cell_voltage": volt, "fe_formate": fe, "outlet_co2_fraction": 100.0 * co2_out / outlet,
            "outlet_h2_fraction": 100.0 * h2 / outlet, "anolyte_ph": ph}

"""Battery: a Li-ion string with state of charge, OCV curve, resistance, limits, heat and capacity fade.

The state is the chemical energy the cells hold (``E``, joules); the state of charge
follows from it through the open-circuit voltage curve of :mod:`models.battery_physics`
(``E = C * 3600 * n * F(soc)``). Over a step the terminal power ``P`` is held
(positive: discharge to the bus; negative: charge). The current solves
``P = OCV * I - R * I^2`` (discharge) or ``|P| = OCV * I + R * I^2`` (charge) with the
OCV and resistance at the start of the step, and the energy moves as

    discharge:  E -= P dt + R I^2 dt
    charge:     E += |P| dt - R I^2 dt - (1 - eta)(|P| dt - R I^2 dt)   (eta: coulombic efficiency)
    fade:       E *= C_new / C                                         (state of charge kept)

so the battery's energy balance ``dE = in - out - losses - fade`` closes by
construction every step; ``balance_residual`` reports what rounding leaves of it.
The limits a step may use (:func:`power_limits`) keep the state of charge in
``[soc_min, soc_max]`` and the current within the ratings; the DC bus asks only for
what they allow, and a request beyond them is clipped and flagged in ``request_clipped``.

**Heat:** one thermal mass, ``heat_capacity * dT/dt = losses - heat_transfer * (T - T_ambient)``,
stepped exactly. The resistance falls with temperature
(``exp(-resistance_temperature_coefficient * (T - 25))``) and grows as the capacity fades
(``1 + resistance_growth * (1 - state_of_health)``).

**Capacity fade** is a pluggable :class:`models.battery_models.AgeingModel`
(``physics``, ``nn`` or ``hybrid``; physics by default). It gets the equivalent full
cycles (``initial_cycles`` plus the charge discharged over the nominal capacity) and
the discharge-weighted mean cell temperature and C-rate of the battery's life
(``history_temperature`` and ``history_c_rate`` stand for the cycles before the run).
Capacity never grows back: ``C = min(C, capacity * fraction)``, the fraction held in
[0.05, 1]. ``ageing_outside_envelope`` is 1 while the model's inputs leave its
training envelope; ``capacity_fade = 0`` holds the capacity.

Works for floats and for NumPy arrays (one element per variant). On floats a step is
:meth:`Battery._step_floats`, the same arithmetic unrolled (the engine's positional
``step_values`` and ``step`` both take it); arrays go through the general step.
"""
from __future__ import annotations

import math
from typing import Any, ClassVar
from collections.abc import Mapping, Sequence

from cosim import Component, Parameter, Port, WiringError
from models.battery_models import AgeingModel, PhysicsAgeing
from models.battery_physics import ocv as cell_ocv
from models.battery_physics import ocv_integral, soc_and_ocv, soc_from_integral
from models.electrochemistry import SCALAR, namespace

__all__ = ["Battery", "power_limits", "limits_floats", "LIMIT_SIGNALS"]

_J_PER_KWH = 3.6e6
#: the outputs a step's power limits are computed from (:func:`power_limits`), in its order
LIMIT_SIGNALS = ("ocv", "resistance", "discharge_energy", "charge_energy", "max_discharge_current",
                 "max_charge_current", "charge_efficiency")


def power_limits(ocv: Any, resistance: Any, discharge_energy: Any, charge_energy: Any,
                 max_discharge_current: Any, max_charge_current: Any, charge_efficiency: Any,
                 dt: float) -> tuple[Any, Any]:
    """Largest terminal discharge and charge power (W) for a step of ``dt`` seconds.

    Energies in kWh (what :class:`Battery` outputs). The discharge current is bounded by
    the rating, by the energy above ``soc_min`` (``OCV * I * dt``) and by the maximum
    power point ``OCV / (2 R)``; the charge current by the rating and the room below
    ``soc_max`` (``eta * OCV * I * dt``). The battery and the bus both call this, so they
    agree to the last bit on what a step may ask.
    """
    xp = namespace(ocv, resistance, discharge_energy, charge_energy)
    i_dis, i_ch = max_discharge_current, max_charge_current
    if dt > 0.0:
        i_dis = xp.minimum(i_dis, discharge_energy * _J_PER_KWH / (ocv * dt))
        i_ch = xp.minimum(i_ch, charge_energy * _J_PER_KWH / (charge_efficiency * ocv * dt))
    i_dis = xp.minimum(i_dis, ocv / (2.0 * xp.maximum(resistance, 1e-12)))
    return ocv * i_dis - resistance * i_dis * i_dis, ocv * i_ch + resistance * i_ch * i_ch


def limits_floats(ocv: float, resistance: float, discharge_energy: float, charge_energy: float,
                  max_discharge_current: float, max_charge_current: float, charge_efficiency: float,
                  dt: float) -> tuple[float, float]:
    """:func:`power_limits` on floats, the battery's and the energy manager's every step: the
    same operations, ``min(a, b)`` written ``b if b < a else a`` (what it returns), so the
    same bits without its dispatch on arrays and the builtins' calls."""
    i_dis, i_ch = max_discharge_current, max_charge_current
    if dt > 0.0:
        bound = discharge_energy * _J_PER_KWH / (ocv * dt)
        i_dis = bound if bound < i_dis else i_dis
        bound = charge_energy * _J_PER_KWH / (charge_efficiency * ocv * dt)
        i_ch = bound if bound < i_ch else i_ch
    bound = ocv / (2.0 * (1e-12 if resistance < 1e-12 else resistance))
    i_dis = bound if bound < i_dis else i_dis
    return ocv * i_dis - resistance * i_dis * i_dis, ocv * i_ch + resistance * i_ch * i_ch


class Battery(Component):
    """A string of ``cells_series`` Li-ion cells of ``capacity`` Ah (see the module docstring)."""

    #: arrays of variants (an ensemble) take the general step; its parameters stay floats
    #: (an ensemble refuses ``supply.*`` paths: the float step checks inputs and state only)
    supports_arrays: ClassVar[bool] = True

    inputs = (
        Port("power_request", "W", -1e7, 1e7, "terminal power asked for: + discharge, - charge"),
        Port("ambient_temperature", "degC", -40.0, 80.0, "temperature around the battery", start=25.0),
    )
    outputs = (
        Port("power", "W", -1e7, 1e7, "terminal power over the step: + discharge, - charge"),
        Port("current", "A", -1e5, 1e5, "current over the step: + discharge, - charge", measured=True),
        Port("voltage", "V", 0.0, 1e4, "terminal voltage over the step", start=14.8, measured=True),
        Port("ocv", "V", 0.0, 1e4, "open-circuit voltage", start=14.8),
        Port("soc", "1", 0.0, 1.0, "state of charge", start=0.5, measured=True),
        Port("temperature", "degC", -40.0, 200.0, "cell temperature", start=25.0, measured=True),
        Port("capacity", "Ah", 0.0, 1e6, "capacity now", start=2.0),
        Port("state_of_health", "1", 0.0, 1.0, "capacity over the nominal capacity", start=1.0),
        Port("resistance", "Ohm", 0.0, 1e4, "internal resistance now", start=0.2),
        Port("stored_energy", "kWh", 0.0, 1e6, "chemical energy held (from empty)"),
        Port("energy_in", "kWh", 0.0, math.inf, "terminal energy charged since the start"),
        Port("energy_out", "kWh", 0.0, math.inf, "terminal energy discharged since the start"),
        Port("losses", "kWh", 0.0, math.inf, "resistive and coulombic losses since the start"),
        Port("fade_energy", "kWh", 0.0, math.inf, "stored energy lost with capacity since the start"),
        Port("balance_residual", "kWh", -1e6, 1e6,
             "this step's stored-energy change minus (in - out - losses - fade): rounding only"),
        Port("equivalent_cycles", "1", 0.0, 1e9, "full cycles: initial_cycles + discharged Ah / capacity"),
        Port("discharge_energy", "kWh", 0.0, 1e6, "energy above soc_min (a step's discharge limit)"),
        Port("charge_energy", "kWh", 0.0, 1e6, "room below soc_max (a step's charge limit)"),
        Port("max_discharge_current", "A", 0.0, 1e5, "discharge current rating"),
        Port("max_charge_current", "A", 0.0, 1e5, "charge current rating"),
        Port("charge_efficiency", "1", 0.0, 1.0, "coulombic efficiency of charging", start=1.0),
        Port("ageing_outside_envelope", "1", 0.0, 1.0,
             "1 while the ageing model's inputs are outside its training envelope"),
        Port("request_clipped", "1", 0.0, 1.0, "1 when the request exceeded the step's limits"),
    )
    parameters = (
        Parameter("cells_series", 4.0, "1", "cells in series", 1.0, 1000.0),
        Parameter("capacity", 2.0, "Ah", "nominal capacity of the string", 1e-3, 1e5),
        Parameter("initial_soc", 0.5, "1", "state of charge at the start", 0.0, 1.0),
        Parameter("soc_min", 0.1, "1", "the battery management never discharges below", 0.0, 1.0),
        Parameter("soc_max", 0.95, "1", "the battery management never charges above", 0.0, 1.0),
        Parameter("resistance", 0.2, "Ohm", "internal resistance of the string, new, at 25 degC", 0.0, 1e3),
        Parameter("resistance_temperature_coefficient", 0.01, "1/K",
                  "relative fall of the resistance per kelvin above 25 degC", 0.0, 0.1),
        Parameter("resistance_growth", 2.5, "1",
                  "resistance grows by this times the capacity lost (fraction)", 0.0, 100.0),
        Parameter("max_discharge_current", 4.0, "A", "discharge current rating", 0.0, 1e5),
        Parameter("max_charge_current", 2.0, "A", "charge current rating", 0.0, 1e5),
        Parameter("charge_efficiency", 0.995, "1", "coulombic efficiency of charging", 0.5, 1.0),
        Parameter("heat_capacity", 400.0, "J/K", "thermal mass of cells and enclosure", 1.0, 1e9),
        Parameter("heat_transfer", 0.5, "W/K", "heat transfer to the ambient", 1e-6, 1e6),
        Parameter("initial_temperature", 25.0, "degC", "cell temperature at the start", -40.0, 80.0),
        Parameter("initial_cycles", 0.0, "1", "equivalent full cycles before the start (an aged battery)",
                  0.0, 1e6),
        Parameter("history_temperature", 25.0, "degC",
                  "mean cell temperature of the cycles before the start", -40.0, 80.0),
        Parameter("history_c_rate", 0.5, "1/h", "mean discharge C-rate of the cycles before the start",
                  0.0, 20.0),
        Parameter("capacity_fade", 1.0, "1", "1: the capacity fades; 0: it holds", 0.0, 1.0, tunable=True),
    )
    state_names = ("_energy", "_capacity", "_temperature", "_discharged", "_mean_temperature",
                   "_mean_c_rate", "_in", "_out", "_losses", "_fade", "_outside")

    def __init__(self, ageing: AgeingModel | None = None, **params: float) -> None:
        super().__init__(**params)
        self.ageing_model = ageing if ageing is not None else PhysicsAgeing()
        p = self.p
        if not p.soc_min < p.soc_max:
            raise WiringError(f"Battery: expected soc_min below soc_max, found {p.soc_min:g} and "
                              f"{p.soc_max:g}")
        self._now: tuple[Any, ...] = ()

    # -- helpers -------------------------------------------------------------------
    def _joules(self, capacity: Any, soc: Any) -> Any:
        """Chemical energy (J) of the string at ``soc`` with ``capacity`` Ah."""
        return capacity * 3600.0 * self.p.cells_series * ocv_integral(soc)

    def _soc(self, energy: Any, capacity: Any) -> Any:
        return soc_from_integral(energy / (capacity * 3600.0 * self.p.cells_series))

    def _state_now(self) -> tuple[Any, Any, Any]:
        """State of charge, OCV and resistance of the present state, computed once per state."""
        energy, capacity, temperature = self._energy, self._capacity, self._temperature
        now = self._now
        # the same objects: nothing moved since the last computation (set_state makes new ones)
        if now and now[0] is energy and now[1] is capacity and now[2] is temperature:
            return now[3], now[4], now[5]
        soc = self._soc(energy, capacity)
        ocv = self.p.cells_series * cell_ocv(soc)
        r = self._resistance(temperature, capacity)
        self._now = (energy, capacity, temperature, soc, ocv, r)
        return soc, ocv, r

    def _bounds(self, capacity: Any) -> tuple[Any, Any]:
        """Chemical energy (J) at soc_min and at soc_max with ``capacity``."""
        scale = capacity * 3600.0 * self.p.cells_series
        return scale * self._f_window[0], scale * self._f_window[1]

    def _resistance(self, temperature: Any, capacity: Any) -> Any:
        p, xp = self.p, namespace(temperature, capacity)
        health = capacity / p.capacity
        return (p.resistance * xp.exp(-p.resistance_temperature_coefficient * (temperature - 25.0))
                * (1.0 + p.resistance_growth * (1.0 - health)))

    def _fraction(self, cycles: Any, temperature: Any, c_rate: Any) -> tuple[Any, Any]:
        """The ageing model's capacity fraction (held in [0.05, 1]) after ``cycles`` full cycles, and
        whether its inputs are outside its envelope. The models count cycles as a log does: the
        capacity of cycle ``i`` is measured in the i-th discharge, after ``i - 1`` cycles."""
        x = self.ageing_model.fraction(cycles + 1.0, temperature, c_rate)
        outside = self.ageing_model.outside(cycles + 1.0, temperature, c_rate)
        xp = namespace(x)
        return xp.minimum(xp.maximum(x, 0.05), 1.0), outside

    # -- contract -------------------------------------------------------------------
    def initialize(self, t0: float) -> None:
        p = self.p
        self._f_window = (ocv_integral(p.soc_min), ocv_integral(p.soc_max))
        self._now = ()
        self._discharged = 0.0  # Ah discharged in this run
        self._mean_temperature = p.history_temperature
        self._mean_c_rate = p.history_c_rate
        self._capacity, self._outside = p.capacity, False
        if p.initial_cycles > 0:
            fraction, self._outside = self._fraction(p.initial_cycles, p.history_temperature,
                                                     p.history_c_rate)
            self._capacity = p.capacity * fraction
        self._energy = self._joules(self._capacity, p.initial_soc)
        self._temperature = p.initial_temperature
        self._in = self._out = self._losses = self._fade = 0.0
        # the last step's power, current, voltage (None: no step yet), residual, clipped flag
        self._last: tuple[Any, ...] = (0.0, 0.0, None, 0.0, 0.0)

    def step(self, t: float, dt: float, inputs: Mapping[str, Any]) -> dict[str, Any]:
        request, ambient = _INPUTS_OF(inputs)
        if namespace(request, ambient, self._energy, self._capacity, self._temperature) is SCALAR:
            return dict(zip(_OUTPUT_NAMES, self._step_floats(dt, request, ambient), strict=True))
        return self._step_general(t, dt, inputs)

    def step_values(self, t: float, dt: float, values: tuple[Any, ...]) -> Sequence[Any]:
        """:meth:`step` with positional inputs and outputs, the engine's path: on floats the
        float step's tuple itself (what :meth:`step` puts in its dict), else :meth:`step`."""
        request, ambient = values
        if namespace(request, ambient, self._energy, self._capacity, self._temperature) is SCALAR:
            return self._step_floats(dt, request, ambient)
        return super().step_values(t, dt, values)

    def _step_general(self, t: float, dt: float, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """The step in the namespace of its values: arrays of variants, the reference of floats."""
        if dt > 0.0:
            self._advance(dt, inputs)
        return self._outputs()

    def _step_floats(self, dt: float, request: float, ambient: float) -> tuple[Any, ...]:
        """:meth:`_advance` then :meth:`_outputs` on floats, unrolled: the same operations in the
        same order (``max(x, 0.0)`` written ``0.0 if x < 0.0 else x``, what it returns), the
        state of charge, OCV and resistance of the new state computed once and kept for the
        next step's limits (``_now``, as :meth:`_state_now` keeps them). Outputs in the order
        of :attr:`outputs`."""
        p = self.p
        energy, capacity, temperature = self._energy, self._capacity, self._temperature
        now = self._now
        if now and now[0] is energy and now[1] is capacity and now[2] is temperature:
            soc, ocv, r = now[3], now[4], now[5]
        else:
            soc, ocv, r = self._state_floats(energy, capacity, temperature)
        f_min, f_max = self._f_window
        if dt > 0.0:
            eta = p.charge_efficiency
            scale = capacity * 3600.0 * p.cells_series
            above, room = energy - scale * f_min, scale * f_max - energy
            p_dis, p_ch = limits_floats(ocv, r, (0.0 if above < 0.0 else above) / 3.6e6,
                                        (0.0 if room < 0.0 else room) / 3.6e6, p.max_discharge_current,
                                        p.max_charge_current, eta, dt)
            low = -p_ch
            power = low if low > request else request  # max(request, -p_ch)
            power = p_dis if p_dis < power else power  # min(., p_dis)
            clipped = 1.0 if power != request else 0.0
            out = 0.0 if power < 0.0 else power
            into = -power
            into = 0.0 if into < 0.0 else into
            square = ocv * ocv - 4.0 * r * out
            i_out = 2.0 * out / (ocv + math.sqrt(0.0 if square < 0.0 else square))
            i_in = 2.0 * into / (ocv + math.sqrt(ocv * ocv + 4.0 * r * into))
            joule = r * (i_out * i_out + i_in * i_in) * dt
            side = (1.0 - eta) * (into * dt - r * i_in * i_in * dt)
            e_in, e_out = into * dt, out * dt
            after = energy + e_in - e_out - joule - side
            heat = (joule + side) / dt
            settle = ambient + heat / p.heat_transfer
            decay = math.exp(-dt * p.heat_transfer / p.heat_capacity)
            self._temperature = temperature = settle + (temperature - settle) * decay
            new_capacity, fade = self._age(i_out, dt, capacity, after, SCALAR)  # reads _temperature
            kept = after - fade
            self._in = self._in + e_in
            self._out = self._out + e_out
            self._losses = self._losses + (joule + side)
            self._fade = self._fade + fade
            residual = (kept - energy) - (e_in - e_out - joule - side - fade)
            current = i_out - i_in
            self._last = last = (power, current, ocv - r * (i_out - i_in) if i_out + i_in > 0.0 else ocv,
                                 residual, clipped)
            self._energy = energy = kept
            self._capacity = capacity = new_capacity
            soc, ocv, r = self._state_floats(energy, capacity, temperature)
        else:
            last = self._last
        power, current, voltage, residual, clipped = last
        scale = capacity * 3600.0 * p.cells_series
        above, room = energy - scale * f_min, scale * f_max - energy
        per_kwh = _J_PER_KWH
        return (  # in the order of the outputs (_OUTPUT_NAMES)
            power, current, ocv if voltage is None else voltage, ocv, soc, temperature, capacity,
            capacity / p.capacity,  # state_of_health
            r,
            energy / per_kwh, self._in / per_kwh, self._out / per_kwh, self._losses / per_kwh,
            self._fade / per_kwh, residual / per_kwh,
            p.initial_cycles + self._discharged / p.capacity,  # equivalent_cycles
            (0.0 if above < 0.0 else above) / per_kwh,  # discharge_energy
            (0.0 if room < 0.0 else room) / per_kwh,  # charge_energy
            p.max_discharge_current, p.max_charge_current, p.charge_efficiency,
            1.0 if self._outside else 0.0,
            clipped,
        )

    def _state_floats(self, energy: float, capacity: float, temperature: float) -> tuple[float, ...]:
        """:meth:`_state_now` on floats, computed and kept: the same operations as :meth:`_soc`,
        ``cells_series * ocv`` and :meth:`_resistance`."""
        p = self.p
        soc, cell = soc_and_ocv(energy / (capacity * 3600.0 * p.cells_series))
        ocv = p.cells_series * cell
        r = (p.resistance * math.exp(-p.resistance_temperature_coefficient * (temperature - 25.0))
             * (1.0 + p.resistance_growth * (1.0 - capacity / p.capacity)))
        self._now = (energy, capacity, temperature, soc, ocv, r)
        return soc, ocv, r

    def _advance(self, dt: float, inputs: Mapping[str, Any]) -> None:
        p = self.p
        energy, capacity = self._energy, self._capacity
        xp = namespace(energy, capacity, inputs["power_request"])
        _, ocv, r = self._state_now()
        e_min, e_max = self._bounds(capacity)
        p_dis, p_ch = power_limits(ocv, r, xp.maximum(energy - e_min, 0.0) / 3.6e6,
                                   xp.maximum(e_max - energy, 0.0) / 3.6e6, p.max_discharge_current,
                                   p.max_charge_current, p.charge_efficiency, dt)
        asked = inputs["power_request"]
        power = xp.minimum(xp.maximum(asked, -p_ch), p_dis)
        clipped = xp.where(power != asked, 1.0, 0.0)
        out = xp.maximum(power, 0.0)
        into = xp.maximum(-power, 0.0)
        # the roots in the form that keeps their digits at small power
        i_out = 2.0 * out / (ocv + xp.sqrt(xp.maximum(ocv * ocv - 4.0 * r * out, 0.0)))
        i_in = 2.0 * into / (ocv + xp.sqrt(ocv * ocv + 4.0 * r * into))
        joule = r * (i_out * i_out + i_in * i_in) * dt
        side = (1.0 - p.charge_efficiency) * (into * dt - r * i_in * i_in * dt)
        e_in, e_out = into * dt, out * dt
        after = energy + e_in - e_out - joule - side
        # heat: exact step of the first-order thermal balance with the losses held
        heat = (joule + side) / dt
        settle = inputs["ambient_temperature"] + heat / p.heat_transfer
        decay = xp.exp(-dt * p.heat_transfer / p.heat_capacity)
        self._temperature = settle + (self._temperature - settle) * decay
        new_capacity, fade = self._age(i_out, dt, capacity, after, xp)
        kept = after - fade
        self._energy = kept
        self._capacity = new_capacity
        self._in += e_in
        self._out += e_out
        self._losses += joule + side
        self._fade += fade
        residual = (kept - energy) - (e_in - e_out - joule - side - fade)
        self._last = (power, i_out - i_in, xp.where(i_out + i_in > 0.0, ocv - r * (i_out - i_in), ocv),
                      residual, clipped)

    def _age(self, i_out: Any, dt: float, capacity: Any, energy: Any, xp: Any) -> tuple[Any, Any]:
        """The capacity after a step that discharged ``i_out`` A, and the stored energy it took along."""
        p = self.p
        if p.capacity_fade <= 0.0:
            return capacity, 0.0 * energy
        discharged = i_out * dt / 3600.0
        if xp is SCALAR and discharged <= 0.0:
            return capacity, 0.0
        history = p.initial_cycles * p.capacity + self._discharged
        total = history + discharged
        weight = xp.where(total > 0.0, discharged / xp.maximum(total, 1e-300), 0.0)
        mean = self._mean_temperature
        self._mean_temperature = mean + weight * (self._temperature - mean)
        c_rate = i_out / p.capacity
        self._mean_c_rate = self._mean_c_rate + weight * (c_rate - self._mean_c_rate)
        self._discharged = self._discharged + discharged
        cycles = total / p.capacity
        fraction, self._outside = self._fraction(cycles, self._mean_temperature, self._mean_c_rate)
        # only a discharge ages (the cycle count moves); an array's other elements keep theirs
        new_capacity = xp.where(discharged > 0.0, xp.minimum(capacity, p.capacity * fraction), capacity)
        return new_capacity, energy * (1.0 - new_capacity / capacity)

    def _outputs(self) -> dict[str, Any]:
        p = self.p
        energy, capacity = self._energy, self._capacity
        xp = namespace(energy, capacity)
        soc, ocv, r = self._state_now()
        e_min, e_max = self._bounds(capacity)
        power, current, voltage, residual, clipped = self._last
        return {
            "power": power, "current": current, "voltage": ocv if voltage is None else voltage, "ocv": ocv,
            "soc": soc, "temperature": self._temperature, "capacity": capacity,
            "state_of_health": capacity / p.capacity,
            "resistance": r,
            "stored_energy": energy / _J_PER_KWH, "energy_in": self._in / _J_PER_KWH,
            "energy_out": self._out / _J_PER_KWH, "losses": self._losses / _J_PER_KWH,
            "fade_energy": self._fade / _J_PER_KWH, "balance_residual": residual / _J_PER_KWH,
            "equivalent_cycles": p.initial_cycles + self._discharged / p.capacity,
            "discharge_energy": xp.maximum(energy - e_min, 0.0) / _J_PER_KWH,
            "charge_energy": xp.maximum(e_max - energy, 0.0) / _J_PER_KWH,
            "max_discharge_current": p.max_discharge_current, "max_charge_current": p.max_charge_current,
            "charge_efficiency": p.charge_efficiency,
            "ageing_outside_envelope": xp.where(self._outside, 1.0, 0.0),
            "request_clipped": clipped,
        }

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        state["_last"] = dict(zip(_LAST, self._last, strict=True))
        return state

    def set_state(self, state: Mapping[str, Any]) -> None:
        super().set_state(state)
        self._last = tuple(state["_last"][name] for name in _LAST)
        self._now = ()


#: what a checkpoint keeps of the last step (``Battery._last``, in its order)
_LAST = ("power", "current", "voltage", "residual", "clipped")
#: the inputs and outputs in the order of the ports, as :meth:`Battery._step_floats` takes and
#: returns them (its tuple is written in this order: a change of the ports must change it)
_INPUT_NAMES = ("power_request", "ambient_temperature")
_OUTPUT_NAMES = ("power", "current", "voltage", "ocv", "soc", "temperature", "capacity", "state_of_health",
                 "resistance", "stored_energy", "energy_in", "energy_out", "losses", "fade_energy",
                 "balance_residual", "equivalent_cycles", "discharge_energy", "charge_energy",
                 "max_discharge_current", "max_charge_current", "charge_efficiency",
                 "ageing_outside_envelope", "request_clipped")
_INPUTS_OF = Battery.positional(_INPUT_NAMES, _OUTPUT_NAMES)


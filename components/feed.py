"""Feed stage: gas mass-flow controllers, electrolyte pumps and make-up dosing."""
from __future__ import annotations

import math
from typing import Any, ClassVar
from collections.abc import Mapping, Sequence

import numpy as np

from cosim import Component, Parameter, Port
from models.electrochemistry import SCALAR, gas_ml_min, gas_mol_s, namespace

__all__ = ["Feed"]

_ML_MIN_PER_MOL_S = gas_ml_min(1.0)  # gas_mol_s(f) is f / this


class Feed(Component):
    """Turns set points into lagged, saturated actual flows reaching the cell.

    Two mass-flow controllers (CO2 and N2 diluent) blend the fresh gas; the CO2
    recycle from separation joins it without delay. Each actuator is a
    first-order lag (integrated exactly) saturated at its full scale. An
    actuator asked for more than its full scale raises its own flag
    (``co2_mfc_saturated``, ``n2_mfc_saturated``, ``anolyte_pump_saturated``,
    ``catholyte_pump_saturated``) and ``saturated``; ``co2_mfc_request`` and
    ``n2_mfc_request`` say what each gas controller was asked for and
    ``co2_mfc_flow``, ``n2_mfc_flow`` what it gives, so a run can tell how far
    the gas reaching the cell is from its set points. ``fresh_co2_fed`` and
    ``recycle_co2_fed`` integrate the CO2 fed, so balances hold between
    recorded rows of a decimated run. Faults are tunable parameters:
    ``co2_supply_fraction`` < 1 (the CO2 supply cannot deliver), and
    ``anolyte_pump_on`` / ``catholyte_pump_on`` = 0 (a pump stops).
    """

    inputs = (
        Port("gas_flow_setpoint", "mL/min", 0.0, 10000.0, "fresh gas flow asked for", start=100.0),
        Port("co2_fraction_setpoint", "%", 0.0, 100.0, "CO2 share of the fresh gas", start=100.0),
        Port("anolyte_flow_setpoint", "mL/min", 0.0, 1000.0, "anolyte pump set point", start=5.57),
        Port("catholyte_flow_setpoint", "mL/min", 0.0, 1000.0, "catholyte pump set point", start=5.57),
        Port("anolyte_conc_setpoint", "mol/L", 0.0, 20.0, "anolyte KOH concentration", start=1.0),
        Port("catholyte_conc_setpoint", "mol/L", 0.0, 20.0, "catholyte KHCO3 concentration", start=1.0),
        Port("humidity_setpoint", "%", 0.0, 100.0, "relative humidity of the gas", start=90.0),
        Port("co2_recycle", "mL/min", 0.0, 10000.0, "CO2 returned by separation", start=0.0),
    )
    outputs = (
        Port("gas_flow", "mL/min", 0.0, 20000.0, "total gas flow into the cell", start=100.0, measured=True),
        Port("co2_fraction", "%", 0.0, 100.0, "CO2 share of the gas into the cell", start=100.0,
             measured=True),
        Port("co2_flow", "mL/min", 0.0, 20000.0, "CO2 flow into the cell", start=100.0),
        Port("fresh_co2_rate", "mol/s", 0.0, 1.0, "fresh CO2 fed to the plant"),
        Port("recycle_co2_rate", "mol/s", 0.0, 1.0, "recycled CO2 fed back to the cell"),
        Port("fresh_co2_fed", "mol", 0.0, math.inf, "fresh CO2 fed since the start"),
        Port("anolyte_flow", "mL/min", 0.0, 1000.0, "anolyte flow", start=5.57, measured=True),
        Port("catholyte_flow", "mL/min", 0.0, 1000.0, "catholyte flow", start=5.57, measured=True),
        Port("anolyte_conc", "mol/L", 0.0, 20.0, "anolyte concentration", start=1.0),
        Port("catholyte_conc", "mol/L", 0.0, 20.0, "catholyte concentration", start=1.0),
        Port("humidity", "%", 0.0, 100.0, "gas relative humidity", start=90.0),
        Port("recycle_co2_fed", "mol", 0.0, math.inf, "recycled CO2 fed since the start"),
        Port("co2_mfc_request", "mL/min", 0.0, 10000.0, "CO2 flow asked of the CO2 flow controller",
             start=100.0),
        Port("n2_mfc_request", "mL/min", 0.0, 10000.0, "N2 flow asked of the N2 flow controller"),
        Port("co2_mfc_flow", "mL/min", 0.0, 10000.0, "fresh CO2 the CO2 flow controller gives",
             start=100.0),
        Port("n2_mfc_flow", "mL/min", 0.0, 10000.0, "N2 the N2 flow controller gives"),
        Port("co2_mfc_saturated", "1", 0.0, 1.0, "1 while the CO2 flow controller is asked for more "
             "than its full scale"),
        Port("n2_mfc_saturated", "1", 0.0, 1.0, "1 while the N2 flow controller is asked for more "
             "than its full scale"),
        Port("anolyte_pump_saturated", "1", 0.0, 1.0, "1 while the anolyte pump is asked for more "
             "than its full scale"),
        Port("catholyte_pump_saturated", "1", 0.0, 1.0, "1 while the catholyte pump is asked for more "
             "than its full scale"),
        Port("saturated", "1", 0.0, 1.0, "1 while any actuator is asked for more than its full scale"),
    )
    parameters = (
        Parameter("co2_mfc_max", 500.0, "mL/min", "CO2 mass-flow controller full scale", 0.0, 1e5),
        Parameter("n2_mfc_max", 500.0, "mL/min", "N2 mass-flow controller full scale", 0.0, 1e5),
        Parameter("pump_max", 50.0, "mL/min", "electrolyte pump full scale", 0.0, 1e4),
        Parameter("mfc_time_constant", 2.0, "s", "gas flow controller lag", 0.0, 1e4),
        Parameter("pump_time_constant", 1.0, "s", "pump lag", 0.0, 1e4),
        Parameter("dosing_time_constant", 120.0, "s", "electrolyte concentration mixing lag", 0.0, 1e6),
        Parameter("humidifier_time_constant", 30.0, "s", "humidifier lag", 0.0, 1e6),
        Parameter("co2_supply_fraction", 1.0, "1", "share of the CO2 set point the supply can give",
                  0.0, 1.0, tunable=True),
        Parameter("anolyte_pump_on", 1.0, "1", "0 when the anolyte pump has stopped", 0.0, 1.0,
                  tunable=True),
        Parameter("catholyte_pump_on", 1.0, "1", "0 when the catholyte pump has stopped", 0.0, 1.0,
                  tunable=True),
    )
    state_names = ("_co2", "_n2", "_an", "_cat", "_c_an", "_c_cat", "_rh", "_fed", "_recycled")
    # the actuator states (floats, or arrays of variants), set by the first step
    _n2: Any
    _an: Any
    _cat: Any
    _c_an: Any
    _c_cat: Any
    _rh: Any
    #: steps arrays of variants too (an ensemble, :mod:`co2twin.ensemble`)
    supports_arrays: ClassVar[bool] = True

    def initialize(self, t0: float) -> None:
        self._co2 = None
        self._fed = 0.0
        self._recycled = 0.0
        # (dt, time constants) -> the decay factors of the float step, computed once per key
        self._decays: tuple[Any, ...] = ()

    def step(self, t: float, dt: float, inputs: Mapping[str, Any]) -> dict[str, Any]:
        # floats take the math functions, arrays of variants (an ensemble) NumPy's: the
        # same arithmetic either way, each branch of the scalar step a ``where`` on arrays
        xp = namespace(inputs["gas_flow_setpoint"], inputs["co2_fraction_setpoint"],
                       inputs["co2_recycle"])
        if xp is SCALAR and self._co2 is not None:
            return dict(zip(_OUTPUT_NAMES, self._step_floats(dt, _INPUTS_OF(inputs)), strict=True))
        return self._step_general(dt, inputs, xp)

    def step_values(self, t: float, dt: float, values: tuple[Any, ...]) -> Sequence[Any]:
        """:meth:`step` with positional inputs and outputs, the engine's path: on numbers after
        the first step the float step's tuple itself (what :meth:`step` puts in its dict),
        else :meth:`step` (arrays of variants, the first step)."""
        if self._co2 is not None and namespace(*values) is SCALAR:
            return self._step_floats(dt, values)
        return super().step_values(t, dt, values)

    def _step_floats(self, dt: float, values: tuple[Any, ...]) -> tuple[Any, ...]:
        """:meth:`_step_general` on floats after the first step, unrolled: the same operations
        in the same order (``min(a, b)`` written ``b if b < a else a``, what it returns), the
        decay factors ``exp(-dt / tau)`` kept while ``dt`` and the time constants stay.
        Inputs and outputs by position, in the order of :attr:`inputs` and :attr:`outputs`."""
        p = self.p
        q, x, an_sp, cat_sp, c_an_t, c_cat_t, rh_t, recycle = values
        x = x / 100.0
        co2_sp = q * x
        n2_sp = q - co2_sp
        co2_max, n2_max, pump_max = p.co2_mfc_max, p.n2_mfc_max, p.pump_max
        co2_t = (co2_max if co2_max < co2_sp else co2_sp) * p.co2_supply_fraction
        n2_t = n2_max if n2_max < n2_sp else n2_sp
        an_t = (pump_max if pump_max < an_sp else an_sp) * p.anolyte_pump_on
        cat_t = (pump_max if pump_max < cat_sp else cat_sp) * p.catholyte_pump_on
        if dt > 0.0:
            key = (dt, p.mfc_time_constant, p.pump_time_constant, p.dosing_time_constant,
                   p.humidifier_time_constant)
            if self._decays[:1] != (key,):
                self._decays = (key, *(_decay(dt, tau) for tau in key[1:]))
            _, gas_lag, pump_lag, dosing_lag, rh_lag = self._decays
            self._co2 = co2_t + (self._co2 - co2_t) * gas_lag
            self._n2 = n2_t + (self._n2 - n2_t) * gas_lag
            self._an = an_t + (self._an - an_t) * pump_lag
            self._cat = cat_t + (self._cat - cat_t) * pump_lag
            self._c_an = c_an_t + (self._c_an - c_an_t) * dosing_lag
            self._c_cat = c_cat_t + (self._c_cat - c_cat_t) * dosing_lag
            self._rh = rh_t + (self._rh - rh_t) * rh_lag
        fresh = self._co2 / _ML_MIN_PER_MOL_S
        self._fed = self._fed + fresh * dt
        recycle_rate = recycle / _ML_MIN_PER_MOL_S
        self._recycled = self._recycled + recycle_rate * dt
        co2 = self._co2 + recycle
        total = co2 + self._n2
        co2_sat, n2_sat = co2_sp > co2_max, n2_sp > n2_max
        an_sat, cat_sat = an_sp > pump_max, cat_sp > pump_max
        return (  # in the order of the outputs (_OUTPUT_NAMES)
            total,
            100.0 * co2 / total if total > 0.0 else 0.0,  # co2_fraction
            co2,
            fresh,
            recycle_rate,
            self._fed,
            self._an,
            self._cat,
            self._c_an,
            self._c_cat,
            self._rh,
            self._recycled,
            co2_sp,
            n2_sp,
            self._co2,
            self._n2,
            1.0 if co2_sat else 0.0,
            1.0 if n2_sat else 0.0,
            1.0 if an_sat else 0.0,
            1.0 if cat_sat else 0.0,
            1.0 if co2_sat or n2_sat or an_sat or cat_sat else 0.0,  # saturated
        )

    def _step_general(self, dt: float, inputs: Mapping[str, Any], xp: Any) -> dict[str, Any]:
        """:meth:`step` in the namespace ``xp``: arrays of variants, and the first float step."""
        p = self.p
        q, x = inputs["gas_flow_setpoint"], inputs["co2_fraction_setpoint"] / 100.0
        co2_sp = q * x
        n2_sp = q - co2_sp
        targets = (
            xp.minimum(co2_sp, p.co2_mfc_max) * p.co2_supply_fraction,
            xp.minimum(n2_sp, p.n2_mfc_max),
            xp.minimum(inputs["anolyte_flow_setpoint"], p.pump_max) * p.anolyte_pump_on,
            xp.minimum(inputs["catholyte_flow_setpoint"], p.pump_max) * p.catholyte_pump_on,
            inputs["anolyte_conc_setpoint"],
            inputs["catholyte_conc_setpoint"],
            inputs["humidity_setpoint"],
        )
        flags = (
            co2_sp > p.co2_mfc_max,
            n2_sp > p.n2_mfc_max,
            inputs["anolyte_flow_setpoint"] > p.pump_max,
            inputs["catholyte_flow_setpoint"] > p.pump_max,
        )
        if self._co2 is None:
            (self._co2, self._n2, self._an, self._cat,
             self._c_an, self._c_cat, self._rh) = targets
        elif dt > 0.0:
            taus = (
                p.mfc_time_constant, p.mfc_time_constant, p.pump_time_constant,
                p.pump_time_constant, p.dosing_time_constant, p.dosing_time_constant,
                p.humidifier_time_constant,
            )
            states = (self._co2, self._n2, self._an, self._cat, self._c_an, self._c_cat, self._rh)
            (self._co2, self._n2, self._an, self._cat, self._c_an, self._c_cat, self._rh) = (
                target + (y - target) * _decay(dt, tau)
                for y, target, tau in zip(states, targets, taus, strict=True)
            )
        fresh = gas_mol_s(self._co2)
        self._fed = self._fed + fresh * dt  # not +=: an array would change in place
        recycle = inputs["co2_recycle"]
        self._recycled = self._recycled + gas_mol_s(recycle) * dt
        co2 = self._co2 + recycle
        total = co2 + self._n2
        saturated: list[Any]
        if xp is SCALAR:
            fraction = 100.0 * co2 / total if total > 0.0 else 0.0
            saturated = [1.0 if f else 0.0 for f in (*flags, any(flags))]
        else:
            fraction = np.where(total > 0.0, 100.0 * co2 / np.maximum(total, 1e-300), 0.0)
            saturated = [np.where(f, 1.0, 0.0) for f in (*flags, flags[0] | flags[1] | flags[2] | flags[3])]
        return {
            "gas_flow": total,
            "co2_fraction": fraction,
            "co2_flow": co2,
            "fresh_co2_rate": fresh,
            "fresh_co2_fed": self._fed,
            "recycle_co2_rate": gas_mol_s(recycle),
            "anolyte_flow": self._an,
            "catholyte_flow": self._cat,
            "anolyte_conc": self._c_an,
            "catholyte_conc": self._c_cat,
            "humidity": self._rh,
            "recycle_co2_fed": self._recycled,
            "co2_mfc_request": co2_sp,
            "n2_mfc_request": n2_sp,
            "co2_mfc_flow": self._co2,
            "n2_mfc_flow": self._n2,
            "co2_mfc_saturated": saturated[0],
            "n2_mfc_saturated": saturated[1],
            "anolyte_pump_saturated": saturated[2],
            "catholyte_pump_saturated": saturated[3],
            "saturated": saturated[4],
        }


def _decay(dt: float, tau: Any) -> Any:
    """``exp(-dt / tau)``, 0 for no lag (``tau`` 0); element-wise for a parameter varied per variant."""
    if isinstance(tau, np.ndarray):
        return np.where(tau > 0.0, np.exp(-dt / np.where(tau > 0.0, tau, 1.0)), 0.0)
    return math.exp(-dt / tau) if tau > 0.0 else 0.0


#: the inputs and outputs in the order of the ports, as :meth:`Feed._step_floats` takes and
#: returns them (its tuple is written in this order: a change of the ports must change it)
_INPUT_NAMES = ("gas_flow_setpoint", "co2_fraction_setpoint", "anolyte_flow_setpoint",
                "catholyte_flow_setpoint", "anolyte_conc_setpoint", "catholyte_conc_setpoint",
                "humidity_setpoint", "co2_recycle")
_OUTPUT_NAMES = ("gas_flow", "co2_fraction", "co2_flow", "fresh_co2_rate", "recycle_co2_rate",
                 "fresh_co2_fed", "anolyte_flow", "catholyte_flow", "anolyte_conc", "catholyte_conc",
                 "humidity", "recycle_co2_fed", "co2_mfc_request", "n2_mfc_request", "co2_mfc_flow",
                 "n2_mfc_flow", "co2_mfc_saturated", "n2_mfc_saturated", "anolyte_pump_saturated",
                 "catholyte_pump_saturated", "saturated")
_INPUTS_OF = Feed.positional(_INPUT_NAMES, _OUTPUT_NAMES)

"""Feed stage: gas mass-flow controllers, electrolyte pumps and make-up dosing."""
from __future__ import annotations

import math
from typing import Any
from collections.abc import Mapping

from cosim import Component, Parameter, Port
from models.electrochemistry import gas_mol_s

__all__ = ["Feed"]


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

    def initialize(self, t0: float) -> None:
        self._co2 = None
        self._fed = 0.0
        self._recycled = 0.0

    def step(self, t: float, dt: float, inputs: Mapping[str, Any]) -> dict[str, Any]:
        p = self.p
        q, x = inputs["gas_flow_setpoint"], inputs["co2_fraction_setpoint"] / 100.0
        co2_sp = q * x
        n2_sp = q - co2_sp
        targets = (
            min(co2_sp, p.co2_mfc_max) * p.co2_supply_fraction,
            min(n2_sp, p.n2_mfc_max),
            min(inputs["anolyte_flow_setpoint"], p.pump_max) * p.anolyte_pump_on,
            min(inputs["catholyte_flow_setpoint"], p.pump_max) * p.catholyte_pump_on,
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
                target + (y - target) * (math.exp(-dt / tau) if tau > 0.0 else 0.0)
                for y, target, tau in zip(states, targets, taus, strict=True)
            )
        fresh = gas_mol_s(self._co2)
        self._fed += fresh * dt
        recycle = inputs["co2_recycle"]
        self._recycled += gas_mol_s(recycle) * dt
        co2 = self._co2 + recycle
        total = co2 + self._n2
        return {
            "gas_flow": total,
            "co2_fraction": 100.0 * co2 / total if total > 0.0 else 0.0,
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
            "co2_mfc_saturated": 1.0 if flags[0] else 0.0,
            "n2_mfc_saturated": 1.0 if flags[1] else 0.0,
            "anolyte_pump_saturated": 1.0 if flags[2] else 0.0,
            "catholyte_pump_saturated": 1.0 if flags[3] else 0.0,
            "saturated": 1.0 if any(flags) else 0.0,
        }

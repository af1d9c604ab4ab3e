"""Separation stage: gas-liquid separator, CO2 recycle and the recirculating product tank."""
from __future__ import annotations

import math
from typing import Any, ClassVar
from collections.abc import Mapping, Sequence

from cosim import Component, Parameter, Port
from models import electrochemistry as ec

__all__ = ["Separation"]

_ML_MIN_PER_MOL_S = ec.gas_ml_min(1.0)  # ec.gas_ml_min(r) is r * this


class Separation(Component):
    """Gas-liquid separator with gas hold-up, CO2 recycle and product tank.

    The separator headspace is a well-mixed volume at constant pressure: what
    leaves equals what enters, with the composition of the hold-up, which
    lags the inlet by ``V / flow`` (tens of seconds). A ``recycle_fraction`` of
    the CO2 leaving it returns to the feed (an ideal CO2 separation unit), the
    rest is vented with the H2 and N2. The catholyte recirculates through the
    product tank, which accumulates formate; ``product_draw`` withdraws
    product (replaced by fresh catholyte, so the volume stays constant).

    Flows of conserved quantities are step averages (``inflow - change of
    hold-up / dt``), so the carbon and formate balances close exactly on the
    recorded rows. The ``*_received``, ``co2_vented``, ``co2_recycled`` and
    ``product_drawn`` totals integrate those flows since the start, so the same
    balances can be checked between the rows a decimated run keeps.
    """

    inputs = (
        Port("co2_rate", "mol/s", 0.0, 1.0, "CO2 in the cell outlet gas"),
        Port("h2_rate", "mol/s", 0.0, 1.0, "H2 in the cell outlet gas"),
        Port("n2_rate", "mol/s", 0.0, 1.0, "N2 in the cell outlet gas"),
        Port("formate_rate", "mol/s", 0.0, 1.0, "formate leaving the cell with the catholyte"),
        Port("catholyte_flow", "mL/min", 0.0, 1000.0, "catholyte flow through the cell", start=5.57),
        Port("recycle_fraction", "1", 0.0, 1.0, "share of separated CO2 sent back to the feed",
             start=0.0),
        Port("product_draw", "mL/min", 0.0, 1000.0, "product withdrawn from the tank", start=0.0),
    )
    outputs = (
        Port("vent_flow", "mL/min", 0.0, 20000.0, "vent gas flow"),
        Port("vent_co2_rate", "mol/s", 0.0, 1.0, "CO2 vented (step average)"),
        Port("vent_co2_fraction", "%", 0.0, 100.0, "CO2 in the vent gas", measured=True),
        Port("vent_h2_fraction", "%", 0.0, 100.0, "H2 in the vent gas", measured=True),
        Port("co2_recycle_flow", "mL/min", 0.0, 10000.0, "CO2 sent back to the feed"),
        Port("co2_recycle_rate", "mol/s", 0.0, 1.0, "CO2 sent back to the feed (step average)"),
        Port("separator_co2", "mol", 0.0, math.inf, "CO2 held up in the separator"),
        Port("tank_formate", "mol", 0.0, math.inf, "formate in the product tank"),
        Port("tank_formate_conc", "mol/L", 0.0, 30.0, "formate concentration in the tank", measured=True),
        Port("tank_formic_acid", "g/L", 0.0, 1500.0, "product concentration as HCOOH"),
        Port("cell_outlet_formate_conc", "mol/L", 0.0, 30.0, "formate concentration leaving the cell"),
        Port("product_draw_rate", "mol/s", 0.0, 1.0, "formate withdrawn (step average)"),
        Port("co2_received", "mol", 0.0, math.inf, "CO2 received from the cell since the start"),
        Port("co2_vented", "mol", 0.0, math.inf, "CO2 vented since the start"),
        Port("co2_recycled", "mol", 0.0, math.inf, "CO2 sent back to the feed since the start"),
        Port("formate_received", "mol", 0.0, math.inf, "formate received from the cell since the start"),
        Port("product_drawn", "mol", 0.0, math.inf, "formate withdrawn since the start"),
    )
    parameters = (
        Parameter("separator_volume_L", 0.25, "L", "separator gas headspace", 1e-6, 1e4),
        Parameter("tank_volume_L", 2.0, "L", "catholyte product tank volume", 1e-6, 1e6),
        Parameter("initial_formate_conc", 0.0, "mol/L", "formate in the tank at the start", 0.0, 30.0),
        Parameter("initial_co2_fraction", 100.0, "%", "CO2 share of the separator gas at the start",
                  0.0, 100.0),
    )
    state_names = ("_gas", "_tank", "_totals")
    #: steps arrays of variants too (an ensemble, :mod:`co2twin.ensemble`)
    supports_arrays: ClassVar[bool] = True

    def initialize(self, t0: float) -> None:
        total = self.p.separator_volume_L / ec.MOLAR_VOLUME_L
        x = self.p.initial_co2_fraction / 100.0
        self._gas = (total * x, 0.0, total * (1.0 - x))  # CO2, H2, N2 [mol]
        self._tank = self.p.initial_formate_conc * self.p.tank_volume_L
        # CO2 received, vented, recycled; formate received, drawn [mol]
        self._totals: tuple[Any, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)

    def step(self, t: float, dt: float, inputs: Mapping[str, Any]) -> dict[str, Any]:
        xp = ec.namespace(*inputs.values())
        if xp is ec.SCALAR:
            return dict(zip(_OUTPUT_NAMES, self._step_floats(dt, _INPUTS_OF(inputs)), strict=True))
        return self._step_general(dt, inputs, xp)

    def step_values(self, t: float, dt: float, values: tuple[Any, ...]) -> Sequence[Any]:
        """:meth:`step` with positional inputs and outputs, the engine's path: on numbers the
        float step's tuple itself (what :meth:`step` puts in its dict), else :meth:`step`."""
        if ec.namespace(*values) is ec.SCALAR:
            return self._step_floats(dt, values)
        return super().step_values(t, dt, values)

    def _step_floats(self, dt: float, values: tuple[Any, ...]) -> tuple[Any, ...]:
        """:meth:`_step_general` on floats, unrolled per gas: the same operations in the same
        order (``max(a, b)`` written ``b if a < b else a``, what it returns). Inputs and
        outputs by position, in the order of :attr:`inputs` and :attr:`outputs`."""
        p = self.p
        exp = math.exp
        co2, h2, n2, formate_in, q_cat, recycle_fraction, product_draw = values
        holdup = p.separator_volume_L / ec.MOLAR_VOLUME_L
        inflow = co2 + h2 + n2
        b_co2, b_h2, b_n2 = self._gas
        exchange = exp(-inflow / holdup * dt)
        safe_in = 1e-300 if inflow < 1e-300 else inflow
        s_co2, s_h2, s_n2 = co2 / safe_in * holdup, h2 / safe_in * holdup, n2 / safe_in * holdup
        a_co2 = s_co2 + (b_co2 - s_co2) * exchange
        a_h2 = s_h2 + (b_h2 - s_h2) * exchange
        a_n2 = s_n2 + (b_n2 - s_n2) * exchange
        self._gas = (a_co2, a_h2, a_n2)
        if dt > 0.0:
            o_co2, o_h2, o_n2 = co2 - (a_co2 - b_co2) / dt, h2 - (a_h2 - b_h2) / dt, n2 - (a_n2 - b_n2) / dt
        else:
            o_co2, o_h2, o_n2 = inflow * a_co2 / holdup, inflow * a_h2 / holdup, inflow * a_n2 / holdup
        recycle = recycle_fraction * o_co2
        vent_co2 = o_co2 - recycle
        vent = vent_co2 + o_h2 + o_n2
        safe_vent = 1e-300 if vent < 1e-300 else vent

        volume = p.tank_volume_L
        draw = product_draw / 60000.0  # L/s
        before_tank = self._tank
        steady = formate_in * volume / (1e-300 if draw < 1e-300 else draw)
        mixed = steady + (before_tank - steady) * exp(-draw / volume * dt)
        self._tank = tank = mixed if draw > 0.0 else before_tank + formate_in * dt
        if dt > 0.0:
            draw_rate = formate_in - (tank - before_tank) / dt if draw > 0.0 else 0.0
        else:
            draw_rate = draw * tank / volume
        conc = tank / volume
        q_cat = q_cat / 60000.0
        received, vented, recycled, formate_total, drawn = self._totals
        self._totals = totals = (received + co2 * dt, vented + vent_co2 * dt, recycled + recycle * dt,
                                 formate_total + formate_in * dt, drawn + draw_rate * dt)
        return (  # in the order of the outputs (_OUTPUT_NAMES), the totals last
            vent * _ML_MIN_PER_MOL_S,  # vent_flow
            vent_co2,
            100.0 * vent_co2 / safe_vent,  # vent_co2_fraction
            100.0 * o_h2 / safe_vent,  # vent_h2_fraction
            recycle * _ML_MIN_PER_MOL_S,  # co2_recycle_flow
            recycle,
            a_co2,  # separator_co2
            tank,
            conc,
            conc * ec.M_HCOOH,  # tank_formic_acid
            conc + (formate_in / (1e-300 if q_cat < 1e-300 else q_cat) if q_cat > 0.0 else 0.0),
            draw_rate,
            *totals,
        )

    def _step_general(self, dt: float, inputs: Mapping[str, Any], xp: Any) -> dict[str, Any]:
        """:meth:`step` in the namespace ``xp`` (arrays of variants, an ensemble)."""
        p = self.p
        feed = (inputs["co2_rate"], inputs["h2_rate"], inputs["n2_rate"])
        holdup = p.separator_volume_L / ec.MOLAR_VOLUME_L
        inflow = feed[0] + feed[1] + feed[2]
        before = self._gas
        exchange = xp.exp(-inflow / holdup * dt)
        safe_in = xp.maximum(inflow, 1e-300)
        steady = tuple(f / safe_in * holdup for f in feed)
        after = tuple(s + (n - s) * exchange for n, s in zip(before, steady, strict=True))
        self._gas = after
        if dt > 0.0:
            out = tuple(f - (a - b) / dt for f, a, b in zip(feed, after, before, strict=True))
        else:
            out = tuple(inflow * n / holdup for n in after)
        recycle = inputs["recycle_fraction"] * out[0]
        vent_co2 = out[0] - recycle
        vent = vent_co2 + out[1] + out[2]
        safe_vent = xp.maximum(vent, 1e-300)

        volume = p.tank_volume_L
        draw = inputs["product_draw"] / 60000.0  # L/s
        formate_in = inputs["formate_rate"]
        before_tank = self._tank
        steady = formate_in * volume / xp.maximum(draw, 1e-300)
        mixed = steady + (before_tank - steady) * xp.exp(-draw / volume * dt)
        self._tank = xp.where(draw > 0.0, mixed, before_tank + formate_in * dt)
        if dt > 0.0:
            draw_rate = xp.where(draw > 0.0, formate_in - (self._tank - before_tank) / dt, 0.0)
        else:
            draw_rate = draw * self._tank / volume
        conc = self._tank / volume
        q_cat = inputs["catholyte_flow"] / 60000.0
        received, vented, recycled, formate_total, drawn = self._totals
        self._totals = (received + feed[0] * dt, vented + vent_co2 * dt, recycled + recycle * dt,
                        formate_total + formate_in * dt, drawn + draw_rate * dt)
        return {
            "vent_flow": ec.gas_ml_min(vent),
            "vent_co2_rate": vent_co2,
            "vent_co2_fraction": 100.0 * vent_co2 / safe_vent,
            "vent_h2_fraction": 100.0 * out[1] / safe_vent,
            "co2_recycle_flow": ec.gas_ml_min(recycle),
            "co2_recycle_rate": recycle,
            "separator_co2": after[0],
            "tank_formate": self._tank,
            "tank_formate_conc": conc,
            "tank_formic_acid": conc * ec.M_HCOOH,
            "cell_outlet_formate_conc": (
                conc + xp.where(q_cat > 0.0, formate_in / xp.maximum(q_cat, 1e-300), 0.0)
            ),
            "product_draw_rate": draw_rate,
            "co2_received": self._totals[0],
            "co2_vented": self._totals[1],
            "co2_recycled": self._totals[2],
            "formate_received": self._totals[3],
            "product_drawn": self._totals[4],
        }


#: the inputs and outputs in the order of the ports, as :meth:`Separation._step_floats` takes
#: and returns them (its tuple is written in this order: a change of the ports must change it)
_INPUT_NAMES = ("co2_rate", "h2_rate", "n2_rate", "formate_rate", "catholyte_flow",
                "recycle_fraction", "product_draw")
_OUTPUT_NAMES = ("vent_flow", "vent_co2_rate", "vent_co2_fraction", "vent_h2_fraction",
                 "co2_recycle_flow", "co2_recycle_rate", "separator_co2", "tank_formate",
                 "tank_formate_conc", "tank_formic_acid", "cell_outlet_formate_conc",
                 "product_draw_rate", "co2_received", "co2_vented", "co2_recycled",
                 "formate_received", "product_drawn")
_INPUTS_OF = Separation.positional(_INPUT_NAMES, _OUTPUT_NAMES)

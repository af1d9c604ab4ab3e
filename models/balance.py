"""From the surrogates' estimates to production rates whose charge and carbon balances close.

The reactor (every step) and the fidelity report (over a plant log) both turn the
estimates of FE to formate and of the outlet CO2 side into rates here, so a run and
the report see the same plant state.

Estimates in the learning spaces of :mod:`models.variables` are consistent by
construction: FE lies in [0, ceiling] (the ceiling being what the charge and the CO2 fed
allow, :func:`models.electrochemistry.fe_ceiling`), and a carbonate demand per electron
>= 0 gives carbonate in [0, CO2 left] through the saturating crossover law. The bounds
applied here are then a safety net that does not act; they act on estimates made
otherwise (a network on the plain value scale, the VALCO2T models, a user's file), and
:func:`close` says where and by how much. :func:`violations` measures how far
unbounded estimates would break each balance.
"""
from __future__ import annotations

from typing import Any, NamedTuple

from . import electrochemistry as ec

__all__ = ["TOLERANCE", "DEMAND_BOUNDS", "Closed", "close", "outlet_fraction", "violations"]

#: a correction at most this large (in the variable's unit) is rounding, not a bound acting
TOLERANCE = 1e-9
#: mol CO2 per mol e-: the crossover cannot take more than one CO2 per electron (as bicarbonate)
DEMAND_BOUNDS = (0.0, 1.0)
_ZF = ec.Z_FORMATE * ec.F
_ZH = ec.Z_H2 * ec.F


class Closed(NamedTuple):
    """Rates (mol/s) that close the balances, and what the bounds changed.

    ``fe`` is the FE to formate used (formate * zF / I; 0 with no current).
    ``fe_correction`` is |estimate - used| where current flows (FE units) and
    ``carbon_correction`` how far a bound moved the outlet CO2 fraction (%);
    ``fe_bounded``/``carbon_bounded`` are 1 where a bound acted (beyond rounding), else 0.
    """

    fe: Any
    formate: Any
    h2: Any
    carbonate: Any
    co2_out: Any
    fe_correction: Any
    carbon_correction: Any
    fe_bounded: Any
    carbon_bounded: Any


def outlet_fraction(co2_out: Any, n2: Any, h2: Any, xp: Any = ec.SCALAR) -> Any:
    """CO2 in the dry outlet gas (%) from the outlet rates."""
    return 100.0 * co2_out / xp.maximum(co2_out + n2 + h2, 1e-300)


def close(current: Any, co2_in: Any, n2: Any, fe: Any, carbon: Any, *, demand: bool,
          physics_demand: Any, xp: Any = ec.SCALAR) -> Closed:
    """Production rates from an FE estimate and an outlet CO2 estimate.

    ``carbon`` is a carbonate demand per electron (mol/mol) when ``demand``, else an
    outlet CO2 fraction (%). FE is bounded to [0, ceiling]; a demand to
    :data:`DEMAND_BOUNDS`. An outlet fraction fixes CO2 out against the other outlet
    gases within the CO2 left; with no other gas it says nothing about the amount, and
    ``physics_demand`` (mol/mol) sets the carbonate.
    """
    if xp is ec.SCALAR and demand:
        return _close_one(current, co2_in, n2, fe, carbon)
    fe_b = xp.minimum(xp.maximum(fe, 0.0), ec.fe_ceiling(current, co2_in, xp))
    formate = xp.minimum(fe_b * current / _ZF, co2_in)
    fe_used = formate * _ZF / xp.maximum(current, 1e-300)
    # FE at no current moves no charge: nothing to correct
    fe_correction = xp.where(current > 0.0, abs(fe - fe_used), 0.0)
    # never below 0: FE 1 leaves no H2, whatever the last bit of the product says
    h2 = xp.maximum((current - formate * _ZF) / _ZH, 0.0)
    remaining = co2_in - formate
    electrons = current / ec.F
    if demand:
        lo, hi = DEMAND_BOUNDS
        k = xp.minimum(xp.maximum(carbon, lo), hi)
        carbonate = ec.carbonate_from_demand(remaining, k * electrons)
        co2_out = remaining - carbonate
        carbon_bounded = xp.where((carbon < lo) | (carbon > hi), 1.0, 0.0)
        if xp is ec.SCALAR and not carbon_bounded:
            carbon_correction = 0.0
        else:
            # the fraction the unbounded demand would have shown (capped to stay finite)
            raw = remaining - ec.carbonate_from_demand(
                remaining, xp.minimum(xp.maximum(carbon, lo), 1e300) * electrons)
            carbon_correction = abs(outlet_fraction(raw, n2, h2, xp)
                                    - outlet_fraction(co2_out, n2, h2, xp))
    else:
        y = xp.minimum(xp.maximum(carbon / 100.0, 0.0), 1.0 - 1e-9)
        others = n2 + h2
        physical = remaining - ec.carbonate_from_demand(remaining, physics_demand * electrons)
        co2_out = xp.where(others > 0.0, xp.minimum(y * others / (1.0 - y), remaining), physical)
        carbonate = remaining - co2_out
        carbon_correction = abs(outlet_fraction(co2_out, n2, h2, xp) - carbon)
        carbon_bounded = xp.where(carbon_correction > TOLERANCE, 1.0, 0.0)
    fe_bounded = xp.where(fe_correction > TOLERANCE, 1.0, 0.0)
    return Closed(fe_used, formate, h2, carbonate, co2_out, fe_correction, carbon_correction,
                  fe_bounded, carbon_bounded)


def _close_one(current: float, co2_in: float, n2: float, fe: float, demand: float) -> Closed:
    """:func:`close` of one sample with a carbonate demand: the reactor's every step, in plain
    floats (the same operations in the same order as the general path).

    ``max(a, b)`` is written ``b if a < b else a`` and ``min(a, b)`` ``b if b < a else a``:
    what the builtins return, NaN and signed zeros included, without their calls."""
    safe_current = 1e-300 if current < 1e-300 else current
    ceiling = co2_in * _ZF / safe_current
    ceiling = 1.0 if ceiling > 1.0 else ceiling
    fe_b = 0.0 if fe < 0.0 else fe
    fe_b = ceiling if ceiling < fe_b else fe_b
    formate = fe_b * current / _ZF
    formate = co2_in if co2_in < formate else formate
    fe_used = formate * _ZF / safe_current
    fe_correction = abs(fe - fe_used) if current > 0.0 else 0.0
    h2 = (current - formate * _ZF) / _ZH
    h2 = 0.0 if h2 < 0.0 else h2
    remaining = co2_in - formate
    electrons = current / ec.F
    lo, hi = DEMAND_BOUNDS
    k = lo if demand < lo else demand
    k = hi if hi < k else k
    rate = k * electrons  # ec.carbonate_from_demand
    carbonate = remaining * (rate / (rate + remaining + 1e-300))
    co2_out = remaining - carbonate
    carbon_correction = 0.0
    if k != demand:
        raw = remaining - ec.carbonate_from_demand(remaining, min(max(demand, lo), 1e300) * electrons)
        carbon_correction = abs(outlet_fraction(raw, n2, h2) - outlet_fraction(co2_out, n2, h2))
    return Closed(fe_used, formate, h2, carbonate, co2_out, fe_correction, carbon_correction,
                  1.0 if fe_correction > TOLERANCE else 0.0, 0.0 if k == demand else 1.0)


def violations(current: Any, co2_in: Any, n2: Any, fe: Any, carbon: Any, *, demand: bool,
               physics_demand: Any, xp: Any = ec.SCALAR) -> dict[str, Any]:
    """How far unbounded estimates break each balance: mol/s, 0 where it holds.

    ``charge``: a negative formate or H2 rate that FE outside [0, 1] implies (FE_formate +
    FE_H2 = 1 with both >= 0); ``carbon_formate``: formate beyond the CO2 fed;
    ``carbon_outlet``: a negative carbonate or CO2 out that the outlet estimate implies
    (CO2 in = out + formate + carbonate with all >= 0).
    """
    formate = fe * current / _ZF
    h2 = (current - formate * _ZF) / _ZH
    remaining = co2_in - formate
    electrons = current / ec.F
    if demand:
        carbonate = remaining * (carbon * electrons) / (carbon * electrons + remaining + 1e-300)
        co2_out = remaining - carbonate
    else:
        y = carbon / 100.0
        others = n2 + h2
        co2_out = xp.where(others != 0.0, y * others / xp.where(y != 1.0, 1.0 - y, 1e-300),
                           remaining - ec.carbonate_from_demand(remaining, physics_demand * electrons))
        carbonate = remaining - co2_out
    zero = current * 0.0
    return {
        "charge": xp.maximum(xp.maximum(-formate, -h2), zero),
        "carbon_formate": xp.maximum(formate - co2_in, zero),
        "carbon_outlet": xp.maximum(xp.maximum(-carbonate, -co2_out), zero),
    }

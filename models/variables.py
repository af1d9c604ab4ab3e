"""What the surrogates estimate, and from what: the shared vocabulary of models/.

A *variable* is one quantity the reactor estimates (cell voltage, FE to formate,
outlet CO2 fraction, anolyte pH). Networks learn each in a *space* (:data:`SPACES`)
chosen so that any network output is a consistent plant state: FE as a logit under
the ceiling the charge and the CO2 fed allow, the outlet CO2 side as the carbonate
demand per electron (the outlet fraction then follows from the carbon balance).
A *feature* is a quantity a model may take as input; every feature is a signal the
reactor knows at run time (its inputs and its own states) and a column of a plant
log (``models.plantlog``), under the same name and unit. Training, the NumPy runtime,
model cards, the envelope guard and the plant log all use these names.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple
from collections.abc import Callable

import numpy as np

from . import electrochemistry as ec

__all__ = ["Feature", "Variable", "Space", "FEATURES", "VARIABLES", "KINDS", "FILE_KINDS", "SPACES"]


@dataclass(frozen=True)
class Feature:
    """A model input: a reactor signal and plant-log column."""

    name: str
    unit: str
    description: str
    #: where every history of this feature starts (a new catalyst has passed 0 Ah): a
    #: training envelope reaches down to it, since the data ran through it to their first sample
    origin: float | None = None


@dataclass(frozen=True)
class Variable:
    """An estimated quantity, its unit, its physical range and the features that explain it.

    ``lower``/``upper`` are physical bounds (not a training envelope): an
    estimate outside them is not a plant state, whatever model produced it.
    """

    name: str
    unit: str
    description: str
    lower: float
    upper: float
    features: tuple[str, ...]
    #: where networks learn it (see :data:`SPACES`): the value itself, or a smoother quantity
    space: str = "value"


#: mol/L: below this net hydroxide the hydroxide space is linear, above it logarithmic
HYDROXIDE_SCALE = 0.01
#: value / ceiling is kept within [LOGIT_EPS, 1 - LOGIT_EPS] before its logit: a physics FE of
#: exactly 0 (no current) maps to a finite logit (-28) instead of -inf
LOGIT_EPS = 1e-12


def _ph_to_hydroxide(ph: Any, ceiling: Any = None) -> Any:
    """asinh of net hydroxide [OH-] - [H+] (in units of HYDROXIDE_SCALE) of a pH at 25 degC."""
    if ec.namespace(ph) is ec.SCALAR:
        return math.asinh((10.0 ** (ph - 14.0) - 10.0 ** (-ph)) / HYDROXIDE_SCALE)
    return np.arcsinh((np.power(10.0, ph - 14.0) - np.power(10.0, -ph)) / HYDROXIDE_SCALE)


def _hydroxide_to_ph(z: Any, ceiling: Any = None) -> Any:
    xp = ec.namespace(z)
    c_net = HYDROXIDE_SCALE * (math.sinh(z) if xp is ec.SCALAR else np.sinh(z))
    return ec.ph_from_hydroxide(c_net, xp)


def _to_logit(value: Any, ceiling: Any = None) -> Any:
    """logit(value / ceiling): the whole real line for a value in (0, ceiling) (default 1).

    A ceiling of 0 (no CO2 reaches the cell, so no formate can form) leaves no share: 0.
    """
    if ceiling is None:
        share = value
    elif isinstance(ceiling, float):
        share = value / ceiling if ceiling > 0.0 else 0.0 * value
    else:
        c = np.asarray(ceiling, dtype=float)
        share = np.divide(value, c, out=np.zeros(np.broadcast(value, c).shape), where=c > 0.0)
    if isinstance(share, float):  # the reactor's every step: plain floats, no NumPy overhead
        share = min(max(share, LOGIT_EPS), 1.0 - LOGIT_EPS)
        return math.log(share / (1.0 - share))
    share = np.clip(share, LOGIT_EPS, 1.0 - LOGIT_EPS)
    return np.log(share / (1.0 - share))


def _from_logit(z: Any, ceiling: Any = None) -> Any:
    """ceiling * sigmoid(z), in [0, ceiling] for every z (tanh: no overflow at any z)."""
    sigmoid = 0.5 + 0.5 * (math.tanh(0.5 * z) if isinstance(z, float) else np.tanh(0.5 * z))
    return sigmoid if ceiling is None else ceiling * sigmoid


def _identity(v: Any, ceiling: Any = None) -> Any:
    return v


#: a value below this is taken as this before its logarithm
LOG_FLOOR = 1e-12


def _to_log(value: Any, ceiling: Any = None) -> Any:
    """ln(value): the whole real line for a positive value."""
    if isinstance(value, float):
        return math.log(max(value, LOG_FLOOR))
    return np.log(np.maximum(value, LOG_FLOOR))


def _from_log(z: Any, ceiling: Any = None) -> Any:
    """exp(z): positive for every z."""
    return math.exp(z) if isinstance(z, float) else np.exp(z)


class Space(NamedTuple):
    """Where networks learn a variable, and what a surrogate in that space returns.

    ``to_space(estimate, ceiling)`` and ``from_space(z, ceiling)`` convert between the
    estimate and the network's scale; ``ceiling`` is the largest FE the charge and the
    CO2 fed allow (:func:`models.electrochemistry.fe_ceiling`; only ``fe_logit`` reads
    it). ``estimates`` names what the surrogate returns when it is not the variable
    itself (with its unit and physical bounds): the reactor then derives the variable
    from it through the balances.
    """

    unit: str | None
    to_space: Callable[[Any, Any], Any]
    from_space: Callable[[Any, Any], Any]
    description: str
    estimates: str | None = None
    estimates_unit: str | None = None
    estimates_bounds: tuple[float, float] | None = None
    #: ``residual(y, estimate, ceiling)``: ``from_space(to_space(estimate, ceiling) + y,
    #: ceiling)`` of a hybrid network's output ``y`` on plain floats, as one call with the same
    #: operations in the same order (the reactor's every step; tests/test_single_sample.py
    #: checks); ``ceiling`` a float, as :class:`models.model_set.ModelSet` passes it
    residual: Callable[[float, float, float], float] | None = None


# The residual of each space on plain floats (Space.residual): the conversions above, fused,
# without their type checks. max(a, b) is written ``b if a < b else a`` and min(a, b)
# ``b if a > b else a``: what the builtins return, NaN included.

_LOGIT_TOP = 1.0 - LOGIT_EPS


def _residual_value(y: float, value: float, ceiling: float) -> float:
    return value + y


def _residual_log(y: float, value: float, ceiling: float) -> float:
    return math.exp(math.log(LOG_FLOOR if value < LOG_FLOOR else value) + y)


def _residual_logit(y: float, value: float, ceiling: float) -> float:
    share = value / ceiling if ceiling > 0.0 else 0.0 * value
    share = LOGIT_EPS if share < LOGIT_EPS else share
    share = _LOGIT_TOP if share > _LOGIT_TOP else share
    z = math.log(share / (1.0 - share)) + y
    return ceiling * (0.5 + 0.5 * math.tanh(0.5 * z))


def _residual_hydroxide(y: float, ph: float, ceiling: float) -> float:
    z = math.asinh((10.0 ** (ph - 14.0) - 10.0 ** (-ph)) / HYDROXIDE_SCALE) + y
    c_net = HYDROXIDE_SCALE * math.sinh(z)
    # ec.ph_from_hydroxide at 25 degC
    s = math.sqrt(c_net * c_net + 4.0 * ec.KW)
    d = s - c_net
    return 14.0 + math.log10((c_net + s) / 2.0 if c_net >= 0.0
                             else 2.0 * ec.KW / (1e-300 if d < 1e-300 else d))

#: learning spaces by name. Cell voltage is learnt as its logarithm: every network output is
#: a positive voltage, and a hybrid corrects the physics by a factor. pH is learnt as
#: asinh(net hydroxide / 0.01 mol/L): across the titration cliff (an anolyte running out of
#: OH-) a pH residual jumps by ten units while this one stays moderate, and pH noise maps to
#: a constant spread. FE is learnt as
#: logit(FE / ceiling), so every network output is an FE the charge and the CO2 fed allow.
#: The outlet CO2 side is learnt as the logit of the carbonate demand per electron (at most
#: one CO2 per electron, as bicarbonate): the reactor derives carbonate, CO2 out and the
#: outlet fraction from it by the carbon balance, and every demand in (0, 1) gives
#: CO2 out >= 0 and carbonate >= 0.
SPACES: dict[str, Space] = {
    "value": Space(None, _identity, _identity, "the variable itself", residual=_residual_value),
    "log_value": Space("1", _to_log, _from_log, "ln of the variable in its unit (positive for any z)",
                       residual=_residual_log),
    "net_hydroxide": Space("1", _ph_to_hydroxide, _hydroxide_to_ph,
                           "asinh(([OH-] - [H+]) / 0.01 mol/L) at 25 degC",
                           residual=_residual_hydroxide),
    "fe_logit": Space("1", _to_logit, _from_logit,
                      "logit(FE / ceiling), ceiling = min(1, CO2 fed * 2F / I)",
                      residual=_residual_logit),
    "logit_carbonate_demand": Space(
        "1", _to_logit, _from_logit,
        "logit of the CO2 the crossover takes as carbonate per electron (mol/mol, saturating at "
        "the CO2 left after formate); outlet CO2 follows from the carbon balance",
        estimates="carbonate_demand", estimates_unit="mol/mol", estimates_bounds=(0.0, 1.0),
        residual=_residual_logit),
}


FEATURES: dict[str, Feature] = {f.name: f for f in (
    # every history starts with the cell at rest, and FE at no current moves no charge
    Feature("current_density", "mA/cm2", "cell current per cathode area", origin=0.0),
    Feature("gas_flow", "mL/min", "gas flow into the cathode"),
    Feature("co2_fraction", "%", "CO2 share of the inlet gas"),
    Feature("humidity", "%", "relative humidity of the inlet gas"),
    Feature("anolyte_flow", "mL/min", "anolyte flow"),
    Feature("catholyte_flow", "mL/min", "catholyte flow"),
    Feature("anolyte_conc", "mol/L", "anolyte KOH concentration"),
    Feature("catholyte_conc", "mol/L", "catholyte concentration"),
    Feature("cell_temperature", "degC", "cell temperature"),
    Feature("charge_passed", "Ah", "charge through the catalyst since it was new", origin=0.0),
)}

_GAS_SIDE = ("current_density", "gas_flow", "co2_fraction", "humidity", "catholyte_flow",
             "catholyte_conc", "cell_temperature", "charge_passed")

VARIABLES: dict[str, Variable] = {v.name: v for v in (
    Variable("cell_voltage", "V", "cell voltage", 0.0, 100.0, (
        "current_density", "gas_flow", "humidity", "anolyte_flow", "catholyte_flow",
        "anolyte_conc", "catholyte_conc", "cell_temperature", "charge_passed"), space="log_value"),
    Variable("fe_formate", "1", "faradaic efficiency to formate", 0.0, 1.0, _GAS_SIDE,
             space="fe_logit"),
    # networks estimate the carbonate demand per electron; the fraction follows by the balance
    Variable("outlet_co2_fraction", "%", "CO2 in the dry outlet gas", 0.0, 100.0, _GAS_SIDE,
             space="logit_carbonate_demand"),
    # CO2 crossing the membrane as carbonate acidifies the anolyte: the gas side matters too
    Variable("anolyte_ph", "pH", "anolyte pH at the cell outlet", -2.0, 16.0, (
        "current_density", "anolyte_flow", "anolyte_conc", "gas_flow", "co2_fraction",
        "catholyte_conc", "cell_temperature"), space="net_hydroxide"),
)}

#: kinds of model a scenario may choose per variable
KINDS = ("physics", "nn", "hybrid", "valco2t")
#: kinds that are trained and stored as ``<variable>.<kind>.keras`` + card
FILE_KINDS = ("nn", "hybrid")

"""What the surrogates estimate, and from what: the shared vocabulary of models/.

A *variable* is one quantity the reactor estimates (cell voltage, FE to formate,
outlet CO2 fraction, anolyte pH). A *feature* is a quantity a model may take as
input; every feature is a signal the reactor knows at run time (its inputs and
its own states) and a column of a plant log (``models.plantlog``), under the
same name and unit. Training, the NumPy runtime, model cards, the envelope
guard and the plant log all use these names.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

import numpy as np

from . import electrochemistry as ec

__all__ = ["Feature", "Variable", "FEATURES", "VARIABLES", "KINDS", "FILE_KINDS", "SPACES"]


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


def _ph_to_hydroxide(ph: Any) -> Any:
    """asinh of net hydroxide [OH-] - [H+] (in units of HYDROXIDE_SCALE) of a pH at 25 degC."""
    if ec.namespace(ph) is ec.SCALAR:
        return math.asinh((10.0 ** (ph - 14.0) - 10.0 ** (-ph)) / HYDROXIDE_SCALE)
    return np.arcsinh((np.power(10.0, ph - 14.0) - np.power(10.0, -ph)) / HYDROXIDE_SCALE)


def _hydroxide_to_ph(z: Any) -> Any:
    xp = ec.namespace(z)
    c_net = HYDROXIDE_SCALE * (math.sinh(z) if xp is ec.SCALAR else np.sinh(z))
    return ec.ph_from_hydroxide(c_net, xp)


#: learning spaces: name -> (unit, value -> space, space -> value). pH is learnt as
#: asinh(net hydroxide / 0.01 mol/L): across the titration cliff (an anolyte running out of
#: OH-) a pH residual jumps by ten units while this one stays moderate, and pH noise maps
#: to a constant spread (not one growing with the concentration, as in plain mol/L)
SPACES: dict[str, tuple[str | None, Callable[[Any], Any], Callable[[Any], Any]]] = {
    "value": (None, lambda v: v, lambda z: z),
    "net_hydroxide": ("1", _ph_to_hydroxide, _hydroxide_to_ph),
}


FEATURES: dict[str, Feature] = {f.name: f for f in (
    Feature("current_density", "mA/cm2", "cell current per cathode area"),
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
        "anolyte_conc", "catholyte_conc", "cell_temperature", "charge_passed")),
    Variable("fe_formate", "1", "faradaic efficiency to formate", 0.0, 1.0, _GAS_SIDE),
    Variable("outlet_co2_fraction", "%", "CO2 in the dry outlet gas", 0.0, 100.0, _GAS_SIDE),
    # CO2 crossing the membrane as carbonate acidifies the anolyte: the gas side matters too
    Variable("anolyte_ph", "pH", "anolyte pH at the cell outlet", -2.0, 16.0, (
        "current_density", "anolyte_flow", "anolyte_conc", "gas_flow", "co2_fraction",
        "catholyte_conc", "cell_temperature"), space="net_hydroxide"),
)}

#: kinds of model a scenario may choose per variable
KINDS = ("physics", "nn", "hybrid", "valco2t")
#: kinds that are trained and stored as ``<variable>.<kind>.keras`` + card
FILE_KINDS = ("nn", "hybrid")

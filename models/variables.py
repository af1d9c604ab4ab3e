"""What the surrogates estimate, and from what: the shared vocabulary of models/.

A *variable* is one quantity the reactor estimates (cell voltage, FE to formate,
outlet CO2 fraction, anolyte pH). A *feature* is a quantity a model may take as
input; every feature is a signal the reactor knows at run time (its inputs and
its own states) and a column of a plant log (``models.plantlog``), under the
same name and unit. Training, the NumPy runtime, model cards, the envelope
guard and the plant log all use these names.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Feature", "Variable", "FEATURES", "VARIABLES", "KINDS", "FILE_KINDS"]


@dataclass(frozen=True)
class Feature:
    """A model input: a reactor signal and plant-log column."""

    name: str
    unit: str
    description: str


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
    Feature("charge_passed", "Ah", "charge through the catalyst since it was new"),
)}

_GAS_SIDE = ("current_density", "gas_flow", "co2_fraction", "catholyte_flow", "catholyte_conc",
             "cell_temperature", "charge_passed")

VARIABLES: dict[str, Variable] = {v.name: v for v in (
    Variable("cell_voltage", "V", "cell voltage", 0.0, 100.0, (
        "current_density", "gas_flow", "humidity", "anolyte_flow", "catholyte_flow",
        "anolyte_conc", "catholyte_conc", "cell_temperature", "charge_passed")),
    Variable("fe_formate", "1", "faradaic efficiency to formate", 0.0, 1.0, _GAS_SIDE),
    Variable("outlet_co2_fraction", "%", "CO2 in the dry outlet gas", 0.0, 100.0, _GAS_SIDE),
    Variable("anolyte_ph", "pH", "anolyte pH at the cell outlet", -2.0, 16.0, (
        "current_density", "anolyte_flow", "anolyte_conc", "cell_temperature")),
)}

#: kinds of model a scenario may choose per variable
KINDS = ("physics", "nn", "hybrid", "valco2t")
#: kinds that are trained and stored as ``<variable>.<kind>.keras`` + card
FILE_KINDS = ("nn", "hybrid")

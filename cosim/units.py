"""The units a port may declare.

Units are checked, never guessed: a port must name one of the units below, and
two ports connect only when their units are identical. The table holds the SI
units and the plant's engineering units (gas flows in standard mL/min at
25 degC and 1 atm, concentrations in mol/L, current density in mA/cm2).
"""
from __future__ import annotations

__all__ = ["UNITS", "check_unit"]

#: unit symbol -> what it measures
UNITS: dict[str, str] = {
    "1": "dimensionless ratio",
    "%": "percent",
    "s": "time",
    "h": "time",
    "A": "electric current",
    "V": "electric potential",
    "W": "power",
    "Ohm": "electric resistance",
    "C": "electric charge",
    "Ah": "electric charge",
    "mA/cm2": "current density",
    "cm2": "area",
    "L": "volume",
    "mL/min": "volumetric flow (liquid, or gas at 25 degC and 1 atm)",
    "mol": "amount of substance",
    "mol/s": "molar flow",
    "mol/L": "concentration",
    "g/L": "mass concentration",
    "g/h": "mass flow",
    "degC": "temperature",
    "pH": "acidity (-log10 of H+ activity)",
    "A/s": "current slew rate",
    "kWh": "energy",
    "kWh/kg": "specific energy",
    "kWh/kmol": "specific energy",
    "W/K": "heat transfer coefficient",
    "J/K": "heat capacity",
    "J/(mL*K)": "volumetric heat capacity",
    "Ohm*cm2": "area-specific resistance",
    "V/K": "temperature coefficient of potential",
    "1/K": "temperature coefficient",
    "1/s": "rate constant",
    "mol/mol": "molar ratio",
}


def check_unit(unit: str, where: str) -> str:
    """Return ``unit`` if it is known, else raise ``ValueError`` naming ``where``."""
    if unit not in UNITS:
        known = ", ".join(sorted(UNITS))
        raise ValueError(f"{where}: unknown unit {unit!r}; expected one of: {known}")
    return unit

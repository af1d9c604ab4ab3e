"""The units a port may declare, and conversion of the units a user writes.

Units are checked, never guessed: a port must name one of the units below, and
two ports connect only when their units are identical. The table holds the SI
units and the plant's engineering units (gas flows in standard mL/min at
25 degC and 1 atm, concentrations in mol/L, current density in mA/cm2).

A value a user writes (a scenario input, event or limit) may come in any unit
compatible with the port's: :func:`convert` turns it into the port's unit with
`pint <https://pint.readthedocs.io>`_, offset units included (``K`` and ``degF``
to ``degC`` as absolute temperatures). Results always keep the ports' units.
"""
from __future__ import annotations

import re
from functools import cache
from typing import Any

__all__ = ["UNITS", "UnitError", "check_unit", "convert", "converter"]

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
    # the solar and battery supply (components/pv.py, battery.py, dc_bus.py)
    "W/m2": "irradiance",
    "deg": "plane angle (degrees)",
    "1/h": "rate per hour (C-rate: current over capacity)",
    "EUR": "money",
    "EUR/kWh": "energy price",
}


def check_unit(unit: str, where: str) -> str:
    """Return ``unit`` if it is known, else raise ``ValueError`` naming ``where``."""
    if unit not in UNITS:
        known = ", ".join(sorted(UNITS))
        raise ValueError(f"{where}: unknown unit {unit!r}; expected one of: {known}")
    return unit


class UnitError(ValueError):
    """A unit a user wrote is unknown, or cannot be converted into the port's unit."""


#: digits right after a unit symbol are its exponent (``cm2``, ``m3/h``), as the plant's units write it
_EXPONENT = re.compile(r"(?<=[A-Za-z])([0-9]+)")


@cache
def _registry() -> Any:
    """pint's registry with the plant's spellings; built once per process on first use (it takes
    ~0.3 s and is never changed after, so simulations cannot affect each other through it)."""
    import pint

    ureg: Any = pint.UnitRegistry(preprocessors=[lambda text: _EXPONENT.sub(r"**\1", text)],
                             autoconvert_offset_to_baseunit=False, cache_folder=None)
    # pH is no SI unit (pint would read pico-henry): a dimension of its own, which converts
    # to nothing else
    ureg.define("pH = [acidity]")
    ureg.define("Ohm = ohm")
    # money is a dimension of its own (prices of grid energy): it converts to nothing else
    ureg.define("EUR = [currency]")
    return ureg


def _parse(unit: str) -> Any:
    from pint.errors import PintError

    ureg = _registry()
    try:
        return ureg.Unit(unit)
    except (PintError, AttributeError, TypeError, ValueError, SyntaxError, AssertionError):
        raise UnitError(f"no unit {unit!r} is known (pint's names: 'mA', 'L/min', 'K', 'degF', "
                        "...)") from None


def converter(unit: str, to: str) -> Any:
    """A function taking values (a number or a NumPy array) in ``unit`` to ``to`` (a port's unit).

    Raises :class:`UnitError` when ``unit`` is unknown or measures something
    else than ``to``, naming both units. Temperatures are absolute: 300 K is
    26.85 degC.
    """
    if unit == to:
        return _same
    if not unit.strip():
        raise UnitError(f"an empty unit is no unit; leave 'unit' out for {to!r}")
    source, target = _parse(unit), _parse(to)
    if source.dimensionality != target.dimensionality:
        raise UnitError(f"{unit!r} measures {_measures(source)}, {to!r} {_measures(target)}: "
                        "they do not convert")
    ureg = _registry()

    def convert_values(value: Any) -> Any:
        import numpy as np

        magnitude = ureg.Quantity(np.asarray(value, dtype=float), source).to(target).magnitude
        return float(magnitude) if np.ndim(magnitude) == 0 else magnitude

    return convert_values


def convert(value: float, unit: str, to: str) -> float:
    """``value`` in ``unit`` expressed in ``to``; see :func:`converter`."""
    return float(converter(unit, to)(value))


def _same(value: float) -> float:
    return value


def _measures(unit: Any) -> str:
    """What a unit measures, in the words of :data:`UNITS` where one of them measures the same."""
    for name, what in UNITS.items():
        if name not in ("%", "mol/mol", "1", "deg") and _parse(name).dimensionality == unit.dimensionality:
            return what.split(" (")[0]
    dims = str(unit.dimensionality)
    return "a ratio" if dims == "dimensionless" else dims.replace("[", "").replace("]", "")

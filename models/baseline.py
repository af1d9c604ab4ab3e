"""Physics baseline at logged operating points: what the twin's reactor would estimate.

:func:`predict` evaluates :mod:`models.electrochemistry` row by row (vectorised)
from plant-log columns, exactly as :class:`components.reactor.Reactor` combines
those functions at run time, with the reactor's dynamic states taken from the
log instead of integrated:

* current = ``current_density`` x cathode area (the log's ``area_cm2`` when it
  has one, else ``CellParameters.area_cm2``);
* catalyst damage from ``charge_passed`` and ``hours_on_stream``. A log without
  ``hours_on_stream`` is taken as **0 h** (ageing by charge only; the reactor
  ages the catalyst by both, so the baseline then under-estimates ageing and a
  hybrid model learns the rest);
* cell temperature = the measured ``cell_temperature``;
* anolyte net hydroxide at the steady state of its balance (the anolyte flows),
  or the feed concentration when the anolyte is stagnant (as the reactor starts);
  the pH reported at the measured cell temperature (:func:`models.electrochemistry.ph_scale`).

This is the ``physics`` kind of model and the base the ``hybrid`` kind corrects.
It never imports TensorFlow.
"""
from __future__ import annotations

from typing import Any
from collections.abc import Mapping

import numpy as np

from cosim.errors import ModelError
from models import electrochemistry as ec
from models.variables import SPACES, VARIABLES

__all__ = ["IDENTITY", "ASSUMED_HOURS", "QUANTITY_COLUMNS", "columns", "predict", "quantity", "context"]

#: names the baseline in model cards of hybrid models (their residual is measured - this)
IDENTITY = "models.baseline.predict"
#: hours on stream assumed when a log has no ``hours_on_stream`` column
ASSUMED_HOURS = 0.0

_GAS = ("current_density", "gas_flow", "co2_fraction", "catholyte_flow", "charge_passed")
_COLUMNS: dict[str, tuple[str, ...]] = {
    "cell_voltage": (
        "current_density", "anolyte_flow", "anolyte_conc", "catholyte_conc", "catholyte_flow",
        "humidity", "cell_temperature", "charge_passed",
    ),
    "fe_formate": _GAS,
    "outlet_co2_fraction": _GAS,
    "anolyte_ph": ("current_density", "anolyte_flow", "anolyte_conc", "cell_temperature"),
}
_OPTIONAL = ("area_cm2", "hours_on_stream")


def columns(variable: str) -> tuple[str, ...]:
    """Log columns the baseline of ``variable`` needs (``area_cm2``/``hours_on_stream`` optional)."""
    _check_variable(variable)
    return _COLUMNS[variable]


def predict(
    variable: str,
    frame: Mapping[str, Any],
    cell: ec.CellParameters = ec.CellParameters(),
) -> np.ndarray:
    """Physics estimate of ``variable`` for every row of ``frame`` (a DataFrame or dict of arrays)."""
    need = columns(variable)
    missing = [name for name in need if name not in frame]
    if missing:
        raise ModelError(
            f"physics baseline of {variable}: missing column(s) {', '.join(missing)}; "
            f"it needs {', '.join(need)} (optional: {', '.join(_OPTIONAL)})"
        )
    cols = {name: np.asarray(frame[name], dtype=float) for name in need}
    n = len(cols["current_density"])
    for name in _OPTIONAL:
        if name in frame:
            cols[name] = np.asarray(frame[name], dtype=float)
    cols.setdefault("hours_on_stream", np.full(n, ASSUMED_HOURS))
    area = cols.get("area_cm2", np.full(n, cell.area_cm2))
    out = np.empty(n)
    # the cell constants are scalars in electrochemistry: one pass per distinct cathode area
    for a in np.unique(area):
        rows = area == a
        p = cell if a == cell.area_cm2 else cell.replace(area_cm2=float(a))
        out[rows] = _EVALUATE[variable]({k: v[rows] for k, v in cols.items()}, p)
    return out


#: log columns the physics of each quantity a network estimates in place of its variable needs
QUANTITY_COLUMNS: dict[str, tuple[str, ...]] = {"carbonate_demand": ("co2_fraction",)}


def quantity(
    variable: str,
    frame: Mapping[str, Any],
    cell: ec.CellParameters = ec.CellParameters(),
) -> np.ndarray:
    """Physics of what the networks of ``variable`` estimate (:attr:`Space.estimates`): the
    carbonate demand per electron (mol/mol) for the outlet CO2 side, else :func:`predict`."""
    _check_variable(variable)
    if SPACES[VARIABLES[variable].space].estimates == "carbonate_demand":
        return np.asarray(ec.carbonate_demand(np.asarray(frame["co2_fraction"], dtype=float), cell))
    return predict(variable, frame, cell)


def context(frame: Mapping[str, Any], cell: ec.CellParameters = ec.CellParameters(),
            ) -> dict[str, np.ndarray]:
    """What turns estimates into rates, for every row: ``current`` (A, from current density
    and area, as :func:`predict` takes it), ``co2_in`` and ``n2`` (mol/s) and the FE
    ``ceiling`` (:func:`models.electrochemistry.fe_ceiling`)."""
    j = np.asarray(frame["current_density"], dtype=float)
    area = (np.asarray(frame["area_cm2"], dtype=float) if "area_cm2" in frame
            else np.full(len(j), cell.area_cm2))
    current = j * area / 1000.0
    gas, x = (np.asarray(frame[k], dtype=float) for k in ("gas_flow", "co2_fraction"))
    co2_in = ec.gas_mol_s(gas * x / 100.0)
    return {"current": current, "co2_in": co2_in, "n2": ec.gas_mol_s(gas * (1.0 - x / 100.0)),
            "ceiling": ec.fe_ceiling(current, co2_in, np)}


def _check_variable(variable: str) -> None:
    if variable not in VARIABLES:
        raise ModelError(f"unknown variable {variable!r}; known: {', '.join(VARIABLES)}")


def _current(c: Mapping[str, np.ndarray], p: ec.CellParameters) -> np.ndarray:
    return c["current_density"] * p.area_cm2 / 1000.0


def _damage(c: Mapping[str, np.ndarray], p: ec.CellParameters) -> np.ndarray:
    return ec.catalyst_damage(c["charge_passed"], c["hours_on_stream"], p, np)


def _hydroxide(c: Mapping[str, np.ndarray], p: ec.CellParameters) -> np.ndarray:
    c_an, q_an = c["anolyte_conc"], c["anolyte_flow"]
    steady = ec.hydroxide_step(c_an, c_an, q_an, _current(c, p), p.anolyte_volume_L, 1e9, np)
    return np.where(q_an / 60000.0 > 1e-12, steady, c_an)


def _ph(c: Mapping[str, np.ndarray], p: ec.CellParameters) -> np.ndarray:
    """The reported pH: at the cell temperature, as the reactor reports it."""
    return ec.ph_from_hydroxide(_hydroxide(c, p), np, ec.ph_scale(c["cell_temperature"], p))


def _split(c: Mapping[str, np.ndarray], p: ec.CellParameters) -> tuple[np.ndarray, ...]:
    current, gas, x = _current(c, p), c["gas_flow"], c["co2_fraction"]
    co2_in = ec.gas_mol_s(gas * x / 100.0)
    formate, carbonate, fe = ec.faradaic_split(
        current, co2_in, x, gas, c["catholyte_flow"], _damage(c, p), p, np
    )
    return current, gas, x, co2_in, formate, carbonate, fe


def _voltage(c: Mapping[str, np.ndarray], p: ec.CellParameters) -> np.ndarray:
    return ec.cell_voltage(
        _current(c, p), c["cell_temperature"], ec.ph_from_hydroxide(_hydroxide(c, p), np),
        c["anolyte_conc"], c["catholyte_conc"],
        c["catholyte_flow"], c["humidity"], _damage(c, p), p, np,
    )


def _fe(c: Mapping[str, np.ndarray], p: ec.CellParameters) -> np.ndarray:
    return _split(c, p)[-1]


def _outlet_co2(c: Mapping[str, np.ndarray], p: ec.CellParameters) -> np.ndarray:
    current, gas, x, co2_in, formate, carbonate, _ = _split(c, p)
    h2 = (current - formate * ec.Z_FORMATE * ec.F) / (ec.Z_H2 * ec.F)
    co2_out = co2_in - formate - carbonate
    n2 = ec.gas_mol_s(gas * (1.0 - x / 100.0))
    return 100.0 * co2_out / np.maximum(co2_out + n2 + h2, 1e-300)


_EVALUATE = {
    "cell_voltage": _voltage,
    "fe_formate": _fe,
    "outlet_co2_fraction": _outlet_co2,
    "anolyte_ph": _ph,
}

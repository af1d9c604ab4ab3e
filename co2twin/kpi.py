"""Plant KPIs and mass/charge balances computed from a run's results.

Both read the recorded DataFrame only (columns ``component.port``), so they
work on a fresh run or on a results file read back from disk.
"""
from __future__ import annotations

import math
from typing import Any
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from models.electrochemistry import F, M_HCOO, M_HCOOH, Z_FORMATE, Z_H2

from components.plant import LIMITS

__all__ = ["kpis", "balances", "KPI_UNITS"]

KPI_UNITS = {
    "duration_h": "h",
    "mean_current_A": "A",
    "mean_cell_voltage_V": "V",
    "mean_fe_formate": "1",
    "formate_production_g_per_h": "g/h",
    "formate_produced_mol": "mol",
    "energy_kWh": "kWh",
    "energy_kWh_per_kg_HCOOH": "kWh/kg",
    "energy_kWh_per_kmol_formate": "kWh/kmol",
    "single_pass_conversion_pct": "%",
    "overall_conversion_pct": "%",
    "final_product_conc_mol_L": "mol/L",
    "final_product_conc_g_L": "g/L",
    "time_outside_limits_s": "s",
}


def _span(frame: pd.DataFrame, column: str) -> float:
    series = frame[column]
    return float(series.iloc[-1] - series.iloc[0])


def kpis(frame: pd.DataFrame, limits: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Run KPIs; a KPI whose signals were not recorded is absent, not guessed.

    Means are charge- or time-weighted from the cumulative signals (exact under
    decimation). ``time_outside_limits_s`` counts recorded rows outside the
    operating limits times the row spacing, per signal in ``outside_limits``.
    """
    cols = set(frame.columns)
    out: dict[str, Any] = {}
    times = frame.index.to_numpy()
    duration = float(times[-1] - times[0]) if len(times) > 1 else 0.0
    out["duration_h"] = duration / 3600.0
    if {"reactor.charge_passed", "reactor.energy"} <= cols and duration > 0:
        charge_c = _span(frame, "reactor.charge_passed") * 3600.0
        out["mean_current_A"] = charge_c / duration
        if charge_c > 0:
            out["mean_cell_voltage_V"] = _span(frame, "reactor.energy") * 3.6e6 / charge_c
    if "reactor.formate_produced" in cols:
        out.update(_formate_kpis(frame, cols, duration))
    if "separation.tank_formate_conc" in cols:
        out["final_product_conc_mol_L"] = float(frame["separation.tank_formate_conc"].iloc[-1])
    if "separation.tank_formic_acid" in cols:
        out["final_product_conc_g_L"] = float(frame["separation.tank_formic_acid"].iloc[-1])
    outside = _time_outside_limits(frame, dict(LIMITS if limits is None else limits))
    if outside:
        out["time_outside_limits_s"] = sum(outside.values())
        out["outside_limits"] = outside
    return out


def _formate_kpis(frame: pd.DataFrame, cols: set[str], duration: float) -> dict[str, float]:
    """The KPIs of the formate made: production, FE, energy per amount, conversions."""
    out: dict[str, float] = {}
    formate = _span(frame, "reactor.formate_produced")
    out["formate_produced_mol"] = formate
    if duration > 0:
        out["formate_production_g_per_h"] = formate * M_HCOO / (duration / 3600.0)
    if "reactor.charge_passed" in cols:
        charge_c = _span(frame, "reactor.charge_passed") * 3600.0
        out["mean_fe_formate"] = formate * Z_FORMATE * F / charge_c if charge_c > 0 else 0.0
    if "reactor.energy" in cols:
        energy = _span(frame, "reactor.energy")
        out["energy_kWh"] = energy
        if formate > 0:
            out["energy_kWh_per_kg_HCOOH"] = energy / (formate * M_HCOOH / 1000.0)
            out["energy_kWh_per_kmol_formate"] = energy / (formate / 1000.0)
    if "reactor.co2_fed" in cols and _span(frame, "reactor.co2_fed") > 0:
        out["single_pass_conversion_pct"] = 100.0 * formate / _span(frame, "reactor.co2_fed")
    if "feed.fresh_co2_fed" in cols and _span(frame, "feed.fresh_co2_fed") > 0:
        out["overall_conversion_pct"] = 100.0 * formate / _span(frame, "feed.fresh_co2_fed")
    return out


def _time_outside_limits(
    frame: pd.DataFrame, limits: Mapping[str, Sequence[float | None]]
) -> dict[str, float]:
    """Seconds each recorded signal spent outside its ``(low, high)`` limits (None: no bound),
    as rows outside times the row spacing."""
    times = frame.index.to_numpy()
    spacing = float(np.median(np.diff(times))) if len(times) > 1 else 0.0
    outside: dict[str, float] = {}
    for name, (low, high) in limits.items():
        if name not in frame.columns:
            continue
        values = frame[name].to_numpy()[1:]
        bad = np.zeros(len(values), dtype=bool)
        if low is not None:
            bad |= values < low
        if high is not None:
            bad |= values > high
        outside[name] = float(bad.sum()) * spacing
    return outside


def balances(frame: pd.DataFrame) -> dict[str, float]:
    """Largest relative residual of each balance over all recorded rows.

    ``charge``: formate and H2 partial currents against the cell current.
    ``carbon_cell``: CO2 in = CO2 out + formate + carbonate.
    ``carbon_feed``: CO2 into the cell = fresh + recycled.
    Step balances that relate consecutive rows (``carbon_separator``,
    ``tank``, ``recycle_link``, ``carbon_plant``) need every step recorded: they
    are computed only when ``frame.attrs["scenario"]["step_s"]`` gives the step
    and the rows are that far apart (absent under decimation, or when the step
    is unknown). Residuals are scaled by the largest flow in the balance, so
    1e-12 means closed to rounding.
    """
    cols = set(frame.columns)
    out: dict[str, float] = {}
    if {"power.current", "reactor.formate_rate", "reactor.h2_rate"} <= cols:
        current = _col(frame, "power.current")
        partial = (_col(frame, "reactor.formate_rate") * Z_FORMATE
                   + _col(frame, "reactor.h2_rate") * Z_H2) * F
        out["charge"] = _rel(partial - current, current)
    cell = ["reactor.co2_in_rate", "reactor.co2_out_rate", "reactor.formate_rate",
            "reactor.carbonate_rate"]
    if set(cell) <= cols:
        co2_in, co2_out, formate, carb = (_col(frame, c) for c in cell)
        out["carbon_cell"] = _rel(co2_in - co2_out - formate - carb, co2_in)
        if (formate > co2_in).any():
            out["carbon_cell"] = math.inf
    feed = ["reactor.co2_in_rate", "feed.fresh_co2_rate", "feed.recycle_co2_rate"]
    if set(feed) <= cols:
        co2_in, fresh, rec = (_col(frame, c) for c in feed)
        out["carbon_feed"] = _rel(co2_in - fresh - rec, co2_in)
    times = frame.index.to_numpy()
    if len(times) < 2:
        return out
    dt = np.diff(times)
    steps = frame.attrs.get("scenario", {}).get("step_s")
    if steps is None or not np.allclose(dt, steps, rtol=1e-9, atol=0):
        return out  # rows may be decimated: consecutive rows are not consecutive steps
    out.update(_step_balances(frame, cols, dt))
    return out


def _step_balances(frame: pd.DataFrame, cols: set[str], dt: np.ndarray) -> dict[str, float]:
    """The balances that relate consecutive rows, ``dt`` apart (every step recorded)."""
    out: dict[str, float] = {}
    sep = ["reactor.co2_out_rate", "separation.vent_co2_rate", "separation.co2_recycle_rate",
           "separation.separator_co2"]
    if set(sep) <= cols:
        co2_out, vent, rec, hold = (_col(frame, c) for c in sep)
        change = np.diff(hold) / dt
        out["carbon_separator"] = _rel(co2_out[1:] - vent[1:] - rec[1:] - change, co2_out[1:],
                                       floor=_resolution(hold, dt))
    tank = ["reactor.formate_rate", "separation.product_draw_rate", "separation.tank_formate"]
    if set(tank) <= cols:
        formate, draw, inv = (_col(frame, c) for c in tank)
        out["tank"] = _rel(np.diff(inv) / dt - formate[1:] + draw[1:], formate[1:], draw[1:],
                           floor=_resolution(inv, dt))
    if {"feed.recycle_co2_rate", "separation.co2_recycle_rate"} <= cols:
        fed, sent = _col(frame, "feed.recycle_co2_rate"), _col(frame, "separation.co2_recycle_rate")
        out["recycle_link"] = _rel(fed[1:] - sent[:-1], sent[:-1])
    plant = ["feed.fresh_co2_fed", "separation.vent_co2_rate", "reactor.formate_produced",
             "reactor.carbonate_rate", "separation.separator_co2", "separation.co2_recycle_rate"]
    if set(plant) <= cols:
        out["carbon_plant"] = _plant_carbon(frame, dt)
    return out


def _plant_carbon(frame: pd.DataFrame, dt: np.ndarray) -> float:
    """Fresh CO2 fed against vented, lost as carbonate, made into formate and held up."""
    fed = _span(frame, "feed.fresh_co2_fed")
    vented = float(np.sum(_col(frame, "separation.vent_co2_rate")[1:] * dt))
    lost = float(np.sum(_col(frame, "reactor.carbonate_rate")[1:] * dt))
    made = _span(frame, "reactor.formate_produced")
    held = _span(frame, "separation.separator_co2")
    rec = _col(frame, "separation.co2_recycle_rate")
    transit = (rec[-1] - rec[0]) * dt[0]
    residual = fed - vented - lost - made - held - transit
    return float(abs(residual) / max(fed, vented + lost + made, 1e-300))


def _col(frame: pd.DataFrame, name: str) -> np.ndarray:
    return frame[name].to_numpy()


def _rel(residual: np.ndarray, *scales: np.ndarray, floor: Any = 0.0) -> float:
    """Largest ``|residual|`` relative to the largest scale, row by row."""
    scale = np.maximum.reduce([np.abs(s) for s in scales])
    scale = np.maximum(scale, 1e-300)
    ok = np.abs(residual) <= floor  # exact zeros (even where the scale is zero) or rounding
    return float(np.max(np.where(ok, 0.0, np.abs(residual) / scale), initial=0.0))


def _resolution(stock: np.ndarray, dt: np.ndarray) -> np.ndarray:
    """Smallest rate a stock's change between rows can show: a flow below it vanishes
    in rounding, so a residual that size is no imbalance, whatever the flow."""
    return 2.0 * np.spacing(np.maximum(np.abs(stock[:-1]), np.abs(stock[1:]))) / dt

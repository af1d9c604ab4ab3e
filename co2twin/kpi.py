"""Plant KPIs, flags and mass/charge balances computed from a run's results (and, in a run
with a solar and battery supply, its energy KPIs, flags and balances: co2twin.supply).

All read the recorded DataFrame only (columns ``component.port`` and its
``attrs``), so they work on a fresh run or on a results file read back from disk.
Nothing is silent: :func:`flags` lists every saturation, bound, envelope exit and
limit violation of a run (which signal, how many rows and seconds, the worst
magnitude), and :func:`checks` says how each balance was checked, or why not.
"""
from __future__ import annotations

import math
from typing import Any
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from models.electrochemistry import F, M_HCOO, M_HCOOH, Z_FORMATE, Z_H2

from components.plant import FLAGS, LIMITS, UNDEFINED_WHEN_ZERO, Flag, recorded_as

from components.dc_bus import FLOWS

from .supply import SUPPLY_FLAGS, SUPPLY_KPI_UNITS, supply_balances, supply_kpis

__all__ = ["kpis", "balances", "checks", "skipped_checks", "flags", "describe_flag", "KPI_UNITS",
           "LOOP_KPI_UNITS", "loop_kpis", "BALANCES", "SUPPLY_BALANCES", "limit_rows", "not_evaluated",
           "FLAG_TIME_KPIS"]

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
    "time_limits_not_evaluated_s": "s",
    "time_saturated_s": "s",
    "time_estimate_bounded_s": "s",
    "time_outside_envelope_s": "s",
    "time_supply_limited_s": "s",
    **SUPPLY_KPI_UNITS,
}

#: the KPIs that say how long a run left what the twin vouches for (limits, actuator ranges,
#: bounds, model envelopes, the supply): a sweep keeps them whatever KPIs it is asked to keep
FLAG_TIME_KPIS = ("time_outside_limits_s", "time_limits_not_evaluated_s", "time_saturated_s",
                  "time_estimate_bounded_s", "time_outside_envelope_s", "time_supply_limited_s")

#: the per-controller KPIs of :func:`loop_kpis` (mappings controller -> value), in the units of
#: each controller's own signals
LOOP_KPI_UNITS = {
    "loop_iae": "(measurement unit) s",
    "loop_travel": "(actuator unit)",
    "loop_saturated_s": "s",
}

#: every balance :func:`balances` knows, and what it relates
BALANCES = {
    "charge": "formate and H2 partial currents = cell current",
    "carbon_cell": "CO2 in = CO2 out + formate + carbonate, in the cell",
    "carbon_feed": "CO2 into the cell = fresh + recycled",
    "carbon_separator": "CO2 into the separator = vented + recycled + hold-up change",
    "tank": "formate into the product tank = drawn + inventory change",
    "recycle_link": "CO2 the feed gets back = CO2 the separator sent, one step earlier",
    "carbon_plant": "fresh CO2 = vented + carbonate + formate + hold-up + in transit",
}
#: the supply's energy balances (:func:`co2twin.supply.supply_balances`), checked in runs
#: with a supply only (a plant on its own has no such columns and nothing to skip)
SUPPLY_BALANCES = {
    "energy_bus": "PV + battery discharge + grid + unserved = load + battery charge + export "
                  "+ curtailed PV, on the DC bus",
    "energy_battery": "stored energy change = charged - discharged - losses - fade, in the battery",
    "energy_bus_battery": "power the bus asked of the battery = power the battery gave",
}
_SUPPLY_KEYS = {"energy_bus": "bus", "energy_battery": "battery", "energy_bus_battery": "bus_battery"}


# -- one run or many: every figure below is a float for a run's columns (rows,), and an array of
# one value per variant for an ensemble's (rows x variants, co2twin.ensemble), reduced over the
# rows (axis 0) by the same operations, so that both get the KPIs computed the same way. Where a
# run would have no such figure, a variant has NaN (as a table of single runs' figures would).
def _span(frame: pd.DataFrame, column: str) -> Any:
    series = frame[column]
    return _number(series.iloc[-1] - series.iloc[0])


def _number(value: Any) -> Any:
    """``value`` as a float, or as a float array of one per variant if it has that axis."""
    return float(value) if np.ndim(value) == 0 else np.asarray(value, dtype=float)


def _per_variant(frame: pd.DataFrame) -> bool:
    """Whether ``frame``'s columns are rows x variants (an ensemble's) rather than rows."""
    first = next(iter(frame.columns), None)
    return first is not None and np.ndim(frame[first].to_numpy()) == 2


def _put(out: dict[str, Any], key: str, where: Any, value: Callable[[], Any]) -> None:
    """``out[key] = value()`` where ``where`` holds: a run's figure is set or absent; per
    variant, NaN where it does not hold, absent where it holds for none. ``value`` is computed
    only when needed (a run's division by zero would raise)."""
    if np.ndim(where) == 0:
        if where:
            out[key] = value()
    elif np.any(where):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            out[key] = np.where(where, value(), np.nan)


def _masked(value: Any, where: Any) -> Any:
    """``value`` (a run's), or NaN where ``where`` does not hold (per variant)."""
    return value if np.ndim(where) == 0 else np.where(where, value, np.nan)


def _select(where: Any, then: Callable[[], Any], otherwise: Any) -> Any:
    """``then() if where else otherwise``, per variant (``then`` computed only when needed)."""
    if np.ndim(where) == 0:
        return then() if where else otherwise
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.where(where, then(), otherwise)


def _largest(*values: Any) -> Any:
    """``max(values)`` of a run's floats, per variant of arrays."""
    if all(np.ndim(v) == 0 for v in values):
        return max(values)
    return np.maximum.reduce(np.broadcast_arrays(*values))


def _sum_rows(values: np.ndarray) -> Any:
    """The sum over the rows, per variant as for a single run: NumPy sums a contiguous row
    pairwise, and a column of a 2-D block one by one, so the variants are made rows first."""
    if np.ndim(values) == 1:
        return float(np.sum(values))
    return np.sum(np.ascontiguousarray(values.T), axis=-1)


def _along_rows(per_row: np.ndarray, like: np.ndarray) -> np.ndarray:
    """A per-row array (times, steps) shaped to broadcast against columns like ``like``."""
    return per_row.reshape(-1, *([1] * (np.ndim(like) - 1)))


def kpis(frame: pd.DataFrame, limits: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Run KPIs; a KPI whose signals were not recorded is absent, not guessed.

    Means are charge- or time-weighted from the cumulative signals (exact under
    decimation). ``time_outside_limits_s`` counts recorded rows outside the
    operating limits times the row spacing, per signal in ``outside_limits``;
    ``time_saturated_s``, ``time_estimate_bounded_s``, ``time_outside_envelope_s`` and
    ``time_supply_limited_s`` count the rows with any such flag raised the same way, per
    flag in ``flagged`` (:func:`flags` says what each was and the worst case).

    A limited signal that is undefined on some rows (:data:`~components.plant.UNDEFINED_WHEN_ZERO`:
    FE at 0 A) is judged on the other rows only: ``time_limits_not_evaluated_s`` (present
    when some limited signal can be undefined) counts the rows it was not judged on, per
    signal in ``limits_not_evaluated``; :func:`not_evaluated` says why. A run with a
    supply adds its KPIs (:func:`co2twin.supply.supply_kpis`, without the per-night ones,
    which need the whole run: ``co2twin battery kpis``).

    ``frame`` may also hold an ensemble's columns, each rows x variants
    (``EnsembleResult.kpis``): then each figure is an array of one per variant, computed by
    the same code over the rows, NaN where that variant's own run has no such KPI; a
    supply's KPIs go one run at a time (``NotImplementedError`` on such columns).
    """
    cols = set(frame.columns)
    out: dict[str, Any] = {}
    times = frame.index.to_numpy()
    duration = float(times[-1] - times[0]) if len(times) > 1 else 0.0
    out["duration_h"] = duration / 3600.0
    if {"reactor.charge_passed", "reactor.energy"} <= cols and duration > 0:
        charge_c = _span(frame, "reactor.charge_passed") * 3600.0
        out["mean_current_A"] = charge_c / duration
        _put(out, "mean_cell_voltage_V", charge_c > 0,
             lambda: _span(frame, "reactor.energy") * 3.6e6 / charge_c)
    if "reactor.formate_produced" in cols:
        out.update(_formate_kpis(frame, cols, duration))
    if "separation.tank_formate_conc" in cols:
        out["final_product_conc_mol_L"] = _number(frame["separation.tank_formate_conc"].iloc[-1])
    if "separation.tank_formic_acid" in cols:
        out["final_product_conc_g_L"] = _number(frame["separation.tank_formic_acid"].iloc[-1])
    outside, unjudged = _limit_times(frame, dict(LIMITS if limits is None else limits))
    if outside:
        out["time_outside_limits_s"] = sum(outside.values())
        out["outside_limits"] = outside
    if unjudged:
        out["time_limits_not_evaluated_s"] = sum(unjudged.values())
        if any(np.any(v) for v in unjudged.values()):
            out["limits_not_evaluated"] = {k: _masked(v, v > 0) for k, v in unjudged.items()
                                           if np.any(v > 0)}
    out.update(_flag_times(frame))
    out.update(loop_kpis(frame))
    if "bus.load_energy" in cols and _per_variant(frame):
        raise NotImplementedError("the supply's KPIs (co2twin.supply) are computed one run at a time")
    out.update(supply_kpis(frame, nights=False))
    return out


def loop_kpis(frame: pd.DataFrame) -> dict[str, Any]:
    """Per controller of the run (``frame.attrs["scenario"]["controllers"]``, whose columns were
    recorded): ``loop_iae`` the integral of its ``error`` (a PID's set point minus measurement)
    over the recorded rows, ``loop_travel`` the total movement of its ``output`` and
    ``loop_saturated_s`` the seconds its output was held at a limit (range or rate: its
    ``saturated`` output), each a mapping ``{controller: value}``: what a tuning sweep
    compares loop by loop, and a limit a loop sat at is said with its size. A test case
    scores its controllers with its own KPIs (:mod:`co2twin.control.kpis`)."""
    names = (frame.attrs.get("scenario") or {}).get("controllers") or ()
    cols = set(frame.columns)
    times = frame.index.to_numpy()
    out: dict[str, Any] = {}
    iae = {n: _sum_rows(np.abs(frame[f"{n}.error"].to_numpy()[1:])
                        * _along_rows(np.diff(times), frame[f"{n}.error"].to_numpy()[1:]))
           for n in names if f"{n}.error" in cols and len(times) > 1}
    travel = {n: _sum_rows(np.abs(np.diff(frame[f"{n}.output"].to_numpy(), axis=0)))
              for n in names if f"{n}.output" in cols}
    saturated = {n: _seconds(frame, frame[f"{n}.saturated"].to_numpy() > 0.0)
                 for n in names if f"{n}.saturated" in cols}
    for key, figures in (("loop_iae", iae), ("loop_travel", travel), ("loop_saturated_s", saturated)):
        if figures:
            out[key] = figures
    return out


def _flag_times(frame: pd.DataFrame) -> dict[str, Any]:
    """Seconds with any actuator saturated, any estimate bounded, any model outside its
    envelope (each present when its flag columns were recorded), and per raised flag."""
    out: dict[str, Any] = {}
    columns = _flag_specs(frame)
    per: dict[str, float] = {}
    for key, kind in (("time_saturated_s", "saturation"), ("time_estimate_bounded_s", "bound"),
                      ("time_outside_envelope_s", "envelope"), ("time_supply_limited_s", "supply")):
        cols = [f.column for f in columns if f.kind == kind]
        if not cols:
            continue
        raised: Any = False
        for col in cols:
            flagged = frame[col].to_numpy() > 0.0
            raised = raised | flagged
            if flagged.any():
                per[col] = _masked(_seconds(frame, flagged), flagged.any(axis=0))
        out[key] = _seconds(frame, raised)
    if per:
        out["flagged"] = per
    return out


def _formate_kpis(frame: pd.DataFrame, cols: set[str], duration: float) -> dict[str, Any]:
    """The KPIs of the formate made: production, FE, energy per amount, conversions."""
    out: dict[str, Any] = {}
    formate = _span(frame, "reactor.formate_produced")
    out["formate_produced_mol"] = formate
    if duration > 0:
        out["formate_production_g_per_h"] = formate * M_HCOO / (duration / 3600.0)
    if "reactor.charge_passed" in cols:
        charge_c = _span(frame, "reactor.charge_passed") * 3600.0
        out["mean_fe_formate"] = _select(charge_c > 0, lambda: formate * Z_FORMATE * F / charge_c, 0.0)
    if "reactor.energy" in cols:
        energy = _span(frame, "reactor.energy")
        out["energy_kWh"] = energy
        _put(out, "energy_kWh_per_kg_HCOOH", formate > 0, lambda: energy / (formate * M_HCOOH / 1000.0))
        _put(out, "energy_kWh_per_kmol_formate", formate > 0, lambda: energy / (formate / 1000.0))
    if "reactor.co2_fed" in cols:
        co2_fed = _span(frame, "reactor.co2_fed")
        _put(out, "single_pass_conversion_pct", co2_fed > 0, lambda: 100.0 * formate / co2_fed)
    if "feed.fresh_co2_fed" in cols:
        fresh = _span(frame, "feed.fresh_co2_fed")
        _put(out, "overall_conversion_pct", fresh > 0, lambda: 100.0 * formate / fresh)
    return out


def limit_rows(frame: pd.DataFrame, name: str, low: float | None, high: float | None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Rows where ``name`` is outside ``(low, high)`` (None: no bound), and rows where it
    is undefined and its limit not evaluated (:data:`~components.plant.UNDEFINED_WHEN_ZERO`);
    an undefined row is never outside. A faulted sensor's true value counts.

    Where the column that says whether the signal is defined was not recorded, every
    row is judged.
    """
    values = _plant_value(frame, name)
    undefined = np.zeros(np.shape(values), dtype=bool)
    rule = UNDEFINED_WHEN_ZERO.get(name)
    if rule is not None and rule[0] in frame.columns:
        undefined = _plant_value(frame, rule[0]) == 0.0
    outside = np.zeros(np.shape(values), dtype=bool)
    if low is not None:
        outside |= values < low
    if high is not None:
        outside |= values > high
    return outside & ~undefined, undefined


def not_evaluated(figures: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each limit :func:`kpis` did not evaluate on some rows: ``signal``, ``seconds``,
    ``why`` and ``evaluated_where`` (the rows it was judged on)."""
    out = []
    for signal, seconds in figures.get("limits_not_evaluated", {}).items():
        column, why = UNDEFINED_WHEN_ZERO[signal]
        out.append({"signal": signal, "seconds": float(seconds), "why": why,
                    "evaluated_where": f"{column} != 0"})
    return out


def _limit_times(
    frame: pd.DataFrame, limits: Mapping[str, Sequence[float | None]]
) -> tuple[dict[str, float], dict[str, float]]:
    """Seconds each recorded signal spent outside its ``(low, high)`` limits, and seconds
    it was undefined (for the signals that can be), as rows after the first times the
    row spacing."""
    outside: dict[str, float] = {}
    unjudged: dict[str, float] = {}
    for name, (low, high) in limits.items():
        if name not in frame.columns:
            continue
        bad, undefined = limit_rows(frame, name, low, high)
        outside[name] = _seconds(frame, bad)
        rule = UNDEFINED_WHEN_ZERO.get(name)
        if rule is not None and rule[0] in frame.columns:
            unjudged[name] = _seconds(frame, undefined)
    return outside, unjudged


def _plant_value(frame: pd.DataFrame, name: str) -> np.ndarray:
    """What the plant did: the true value of a signal whose sensor was faulted, else the value."""
    return frame[f"{name}:true" if f"{name}:true" in frame.columns else name].to_numpy()


def _spacing(frame: pd.DataFrame) -> float:
    times = frame.index.to_numpy()
    return float(np.median(np.diff(times))) if len(times) > 1 else 0.0


def _seconds(frame: pd.DataFrame, flagged: np.ndarray) -> Any:
    """Seconds a 0/1 condition held: flagged rows after the first (each stands for the step,
    or under decimation the steps, ending there) times the row spacing."""
    return _number(np.count_nonzero(flagged[1:], axis=0)) * _spacing(frame)


def _flag_specs(frame: pd.DataFrame) -> list[Flag]:
    """The plant's flags recorded in ``frame``, the reactor's per-variable bound flags and
    its envelope flags.

    The reactor raises ``<variable>_bounded`` where a bound moved that variable's
    estimate and records by how much in ``<variable>_correction``; where it does,
    those replace the catch-all ``estimate_bounded``.
    """
    cols = set(frame.columns)
    per_variable = [c for c in frame.columns if c.startswith("reactor.") and c.endswith("_bounded")
                    and c != "reactor.estimate_bounded"]
    specs = [f for f in (*FLAGS, *SUPPLY_FLAGS) if f.column in cols
             and not (f.column == "reactor.estimate_bounded" and per_variable)]
    for column in per_variable:
        variable = column.split(".", 1)[1].removesuffix("_bounded")
        correction = f"reactor.{variable}_correction"
        specs.append(Flag(column, "bound", f"{variable} estimate bounded to keep a balance or a "
                          "physical range", got=correction if correction in cols else None))
    for column in frame.columns:
        if column.endswith("_outside_envelope"):
            variable = column.split(".", 1)[-1].removesuffix("_outside_envelope")
            specs.append(Flag(column, "envelope", f"{variable} model outside its training envelope"))
    return specs


def flags(frame: pd.DataFrame, limits: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Everything a run did not do as asked, one entry per raised flag or limit.

    Each entry: ``kind`` (saturation, bound, envelope, limit), ``signal`` (the flag
    column, or the limited signal), ``what``, ``rows`` flagged of ``of_rows``,
    ``seconds`` (flagged rows after the first times the row spacing), ``first_s``,
    ``last_s`` and ``worst``: the row where it was furthest from what was asked
    (asked and got, the envelope input and its range, the limit and the value).
    ``limits`` default to ``frame.attrs["scenario"]["limits"]``, else the plant's.
    """
    out = []
    for spec in _flag_specs(frame):
        flagged = frame[spec.column].to_numpy() > 0.0
        if flagged.any():
            entry = _entry(frame, spec.kind, spec.column, spec.what, flagged)
            entry["worst"] = (_worst_envelope(frame, spec.column, flagged) if spec.kind == "envelope"
                              else _worst_asked(frame, spec, flagged))
            out.append(entry)
    if limits is None:
        limits = frame.attrs.get("scenario", {}).get("limits", LIMITS)
    for name, (low, high) in dict(limits).items():
        if name not in frame.columns:
            continue
        values = _plant_value(frame, name)
        outside, _ = limit_rows(frame, name, low, high)  # undefined rows are never outside
        if not outside.any():
            continue
        below = outside & (values < low) if low is not None else np.zeros(len(values), dtype=bool)
        above = outside & (values > high) if high is not None else np.zeros(len(values), dtype=bool)
        entry = _entry(frame, "limit", name, "outside its operating limits", outside)
        excess = np.where(below, (low or 0.0) - values, 0.0) + np.where(above, values - (high or 0.0), 0.0)
        row = int(np.argmax(excess))
        entry["worst"] = {"time_s": float(frame.index[row]), "value": float(values[row]),
                          "low": low, "high": high, "unit": _unit(frame, name)}
        out.append(entry)
    return out


def _entry(frame: pd.DataFrame, kind: str, signal: str, what: str, flagged: np.ndarray) -> dict[str, Any]:
    times = frame.index.to_numpy()
    rows = np.flatnonzero(flagged)
    return {"kind": kind, "signal": signal, "what": what, "rows": int(len(rows)),
            "of_rows": len(frame), "seconds": _seconds(frame, flagged),
            "first_s": float(times[rows[0]]), "last_s": float(times[rows[-1]])}


def _unit(frame: pd.DataFrame, column: str | None) -> str:
    if column is None:
        return ""
    return str(frame.attrs.get("units", {}).get(column.removesuffix(":true"), ""))


def _worst_asked(frame: pd.DataFrame, spec: Flag, flagged: np.ndarray) -> dict[str, Any]:
    """The flagged row where what came was furthest from what was asked, with the effects."""
    cols = set(frame.columns)
    if spec.largest is not None and spec.largest in cols:  # its largest magnitude while flagged
        size = np.where(flagged, np.abs(frame[spec.largest].to_numpy()), -1.0)
        row = int(np.argmax(size))
        return {"time_s": float(frame.index[row]), "largest_signal": spec.largest,
                "largest": float(size[row]), "unit": _unit(frame, spec.largest)}
    if spec.kind == "bound" and spec.got in cols:  # a correction column: how far a bound moved it
        moved = np.where(flagged, np.abs(frame[spec.got].to_numpy()), -1.0)
        row = int(np.argmax(moved))
        return {"time_s": float(frame.index[row]), "correction_signal": spec.got,
                "correction": float(moved[row]), "unit": _unit(frame, spec.got)}
    if spec.asked not in cols or spec.got not in cols:
        missing = [c for c in (spec.asked, spec.got) if c is not None and c not in cols]
        why = (f"{', '.join(missing)} not recorded" if missing
               else "not recorded per variable (the reactor has no such columns)")
        return {"time_s": float(frame.index[np.flatnonzero(flagged)[0]]), "magnitude": why}
    asked, got = frame[spec.asked].to_numpy(), frame[spec.got].to_numpy()
    gap = np.where(flagged, np.abs(asked - got), -1.0)
    row = int(np.argmax(gap))
    worst: dict[str, Any] = {"time_s": float(frame.index[row]), "asked_signal": spec.asked,
                             "asked": float(asked[row]), "got_signal": spec.got,
                             "got": float(got[row]), "unit": _unit(frame, spec.asked)}
    effects = [{"signal": actual, "asked": float(frame[setpoint].iloc[row]),
                "got": float(frame[actual].iloc[row]), "unit": _unit(frame, actual)}
               for setpoint, actual in spec.effects if {setpoint, actual} <= cols]
    if effects:
        worst["effects"] = effects
    return worst


def _worst_envelope(frame: pd.DataFrame, column: str, flagged: np.ndarray) -> dict[str, Any]:
    """The model input furthest outside its training range (relative to the range), where."""
    variable = column.split(".", 1)[-1].removesuffix("_outside_envelope")
    model = frame.attrs.get("scenario", {}).get("envelopes", {}).get(variable)
    first = {"time_s": float(frame.index[np.flatnonzero(flagged)[0]])}
    if not model:
        return {**first, "magnitude": "the model's envelope is not in the results' metadata"}
    best: dict[str, Any] = {}
    score = -1.0
    for name, (low, high) in model["inputs"].items():
        col = recorded_as(f"reactor.{name}")
        col = f"{col}:true" if f"{col}:true" in frame.columns else col
        if col not in frame.columns:
            continue
        values = frame[col].to_numpy()
        excess = np.maximum(low - values, values - high) / max(high - low, 1e-300)
        excess = np.where(flagged, excess, -np.inf)
        row = int(np.argmax(excess))
        if excess[row] > score:
            score = float(excess[row])
            best = {"time_s": float(frame.index[row]), "input": name, "signal": col,
                    "value": float(values[row]), "low": low, "high": high, "unit": _unit(frame, col)}
    best = best or {**first, "magnitude": "its inputs were not recorded"}
    return {"model": model.get("model", variable), **best}


def _shown(unit: str) -> str:
    """`` unit`` as printed after a number (nothing for a plain ratio)."""
    return "" if unit in ("", "1") else f" {unit}"


def describe_flag(entry: Mapping[str, Any]) -> str:
    """One line for a :func:`flags` entry: what, which signal, how long, the worst case."""
    span = f"{entry['seconds']:g} s ({entry['rows']} of {entry['of_rows']} rows)"
    worst = entry.get("worst", {})
    at = f" at t = {worst['time_s']:g} s" if "time_s" in worst else ""
    kind = entry["kind"]
    if kind == "limit":
        bound = (f"below {worst['low']:g}" if worst["low"] is not None and worst["value"] < worst["low"]
                 else f"above {worst['high']:g}")
        return (f"outside limits: {entry['signal']} for {span}; worst {worst['value']:.4g}"
                f"{_shown(worst['unit'])} ({bound}){at}")
    head = f"{kind}: {entry['what']} ({entry['signal']}) for {span}"
    if "magnitude" in worst:
        return f"{head}; first{at}; by how much: {worst['magnitude']}"
    if "largest" in worst:
        return f"{head}; worst {worst['largest']:.4g}{_shown(worst['unit'])} ({worst['largest_signal']}){at}"
    if "correction" in worst:
        return (f"{head}; largest correction {worst['correction']:.4g}{_shown(worst['unit'])} "
                f"({worst['correction_signal']}){at}")
    if kind == "envelope":
        return (f"{head}; worst input {worst['input']} = {worst['value']:.4g}{_shown(worst['unit'])} "
                f"(envelope [{worst['low']:.4g}, {worst['high']:.4g}]){at}, {worst['model']}")
    text = (f"{head}; worst: asked {worst['asked']:.4g}{_shown(worst['unit'])} "
            f"({worst['asked_signal']}), got {worst['got']:.4g} ({worst['got_signal']}){at}")
    effects = worst.get("effects", [])
    if effects:
        text += "; the cell got " + ", ".join(
            f"{e['signal']} {e['got']:.4g}{_shown(e['unit'])} (asked {e['asked']:.4g})" for e in effects)
    return text


#: columns each balance needs on every row (the row-wise forms)
_ROWS = {
    "charge": ("power.current", "reactor.formate_rate", "reactor.h2_rate"),
    "carbon_cell": ("reactor.co2_in_rate", "reactor.co2_out_rate", "reactor.formate_rate",
                    "reactor.carbonate_rate"),
    "carbon_feed": ("reactor.co2_in_rate", "feed.fresh_co2_rate", "feed.recycle_co2_rate"),
    "carbon_separator": ("reactor.co2_out_rate", "separation.vent_co2_rate",
                         "separation.co2_recycle_rate", "separation.separator_co2"),
    "tank": ("reactor.formate_rate", "separation.product_draw_rate", "separation.tank_formate"),
    "recycle_link": ("feed.recycle_co2_rate", "separation.co2_recycle_rate"),
    "carbon_plant": ("feed.fresh_co2_fed", "separation.vent_co2_rate", "reactor.formate_produced",
                     "reactor.carbonate_rate", "separation.separator_co2",
                     "separation.co2_recycle_rate"),
}
#: balances that relate consecutive steps, and the running totals that check them between
#: the rows a decimated run keeps
_TOTALS = {
    "carbon_feed": ("feed.fresh_co2_fed", "feed.recycle_co2_fed", "reactor.co2_fed"),
    "carbon_separator": ("separation.co2_received", "separation.co2_vented",
                         "separation.co2_recycled", "separation.separator_co2"),
    "tank": ("separation.formate_received", "separation.product_drawn", "separation.tank_formate"),
    "recycle_link": ("feed.recycle_co2_fed", "separation.co2_recycled",
                     "separation.co2_recycle_rate"),
    # whole-plant carbon between decimated rows needs the reactor's running total of the
    # carbonate it loses (reactor.carbonate_lost); without it the check is named as skipped
    "carbon_plant": ("feed.fresh_co2_fed", "separation.co2_vented", "reactor.carbonate_lost",
                     "reactor.formate_produced", "separation.separator_co2",
                     "separation.co2_recycle_rate"),
}
_STEPWISE = ("carbon_separator", "tank", "recycle_link", "carbon_plant")


def checks(frame: pd.DataFrame) -> dict[str, str]:
    """How each balance of :data:`BALANCES` is checked on ``frame``, or ``skipped: why``.

    With every step recorded, the balances that relate consecutive steps compare
    consecutive rows. Under decimation (``record.every`` > 1) they compare the
    running totals the plant records (``separation.co2_received``, ...) between the
    rows kept, which covers every step in between; the row-wise balances hold at the
    rows kept, and between them where running totals exist (carbon_feed).
    """
    cols = set(frame.columns)
    times = frame.index.to_numpy()
    step = frame.attrs.get("scenario", {}).get("step_s")
    every_step = step is not None and len(times) > 1 and bool(
        np.allclose(np.diff(times), step, rtol=1e-9, atol=0))
    kept = "" if every_step or step is None or len(times) < 2 else (
        f" (1 in {round(_spacing(frame) / step):,} steps)")
    out: dict[str, str] = {}
    for name in BALANCES:
        missing = [c for c in _ROWS[name] if c not in cols]
        totals = [c for c in _TOTALS.get(name, ()) if c not in cols]
        if name not in _STEPWISE:
            if missing:
                out[name] = f"skipped: not recorded: {', '.join(missing)}"
            elif every_step:
                out[name] = "every step"
            elif name in _TOTALS and not totals:
                out[name] = f"on the recorded rows{kept}, and between them from running totals"
            else:
                out[name] = f"on the recorded rows{kept} only (no running totals between them)"
        elif len(times) < 2:
            out[name] = "skipped: fewer than two rows"
        elif every_step and not missing:
            out[name] = "every step (consecutive rows)"
        elif not totals and (step is not None or name in ("carbon_separator", "tank")):
            out[name] = f"between the recorded rows{kept}, from running totals"
        elif step is None and not totals:
            out[name] = "skipped: the step is unknown (frame.attrs['scenario']['step_s'])"
        else:
            need = totals if not every_step else missing
            out[name] = f"skipped: not recorded: {', '.join(need)}"
    if "bus.load" in cols:  # a run with a supply
        out.update(_supply_checks(cols, len(times), every_step, kept))
    return out


#: columns each supply balance needs
_SUPPLY_ROWS = {
    "energy_bus": ("pv.power", "bus.load", *(f"bus.{name}" for name in FLOWS)),
    "energy_battery": ("battery.stored_energy", "battery.energy_in", "battery.energy_out",
                       "battery.losses", "battery.fade_energy"),
    "energy_bus_battery": ("bus.battery_power", "battery.power"),
}


def _supply_checks(cols: set[str], rows: int, every_step: bool, kept: str) -> dict[str, str]:
    """How :data:`SUPPLY_BALANCES` are checked: the bus's and the link's row by row, the
    battery's between consecutive rows from its running totals (exact under decimation)."""
    out: dict[str, str] = {}
    for name, needed in _SUPPLY_ROWS.items():
        missing = [c for c in needed if c not in cols]
        if missing:
            out[name] = f"skipped: not recorded: {', '.join(missing)}"
        elif name == "energy_battery":
            out[name] = ("skipped: fewer than two rows" if rows < 2 else "every step (consecutive rows)"
                         if every_step else f"between the recorded rows{kept}, from running totals")
        else:
            out[name] = "every step" if every_step else f"on the recorded rows{kept} only"
    return out


def skipped_checks(frame: pd.DataFrame) -> dict[str, str]:
    """The balances :func:`checks` could not check on ``frame``, with the reason."""
    return {name: how.removeprefix("skipped: ") for name, how in checks(frame).items()
            if how.startswith("skipped")}


def balances(frame: pd.DataFrame) -> dict[str, Any]:
    """Largest relative residual of each balance :func:`checks` can check on ``frame``.

    ``charge``: formate and H2 partial currents against the cell current.
    ``carbon_cell``: CO2 in = CO2 out + formate + carbonate.
    ``carbon_feed``: CO2 into the cell = fresh + recycled.
    ``carbon_separator``, ``tank``, ``recycle_link``, ``carbon_plant`` relate
    consecutive steps: with every step recorded (``frame.attrs["scenario"]["step_s"]``
    gives the step) they compare consecutive rows; under decimation they compare
    running totals between the rows kept. What cannot be checked is absent here and
    named by :func:`skipped_checks`. Residuals are scaled by the largest flow in the
    balance, so 1e-12 means closed to rounding. A run with a supply adds
    :data:`SUPPLY_BALANCES`. For an ensemble's columns (rows x variants), each residual is an
    array of one per variant, computed as for a single run (``EnsembleResult.balances``).
    """
    how = checks(frame)
    out: dict[str, Any] = {}
    if not how["charge"].startswith("skipped"):
        current = _col(frame, "power.current")
        partial = (_col(frame, "reactor.formate_rate") * Z_FORMATE
                   + _col(frame, "reactor.h2_rate") * Z_H2) * F
        out["charge"] = _rel(partial - current, current)
    if not how["carbon_cell"].startswith("skipped"):
        co2_in, co2_out, formate, carb = (_col(frame, c) for c in _ROWS["carbon_cell"])
        out["carbon_cell"] = _rel(co2_in - co2_out - formate - carb, co2_in)
        out["carbon_cell"] = _select((formate > co2_in).any(axis=0), lambda: math.inf,
                                     out["carbon_cell"])
    if not how["carbon_feed"].startswith("skipped"):
        co2_in, fresh, rec = (_col(frame, c) for c in _ROWS["carbon_feed"])
        out["carbon_feed"] = _rel(co2_in - fresh - rec, co2_in)
        if "running totals" in how["carbon_feed"]:
            out["carbon_feed"] = _largest(out["carbon_feed"], _between(frame, "carbon_feed"))
    for name in _STEPWISE:
        if how[name].startswith("every step"):
            out[name] = _step_balance(frame, name)
        elif "running totals" in how[name]:
            out[name] = _between(frame, name)
    supply = [name for name in SUPPLY_BALANCES if name in how and not how[name].startswith("skipped")]
    if supply:
        if _per_variant(frame):
            raise NotImplementedError("the supply's balances (co2twin.supply) are computed one run "
                                      "at a time")
        found = supply_balances(frame)
        out.update({name: found[_SUPPLY_KEYS[name]] for name in supply if _SUPPLY_KEYS[name] in found})
    return out


def _step_balance(frame: pd.DataFrame, name: str) -> Any:
    """A balance that relates consecutive rows, each one step apart."""
    dt = _along_rows(np.diff(frame.index.to_numpy()), _col(frame, _ROWS[name][0]))
    if name == "carbon_separator":
        co2_out, vent, rec, hold = (_col(frame, c) for c in _ROWS[name])
        change = np.diff(hold, axis=0) / dt
        return _rel(co2_out[1:] - vent[1:] - rec[1:] - change, co2_out[1:],
                    floor=_resolution(hold, dt))
    if name == "tank":
        formate, draw, inv = (_col(frame, c) for c in _ROWS[name])
        return _rel(np.diff(inv, axis=0) / dt - formate[1:] + draw[1:], formate[1:], draw[1:],
                    floor=_resolution(inv, dt))
    if name == "recycle_link":
        fed, sent = (_col(frame, c) for c in _ROWS[name])
        return _rel(fed[1:] - sent[:-1], sent[:-1])
    return _plant_carbon(frame, dt)


def _plant_carbon(frame: pd.DataFrame, dt: np.ndarray) -> Any:
    """Fresh CO2 fed against vented, lost as carbonate, made into formate and held up."""
    fed = _span(frame, "feed.fresh_co2_fed")
    vented = _sum_rows(_col(frame, "separation.vent_co2_rate")[1:] * dt)
    lost = _sum_rows(_col(frame, "reactor.carbonate_rate")[1:] * dt)
    made = _span(frame, "reactor.formate_produced")
    held = _span(frame, "separation.separator_co2")
    rec = _col(frame, "separation.co2_recycle_rate")
    transit = (rec[-1] - rec[0]) * dt[0]
    residual = fed - vented - lost - made - held - transit
    return _number(np.abs(residual) / _largest(fed, vented + lost + made, 1e-300))


def _between(frame: pd.DataFrame, name: str) -> Any:
    """A balance between consecutive recorded rows, from the running totals (decimated runs).

    Each total carries the rounding of its additions, one per step: a residual within
    that (steps between the rows times a few ulps of the totals) is no imbalance.
    """
    totals = [_col(frame, c) for c in _TOTALS[name]]
    d = [np.diff(t, axis=0) for t in totals]
    step = frame.attrs.get("scenario", {}).get("step_s")
    steps = _along_rows(np.diff(frame.index.to_numpy()) / step if step else np.ones(len(d[0])), d[0])
    floor = 8.0 * steps * np.spacing(np.max([np.abs(t[1:]) for t in totals], axis=0))
    if name == "carbon_feed":  # fresh + recycled = into the cell
        return _rel(d[0] + d[1] - d[2], d[2], floor=floor)
    if name == "carbon_separator":  # received = vented + recycled + hold-up change
        return _rel(d[0] - d[1] - d[2] - d[3], d[0], floor=floor)
    if name == "tank":  # received = drawn + inventory change
        return _rel(d[0] - d[1] - d[2], d[0], d[1], floor=floor)
    if name == "recycle_link":
        # the feed gets, over a step, what the separator sent at the end of the one before:
        # its total lags the separator's by the last step's flow
        fed, sent, rate = totals
        lagged = sent - rate * step
        return _rel(np.diff(fed, axis=0) - np.diff(lagged, axis=0), np.diff(sent, axis=0), floor=floor)
    fresh, vented, lost, made, held = d[0], d[1], d[2], d[3], d[4]
    rec = np.diff(totals[5], axis=0) * step
    return _rel(fresh - vented - lost - made - held - rec, fresh, vented + lost + made, floor=floor)


def _col(frame: pd.DataFrame, name: str) -> np.ndarray:
    return frame[name].to_numpy()


def _rel(residual: np.ndarray, *scales: np.ndarray, floor: Any = 0.0) -> Any:
    """Largest ``|residual|`` relative to the largest scale, row by row (over axis 0: one per
    variant of an ensemble's columns)."""
    scale = np.maximum.reduce([np.abs(s) for s in scales])
    scale = np.maximum(scale, 1e-300)
    ok = np.abs(residual) <= floor  # exact zeros (even where the scale is zero) or rounding
    return _number(np.max(np.where(ok, 0.0, np.abs(residual) / scale), axis=0, initial=0.0))


def _resolution(stock: np.ndarray, dt: np.ndarray) -> np.ndarray:
    """Smallest rate a stock's change between rows can show: a flow below it vanishes
    in rounding, so a residual that size is no imbalance, whatever the flow."""
    return 2.0 * np.spacing(np.maximum(np.abs(stock[:-1]), np.abs(stock[1:]))) / dt

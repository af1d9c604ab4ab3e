"""The reference battery: cells that age by richer mechanisms than the seed law, and their cycling logs.

It plays the battery test bench (as :mod:`models.reference_plant` plays the pilot plant):
the twin's ageing models are trained and scored on its logs, which come in the
column layout of NASA's battery data set (:data:`models.battery_log.COLUMNS`),
so a user who has the real NASA files trains on them with the same command.

How a reference cell differs from the seed law (:mod:`models.battery_physics`):

- **SEI growth** with the square root of time at temperature (Arrhenius,
  ``sei_activation_K``): slow cycles and long rests age a cell per cycle more;
- **cycling loss** growing with the C-rate to a power below one, with depth of
  discharge, faster as the cell loses capacity (``cycling_acceleration``), and
  Arrhenius in temperature (the seed law is linear in degC);
- **lithium plating** when charging below ``plating_onset_C``;
- **resistance growth** with both losses and a resistance that rises in the cold,
  so the capacity measured to the cut-off voltage falls faster than the cell's
  total capacity, and more at high current;
- **self-heating** (Joule and reversible heat through a thermal resistance), so
  the measured temperature depends on the current and on the cell's age;
- **capacity regeneration** after long rests (as NASA's cells show), decaying
  over the next cycles;
- **sensor noise** on voltage, current and temperature, and a coulomb-counting
  error on the measured capacity.

Every cell's cycles are discharges at constant current to a cut-off voltage
after a full charge (CC-CV at ``charge_current_A``); one row per sample of the
discharge and of the rest after it. The noise-free capacity is logged as
``true_Capacity`` beside the measured ``Capacity``.
"""
from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np
import pandas as pd

from models.battery_physics import ocv

__all__ = ["ReferenceBatteryParameters", "CellTest", "default_cells", "generate", "cycle_capacity"]

_KELVIN = 273.15
_T_REF = 298.15


def _field(default: Any, unit: str, doc: str) -> Any:
    return field(default=default, metadata={"unit": unit, "doc": doc})


@dataclass(frozen=True)
class ReferenceBatteryParameters:
    """Everything that makes a reference cell age, heat and be measured the way it does."""

    capacity_Ah: float = _field(2.0, "Ah", "nominal capacity of a new cell")
    capacity_spread: float = _field(0.02, "1", "relative spread (1 sigma) of new cells' capacity")
    resistance_ohm: float = _field(0.10, "Ohm", "internal resistance of a new cell at 25 degC")
    resistance_activation_K: float = _field(2400.0, "K", "Arrhenius constant of the resistance")
    thermal_resistance: float = _field(12.0, "K/W", "cell to ambient")
    thermal_time_s: float = _field(800.0, "s", "thermal time constant of the cell")
    reversible_heat_V: float = _field(0.05, "V", "reversible and side heat per ampere")
    sei_rate: float = _field(0.0015, "1/sqrt(h)", "SEI capacity loss per square-root hour at 25 degC")
    sei_activation_K: float = _field(3600.0, "K", "Arrhenius constant of SEI growth")
    cycling_rate: float = _field(7.0e-4, "1/cycle", "cycling loss per full cycle at 1C and 25 degC")
    cycling_rate_exponent: float = _field(0.8, "1", "C-rate exponent of the cycling loss")
    cycling_activation_K: float = _field(2400.0, "K", "Arrhenius constant of the cycling loss")
    cycling_acceleration: float = _field(4.0, "1", "cycling loss grows by (1 + this * loss so far)")
    plating_rate: float = _field(1.2e-3, "1/cycle", "plating loss per cycle, 10 K below the onset")
    plating_onset_C: float = _field(15.0, "degC", "charging below this cell temperature plates lithium")
    charge_current_A: float = _field(1.5, "A", "constant-current part of the CC-CV charge")
    charge_hours: float = _field(2.5, "h", "charge and rests between two discharges")
    rest_probability: float = _field(0.03, "1", "chance of a long rest before a cycle")
    rest_days: float = _field(4.0, "d", "length of a long rest")
    regeneration: float = _field(0.012, "1", "capacity a long rest gives back (fraction of new)")
    regeneration_decay: float = _field(0.6, "1", "share of the regenerated capacity left a cycle later")
    voltage_noise: float = _field(0.003, "V", "voltage sensor noise (1 sigma)")
    current_noise: float = _field(0.003, "A", "current sensor noise (1 sigma)")
    temperature_noise: float = _field(0.15, "degC", "temperature sensor noise (1 sigma)")
    capacity_noise: float = _field(0.003, "Ah", "coulomb-counting error of the capacity (1 sigma)")
    samples: int = _field(100, "1", "samples logged per discharge")
    rest_samples: int = _field(10, "1", "samples logged in the 10 min rest after a discharge")

    def replace(self, **changes: Any) -> ReferenceBatteryParameters:
        """A copy with some parameters changed."""
        return replace(self, **changes)

    @classmethod
    def described(cls) -> list[tuple[str, Any, str, str]]:
        """(name, default, unit, doc) of every parameter."""
        return [(f.name, f.default, f.metadata["unit"], f.metadata["doc"]) for f in fields(cls)]


@dataclass(frozen=True)
class CellTest:
    """One cell's test: ambient temperature, discharge current, cut-off voltage, at most ``cycles``
    discharges (fewer when the measured capacity falls below ``end_of_life`` of the first)."""

    name: str
    ambient_temperature: float
    current_A: float
    cutoff_V: float = 2.7
    cycles: int = 200
    end_of_life: float = 0.55


def default_cells(cycles: int = 200) -> list[CellTest]:
    """The default bench: 5 ambient temperatures (5-45 degC) x 3 currents (0.5, 1, 2 A: C/4 to 1C),
    cut-off voltages as NASA's cells had (2.7, 2.5, 2.2, 2.5 V in turn)."""
    cutoffs = (2.7, 2.5, 2.2, 2.5)
    cells: list[CellTest] = []
    for t_amb in (5.0, 15.0, 25.0, 35.0, 45.0):
        for current in (0.5, 1.0, 2.0):
            n = len(cells)
            cells.append(CellTest(f"R{n + 1:04d}", t_amb, current, cutoffs[n % len(cutoffs)], cycles))
    return cells


def _arrhenius(temp_c: Any, activation_k: float) -> Any:
    return np.exp(activation_k * (1.0 / _T_REF - 1.0 / (np.asarray(temp_c) + _KELVIN)))


@dataclass
class _CellState:
    """A reference cell's ageing state between two cycles."""

    capacity0: float
    sei_hours: float = 0.0  # effective hours at 25 degC
    cycling: float = 0.0
    plating: float = 0.0
    regenerated: float = 0.0

    def loss(self, p: ReferenceBatteryParameters) -> float:
        return p.sei_rate * math.sqrt(self.sei_hours) + self.cycling + self.plating

    def total_capacity(self, p: ReferenceBatteryParameters) -> float:
        return self.capacity0 * max(1.0 - self.loss(p) + self.regenerated, 0.05)

    def resistance(self, p: ReferenceBatteryParameters) -> float:
        sei = p.sei_rate * math.sqrt(self.sei_hours)
        return p.resistance_ohm * (1.0 + 1.5 * sei + 0.5 * self.cycling + 2.0 * self.plating)


def cycle_capacity(total_Ah: float, resistance_ohm: float, current_A: float, ambient_c: float,
                   cutoff_v: float, p: ReferenceBatteryParameters) -> dict[str, Any]:
    """One constant-current discharge of a full cell: when it reaches the cut-off, and its traces.

    Returns ``t_end`` (s), ``capacity`` (Ah to the cut-off, noise-free) and the
    fine traces ``t``, ``voltage``, ``temperature`` up to ``t_end``.
    """
    t_max = 1.05 * 3600.0 * total_Ah / current_A
    t = np.linspace(0.0, t_max, 2001)
    soc = 1.0 - current_A * t / (3600.0 * total_Ah)
    heat = current_A**2 * resistance_ohm + p.reversible_heat_V * current_A
    temp = ambient_c + heat * p.thermal_resistance * (1.0 - np.exp(-t / p.thermal_time_s))
    r = resistance_ohm * _arrhenius(temp, p.resistance_activation_K)
    # diffusion overpotential that steepens as the cell empties
    eta = 0.02 * current_A / np.maximum(soc + 0.03, 0.005)
    voltage = ocv(np.clip(soc, 0.0, 1.0)) - current_A * r - eta + np.minimum(soc, 0.0) * 20.0
    below = np.flatnonzero(voltage <= cutoff_v)
    if below.size == 0:
        k = len(t) - 1
        t_end = float(t[k])
    elif below[0] == 0:
        t_end, k = 0.0, 0
    else:
        k = int(below[0])
        # linear interpolation of the crossing between samples k-1 and k
        v0, v1 = voltage[k - 1], voltage[k]
        t_end = float(t[k - 1] + (t[k] - t[k - 1]) * (v0 - cutoff_v) / (v0 - v1))
    return {"t_end": t_end, "capacity": current_A * t_end / 3600.0, "t": t[:k + 1],
            "voltage": voltage[:k + 1], "temperature": temp[:k + 1], "soc_end": 1.0 - current_A * t_end
            / (3600.0 * total_Ah), "resistance": float(r[min(k, len(r) - 1)])}


def _age(state: _CellState, cell: CellTest, hours: float, mean_temp: float, depth: float,
         p: ReferenceBatteryParameters) -> None:
    """The damage one cycle (discharge of ``hours`` at ``mean_temp``, then a charge) does."""
    charge_temp = cell.ambient_temperature + 0.3 * p.charge_current_A**2 * p.resistance_ohm \
        * p.thermal_resistance
    loss = state.loss(p)
    state.sei_hours += hours * float(_arrhenius(mean_temp, p.sei_activation_K)) \
        + p.charge_hours * float(_arrhenius(charge_temp, p.sei_activation_K))
    c_rate = cell.current_A / p.capacity_Ah
    state.cycling += (p.cycling_rate * c_rate**p.cycling_rate_exponent * depth
                      * float(_arrhenius(mean_temp, p.cycling_activation_K))
                      * (1.0 + p.cycling_acceleration * loss))
    cold = max(0.0, (p.plating_onset_C - charge_temp) / 10.0)
    state.plating += p.plating_rate * (p.charge_current_A / p.capacity_Ah) ** 1.5 * cold**2
    state.regenerated *= p.regeneration_decay


def _rows(cell: CellTest, cycle: int, start: _dt.datetime, run: dict[str, Any], measured: float,
          true: float, p: ReferenceBatteryParameters, rng: np.random.Generator) -> dict[str, Any]:
    """The log rows of one discharge and the rest after it."""
    t_end = run["t_end"]
    n, n_rest = p.samples, p.rest_samples
    t_dis = np.linspace(0.0, t_end, n)
    v_dis = np.interp(t_dis, run["t"], run["voltage"]) if len(run["t"]) > 1 else np.full(n, run["voltage"][0])
    temp_dis = np.interp(t_dis, run["t"], run["temperature"]) if len(run["t"]) > 1 \
        else np.full(n, run["temperature"][0])
    t_rest = t_end + np.linspace(60.0, 600.0, n_rest)
    after = t_rest - t_end
    v_open = float(ocv(max(run["soc_end"], 0.0)))
    v_rest = v_open - (v_open - run["voltage"][-1]) * np.exp(-after / 60.0)
    temp_rest = cell.ambient_temperature + (run["temperature"][-1] - cell.ambient_temperature) \
        * np.exp(-after / p.thermal_time_s)
    current = np.concatenate([np.full(n, cell.current_A), np.zeros(n_rest)])
    voltage = np.concatenate([v_dis, v_rest])
    temperature = np.concatenate([temp_dis, temp_rest])
    total = n + n_rest
    lead = 0.03  # ohm of the leads between the cell and the load
    return {
        "Battery": [cell.name] * total,
        "id_cycle": np.full(total, cycle),
        "type": ["discharge"] * total,
        "ambient_temperature": np.full(total, cell.ambient_temperature),
        "time": [start.strftime("%Y-%m-%d %H:%M:%S")] * total,
        "Voltage_measured": voltage + rng.normal(0.0, p.voltage_noise, total),
        "Current_measured": -current + rng.normal(0.0, p.current_noise, total),
        "Temperature_measured": temperature + rng.normal(0.0, p.temperature_noise, total),
        "Current_load": current + rng.normal(0.0, p.current_noise, total),
        "Voltage_load": np.where(current > 0, voltage - lead * current, 0.0)
        + rng.normal(0.0, p.voltage_noise, total),
        "Time": np.concatenate([t_dis, t_rest]),
        "Capacity": np.full(total, measured),
        "true_Capacity": np.full(total, true),
    }


def _test_cell(cell: CellTest, p: ReferenceBatteryParameters, rng: np.random.Generator,
               start: _dt.datetime) -> list[dict[str, Any]]:
    state = _CellState(p.capacity_Ah * (1.0 + p.capacity_spread * rng.standard_normal()))
    parts = []
    clock = start
    first = None
    for cycle in range(1, cell.cycles + 1):
        if cycle > 1 and rng.random() < p.rest_probability:
            state.sei_hours += p.rest_days * 24.0 * float(_arrhenius(cell.ambient_temperature,
                                                                     p.sei_activation_K))
            state.regenerated += p.regeneration
            clock += _dt.timedelta(days=p.rest_days)
        total = state.total_capacity(p)
        run = cycle_capacity(total, state.resistance(p), cell.current_A, cell.ambient_temperature,
                             cell.cutoff_V, p)
        true = run["capacity"]
        measured = true * (1.0 + 0.001 * rng.standard_normal()) + p.capacity_noise * rng.standard_normal()
        parts.append(_rows(cell, cycle, clock, run, measured, true, p, rng))
        first = true if first is None else first
        if true < cell.end_of_life * first:
            break
        hours = run["t_end"] / 3600.0
        temps = run["temperature"]
        mean_temp = float(np.mean(temps)) if len(temps) else cell.ambient_temperature
        _age(state, cell, hours, mean_temp, min(true / total, 1.0), p)
        clock += _dt.timedelta(hours=hours + p.charge_hours)
    return parts


def generate(cells: list[CellTest] | None = None, *, seed: int = 0,
             params: ReferenceBatteryParameters | None = None) -> pd.DataFrame:
    """The cycling log of a bench of reference cells, in NASA's column layout plus ``true_Capacity``.

    Same cells + seed + parameters: the same log, bit for bit.
    """
    p = params or ReferenceBatteryParameters()
    rng = np.random.default_rng(seed)
    start = _dt.datetime(2024, 1, 8, 9, 0, 0)
    parts: list[dict[str, Any]] = []
    for cell in cells if cells is not None else default_cells():
        parts += _test_cell(cell, p, rng, start)
    columns = parts[0].keys()
    frame = pd.DataFrame({c: np.concatenate([np.asarray(part[c]) for part in parts]) for c in columns})
    frame.attrs["source"] = f"reference battery bench (seed {seed})"
    return frame

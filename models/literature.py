"""Published figures of merit of CO2-to-formate flow cells, beside the twin's models.

The figures come from public abstracts (``shared/process.md``, "Published figures of
merit"); the conditions behind them are mostly not given. :func:`compare` puts each
beside the physics baseline, the trained models and the reference plant (the simulated
pilot the models learn from), all at the twin's nominal operating point
(:data:`CONDITIONS`: a fresh 25 cm2 cathode, pure CO2 at 100 mL/min, 1 M electrolytes)
at the figure's current density, once the cell has settled. A plausible plant, and so
a plausible twin, stays near them. TensorFlow-free.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.reference_plant import INPUTS, ReferencePlant
from models.report import estimate

__all__ = ["Figure", "FIGURES", "CONDITIONS", "SETTLE_S", "BEST_OF", "compare"]


@dataclass(frozen=True)
class Figure:
    """One published figure: its source, the current density (None: not given), the variable
    and the value reported."""

    source: str
    current_density: float | None
    variable: str
    value: float
    note: str = ""


FIGURES: tuple[Figure, ...] = (
    Figure("Del Castillo et al., AIChE J 2014 (Sn GDE, single pass)", 39.0, "fe_formate", 0.70,
           "current density derived"),
    Figure("Bicarbonate-fed Bi cell, RSC 2024", 100.0, "cell_voltage", 3.1),
    Figure("Yang et al., J CO2 Util 2017 (Sn GDE, 3-compartment)", 140.0, "cell_voltage", 3.5),
    Figure("Kopljar et al., J Appl Electrochem 2014 (Sn GDE)", 200.0, "fe_formate", 0.90,
           "H2 < 3 %, more H2 above 200 mA/cm2"),
    Figure("Bicarbonate-fed Bi cell, RSC 2024", 300.0, "fe_formate", 0.846),
    Figure("Diaz-Sainz et al., J Environ Chem Eng 2023 (NiO anode)", None, "fe_formate", 1.0,
           "FE up to 100 %: compared with the best FE over 20-350 mA/cm2"),
)
#: the operating point the figures are compared at (the reactor's port defaults)
CONDITIONS: dict[str, float] = {
    "gas_flow": 100.0, "co2_fraction": 100.0, "humidity": 90.0, "anolyte_flow": 5.57,
    "catholyte_flow": 5.57, "anolyte_conc": 1.0, "catholyte_conc": 1.0, "ambient_temperature": 25.0,
}
#: s at constant current before the reference plant is read: beyond three time constants
#: of its cell temperature (about 11 min) and its flooding (4 min)
SETTLE_S = 3600.0
#: mA/cm2: where the best FE is looked for, for a figure without a current density
BEST_OF = tuple(float(j) for j in range(20, 351, 10))


def _operating_points(plant: ReferencePlant, densities: list[float]) -> pd.DataFrame:
    """One plant-log row per current density: the reference plant's settled true values."""
    n_steps = round(SETTLE_S)
    area = plant.params.cell.area_cm2
    schedule: dict[str, Any] = {k: np.full((len(densities), n_steps), CONDITIONS.get(k, 0.0))
                                for k in INPUTS}
    schedule["current"] = np.repeat(np.asarray(densities)[:, None] * area / 1000.0, n_steps, axis=1)
    true = plant.simulate(schedule, 1.0)
    row = {k: v[:, -1] for k, v in true.items() if np.ndim(v) == 2}
    frame = pd.DataFrame({k: row[k] for k in (*INPUTS, "current_density", "charge_passed",
                                              "hours_on_stream", "cell_temperature")})
    frame["area_cm2"] = area
    for variable in ("cell_voltage", "fe_formate", "outlet_co2_fraction", "anolyte_ph"):
        frame[f"true_{variable}"] = row[variable]
    return frame


def compare(models_dir: str | Path, plant: ReferencePlant | None = None) -> list[dict[str, Any]]:
    """Every figure of :data:`FIGURES` with the twin's values at :data:`CONDITIONS`.

    Each entry: ``source``, ``current_density`` (None: the best over :data:`BEST_OF`),
    ``variable``, ``published``, ``note``, ``reference`` (the reference plant) and one
    value per kind (``physics`` and each trained kind in ``models_dir``).
    """
    plant = plant if plant is not None else ReferencePlant()
    fixed = sorted({f.current_density for f in FIGURES if f.current_density is not None})
    densities = [*fixed, *BEST_OF]
    frame = _operating_points(plant, densities)
    models = estimate(frame, models_dir)
    out = []
    for figure in FIGURES:
        if figure.current_density is not None:
            rows = np.arange(len(fixed))[np.asarray(fixed) == figure.current_density]
            pick = int(rows[0])
        else:
            pick = None
        entry: dict[str, Any] = {"source": figure.source, "current_density": figure.current_density,
                                 "variable": figure.variable, "published": figure.value,
                                 "note": figure.note}
        series = {"reference": frame[f"true_{figure.variable}"].to_numpy(float),
                  **models.values[figure.variable]}
        for name, values in series.items():
            entry[name] = float(values[pick] if pick is not None
                                else np.max(values[len(fixed):]))
        out.append(entry)
    return out

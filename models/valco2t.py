"""The existing VALCO2T twin's four Keras models as surrogates of this twin.

Each model takes named plant inputs plus its own output (a training leak: ``V``,
``C_H2_out``, ``C_CO2_out``, ``pH``), which the original service fed with a
constant; we feed the same constants and, as it did, take ``abs()`` of the
predictions. FE to formate is derived from the outlet-H2 estimate by the
original service's formulas (:func:`fe_from_h2`), including its choice of the
catholyte flow as the H2-carrying flow and its constants (ideal gas at
1.01325 bar and 25 degC with R = 0.08314 L bar/(mol K)).

The models ship without a training envelope; the BatchNormalization moving
statistics after their input Concatenate are the training-set mean and
variance of each input, so the envelope guard uses mean +- 3 standard
deviations (:data:`ENVELOPE_SIGMAS`), an approximation stated in every warning's
model description.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from collections.abc import Mapping, Sequence

import numpy as np

from cosim.errors import ModelError

from .network import Network
from .surrogate import NetworkSurrogate, Surrogate, load_network_surrogate

__all__ = [
    "FILES", "INPUT_MAP", "SELF_INPUTS", "ENVELOPE_SIGMAS", "FE_CONSTANTS", "fe_from_h2",
    "derived", "load", "default_dir", "input_statistics",
]

#: our variable -> the VALCO2T model file that estimates it (FE via the H2 model)
FILES = {
    "cell_voltage": "DNN_V_model.keras",
    "fe_formate": "DNN_CH2_model.keras",
    "outlet_co2_fraction": "DNN_CCO2_model.keras",
    "anolyte_ph": "DNN_pH_model.keras",
}
#: VALCO2T input name -> our reactor signal (same units: A, mL/min, %, concentration)
INPUT_MAP = {
    "I": "current",
    "Q_an": "anolyte_flow",
    "Q_cat": "catholyte_flow",
    "C_an": "anolyte_conc",
    "C_cat": "catholyte_conc",
    "Q_co2_in": "gas_flow",
    "C_CO2_in": "co2_fraction",
}
#: the constant the original service fed to each model's own-output input
SELF_INPUTS = {"V": 10.0, "C_H2_out": 0.0, "C_CO2_out": 0.0, "pH": 7.0}
ENVELOPE_SIGMAS = 3.0
#: constants of the original service's derivations (its config.json and code)
FE_CONSTANTS = {
    "F": 96485.33, "z_h2": 2, "z_hcoo": 2, "Mw_h2": 2.0, "Mw_hcoo": 45.0, "R": 0.08314,
    "P_out_bar": 1.01325, "T_out_K": 298.15,
}
ENV_DIR = "CO2TWIN_VALCO2T_DIR"


def fe_from_h2(h2_percent: Any, current_a: Any, catholyte_flow_ml_min: Any) -> Any:
    """FE to formate (fraction) from outlet H2 %, as the original service derived it.

    H2 g/L = %/100 * Mw * P / (R T); H2 g/min = g/L * Q_cat / 1000; FE_H2 % =
    z F (n_H2 / 60) 100 / I; FE = 100 - FE_H2 (both in %; here as fractions).
    With no current the service reported FE_H2 = 0.
    """
    k = FE_CONSTANTS
    g_per_l = np.asarray(h2_percent, dtype=float) / 100.0 * k["Mw_h2"] * k["P_out_bar"] / (
        k["R"] * k["T_out_K"])
    mol_min = g_per_l * np.asarray(catholyte_flow_ml_min, dtype=float) / 1000.0 / k["Mw_h2"]
    current = np.asarray(current_a, dtype=float)
    fe_h2 = np.where(current > 0.0, k["z_h2"] * k["F"] * (mol_min / 60.0) / np.where(
        current > 0.0, current, 1.0), 0.0)
    return 1.0 - fe_h2


def derived(voltage: Any, fe: Any, current_a: Any, catholyte_flow_ml_min: Any) -> dict[str, Any]:
    """The service's other outputs from V, FE and the inputs (its units and names).

    produccion_hcoo_molmin (mol/min), produccion_hcoo_gmin (g/min with Mw 45),
    concentracion_hcoo (g/L in the catholyte flow), potencia (W),
    consumo_energetico (kWh/kmol = W per mol/h), FE (%).
    """
    k = FE_CONSTANTS
    current = np.asarray(current_a, dtype=float)
    q = np.asarray(catholyte_flow_ml_min, dtype=float)
    n = np.asarray(fe, dtype=float) * current / (k["z_hcoo"] * k["F"]) * 60.0
    m = n * k["Mw_hcoo"]
    power = np.asarray(voltage, dtype=float) * current
    return {
        "FE": 100.0 * np.asarray(fe, dtype=float),
        "produccion_hcoo_molmin": n,
        "produccion_hcoo_gmin": m,
        "concentracion_hcoo": np.where(q > 0, m * 1000.0 / np.where(q > 0, q, 1.0), 0.0),
        "potencia": power,
        "consumo_energetico": np.where(n > 0, power / np.where(n > 0, n * 60.0, 1.0), 0.0),
    }


def default_dir() -> Path | None:
    """The VALCO2T models folder: ``CO2TWIN_VALCO2T_DIR`` if set, else the first
    ``shared/valco2t/models`` holding them in or above the working directory (the layout
    the project's workspace and CI use: ``shared/`` beside the repository)."""
    value = os.environ.get(ENV_DIR)
    if value:
        return Path(value)
    here = Path.cwd()
    for folder in (here, *here.parents):
        candidate = folder / "shared" / "valco2t" / "models"
        if (candidate / FILES["cell_voltage"]).is_file():
            return candidate
    return None


def input_statistics(network: Network) -> dict[str, tuple[float, float]]:
    """Training mean and std of each one-column input, from the normalisation right after the inputs.

    Inputs whose statistics are the untrained defaults (mean 0, std 1, as in the
    pH model, whose BatchNormalization never updated them) are left out: they
    say nothing about the training data. So are inputs of several columns, which
    have no single mean.
    """
    stats = {}
    col = 0
    for name, size in zip(network.input_names, network.input_sizes, strict=True):
        m, s = network.input_center[col], network.input_scale[col]
        col += size
        if size == 1 and np.isfinite(m) and np.isfinite(s) and not (m == 0.0 and abs(s - 1.0) < 1e-2):
            stats[name] = (float(m), float(s))
    return stats


class _FromH2(Surrogate):
    """FE to formate from the VALCO2T outlet-H2 model and the service's derivation."""

    def __init__(self, h2: NetworkSurrogate) -> None:
        self.h2 = h2
        self.variable = "fe_formate"
        self.kind = "valco2t"
        self.source = h2.source
        self.inputs = h2.inputs
        self.lower, self.upper = h2.lower, h2.upper
        self._i = self.inputs.index("current")
        self._q = self.inputs.index("catholyte_flow")

    def predict(self, x: np.ndarray, physics: np.ndarray) -> np.ndarray:
        h2 = self.h2.predict(x, physics)
        return fe_from_h2(h2, x[:, self._i], x[:, self._q])

    def predict_one(self, x: Sequence[float], physics: float) -> float:
        return float(fe_from_h2(self.h2.predict_one(x, physics), x[self._i], x[self._q]))

    def describe(self) -> str:
        return f"fe_formate valco2t model (outlet H2 from {self.source}, FE by the service's formulas)"


def load(variable: str, directory: str | Path | None = None) -> Surrogate:
    """The VALCO2T surrogate of ``variable`` from the folder holding the four models."""
    folder = Path(directory) if directory is not None else default_dir()
    if folder is None:
        raise ModelError(f"valco2t models for {variable}: say where they are (models.valco2t_dir "
                         f"in the scenario, or the environment variable {ENV_DIR})")
    if variable not in FILES:
        raise ModelError(f"valco2t has no model of {variable!r}; it has {', '.join(FILES)}")
    path = folder / FILES[variable]
    if not path.is_file():
        raise ModelError(f"{path}: no such VALCO2T model file (expected {FILES[variable]} in "
                         f"{folder})")
    from .runtime import load_keras

    network = load_keras(path)
    names = network.input_names
    inputs = {n: INPUT_MAP[n] for n in names if n in INPUT_MAP}
    constants = {n: SELF_INPUTS[n] for n in names if n in SELF_INPUTS}
    stats = input_statistics(network)
    envelope = {INPUT_MAP[n]: (m - ENVELOPE_SIGMAS * s, m + ENVELOPE_SIGMAS * s)
                for n, (m, s) in stats.items() if n in INPUT_MAP}
    surrogate = load_network_surrogate(variable, path, kind="nn", inputs=inputs,
                                       constants=constants, absolute=True)
    surrogate.kind = "valco2t"
    if len(envelope) == len(surrogate.inputs):
        _set_envelope(surrogate, envelope)
    if variable == "fe_formate":
        return _FromH2(surrogate)
    return surrogate


def _set_envelope(s: NetworkSurrogate, envelope: Mapping[str, tuple[float, float]]) -> None:
    s.lower = np.array([envelope[name][0] for name in s.inputs])
    s.upper = np.array([envelope[name][1] for name in s.inputs])

"""Which rows of a plant log a model trains, validates, is tested and extrapolates on, and its scores.

:class:`Splits` draws the splits of a log once, deterministically for a seed,
and rebuilds them from what a model card records (``data.splits``), so a model
is always scored on rows it never trained on. :func:`exclusions` names the rows
a model of a variable is never trained or scored on; :func:`score` gives the
metrics (:data:`METRICS`) a card reports per split.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from cosim.errors import ModelError

__all__ = ["METRICS", "Splits", "exclusions", "score"]

METRICS = ("mae", "rmse", "r2")


def score(predicted: np.ndarray, reference: np.ndarray) -> dict[str, float | None]:
    """MAE, RMSE and R2 of ``predicted`` against ``reference`` (``None`` where undefined)."""
    predicted, reference = np.asarray(predicted, float), np.asarray(reference, float)
    if predicted.size == 0:
        return {m: None for m in METRICS}
    err = predicted - reference
    spread = float(np.sum((reference - reference.mean()) ** 2))
    return {
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "r2": 1.0 - float(np.sum(err**2)) / spread if spread > 0.0 else None,
    }


def exclusions(variable: str, frame: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Rows a model of ``variable`` neither trains nor is scored on, whatever the split: reason -> mask."""
    if variable == "fe_formate":
        return {"current_density == 0 (cell at rest, FE undefined)":
                np.asarray(frame["current_density"], float) == 0.0}
    return {}


@dataclass(frozen=True)
class Splits:
    """Which log rows train, validate, test and extrapolate; rebuilt from a card.

    Only rows in ``phases`` count (``None``: all rows; a log without a ``phase``
    column has no phases). ``extrapolation``: rows with ``current_density`` above
    ``threshold``, never seen in training: a fixed current density beyond the range the
    models must cover when the log reaches above it, else its ``quantile`` over those rows
    (``quantile`` records the share of rows at or below the threshold either way).
    The other rows are split by experiment so that neighbouring samples do not
    leak: ``test`` and ``validation`` (early stopping) experiments are drawn
    with ``seed``; the rest train.
    """

    seed: int
    quantile: float
    threshold: float
    test_experiments: tuple[int, ...]
    validation_experiments: tuple[int, ...]
    phases: tuple[str, ...] | None = None

    @classmethod
    def choose(cls, frame: Mapping[str, Any], seed: int = 0, *, phases: tuple[str, ...] | None = None,
               quantile: float = 0.85, test_fraction: float = 0.15,
               validation_fraction: float = 0.15, above: float | None = None) -> Splits:
        """Draw the splits of a log, deterministically for ``seed``. ``above``: extrapolate
        above this current density (mA/cm2) if the log has rows there, else above ``quantile``."""
        phases = tuple(phases) if phases is not None and "phase" in frame else None
        used = _in_phases(frame, phases)
        if not used.any():
            raise ModelError(f"the log has no rows in phase(s) {', '.join(phases or ())}")
        j = np.asarray(frame["current_density"], float)
        if above is not None and (j[used] > above).any():
            threshold, quantile = float(above), float(np.mean(j[used] <= above))
        else:
            threshold = float(np.quantile(j[used], quantile))
        groups = np.unique(np.asarray(frame["experiment"])[used & (j <= threshold)])
        n = len(groups)
        n_test = max(1, round(test_fraction * n))
        n_val = max(1, round(validation_fraction * (n - n_test)))
        if n - n_test - n_val < 1:
            raise ModelError(
                f"the log has {n} experiment(s) at current_density <= {threshold:g} mA/cm2; "
                "a group split into train, validation and test needs at least 3"
            )
        order = np.random.default_rng(seed).permutation(groups)
        return cls(seed, quantile, threshold, tuple(sorted(int(g) for g in order[:n_test])),
                   tuple(sorted(int(g) for g in order[n_test:n_test + n_val])), phases)

    def exclusions(self, frame: Mapping[str, Any], variable: str | None = None) -> dict[str, np.ndarray]:
        """Rows left out of every split: reason -> mask (phases, then :func:`exclusions`)."""
        out = {}
        if self.phases is not None:
            if "phase" not in frame:
                raise ModelError(f"the splits keep phase(s) {', '.join(self.phases)} but the log has "
                                 "no 'phase' column")
            out[f"phase not in {{{', '.join(self.phases)}}} (transient: a static model has no "
                "state for it)"] = ~_in_phases(frame, self.phases)
        return {**out, **(exclusions(variable, frame) if variable is not None else {})}

    def masks(self, frame: Mapping[str, Any], variable: str | None = None) -> dict[str, np.ndarray]:
        """Row masks ``train``, ``validation``, ``test``, ``extrapolation`` (minus exclusions)."""
        j = np.asarray(frame["current_density"], float)
        experiment = np.asarray(frame["experiment"])
        extrapolation = j > self.threshold
        test = ~extrapolation & np.isin(experiment, self.test_experiments)
        validation = ~extrapolation & np.isin(experiment, self.validation_experiments)
        keep = np.ones(len(j), dtype=bool)
        for mask in self.exclusions(frame, variable).values():
            keep &= ~mask
        return {"train": keep & ~(extrapolation | test | validation), "validation": keep & validation,
                "test": keep & test, "extrapolation": keep & extrapolation}

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "phases": None if self.phases is None else list(self.phases),
            "extrapolation": {"column": "current_density", "quantile": self.quantile,
                              "threshold": self.threshold},
            "test_experiments": list(self.test_experiments),
            "validation_experiments": list(self.validation_experiments),
            "method": (
                "rows in phases only (null: all); extrapolation: rows with current_density > threshold "
                "(a fixed current density, or the quantile over those rows; quantile: the share at or "
                "below it); test and validation: experiments drawn by numpy "
                "default_rng(seed).permutation among the other rows; train: the rest"
            ),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: str = "<card>") -> Splits:
        """Splits recorded in a card's ``data.splits``."""
        try:
            extra, phases = raw["extrapolation"], raw.get("phases")
            return cls(int(raw["seed"]), float(extra["quantile"]), float(extra["threshold"]),
                       tuple(int(e) for e in raw["test_experiments"]),
                       tuple(int(e) for e in raw["validation_experiments"]),
                       None if phases is None else tuple(str(p) for p in phases))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{source}: data.splits cannot rebuild the splits ({exc!r}); "
                             "retrain the model with this co2twin") from None


def _in_phases(frame: Mapping[str, Any], phases: tuple[str, ...] | None) -> np.ndarray:
    if phases is None:
        return np.ones(len(frame["current_density"]), dtype=bool)
    return np.isin(np.asarray(frame["phase"]).astype(str), phases)

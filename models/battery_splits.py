"""Which cycles of a battery log an ageing model trains, validates, is tested and extrapolates on.

Like :class:`models.splits.Splits` for the reactor, with the battery's two questions:
does a model work on cells it never saw (``test``: held-out cells), and does it
predict the future (``extrapolation``: every cycle above a cycle-number threshold,
never seen in training, of every cell)? ``validation`` cells stop the training early;
the rest train. The splits are drawn once, deterministically for a seed, and rebuilt
from what a model card records.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from cosim.errors import ModelError

__all__ = ["BatterySplits"]


@dataclass(frozen=True)
class BatterySplits:
    """Cycle-number threshold (its ``quantile`` over all cycles) and the held-out cells."""

    seed: int
    quantile: float
    threshold: float
    test_cells: tuple[str, ...]
    validation_cells: tuple[str, ...]

    @classmethod
    def choose(cls, table: Mapping[str, Any], seed: int = 0, *, quantile: float = 0.7,
               test_fraction: float = 0.15, validation_fraction: float = 0.15) -> BatterySplits:
        """Draw the splits of a per-cycle table (:func:`models.battery_log.cycles`)."""
        cycle = np.asarray(table["cycle"], float)
        threshold = float(np.floor(np.quantile(cycle, quantile)))
        cells = np.unique(np.asarray(table["battery"]).astype(str))
        n = len(cells)
        n_test = max(1, round(test_fraction * n))
        n_val = max(1, round(validation_fraction * (n - n_test)))
        if n - n_test - n_val < 1:
            raise ModelError(f"the log has {n} cell(s); held-out test and validation cells and cells "
                             "to train on need at least 3")
        order = np.random.default_rng(seed).permutation(cells)
        return cls(seed, quantile, threshold, tuple(sorted(str(c) for c in order[:n_test])),
                   tuple(sorted(str(c) for c in order[n_test:n_test + n_val])))

    def masks(self, table: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Row masks ``train``, ``validation``, ``test`` (held-out cells), ``extrapolation`` (late cycles)."""
        cycle = np.asarray(table["cycle"], float)
        cell = np.asarray(table["battery"]).astype(str)
        late = cycle > self.threshold
        test = ~late & np.isin(cell, self.test_cells)
        validation = ~late & np.isin(cell, self.validation_cells)
        return {"train": ~(late | test | validation), "validation": validation, "test": test,
                "extrapolation": late}

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "extrapolation": {"column": "cycle", "quantile": self.quantile, "threshold": self.threshold},
            "test_cells": list(self.test_cells),
            "validation_cells": list(self.validation_cells),
            "method": ("extrapolation: cycles above threshold (the floor of that quantile of all cycle "
                       "numbers), of every cell; test and validation: cells drawn by numpy "
                       "default_rng(seed).permutation of the sorted cell names, their cycles up to the "
                       "threshold; train: the other cells' cycles up to the threshold"),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: str = "<card>") -> BatterySplits:
        """Splits recorded in a card's ``data.splits``."""
        try:
            extra = raw["extrapolation"]
            return cls(int(raw["seed"]), float(extra["quantile"]), float(extra["threshold"]),
                       tuple(str(c) for c in raw["test_cells"]),
                       tuple(str(c) for c in raw["validation_cells"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{source}: data.splits cannot rebuild the battery splits ({exc!r}); "
                             "retrain the model with this co2twin") from None

"""Fidelity of the battery ageing models: physics vs nn vs hybrid on held-out cells and late cycles.

:func:`compare` scores each model's capacity (Ah) on the splits its card records
(:class:`models.battery_splits.BatterySplits`): ``test``, cells no model saw, and
``extrapolation``, every cycle above the training range's cycle number (train on
early cycles, predict later ones). :func:`targets` states the claims the hybrid is
built for and whether they hold. Runs on the NumPy runtime; no TensorFlow.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cosim.errors import ModelError
from models.battery_card import KINDS, card_file, read_card
from models.battery_log import cycles, read_log, validate_log
from models.battery_models import NetworkAgeing, PhysicsAgeing
from models.battery_splits import BatterySplits
from models.cards import ModelCard
from models.splits import score

__all__ = ["SPLITS", "compare", "targets", "table_for"]

SPLITS = ("test", "extrapolation")


def table_for(log: pd.DataFrame | str | Path) -> pd.DataFrame:
    """The per-cycle table of a log (a file or a DataFrame), checked."""
    if isinstance(log, pd.DataFrame):
        return cycles(validate_log(log, source=str(log.attrs.get("source", "<DataFrame>"))))
    return cycles(read_log(log))


def _cards(models_dir: Path) -> dict[str, ModelCard]:
    found = {kind: read_card(card_file(models_dir, kind)) for kind in KINDS
             if card_file(models_dir, kind).exists()}
    if not found:
        raise ModelError(f"{models_dir}: no battery model cards found (run `co2twin battery train`)")
    splits = {kind: BatterySplits.from_dict(c.data["splits"], f"{kind} card") for kind, c in found.items()}
    if len(set(splits.values())) > 1:
        raise ModelError(f"{models_dir}: the battery models were trained on different splits; retrain them "
                         "together")
    return found


def compare(log: pd.DataFrame | str | Path, models_dir: str | Path, *, reference: str = "truth"
            ) -> dict[str, dict[str, dict[str, float | None]]]:
    """``{split: {kind: {mae, rmse, r2}}}`` of the capacity in Ah, ``kind`` in physics, nn, hybrid.

    ``reference``: ``truth`` (the log's ``true_Capacity``; a real log has none and
    falls back to the measurement) or ``measured``.
    """
    models_dir = Path(models_dir)
    cards = _cards(models_dir)
    table = table_for(log)
    splits = BatterySplits.from_dict(next(iter(cards.values())).data["splits"], str(models_dir))
    masks = splits.masks(table)
    column = "true_capacity" if reference == "truth" and "true_capacity" in table else "capacity"
    actual = table[column].to_numpy(float)
    c0 = table["c0"].to_numpy(float)
    args = (table["cycle"].to_numpy(float), table["temperature"].to_numpy(float),
            table["c_rate"].to_numpy(float))
    models: dict[str, Any] = {"physics": PhysicsAgeing()}
    models.update({kind: NetworkAgeing(models_dir / f"battery_capacity.{kind}.keras") for kind in cards})
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for split in SPLITS:
        rows = masks[split]
        out[split] = {kind: score(np.asarray(m.fraction(*args), float)[rows] * c0[rows], actual[rows])
                      for kind, m in models.items()}
    return out


def targets(figures: dict[str, dict[str, dict[str, float | None]]]) -> list[dict[str, Any]]:
    """The hybrid's claims, as pass/fail records: on late cycles (extrapolation) a lower capacity MAE
    than physics and than nn; on held-out cells (test) a lower MAE than physics. (Against nn on
    held-out cells the figure is reported, not claimed: which of the two wins there depends on
    which cells are held out.)"""
    claims = (("extrapolation", "physics"), ("extrapolation", "nn"), ("test", "physics"))
    checks = []
    for split, other in claims:
        kinds = figures.get(split, {})
        hybrid = kinds.get("hybrid", {}).get("mae")
        value = kinds.get(other, {}).get("mae")
        if hybrid is None or value is None:
            continue
        checks.append({"split": split, "target": f"hybrid MAE below {other} MAE", "value": hybrid,
                       "limit": value, "passed": hybrid < value})
    return checks

"""How the trained models compare with physics on a log (``co2twin models report``).

TensorFlow-free: networks run through :mod:`models.runtime`. Every split is
rebuilt from the model cards (:class:`models.splits.Splits`), so the rows a
model is scored on are exactly the ones it never trained on.

:func:`compare` returns ``{variable: {split: {kind: {"mae", "rmse", "r2"}}}}``
for the splits ``test`` and ``extrapolation`` and the kinds ``physics``,
``nn``, ``hybrid`` (those with a model file). ``reference="truth"`` (default)
scores against the noise-free ``true_<variable>`` columns of a simulated log,
``reference="measured"`` against the measured columns: the same shape, a
parallel dict.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cosim.atomic import atomic_path
from cosim.errors import ModelError
from models import baseline, plantlog
from models.cards import ModelCard, card_path, model_path
from models.electrochemistry import CellParameters
from models.splits import Splits, score
from models.variables import FILE_KINDS, SPACES, VARIABLES

__all__ = ["REPORT_SPLITS", "REPORT_KINDS", "TARGETS", "compare", "targets", "parity_plots"]

REPORT_SPLITS = ("test", "extrapolation")
REPORT_KINDS = ("physics", *FILE_KINDS)
#: the fidelity targets :func:`targets` checks, in words
TARGETS = (
    "hybrid R2 >= 0.98 on test",
    "hybrid MAE <= 0.5 x physics MAE on test",
    "hybrid MAE < nn MAE on extrapolation",
)


@dataclass
class _Evaluation:
    variable: str
    masks: dict[str, np.ndarray]
    predictions: dict[str, np.ndarray]
    reference: np.ndarray


def compare(
    log: pd.DataFrame | str | Path, models_dir: str | Path, *, reference: str = "truth",
) -> dict[str, dict[str, dict[str, dict[str, float | None]]]]:
    """Metrics per variable, split and kind against ``reference`` ("truth" or "measured").

    Variables without any model card in ``models_dir`` are left out.
    """
    return {
        e.variable: {split: {kind: score(pred[e.masks[split]], e.reference[e.masks[split]])
                             for kind, pred in e.predictions.items()}
                     for split in REPORT_SPLITS}
        for e in _evaluate(log, models_dir, reference)
    }


def targets(result: dict[str, dict[str, dict[str, dict[str, float | None]]]]) -> list[dict[str, Any]]:
    """The fidelity targets per variable of a :func:`compare` result, each with pass/fail.

    Each entry: ``variable``, ``target`` (one of :data:`TARGETS`), ``passed``,
    ``value`` (the hybrid's number) and ``limit`` (what it is held against);
    a target whose numbers are missing fails with ``value``/``limit`` ``None``.
    """
    out = []
    for variable, splits in result.items():
        def metric(split: str, kind: str, name: str, splits: dict = splits) -> float | None:
            return splits.get(split, {}).get(kind, {}).get(name)

        physics_mae = metric("test", "physics", "mae")
        checks = (
            (TARGETS[0], metric("test", "hybrid", "r2"), 0.98, lambda v, lim: v >= lim),
            (TARGETS[1], metric("test", "hybrid", "mae"),
             None if physics_mae is None else 0.5 * physics_mae, lambda v, lim: v <= lim),
            (TARGETS[2], metric("extrapolation", "hybrid", "mae"), metric("extrapolation", "nn", "mae"),
             lambda v, lim: v < lim),
        )
        for target, value, limit, ok in checks:
            known = value is not None and limit is not None
            out.append({"variable": variable, "target": target, "passed": bool(known and ok(value, limit)),
                        "value": value, "limit": limit})
    return out


def parity_plots(log: pd.DataFrame | str | Path, models_dir: str | Path, out_dir: str | Path,
                 *, reference: str = "truth") -> list[Path]:
    """One ``<variable>.parity.png`` per variable: predicted vs reference for each kind."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    written = []
    for e in _evaluate(log, models_dir, reference):
        unit = VARIABLES[e.variable].unit
        kinds = list(e.predictions)
        fig = Figure(figsize=(4.2 * len(kinds), 4.4), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, len(kinds), sharex=True, sharey=True, squeeze=False)[0]
        shown = np.concatenate([e.reference[m] for m in e.masks.values() if m.any()] or [np.zeros(1)])
        lo, hi = float(np.min(shown)), float(np.max(shown))
        for ax, kind in zip(axes, kinds, strict=True):
            for split, colour in (("test", "tab:blue"), ("extrapolation", "tab:red")):
                rows = e.masks[split]
                s = score(e.predictions[kind][rows], e.reference[rows])
                label = f"{split} (n={int(rows.sum())}" + (
                    f", MAE {s['mae']:.3g}, R² {s['r2']:.3f})" if s["r2"] is not None else ")")
                ax.scatter(e.reference[rows], e.predictions[kind][rows], s=4, alpha=0.5, color=colour,
                           label=label, rasterized=True)
            ax.plot([lo, hi], [lo, hi], color="black", linewidth=0.8)
            ax.set_title(kind)
            ax.set_xlabel(f"{reference} {e.variable} [{unit}]")
            ax.legend(loc="upper left", fontsize=7)
        axes[0].set_ylabel(f"predicted {e.variable} [{unit}]")
        path = Path(out_dir) / f"{e.variable}.parity.png"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
        written.append(path)
    return written


def _load(log: pd.DataFrame | str | Path, variables: list[str]) -> pd.DataFrame:
    required = [c for c in plantlog.required_for(variables) if c not in variables]
    if isinstance(log, pd.DataFrame):
        source = str(log.attrs.get("source", "<DataFrame>"))
        return plantlog.validate_log(log, required=required, source=source)
    return plantlog.read_log(log, required=required)


def _evaluate(log: pd.DataFrame | str | Path, models_dir: str | Path, reference: str) -> list[_Evaluation]:
    from models.runtime import load_keras

    if reference not in ("truth", "measured"):
        raise ModelError(f"reference {reference!r}; expected 'truth' or 'measured'")
    cards = {v: {k: ModelCard.read(card_path(models_dir, v, k)) for k in FILE_KINDS
                 if card_path(models_dir, v, k).is_file()} for v in VARIABLES}
    cards = {v: c for v, c in cards.items() if c}
    if not cards:
        raise ModelError(f"{models_dir}: no model cards (<variable>.<kind>.card.json); run `co2twin train`")
    frame = _load(log, list(cards))
    digest = plantlog.data_hash(frame)
    out = []
    for variable, by_kind in cards.items():
        splits = _common_splits(variable, by_kind, models_dir)
        stale = sorted(k for k, c in by_kind.items() if c.data.get("hash") != digest)
        if stale:
            warnings.warn(f"{variable} {', '.join(stale)}: the log differs from the one the model was "
                          "trained on (data hash); splits are rebuilt by experiment id and threshold",
                          stacklevel=3)
        column = f"true_{variable}" if reference == "truth" else variable
        if column not in frame:
            raise ModelError(f"the log has no {column!r} column to score {variable} against"
                             + ("; use reference='measured'" if reference == "truth" else ""))
        hybrid = by_kind.get("hybrid")
        cell = CellParameters(**hybrid.output["baseline"]["cell"]) if hybrid else CellParameters()
        physics = baseline.predict(variable, frame, cell)
        predictions = {"physics": physics}
        for kind, card in by_kind.items():
            path = model_path(models_dir, variable, kind)
            network = load_keras(path)
            missing = [n for n in network.input_names if n not in frame]
            if missing:
                raise ModelError(f"{path}: the log has no column(s) {', '.join(missing)} for its inputs")
            y = np.asarray(network.predict(frame[list(network.input_names)].to_numpy(float)), float)[:, 0]
            _, to_space, from_space = SPACES[card.output.get("space", "value")]
            base = to_space(physics) if card.output.get("residual_of") == "physics" else 0.0
            predictions[kind] = from_space(base + y)
        masks = splits.masks(frame, variable)
        out.append(_Evaluation(variable, {s: masks[s] for s in REPORT_SPLITS}, predictions,
                               frame[column].to_numpy(float)))
    return out


def _common_splits(variable: str, by_kind: dict[str, ModelCard], models_dir: str | Path) -> Splits:
    found = {kind: card.splits for kind, card in by_kind.items()}
    first = next(iter(found.values()))
    if any(s != first for s in found.values()):
        raise ModelError(f"{models_dir}: the {variable} models were trained on different splits "
                         f"({', '.join(found)}); train them together to compare them")
    return first

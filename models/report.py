"""How the trained models compare with physics on a log (``co2twin models report``).

TensorFlow-free: networks run through :mod:`models.runtime`. Every split is
rebuilt from the model cards (:class:`models.splits.Splits`), so the rows a
model is scored on are exactly the ones it never trained on.

:func:`compare` returns ``{variable: {split: {kind: {"mae", "rmse", "r2"}}}}``
for the splits ``test`` and ``extrapolation`` and the kinds ``physics``,
``nn``, ``hybrid`` (those with a model file). ``reference="truth"`` (default)
scores against the noise-free ``true_<variable>`` columns of a simulated log,
``reference="measured"`` against the measured columns: the same shape, a
parallel dict. Each variable is scored as the twin would show it: the outlet CO2
fraction follows from a kind's carbonate demand and that kind's FE through the
carbon balance (:class:`Estimates`). :func:`joint` gives the joint fidelity: where
the bounds act on the estimates together and how far the unbounded estimates break
the balances.
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
from models import electrochemistry as ec
from models.balance import close, outlet_fraction, violations
from models.cards import ModelCard, card_path, model_path
from models.electrochemistry import CellParameters
from models.splits import Splits, score
from models.variables import FILE_KINDS, SPACES, VARIABLES

__all__ = ["REPORT_SPLITS", "REPORT_KINDS", "TARGETS", "Estimates", "compare", "joint", "targets",
           "parity_plots", "estimate"]

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
        for e in _evaluate(log, models_dir, reference)[0]
    }


def joint(log: pd.DataFrame | str | Path, models_dir: str | Path) -> dict[str, dict[str, dict[str, Any]]]:
    """Joint fidelity per kind and split: the models together, as the reactor combines them.

    ``{kind: {split: {"rows", "bounded_share": {variable: share, "any": share},
    "largest_correction": {variable: value in its unit}, "balances": {name: largest
    violation}}}}``. ``bounded_share`` is the share of the split's rows where a bound of
    :func:`models.balance.close` (or a physical range) had to act on the estimates;
    ``balances`` are the charge and carbon balances computed from the unbounded estimates
    (:func:`models.balance.violations`): the largest share of the charge (``charge``) or
    of the CO2 fed (``carbon_formate``, ``carbon_outlet``) by which one is broken, 0
    when the estimates alone close it. A kind without a model of some variable uses
    physics for it, as a scenario choosing that kind would.
    """
    evaluations, models = _evaluate(log, models_dir, None)  # no reference: a real log will do
    # rows of each split, FE's rest rows included (no bound can act on FE at no current)
    first = next(iter(models.cards.values()))
    masks = _common_splits(evaluations[0].variable, first, models_dir).masks(models.frame)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for kind in models.kinds:
        limits, broken = models.limits(kind), models.violations(kind)
        out[kind] = {}
        for split in REPORT_SPLITS:
            rows = masks[split]
            n = int(rows.sum())
            flags = {v: limits[v]["bounded"][rows] for v in VARIABLES}
            any_flag = np.max(np.vstack(list(flags.values())), axis=0) if n else np.zeros(0)
            out[kind][split] = {
                "rows": n,
                "bounded_share": {**{v: _share(f) for v, f in flags.items()}, "any": _share(any_flag)},
                "largest_correction": {v: _largest(limits[v]["correction"][rows]) for v in VARIABLES},
                "balances": {name: _largest(values[rows]) for name, values in broken.items()},
            }
    return out


def _share(flags: np.ndarray) -> float | None:
    return float(np.mean(flags > 0.0)) if flags.size else None


def _largest(values: np.ndarray) -> float | None:
    return float(np.max(values)) if values.size else None


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
    for e in _evaluate(log, models_dir, reference)[0]:
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


class Estimates:
    """The physics and the trained models of a folder on a log, as the twin combines them.

    ``raw[variable][kind]`` is what each model estimates (its learning space's quantity:
    FE, the carbonate demand per electron, voltage, pH), before any bound;
    ``values[variable][kind]`` the variable itself once the estimates pass through the
    balances (:func:`models.balance.close`): the outlet CO2 fraction follows from a kind's
    carbonate demand and that kind's FE (physics FE where the kind has no FE model).
    ``context`` holds the rates :func:`models.baseline.context` gives; ``closed[kind]``
    the rates that close the balances.
    """

    def __init__(self, frame: pd.DataFrame, cards: dict[str, dict[str, ModelCard]],
                 models_dir: str | Path) -> None:
        from models.runtime import load_keras

        hybrid = next((c["hybrid"] for c in cards.values() if "hybrid" in c), None)
        self.cell = CellParameters(**hybrid.output["baseline"]["cell"]) if hybrid else CellParameters()
        self.frame, self.cards = frame, cards
        self.context = baseline.context(frame, self.cell)
        kinds = ["physics", *dict.fromkeys(k for c in cards.values() for k in c)]
        self.kinds = kinds
        self.raw: dict[str, dict[str, np.ndarray]] = {}
        self.demand: dict[str, bool] = {}
        for variable in VARIABLES:
            physics = baseline.quantity(variable, frame, self.cell)
            self.raw[variable] = {"physics": physics}
            self.demand[variable] = True
            for kind, card in cards.get(variable, {}).items():
                path = model_path(models_dir, variable, kind)
                network = load_keras(path)
                missing = [n for n in network.input_names if n not in frame]
                if missing:
                    raise ModelError(f"{path}: the log has no column(s) {', '.join(missing)} for its inputs")
                y = np.asarray(network.predict(frame[list(network.input_names)].to_numpy(float)), float)[:, 0]
                space = SPACES[card.output.get("space", "value")]
                ceiling = self.context["ceiling"] if card.output.get("space") == "fe_logit" else None
                if card.output.get("residual_of") == "physics":
                    # a hybrid's residual is over the physics of what its space estimates
                    base = (physics if space.estimates is not None
                            else baseline.predict(variable, frame, self.cell))
                    y = y + space.to_space(base, ceiling)
                self.raw[variable][kind] = np.asarray(space.from_space(y, ceiling), float)
                if variable == "outlet_co2_fraction":
                    self.demand[kind] = space.estimates == "carbonate_demand"
        self.closed = {kind: self._close(kind) for kind in kinds}
        self.values: dict[str, dict[str, np.ndarray]] = {v: {} for v in VARIABLES}
        for variable in VARIABLES:
            for kind in ["physics", *cards.get(variable, {})]:
                self.values[variable][kind] = self._value(variable, kind)

    def _pick(self, variable: str, kind: str) -> np.ndarray:
        """The ``kind`` estimate of ``variable``, or physics where that kind has no model."""
        return self.raw[variable].get(kind, self.raw[variable]["physics"])

    def _close(self, kind: str) -> Any:
        c = self.context
        outlet = "outlet_co2_fraction"
        demand = kind not in self.raw[outlet] or self.demand.get(kind, True)
        return close(c["current"], c["co2_in"], c["n2"], self._pick("fe_formate", kind),
                     self._pick(outlet, kind), demand=demand,
                     physics_demand=self.raw[outlet]["physics"], xp=np)

    def _value(self, variable: str, kind: str) -> np.ndarray:
        closed = self.closed[kind]
        if variable == "fe_formate":
            return np.asarray(closed.fe, float)
        if variable == "outlet_co2_fraction":
            return np.asarray(outlet_fraction(closed.co2_out, self.context["n2"], closed.h2, np), float)
        lower, upper = VARIABLES[variable].lower, VARIABLES[variable].upper
        return np.clip(self.raw[variable][kind], lower, upper)

    def limits(self, kind: str) -> dict[str, dict[str, np.ndarray]]:
        """Per variable, where a bound acted on the ``kind`` estimates (``bounded``, 0/1) and by
        how much (``correction``, in the variable's unit), as the reactor records them."""
        closed = self.closed[kind]
        out = {"fe_formate": {"bounded": closed.fe_bounded, "correction": closed.fe_correction},
               "outlet_co2_fraction": {"bounded": closed.carbon_bounded,
                                       "correction": closed.carbon_correction}}
        for variable in ("cell_voltage", "anolyte_ph"):
            raw = self._pick(variable, kind)
            moved = np.abs(np.clip(raw, VARIABLES[variable].lower, VARIABLES[variable].upper) - raw)
            out[variable] = {"bounded": (moved > 0.0).astype(float), "correction": moved}
        return {v: {k: np.broadcast_to(np.asarray(a, float), self.context["current"].shape)
                    for k, a in d.items()} for v, d in out.items()}

    def violations(self, kind: str) -> dict[str, np.ndarray]:
        """The balances from the unbounded ``kind`` estimates: how far each is broken, relative to
        the charge (formate-equivalent mol/s) or the CO2 fed (:func:`models.balance.violations`)."""
        c = self.context
        outlet = "outlet_co2_fraction"
        demand = kind not in self.raw[outlet] or self.demand.get(kind, True)
        broken = violations(c["current"], c["co2_in"], c["n2"], self._pick("fe_formate", kind),
                            self._pick(outlet, kind), demand=demand,
                            physics_demand=self.raw[outlet]["physics"], xp=np)
        charge = np.maximum(c["current"] / (ec.Z_FORMATE * ec.F), 1e-300)
        fed = np.maximum(c["co2_in"], 1e-300)
        return {"charge": np.asarray(broken["charge"]) / charge,
                "carbon_formate": np.asarray(broken["carbon_formate"]) / fed,
                "carbon_outlet": np.asarray(broken["carbon_outlet"]) / fed}


def _cards(models_dir: str | Path) -> dict[str, dict[str, ModelCard]]:
    cards = {v: {k: ModelCard.read(card_path(models_dir, v, k)) for k in FILE_KINDS
                 if card_path(models_dir, v, k).is_file()} for v in VARIABLES}
    cards = {v: c for v, c in cards.items() if c}
    if not cards:
        raise ModelError(f"{models_dir}: no model cards (<variable>.<kind>.card.json); run `co2twin train`")
    return cards


def estimate(frame: pd.DataFrame, models_dir: str | Path) -> Estimates:
    """Physics and every model of ``models_dir`` on the rows of ``frame`` (plant-log columns)."""
    return Estimates(frame, _cards(models_dir), models_dir)


def _evaluate(log: pd.DataFrame | str | Path, models_dir: str | Path, reference: str | None,
              ) -> tuple[list[_Evaluation], Estimates]:
    """The models on the log, and per variable the split masks, predictions and ``reference``
    values ("truth", "measured"; ``None``: none needed, NaN)."""
    if reference not in ("truth", "measured", None):
        raise ModelError(f"reference {reference!r}; expected 'truth' or 'measured'")
    cards = _cards(models_dir)
    frame = _load(log, list(cards))
    digest = plantlog.data_hash(frame)
    for variable, by_kind in cards.items():
        stale = sorted(k for k, c in by_kind.items() if c.data.get("hash") != digest)
        if stale:
            warnings.warn(f"{variable} {', '.join(stale)}: the log differs from the one the model was "
                          "trained on (data hash); splits are rebuilt by experiment id and threshold",
                          stacklevel=3)
    models = Estimates(frame, cards, models_dir)
    out = []
    for variable, by_kind in cards.items():
        splits = _common_splits(variable, by_kind, models_dir)
        column = f"true_{variable}" if reference == "truth" else variable
        if reference is not None and column not in frame:
            raise ModelError(f"the log has no {column!r} column to score {variable} against"
                             + ("; use reference='measured'" if reference == "truth" else ""))
        masks = splits.masks(frame, variable)
        values = (frame[column].to_numpy(float) if reference is not None
                  else np.full(len(frame), np.nan))
        out.append(_Evaluation(variable, {s: masks[s] for s in REPORT_SPLITS},
                               dict(models.values[variable]), values))
    return out, models


def _common_splits(variable: str, by_kind: dict[str, ModelCard], models_dir: str | Path) -> Splits:
    found = {kind: card.splits for kind, card in by_kind.items()}
    first = next(iter(found.values()))
    if any(s != first for s in found.values()):
        raise ModelError(f"{models_dir}: the {variable} models were trained on different splits "
                         f"({', '.join(found)}); train them together to compare them")
    return first

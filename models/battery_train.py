"""Training of the battery ageing networks (``co2twin battery train``), with Keras.

The pipeline of the reactor's surrogates (:mod:`models.train`), whose network
builder this reuses: named scalar inputs (:data:`models.battery_log.FEATURES`) →
Concatenate → Normalization (training statistics, inside the model) → Dense ×
len(hidden) → Dense(1); targets standardised and the scaling folded back into the
last layer; Adam, MSE, early stopping on held-out validation cells, seeded and
deterministic. ``nn`` learns the measured capacity fraction ``C / C0``; ``hybrid``
learns the residual over the seed's physics (:mod:`models.battery_physics`).
Each model is saved as ``battery_capacity.<kind>.keras`` with its card
(:mod:`models.battery_card`), both replaced together, and checked by the NumPy
runtime the twin uses.

The seed's network, Dense(64, ReLU) x 2 -> Dense(1), is the default: on the default
bench it scored better than the smaller ones tried (Dense(32, ReLU) x 2, Dense(32, tanh) x 2)
on both held-out cells and late cycles (README, "Running on solar power", gives the
figures); ``co2twin battery train --hidden 32,32 --activation tanh`` repeats the comparison.
Early stopping keeps the epoch that did best on the validation cells, which comes early
(tens of epochs): the held-out cells differ from the training cells more than the
training cells' own cycles do, and a network that fits those closer generalises worse.
"""
from __future__ import annotations

import importlib.metadata
import platform
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cosim.atomic import atomic_path
from cosim.errors import ModelError
from models.battery_card import KINDS, OUTPUT, SCHEMA_VERSION, VARIABLE, card_file, model_file, write_card
from models.battery_log import FEATURES, cycles, data_hash, read_log, validate_log
from models.battery_physics import K_SEED, capacity_fraction
from models.battery_splits import BatterySplits
from models.cards import InputRange, ModelCard
from models.runtime import load_keras
from models.splits import score
from models.train import Progress, build_network

import keras  # noqa: E402  (models.train has set TensorFlow's log level)
import tensorflow as tf  # noqa: E402

__all__ = ["DEFAULTS", "train", "load_cycles", "scores"]

#: settings for ~1,500 training cycles on a 2-core CPU (about 30 s per model)
DEFAULTS: dict[str, Any] = {
    "epochs": 2000, "patience": 100, "batch_size": 64, "learning_rate": 1e-3,
    "hidden": (64, 64), "activation": "relu",
}


def load_cycles(log: pd.DataFrame | str | Path) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """The checked log, its per-cycle table and its source name."""
    if isinstance(log, pd.DataFrame):
        source = str(log.attrs.get("source", "<DataFrame>"))
        checked = validate_log(log, source=source)
    else:
        checked, source = read_log(log), str(log)
    table = cycles(checked)
    if len(table) < 10:
        raise ModelError(f"{source}: {len(table)} discharge cycle(s); training needs at least 10")
    return checked, table, source


def _features(table: pd.DataFrame) -> np.ndarray:
    return np.column_stack([table[f].to_numpy(float) for f in FEATURES])


def _physics(table: pd.DataFrame) -> np.ndarray:
    return np.asarray(capacity_fraction(table["cycle"].to_numpy(float), table["temperature"].to_numpy(float),
                                        table["c_rate"].to_numpy(float)), float)


def scores(table: pd.DataFrame, fraction: np.ndarray, masks: Mapping[str, np.ndarray]
           ) -> dict[str, dict[str, dict[str, float | None]]]:
    """MAE, RMSE, R² of the capacity (Ah: fraction × the cell's ``c0``) per split, against the
    noise-free capacity (``truth``, when the log has it) and the measured one."""
    predicted = np.asarray(fraction, float) * table["c0"].to_numpy(float)
    refs = {"measured": "capacity"}
    if "true_capacity" in table:
        refs = {"truth": "true_capacity", **refs}
    return {split: {ref: score(predicted[rows], table[col].to_numpy(float)[rows])
                    for ref, col in refs.items()}
            for split, rows in masks.items()}


def train(
    log: pd.DataFrame | str | Path,
    *,
    out_dir: str | Path,
    kinds: Iterable[str] = KINDS,
    seed: int = 0,
    epochs: int = DEFAULTS["epochs"],
    hidden: tuple[int, ...] = DEFAULTS["hidden"],
    activation: str = DEFAULTS["activation"],
    patience: int = DEFAULTS["patience"],
    batch_size: int = DEFAULTS["batch_size"],
    learning_rate: float = DEFAULTS["learning_rate"],
    progress: Callable[[Progress], None] | None = None,
) -> list[ModelCard]:
    """Train, save and score the battery models of ``kinds``; same log and arguments, same weights."""
    kinds = list(kinds)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ModelError(f"unknown kind(s) {', '.join(unknown)}; expected {', '.join(KINDS)}")
    _, table, source = load_cycles(log)
    splits = BatterySplits.choose(table, seed)
    masks = splits.masks(table)
    if masks["train"].sum() < 2 or masks["validation"].sum() < 1:
        raise ModelError(f"{source}: too few cycles to train ({int(masks['train'].sum())} train, "
                         f"{int(masks['validation'].sum())} validation)")
    x = _features(table)
    physics = _physics(table)
    data = {"hash": data_hash(table), "rows": len(table), "source": source,
            "splits": {**splits.to_dict(), "rows": {k: int(m.sum()) for k, m in masks.items()}},
            "table": "per discharge cycle (models.battery_log.cycles)"}
    tf.config.experimental.enable_op_determinism()
    settings = {"seed": seed, "epochs": epochs, "hidden": tuple(hidden), "activation": activation,
                "patience": patience, "batch_size": batch_size, "learning_rate": learning_rate}
    return [_train_one(table, kind, x, physics, masks, out_dir, settings, progress, data) for kind in kinds]


def _train_one(table: pd.DataFrame, kind: str, x: np.ndarray, physics: np.ndarray,
               masks: Mapping[str, np.ndarray], out_dir: str | Path, s: Mapping[str, Any],
               progress: Callable[[Progress], None] | None, data: dict[str, Any]) -> ModelCard:
    """Fit one model; its .keras file and card replace any old ones together at the end."""
    measured = table["capacity_fraction"].to_numpy(float)
    offset = physics if kind == "hybrid" else np.zeros(len(table))
    target = measured - offset
    tr, va = masks["train"], masks["validation"]
    mu, sd = float(target[tr].mean()), float(target[tr].std()) or 1.0
    start = time.perf_counter()
    keras.utils.set_random_seed(s["seed"])
    model = build_network(tuple(FEATURES), x[tr], s["hidden"], s["activation"], f"{VARIABLE}_{kind}")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=s["learning_rate"]), loss="mse",
                  jit_compile=False)
    callbacks: list[keras.callbacks.Callback] = [keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=s["patience"], restore_best_weights=True)]
    if progress is not None:
        callbacks.append(_Report(kind, s["epochs"], progress))

    def inputs(rows: np.ndarray) -> dict[str, np.ndarray]:
        return {f: x[rows, i:i + 1].astype("float32") for i, f in enumerate(FEATURES)}

    history = model.fit(
        inputs(tr), ((target[tr] - mu) / sd).astype("float32")[:, None],
        validation_data=(inputs(va), ((target[va] - mu) / sd).astype("float32")[:, None]),
        epochs=s["epochs"], batch_size=s["batch_size"], shuffle=True, callbacks=callbacks, verbose=0)
    out = model.get_layer("output")
    kernel, bias = out.get_weights()
    out.set_weights([kernel * sd, bias * sd + mu])
    val_losses = history.history["val_loss"]
    best = int(np.argmin(val_losses))
    with atomic_path(model_file(out_dir, kind)) as tmp, atomic_path(card_file(out_dir, kind)) as tmp_card:
        with warnings.catch_warnings():
            # Keras converting TF variables under NumPy 2 (keras-team/keras: __array__ without copy=)
            warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
            model.save(tmp)
        network = load_keras(tmp)
        order = [list(FEATURES).index(n) for n in network.input_names]
        predicted = offset + network.predict(x[:, order])[:, 0]
        output: dict[str, Any] = dict(OUTPUT)
        if kind == "hybrid":
            output.update(residual_of="physics", baseline={
                "function": "models.battery_physics.capacity_fraction", "k": K_SEED,
                "columns": list(FEATURES)})
        card = ModelCard(
            variable=VARIABLE, kind=kind,
            inputs=[InputRange(f, FEATURES[f][0], float(x[tr, i].min()), float(x[tr, i].max()))
                    for i, f in enumerate(FEATURES)],
            output={**output, "metrics_unit": "Ah"}, metrics=scores(table, predicted, masks), data=data,
            training=_training_record(model, s, history, best, time.perf_counter() - start),
            versions=_versions(), created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            schema_version=SCHEMA_VERSION)
        write_card(card, tmp_card)
    if progress is not None:
        progress(Progress(VARIABLE, kind, best + 1, s["epochs"], float(history.history["loss"][best]),
                          float(val_losses[best]), done=True))
    return card


class _Report(keras.callbacks.Callback):
    def __init__(self, kind: str, epochs: int, progress: Callable[[Progress], None]) -> None:
        super().__init__()
        self.kind, self.epochs, self.progress = kind, epochs, progress

    def on_epoch_end(self, epoch: int, logs: Mapping[str, float] | None = None) -> None:
        logs = logs or {}
        self.progress(Progress(VARIABLE, self.kind, epoch + 1, self.epochs, float(logs.get("loss", np.nan)),
                               float(logs.get("val_loss", np.nan))))


def _training_record(model: keras.Model, s: Mapping[str, Any], history: Any, best: int,
                     elapsed: float) -> dict[str, Any]:
    epochs_run = len(history.history["loss"])
    hidden = " -> ".join(f"Dense({h}, {s['activation']})" for h in s["hidden"])
    return {
        "epochs_run": epochs_run, "best_epoch": best + 1, "seed": s["seed"], "time_s": round(elapsed, 3),
        "early_stopping": {"monitor": "val_loss", "patience": s["patience"], "restore_best_weights": True,
                           "max_epochs": s["epochs"], "stopped_early": epochs_run < s["epochs"]},
        "loss": {"train": float(history.history["loss"][best]),
                 "validation": float(history.history["val_loss"][best]), "scale": "standardised target"},
        "architecture": {
            "summary": f"Input(1) per feature -> Concatenate -> Normalization -> {hidden} -> Dense(1)",
            "hidden": list(s["hidden"]), "activation": s["activation"],
            "parameters": int(model.count_params()),
            "target_scaling": "standardised on the training split, folded into the output layer"},
        "optimizer": {"name": "adam", "learning_rate": s["learning_rate"], "loss": "mse",
                      "batch_size": s["batch_size"]},
        "deterministic_ops": True,
    }


def _versions() -> dict[str, str | None]:
    try:
        co2twin = importlib.metadata.version("co2twin")
    except importlib.metadata.PackageNotFoundError:
        co2twin = None
    return {"python": platform.python_version(), "numpy": np.__version__, "tensorflow": tf.__version__,
            "keras": keras.__version__, "co2twin": co2twin}

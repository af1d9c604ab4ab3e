"""Training of the ``nn`` and ``hybrid`` surrogates from a plant log (``co2twin train``).

The only module of co2twin that imports TensorFlow/Keras; nothing on the run
path imports it (the twin evaluates the saved files with :mod:`models.runtime`).

Per variable, one network of named scalar inputs (the variable's features) →
Concatenate → Normalization (training-split statistics, inside the model) →
Dense × len(hidden) → Dense(1). ``nn`` learns the measured variable; ``hybrid``
learns the residual measured − physics baseline (:mod:`models.baseline`).
Targets are standardised for training and the scaling is folded into the last
layer, so a saved model returns its target in the variable's own unit. Splits
(:class:`models.splits.Splits`) are drawn once per call and shared by every model.
"""
from __future__ import annotations

import importlib.metadata
import os
import platform
import time
import warnings
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from cosim.atomic import atomic_path
from cosim.errors import ModelError
from models import baseline, plantlog
from models.cards import REFERENCES, InputRange, ModelCard, card_path, model_path
from models.electrochemistry import CellParameters
from models.runtime import load_keras
from models.splits import Splits, score
from models.variables import FEATURES, FILE_KINDS, SPACES, VARIABLES

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

__all__ = ["Progress", "DEFAULTS", "train", "load_frame", "build_network"]

#: settings for ~20-100k rows on a 2-core CPU (10-40 s per model); ``phases``: the log's
#: quasi-steady rows only, since a static map of the features cannot know a transient's state
DEFAULTS: dict[str, Any] = {
    "epochs": 200, "patience": 30, "batch_size": 256, "learning_rate": 1e-3,
    "hidden": (32, 32), "activation": "tanh", "phases": ("steady",),
}


@dataclass(frozen=True)
class Progress:
    """One training event handed to the ``progress`` callback (``str()`` is a log line)."""

    variable: str
    kind: str
    epoch: int
    max_epochs: int
    loss: float
    val_loss: float
    done: bool = False

    def __str__(self) -> str:
        state = "done" if self.done else f"epoch {self.epoch}/{self.max_epochs}"
        return f"{self.variable}.{self.kind}: {state} loss {self.loss:.4g} val_loss {self.val_loss:.4g}"


def load_frame(log: pd.DataFrame | str | Path, variables: Iterable[str]) -> tuple[pd.DataFrame, str]:
    """The checked log and its source name; DataError names every missing/bad column."""
    required = plantlog.required_for(variables)
    if isinstance(log, pd.DataFrame):
        source = str(log.attrs.get("source", "<DataFrame>"))
        return plantlog.validate_log(log, required=required, source=source), source
    return plantlog.read_log(log, required=required), str(log)


def build_network(
    features: tuple[str, ...], x_train: np.ndarray, hidden: tuple[int, ...], activation: str,
    name: str,
) -> keras.Model:
    """The Functional network; the Normalization statistics come from ``x_train`` (n, k)."""
    inputs = [keras.Input(shape=(1,), name=f) for f in features]
    norm = keras.layers.Normalization(name="normalise")
    z = norm(keras.layers.Concatenate(name="features")(inputs))
    for n, width in enumerate(hidden):
        z = keras.layers.Dense(width, activation=activation, name=f"hidden_{n}")(z)
    # a zero output layer starts every model at the target mean: a hybrid starts as the physics
    out = keras.layers.Dense(1, kernel_initializer="zeros", name="output")(z)
    model = keras.Model(inputs, out, name=name)
    std = x_train.std(axis=0)
    # a feature constant over the training split is centred, not blown up by 1/epsilon
    variance = np.where(std > 1e-9 * np.maximum(np.abs(x_train.mean(axis=0)), 1.0), std**2, 1.0)
    norm.adapt_mean.assign(x_train.mean(axis=0).astype("float32"))
    norm.adapt_variance.assign(variance.astype("float32"))
    norm.finalize_state()
    return model


class _Report(keras.callbacks.Callback):
    def __init__(self, variable: str, kind: str, epochs: int, progress: Callable[[Progress], None]):
        super().__init__()
        self.args = (variable, kind, epochs)
        self.progress = progress

    def on_epoch_end(self, epoch: int, logs: Mapping[str, float] | None = None) -> None:
        logs = logs or {}
        self.progress(Progress(*self.args[:2], epoch + 1, self.args[2], float(logs.get("loss", np.nan)),
                               float(logs.get("val_loss", np.nan))))


def train(
    log: pd.DataFrame | str | Path,
    *,
    out_dir: str | Path,
    variables: Iterable[str] = tuple(VARIABLES),
    kinds: Iterable[str] = FILE_KINDS,
    seed: int = 0,
    epochs: int = DEFAULTS["epochs"],
    hidden: tuple[int, ...] = DEFAULTS["hidden"],
    activation: str = DEFAULTS["activation"],
    patience: int = DEFAULTS["patience"],
    batch_size: int = DEFAULTS["batch_size"],
    learning_rate: float = DEFAULTS["learning_rate"],
    phases: tuple[str, ...] | None = DEFAULTS["phases"],
    cell: CellParameters = CellParameters(),
    progress: Callable[[Progress], None] | None = None,
) -> list[ModelCard]:
    """Train, save (``<variable>.<kind>.keras`` + card, atomically) and score every model.

    Only rows whose ``phase`` is in ``phases`` are used (``None``, or a log
    without a ``phase`` column: every row). ``progress`` receives a
    :class:`Progress` after every epoch and when a model is done. Same log +
    same arguments → identical weights.
    """
    variables, kinds = list(variables), list(kinds)
    unknown = [v for v in variables if v not in VARIABLES] + [k for k in kinds if k not in FILE_KINDS]
    if unknown:
        raise ModelError(f"unknown variable(s)/kind(s) {unknown}; variables: {', '.join(VARIABLES)}; "
                         f"kinds: {', '.join(FILE_KINDS)}")
    frame, source = load_frame(log, variables)
    splits = Splits.choose(frame, seed, phases=phases)
    data = {"hash": plantlog.data_hash(frame), "rows": len(frame), "source": source}
    tf.config.experimental.enable_op_determinism()
    settings = {"seed": seed, "epochs": epochs, "hidden": tuple(hidden), "activation": activation,
                "patience": patience, "batch_size": batch_size, "learning_rate": learning_rate}
    cards = []
    for variable in variables:
        features = VARIABLES[variable].features
        masks = splits.masks(frame, variable)
        x = np.column_stack([frame[f].to_numpy(float) for f in features])
        physics = baseline.predict(variable, frame, cell) if "hybrid" in kinds else None
        excluded = {reason: int(m.sum()) for reason, m in splits.exclusions(frame, variable).items()}
        if masks["train"].sum() < 2 or masks["validation"].sum() < 1:
            raise ModelError(f"{variable}: too few rows to train ({int(masks['train'].sum())} train, "
                             f"{int(masks['validation'].sum())} validation) in {source}")
        record = {**data, "splits": {**splits.to_dict(), "excluded": excluded,
                                     "rows": {k: int(m.sum()) for k, m in masks.items()}}}
        space = VARIABLES[variable].space
        for kind in kinds:
            output: dict[str, Any] = {"name": variable, "unit": VARIABLES[variable].unit}
            if space != "value":
                output.update(space=space, space_unit=SPACES[space][0])
            if kind == "hybrid":
                output.update(residual_of="physics", baseline=_baseline_identity(variable, frame, cell))
            cards.append(_train_one(frame, variable, kind, x, physics, masks, out_dir, settings,
                                    progress, output, record))
    return cards


def _train_one(
    frame: pd.DataFrame, variable: str, kind: str, x: np.ndarray, physics: np.ndarray | None,
    masks: Mapping[str, np.ndarray], out_dir: str | Path, s: Mapping[str, Any],
    progress: Callable[[Progress], None] | None, output: dict[str, Any], data: dict[str, Any],
) -> ModelCard:
    """Fit one model; its .keras file and card replace any old ones together at the end."""
    features = VARIABLES[variable].features
    _, to_space, from_space = SPACES[VARIABLES[variable].space]
    measured = to_space(frame[variable].to_numpy(float))
    offset = to_space(physics) if kind == "hybrid" else np.zeros(len(frame))
    target = measured - offset
    tr, va = masks["train"], masks["validation"]
    mu, sd = float(target[tr].mean()), float(target[tr].std()) or 1.0

    start = time.perf_counter()
    keras.utils.set_random_seed(s["seed"])
    model = build_network(features, x[tr], s["hidden"], s["activation"], f"{variable}_{kind}")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=s["learning_rate"]), loss="mse",
                  jit_compile=False)
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=s["patience"],
                                         restore_best_weights=True)
    callbacks: list[keras.callbacks.Callback] = [stop]
    if progress is not None:
        callbacks.append(_Report(variable, kind, s["epochs"], progress))

    def inputs(rows: np.ndarray) -> dict[str, np.ndarray]:
        return {f: x[rows, i:i + 1].astype("float32") for i, f in enumerate(features)}

    history = model.fit(
        inputs(tr), ((target[tr] - mu) / sd).astype("float32")[:, None],
        validation_data=(inputs(va), ((target[va] - mu) / sd).astype("float32")[:, None]),
        epochs=s["epochs"], batch_size=s["batch_size"], shuffle=True, callbacks=callbacks, verbose=0,
    )
    out = model.get_layer("output")
    kernel, bias = out.get_weights()
    out.set_weights([kernel * sd, bias * sd + mu])

    val_losses = history.history["val_loss"]
    best = int(np.argmin(val_losses))
    with atomic_path(model_path(out_dir, variable, kind)) as tmp, \
            atomic_path(card_path(out_dir, variable, kind)) as tmp_card:
        with warnings.catch_warnings():
            # Keras converting TF variables under NumPy 2 (keras-team/keras: __array__ without copy=)
            warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
            model.save(tmp)
        predicted = from_space(offset + _predict(tmp, x, features))
        elapsed = time.perf_counter() - start
        card = ModelCard(
            variable=variable, kind=kind,
            inputs=[InputRange(f, FEATURES[f].unit, *_envelope(FEATURES[f], x[tr, i]))
                    for i, f in enumerate(features)],
            output=output, metrics=_metrics(frame, variable, predicted, masks),
            data=data, training=_training_record(model, s, history, best, elapsed),
            versions=_versions(), created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        card.write(tmp_card)
    if progress is not None:
        progress(Progress(variable, kind, best + 1, s["epochs"], float(history.history["loss"][best]),
                          float(val_losses[best]), done=True))
    return card


def _envelope(feature: Any, values: np.ndarray) -> tuple[float, float]:
    """Training range of a feature, reaching down (or up) to its origin when it has one."""
    lo, hi = float(values.min()), float(values.max())
    if feature.origin is not None:
        lo, hi = min(lo, feature.origin), max(hi, feature.origin)
    return lo, hi


def _predict(path: Path, x: np.ndarray, features: tuple[str, ...]) -> np.ndarray:
    """Network output for rows of ``x`` from the saved file, by the NumPy runtime the twin uses."""
    network = load_keras(path)
    order = [features.index(n) for n in network.input_names]
    return np.asarray(network.predict(x[:, order]), float)[:, 0]


def _metrics(frame: pd.DataFrame, variable: str, predicted: np.ndarray,
             masks: Mapping[str, np.ndarray]) -> dict[str, dict[str, dict[str, float | None]]]:
    columns = {"truth": f"true_{variable}", "measured": variable}
    return {split: {ref: score(predicted[rows], frame[columns[ref]].to_numpy(float)[rows])
                    for ref in REFERENCES if columns[ref] in frame}
            for split, rows in masks.items()}


def _training_record(model: keras.Model, s: Mapping[str, Any], history: Any, best: int,
                     elapsed: float) -> dict[str, Any]:
    epochs_run = len(history.history["loss"])
    hidden = " -> ".join(f"Dense({h}, {s['activation']})" for h in s["hidden"])
    return {
        "epochs_run": epochs_run,
        "best_epoch": best + 1,
        "early_stopping": {"monitor": "val_loss", "patience": s["patience"], "restore_best_weights": True,
                           "max_epochs": s["epochs"], "stopped_early": epochs_run < s["epochs"]},
        "seed": s["seed"],
        "time_s": round(elapsed, 3),
        "loss": {"train": float(history.history["loss"][best]),
                 "validation": float(history.history["val_loss"][best]), "scale": "standardised target"},
        "architecture": {
            "summary": f"Input(1) per feature -> Concatenate -> Normalization -> {hidden} -> Dense(1)",
            "hidden": list(s["hidden"]), "activation": s["activation"],
            "parameters": int(model.count_params()),
            "target_scaling": "standardised on the training split, folded into the output layer",
        },
        "optimizer": {"name": "adam", "learning_rate": s["learning_rate"], "loss": "mse",
                      "batch_size": s["batch_size"]},
        "deterministic_ops": True,
    }


def _baseline_identity(variable: str, frame: pd.DataFrame, cell: CellParameters) -> dict[str, Any]:
    return {
        "function": baseline.IDENTITY,
        "columns": list(baseline.columns(variable)),
        "area_cm2": "log column area_cm2" if "area_cm2" in frame else "cell.area_cm2",
        "hours_on_stream": ("log column hours_on_stream" if "hours_on_stream" in frame
                            else f"assumed {baseline.ASSUMED_HOURS:g} h (not in the log)"),
        "cell": asdict(cell),
    }


def _versions() -> dict[str, str | None]:
    try:
        co2twin = importlib.metadata.version("co2twin")
    except importlib.metadata.PackageNotFoundError:
        co2twin = None
    return {"python": platform.python_version(), "numpy": np.__version__,
            "tensorflow": tf.__version__, "keras": keras.__version__, "co2twin": co2twin}

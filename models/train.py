"""Training of the ``nn`` and ``hybrid`` surrogates from a plant log (``co2twin train``).

The only module of co2twin that imports TensorFlow/Keras; nothing on the run
path imports it (the twin evaluates the saved files with :mod:`models.runtime`).

Per variable, one network of named scalar inputs (the variable's features) →
Concatenate → Normalization (training-split statistics, inside the model) →
Dense × len(hidden) → Dense(1), whose output lives in the variable's learning space
(:data:`models.variables.SPACES`). ``nn`` learns the variable; ``hybrid`` the
residual over the physics baseline (:mod:`models.baseline`) in that space. Voltage
and pH networks learn the measurement mapped into their space, standardised, the
scaling folded into the last layer. FE and outlet CO2 networks learn through their
bounded output: a head layer (training only, never saved) maps the network's output
to the measured variable (FE = ceiling * sigmoid; the outlet CO2 fraction from the
carbonate demand by the carbon balance, with the FE model of the same kind), and the
loss is on the measurement. Splits (:class:`models.splits.Splits`) are drawn once per
call and shared by every model.
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
from models import electrochemistry as ec
from models.balance import close, outlet_fraction
from models.cards import REFERENCES, InputRange, ModelCard, card_path, model_path
from models.electrochemistry import CellParameters
from models.runtime import load_keras
from models.splits import Splits, score
from models.variables import FEATURES, FILE_KINDS, SPACES, VARIABLES

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

__all__ = ["Progress", "DEFAULTS", "train", "load_frame", "build_network", "value_of"]

#: settings for ~20-100k rows on a 2-core CPU (10-40 s per model); ``phases``: the log's
#: quasi-steady rows only, since a static map of the features cannot know a transient's state
DEFAULTS: dict[str, Any] = {
    "epochs": 200, "patience": 30, "batch_size": 256, "learning_rate": 1e-3,
    "hidden": (32, 32), "activation": "tanh", "phases": ("steady",),
    # mA/cm2: the operating range's 350 with margin (models.campaign.EXTRAPOLATION_ABOVE);
    # rows above it are the extrapolation split when the log reaches there
    "extrapolation_above": 375.0,
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
    extrapolation_above: float | None = DEFAULTS["extrapolation_above"],
    cell: CellParameters = CellParameters(),
    progress: Callable[[Progress], None] | None = None,
) -> list[ModelCard]:
    """Train, save (``<variable>.<kind>.keras`` + card, atomically) and score every model.

    Only rows whose ``phase`` is in ``phases`` are used (``None``, or a log
    without a ``phase`` column: every row). Rows above ``extrapolation_above`` mA/cm2
    are the extrapolation split, never trained on (``None``, or a log that never
    reaches it: the rows above the 85th percentile of current density). ``progress`` receives a
    :class:`Progress` after every epoch and when a model is done. Same log +
    same arguments → identical weights. FE trains first: the outlet CO2 models of a
    kind learn the carbonate demand through the carbon balance with that kind's FE
    model (the two are trained together, as the reactor uses them), or with the log's
    measured FE when FE is not trained in the same call.
    """
    variables, kinds = list(variables), list(kinds)
    unknown = [v for v in variables if v not in VARIABLES] + [k for k in kinds if k not in FILE_KINDS]
    # FE before the outlet CO2 side, whose models learn with the FE models of their kind
    variables = [v for v in VARIABLES if v in variables]
    if unknown:
        raise ModelError(f"unknown variable(s)/kind(s) {unknown}; variables: {', '.join(VARIABLES)}; "
                         f"kinds: {', '.join(FILE_KINDS)}")
    frame, source = load_frame(log, variables)
    splits = Splits.choose(frame, seed, phases=phases, above=extrapolation_above)
    data = {"hash": plantlog.data_hash(frame), "rows": len(frame), "source": source}
    tf.config.experimental.enable_op_determinism()
    settings = {"seed": seed, "epochs": epochs, "hidden": tuple(hidden), "activation": activation,
                "patience": patience, "batch_size": batch_size, "learning_rate": learning_rate}
    cards = []
    fe_models: dict[str, np.ndarray] = {}
    for variable in variables:
        features = VARIABLES[variable].features
        masks = splits.masks(frame, variable)
        x = np.column_stack([frame[f].to_numpy(float) for f in features])
        physics = baseline.quantity(variable, frame, cell) if "hybrid" in kinds else None
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
                output.update(space=space, space_unit=SPACES[space].unit,
                              space_meaning=SPACES[space].description)
            if SPACES[space].estimates is not None:
                output.update(estimates=SPACES[space].estimates,
                              estimates_unit=SPACES[space].estimates_unit)
            if kind == "hybrid":
                output.update(residual_of="physics", baseline=_baseline_identity(variable, frame, cell))
            fe = fe_models.get(kind) if variable == "outlet_co2_fraction" else None
            if variable == "outlet_co2_fraction":
                output["fe_context"] = (f"the fe_formate {kind} model trained with it" if fe is not None
                                        else "the log's measured fe_formate")
            card, predicted = _train_one(frame, variable, kind, x, physics, masks, out_dir, settings,
                                         progress, output, record, baseline.context(frame, cell), fe)
            cards.append(card)
            if variable == "fe_formate":
                fe_models[kind] = predicted
    return cards


class _CeilingSigmoid(keras.layers.Layer):
    """FE = ceiling * sigmoid(offset + z), the ``fe_logit`` space (training only, never saved)."""

    def call(self, inputs: list[Any]) -> Any:
        z, offset, ceiling = inputs
        return ceiling * keras.ops.sigmoid(offset + z)


class _CarbonBalance(keras.layers.Layer):
    """Outlet CO2 % from a carbonate demand sigmoid(offset + z) by the carbon balance
    (:func:`models.balance.close`; flows in mL/min, training only, never saved)."""

    def call(self, inputs: list[Any]) -> Any:
        z, offset, electrons, remaining, others = inputs
        demand = keras.ops.sigmoid(offset + z) * electrons
        co2_out = remaining - remaining * demand / (demand + remaining + 1e-12)
        return 100.0 * co2_out / keras.ops.maximum(co2_out + others, 1e-12)


def _head(variable: str, frame: pd.DataFrame, ctx: Mapping[str, np.ndarray], fe: np.ndarray | None,
          ) -> tuple[type[keras.layers.Layer], dict[str, np.ndarray]] | None:
    """How a network in a bounded space learns the measured variable: the layer between its
    output and the measurement, and that layer's other inputs per row. ``None``: the network
    learns the measured variable mapped into its space (``value``, ``net_hydroxide``).
    ``fe``: the FE the outlet CO2 side is learnt with (default: the log's measured FE)."""
    space = VARIABLES[variable].space
    if space == "fe_logit":
        return _CeilingSigmoid, {"ceiling": ctx["ceiling"]}
    if space == "logit_carbonate_demand":
        rates = _outlet_rates(frame, ctx, fe)
        ml = ec.gas_ml_min(1.0)  # mL/min per mol/s: float32 keeps the flows' precision
        return _CarbonBalance, {"electrons": ml * ctx["current"] / ec.F,
                                "remaining": ml * (ctx["co2_in"] - rates["formate"]),
                                "others": ml * (ctx["n2"] + rates["h2"])}
    return None


def _outlet_rates(frame: pd.DataFrame, ctx: Mapping[str, np.ndarray], fe: np.ndarray | None = None,
                  ) -> dict[str, np.ndarray]:
    """Formate and H2 (mol/s) from an FE per row (default: the measured FE), within what the CO2
    fed allows (a reading above it is sensor noise): what the outlet CO2 models learn against."""
    fe = np.clip(frame["fe_formate"].to_numpy(float) if fe is None else fe, 0.0, ctx["ceiling"])
    formate = fe * ctx["current"] / (ec.Z_FORMATE * ec.F)
    return {"fe": fe, "formate": formate,
            "h2": np.maximum(ctx["current"] - formate * ec.Z_FORMATE * ec.F, 0.0) / (ec.Z_H2 * ec.F)}


def value_of(variable: str, z: np.ndarray, frame: pd.DataFrame, ctx: Mapping[str, np.ndarray],
             fe: np.ndarray | None = None) -> np.ndarray:
    """The variable (in its unit) from networks' learning-space values ``z`` (network output,
    plus the physics offset for a hybrid). The outlet CO2 fraction follows from the carbonate
    demand by the carbon balance with ``fe`` (default: the log's measured FE; within the
    ceiling either way)."""
    space = SPACES[VARIABLES[variable].space]
    ceiling = ctx["ceiling"] if VARIABLES[variable].space == "fe_logit" else None
    estimate = space.from_space(z, ceiling)
    if space.estimates != "carbonate_demand":
        return np.asarray(estimate, float)
    fe = _outlet_rates(frame, ctx, fe)["fe"]
    closed = close(ctx["current"], ctx["co2_in"], ctx["n2"], fe, estimate, demand=True,
                   physics_demand=estimate, xp=np)
    return np.asarray(outlet_fraction(closed.co2_out, ctx["n2"], closed.h2, np), float)


def _train_one(
    frame: pd.DataFrame, variable: str, kind: str, x: np.ndarray, physics: np.ndarray | None,
    masks: Mapping[str, np.ndarray], out_dir: str | Path, s: Mapping[str, Any],
    progress: Callable[[Progress], None] | None, output: dict[str, Any], data: dict[str, Any],
    ctx: Mapping[str, np.ndarray], fe: np.ndarray | None = None,
) -> tuple[ModelCard, np.ndarray]:
    """Fit one model; its .keras file and card replace any old ones together at the end.
    Returns the card and the model's value of the variable on every row of the log."""
    features = VARIABLES[variable].features
    space = SPACES[VARIABLES[variable].space]
    ceiling = ctx["ceiling"] if VARIABLES[variable].space == "fe_logit" else None
    offset = (np.asarray(space.to_space(physics, ceiling), float) if kind == "hybrid"
              else np.zeros(len(frame)))
    measured = frame[variable].to_numpy(float)
    head = _head(variable, frame, ctx, fe)
    tr, va = masks["train"], masks["validation"]

    start = time.perf_counter()
    keras.utils.set_random_seed(s["seed"])
    model = build_network(features, x[tr], s["hidden"], s["activation"], f"{variable}_{kind}")
    extras: dict[str, np.ndarray]
    if head is None:
        # the measured variable in its space, standardised; the scaling folds into the output
        target = np.asarray(space.to_space(measured, ceiling), float) - offset
        mu, sd = float(target[tr].mean()), float(target[tr].std()) or 1.0
        fitted, extras, goal = model, {}, (target - mu) / sd
    else:
        fitted, extras = _through_head(model, head, offset)
        mu, sd, goal = _start_value(variable, kind, measured[tr], ctx, tr), 1.0, measured
    fitted.compile(optimizer=keras.optimizers.Adam(learning_rate=s["learning_rate"]), loss="mse",
                   jit_compile=False)
    out = model.get_layer("output")
    if head is not None:
        kernel, bias = out.get_weights()
        out.set_weights([kernel, bias + mu])
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=s["patience"],
                                         restore_best_weights=True)
    callbacks: list[keras.callbacks.Callback] = [stop]
    if progress is not None:
        callbacks.append(_Report(variable, kind, s["epochs"], progress))

    def inputs(rows: np.ndarray) -> dict[str, np.ndarray]:
        named = {f: x[rows, i:i + 1].astype("float32") for i, f in enumerate(features)}
        named.update({f"head_{k}": np.asarray(v, float)[rows, None].astype("float32")
                      for k, v in extras.items()})
        return named

    history = fitted.fit(
        inputs(tr), goal[tr].astype("float32")[:, None],
        validation_data=(inputs(va), goal[va].astype("float32")[:, None]),
        epochs=s["epochs"], batch_size=s["batch_size"], shuffle=True, callbacks=callbacks, verbose=0,
    )
    if head is None:
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
        predicted = value_of(variable, offset + _predict(tmp, x, features), frame, ctx, fe)
        elapsed = time.perf_counter() - start
        card = ModelCard(
            variable=variable, kind=kind,
            inputs=[InputRange(f, FEATURES[f].unit, *_envelope(FEATURES[f], x[tr, i]))
                    for i, f in enumerate(features)],
            output=output, metrics=_metrics(frame, variable, predicted, masks),
            data=data, training=_training_record(model, s, history, best, elapsed, head is not None),
            versions=_versions(), created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        card.write(tmp_card)
    if progress is not None:
        progress(Progress(variable, kind, best + 1, s["epochs"], float(history.history["loss"][best]),
                          float(val_losses[best]), done=True))
    return card, predicted


def _through_head(model: keras.Model, head: tuple[type[keras.layers.Layer], dict[str, np.ndarray]],
                  offset: np.ndarray) -> tuple[keras.Model, dict[str, np.ndarray]]:
    """The model fitted in place of a bounded-space network: its output is the learning-space
    value itself and the loss is on the measured variable, reached through the head layer;
    and the head's inputs per row (``head_<name>`` in the fitted model)."""
    layer, context = head
    extras = {"offset": offset, **context}
    extra_inputs = [keras.Input(shape=(1,), name=f"head_{name}") for name in extras]
    fitted = keras.Model([*model.inputs, *extra_inputs],
                         layer(name="head")([model.output, *extra_inputs]), name=f"{model.name}_fit")
    return fitted, extras


def _start_value(variable: str, kind: str, measured: np.ndarray, ctx: Mapping[str, np.ndarray],
                 rows: np.ndarray) -> float:
    """Where a bounded-head network's output starts: 0 for a hybrid (it starts as the
    physics); for an nn the logit of the mean measured FE share of its ceiling, or of a
    carbonate demand of 0.1 mol/mol (no plant measures it directly)."""
    if kind == "hybrid":
        return 0.0
    if VARIABLES[variable].space == "fe_logit":
        share = float(np.clip(np.mean(measured / ctx["ceiling"][rows]), 0.01, 0.99))
    else:
        share = 0.1
    return float(np.log(share / (1.0 - share)))


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
                     elapsed: float, bounded: bool = False) -> dict[str, Any]:
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
                 "validation": float(history.history["val_loss"][best]),
                 "scale": ("the measured variable, through the bounded output" if bounded
                           else "standardised target")},
        "architecture": {
            "summary": f"Input(1) per feature -> Concatenate -> Normalization -> {hidden} -> Dense(1)",
            "hidden": list(s["hidden"]), "activation": s["activation"],
            "parameters": int(model.count_params()),
            "target_scaling": (
                "none: the output is the learning-space value, trained through the space's bounded "
                "map to the measured variable (loss on the measured variable)" if bounded
                else "standardised on the training split, folded into the output layer"),
        },
        "optimizer": {"name": "adam", "learning_rate": s["learning_rate"], "loss": "mse",
                      "batch_size": s["batch_size"]},
        "deterministic_ops": True,
    }


def _baseline_identity(variable: str, frame: pd.DataFrame, cell: CellParameters) -> dict[str, Any]:
    estimates = SPACES[VARIABLES[variable].space].estimates
    if estimates is not None:
        # the residual is over the physics of what the network estimates, not the variable
        return {"function": "models.baseline.quantity", "estimates": estimates,
                "columns": list(baseline.QUANTITY_COLUMNS[estimates]), "cell": asdict(cell)}
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

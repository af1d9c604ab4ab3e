"""Model cards: the plain-JSON record beside every trained model file.

``<variable>.<kind>.keras`` has ``<variable>.<kind>.card.json`` next to it. The
card says what the network takes (inputs with units and the training envelope),
what it returns (for ``hybrid`` the residual over the physics baseline), how
well it did on which rows, which data and settings made it, and with which
software. Reading validates everything and reports every problem at once,
each prefixed with the file and the field.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from collections.abc import Mapping

import numpy as np

from cosim.atomic import atomic_path
from cosim.errors import ModelError
from models.variables import FEATURES, FILE_KINDS, SPACES, VARIABLES

__all__ = [
    "SCHEMA_VERSION", "SPLITS", "REFERENCES", "METRICS", "InputRange", "ModelCard", "Splits",
    "exclusions", "score", "model_path", "card_path", "card_beside",
]

SCHEMA_VERSION = 1
#: splits every card reports metrics for ("train" and "validation" may be added)
SPLITS = ("test", "extrapolation")
#: what the metrics compare against: the noise-free truth of a simulated log, or the measurement
REFERENCES = ("truth", "measured")
METRICS = ("mae", "rmse", "r2")
_TRAINING = ("epochs_run", "early_stopping", "seed", "time_s", "architecture", "optimizer")
_DATA = ("hash", "rows", "source", "splits")
_FIELDS = ("schema_version", "variable", "kind", "inputs", "output", "metrics", "data",
           "training", "versions", "created")


def model_path(models_dir: str | Path, variable: str, kind: str) -> Path:
    """Where the ``.keras`` file of ``variable``/``kind`` lives in ``models_dir``."""
    return Path(models_dir) / f"{variable}.{kind}.keras"


def card_path(models_dir: str | Path, variable: str, kind: str) -> Path:
    """Where the card of ``variable``/``kind`` lives in ``models_dir``."""
    return card_beside(model_path(models_dir, variable, kind))


def card_beside(model: str | Path) -> Path:
    """The card of any ``.keras`` file: ``<stem>.card.json`` in the same folder."""
    model = Path(model)
    return model.with_name(model.name.removesuffix(".keras") + ".card.json")


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
    ``threshold`` (its ``quantile`` over those rows), never seen in training.
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
               validation_fraction: float = 0.15) -> Splits:
        """Draw the splits of a log, deterministically for ``seed``."""
        phases = tuple(phases) if phases is not None and "phase" in frame else None
        used = _in_phases(frame, phases)
        if not used.any():
            raise ModelError(f"the log has no rows in phase(s) {', '.join(phases or ())}")
        j = np.asarray(frame["current_density"], float)
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
                "(its quantile over those rows); test and validation: experiments drawn by numpy "
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


@dataclass(frozen=True)
class InputRange:
    """One network input: a feature name, its unit and the training envelope [min, max]."""

    name: str
    unit: str
    min: float
    max: float


@dataclass
class ModelCard:
    """What a trained model is, where its data came from and how well it does.

    ``output`` is ``{"name", "unit"}``; a hybrid's network returns the residual,
    so its output also has ``"residual_of": "physics"`` and ``"baseline"`` (the
    baseline's identity and the columns it reads). ``metrics`` is
    ``{split: {"truth"|"measured": {"mae", "rmse", "r2"}}}`` (``None`` when not
    computable). ``data["splits"]`` holds what rebuilds every split from the log.
    """

    variable: str
    kind: str
    inputs: list[InputRange]
    output: dict[str, Any]
    metrics: dict[str, dict[str, dict[str, float | None]]]
    data: dict[str, Any]
    training: dict[str, Any]
    versions: dict[str, str | None]
    created: str
    schema_version: int = field(default=SCHEMA_VERSION)

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.inputs]

    @property
    def splits(self) -> Splits:
        return Splits.from_dict(self.data["splits"], f"{self.variable}.{self.kind} card")

    @property
    def envelope(self) -> dict[str, tuple[float, float]]:
        """Training range per input name."""
        return {i.name: (i.min, i.max) for i in self.inputs}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (non-finite numbers become ``None``)."""
        return _finite({
            "schema_version": self.schema_version,
            "variable": self.variable,
            "kind": self.kind,
            "inputs": [{"name": i.name, "unit": i.unit, "min": i.min, "max": i.max} for i in self.inputs],
            "output": self.output,
            "metrics": self.metrics,
            "data": self.data,
            "training": self.training,
            "versions": self.versions,
            "created": self.created,
        })

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, raw: Any, source: str = "<card>") -> ModelCard:
        """Validated card from a parsed JSON object; ModelError lists every problem."""
        problems = _problems(raw)
        if problems:
            head = f"{source}: invalid model card"
            raise ModelError(head + ": " + problems[0] if len(problems) == 1 else
                             head + f", {len(problems)} problems\n" + "\n".join(f"  - {p}" for p in problems))
        return cls(
            variable=raw["variable"], kind=raw["kind"],
            inputs=[InputRange(i["name"], i["unit"], float(i["min"]), float(i["max"]))
                    for i in raw["inputs"]],
            output=dict(raw["output"]), metrics=raw["metrics"], data=dict(raw["data"]),
            training=dict(raw["training"]), versions=dict(raw["versions"]), created=raw["created"],
            schema_version=raw["schema_version"],
        )

    @classmethod
    def from_json(cls, text: str, source: str = "<card>") -> ModelCard:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelError(f"{source}: not valid JSON ({exc})") from None
        return cls.from_dict(raw, source)

    @classmethod
    def read(cls, path: str | Path) -> ModelCard:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ModelError(f"{path}: cannot read model card ({exc.strerror or exc})") from None
        return cls.from_json(text, str(path))

    def write(self, path: str | Path) -> Path:
        """Validate and write atomically; returns the path."""
        path = Path(path)
        text = self.to_json()
        self.from_json(text, str(path))
        with atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
        return path


def _finite(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # NumPy scalars
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _problems(raw: Any) -> list[str]:
    if not isinstance(raw, dict):
        return [f"expected a JSON object, got {type(raw).__name__}"]
    out = [f"missing field {name!r}" for name in _FIELDS if name not in raw]
    out += [f"unknown field {name!r} (known: {', '.join(_FIELDS)})" for name in raw if name not in _FIELDS]
    version = raw.get("schema_version")
    if "schema_version" in raw and version != SCHEMA_VERSION:
        out.append(f"schema_version: {version!r}, this co2twin reads version {SCHEMA_VERSION}")
    variable, kind = raw.get("variable"), raw.get("kind")
    if "variable" in raw and variable not in VARIABLES:
        out.append(f"variable: {variable!r} is not one of {', '.join(VARIABLES)}")
        variable = None
    if "kind" in raw and kind not in FILE_KINDS:
        out.append(f"kind: {kind!r} is not one of {', '.join(FILE_KINDS)}")
    if "inputs" in raw:
        out += _input_problems(raw["inputs"])
    if "output" in raw:
        out += _output_problems(raw["output"], variable, kind)
    if "metrics" in raw:
        out += _metric_problems(raw["metrics"])
    out += _object_problems(raw, "data", _DATA) + _object_problems(raw, "training", _TRAINING)
    data, training = raw.get("data"), raw.get("training")
    if isinstance(data, dict) and "rows" in data and not (_is_int(data["rows"]) and data["rows"] >= 0):
        out.append(f"data.rows: {data['rows']!r} is not a row count")
    if isinstance(data, dict) and "splits" in data:
        try:
            Splits.from_dict(data["splits"] if isinstance(data["splits"], dict) else {})
        except ModelError as exc:
            out.append("data.splits: " + str(exc).split(": ", 1)[1])
    if isinstance(training, dict):
        for name in ("epochs_run", "seed"):
            if name in training and not _is_int(training[name]):
                out.append(f"training.{name}: {training[name]!r} is not an integer")
    versions = raw.get("versions")
    if "versions" in raw and not (
        isinstance(versions, dict) and all(v is None or isinstance(v, str) for v in versions.values())
    ):
        out.append("versions: expected an object of package -> version string")
    if "created" in raw:
        try:
            datetime.fromisoformat(raw["created"])
        except (TypeError, ValueError):
            out.append(f"created: {raw['created']!r} is not an ISO 8601 timestamp")
    return out


def _object_problems(raw: dict, name: str, required: tuple[str, ...]) -> list[str]:
    if name not in raw:
        return []
    value = raw[name]
    if not isinstance(value, dict):
        return [f"{name}: expected an object, got {type(value).__name__}"]
    return [f"{name}.{key}: missing" for key in required if key not in value]


def _input_problems(inputs: Any) -> list[str]:
    if not isinstance(inputs, list) or not inputs:
        return ["inputs: expected a non-empty list of {name, unit, min, max}"]
    out, seen = [], set()
    for n, item in enumerate(inputs):
        where = f"inputs[{n}]"
        if not isinstance(item, dict):
            out.append(f"{where}: expected an object {{name, unit, min, max}}")
            continue
        out += [f"{where}.{key}: missing" for key in ("name", "unit", "min", "max") if key not in item]
        name = item.get("name")
        if name is not None:
            where = f"inputs[{n}] ({name})"
            if name not in FEATURES:
                out.append(f"{where}.name: {name!r} is not a feature ({', '.join(FEATURES)})")
            elif "unit" in item and item["unit"] != FEATURES[name].unit:
                out.append(f"{where}.unit: {item['unit']!r}, the feature's unit is {FEATURES[name].unit!r}")
            if name in seen:
                out.append(f"{where}.name: listed twice")
            seen.add(name)
        lo, hi = item.get("min"), item.get("max")
        for key, value in (("min", lo), ("max", hi)):
            if key in item and not _is_number(value):
                out.append(f"{where}.{key}: {value!r} is not a finite number")
        if _is_number(lo) and _is_number(hi) and lo > hi:
            out.append(f"{where}.min: {lo} is above max {hi}")
    return out


def _output_problems(output: Any, variable: str | None, kind: Any) -> list[str]:
    if not isinstance(output, dict):
        return ["output: expected an object {name, unit}"]
    out = [f"output.{key}: missing" for key in ("name", "unit") if key not in output]
    if variable is not None:
        if "name" in output and output["name"] != variable:
            out.append(f"output.name: {output['name']!r}, the card is for {variable!r}")
        unit = VARIABLES[variable].unit
        if "unit" in output and output["unit"] != unit:
            out.append(f"output.unit: {output['unit']!r}, {variable} is in {unit!r}")
    if kind == "hybrid":
        if output.get("residual_of") != "physics":
            out.append(f"output.residual_of: {output.get('residual_of')!r}, a hybrid's network "
                       "returns the residual over 'physics'")
        if not isinstance(output.get("baseline"), dict):
            out.append("output.baseline: missing (the physics baseline the residual is over)")
    elif kind == "nn" and output.get("residual_of") is not None:
        out.append(f"output.residual_of: {output['residual_of']!r}, an nn model returns the variable itself")
    space = output.get("space", "value")
    if space not in SPACES:
        out.append(f"output.space: {space!r}, expected one of {', '.join(map(repr, SPACES))}")
    return out


def _metric_problems(metrics: Any) -> list[str]:
    if not isinstance(metrics, dict):
        return ["metrics: expected an object {split: {truth|measured: {mae, rmse, r2}}}"]
    out = [f"metrics.{split}: missing" for split in SPLITS if split not in metrics]
    for split, by_ref in metrics.items():
        if not isinstance(by_ref, dict):
            out.append(f"metrics.{split}: expected an object {{truth|measured: {{mae, rmse, r2}}}}")
            continue
        for ref, values in by_ref.items():
            where = f"metrics.{split}.{ref}"
            if ref not in REFERENCES:
                out.append(f"{where}: unknown reference (known: {', '.join(REFERENCES)})")
            elif not isinstance(values, dict):
                out.append(f"{where}: expected an object {{mae, rmse, r2}}")
            else:
                for m in METRICS:
                    if m not in values:
                        out.append(f"{where}.{m}: missing")
                    elif values[m] is not None and not _is_number(values[m]):
                        out.append(f"{where}.{m}: {values[m]!r} is not a finite number or null")
    return out

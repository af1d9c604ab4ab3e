"""Model cards of the battery ageing networks: the reactor's card layout, the battery's names.

A battery model is saved as ``battery_capacity.<kind>.keras`` with
``battery_capacity.<kind>.card.json`` beside it, in the layout of
:class:`models.cards.ModelCard` (the same dataclass holds it): inputs with units
and training envelope, output, metrics per split, data hash and splits, training
settings, library versions. What differs is the vocabulary, which
:mod:`models.card_schema` fixes to the reactor's variables: here the variable is
:data:`VARIABLE`, the inputs are :data:`models.battery_log.FEATURES`, the output is
the capacity fraction ``C / C0`` (a hybrid's, the residual over the seed's physics),
metrics are in Ah, and the splits are :class:`models.battery_splits.BatterySplits`.
:func:`read_card` checks all of it and reports every problem at once, each named by
the file and the field.
"""
from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any

from cosim.errors import ModelError
from models.battery_log import FEATURES
from models.battery_splits import BatterySplits
from models.cards import ModelCard, card_beside

__all__ = ["VARIABLE", "OUTPUT", "KINDS", "SPLITS", "SCHEMA_VERSION", "model_file", "card_file",
           "read_card", "write_card", "card_problems"]

VARIABLE = "battery_capacity"
#: what the networks return: ``C / C0`` (nn) or its residual over physics (hybrid)
OUTPUT = {"name": "capacity_fraction", "unit": "1"}
KINDS = ("nn", "hybrid")
SPLITS = ("test", "extrapolation")
SCHEMA_VERSION = 1
_REFERENCES = ("truth", "measured")
_FIELDS = ("schema_version", "variable", "kind", "inputs", "output", "metrics", "data", "training",
           "versions", "created")


def model_file(models_dir: str | Path, kind: str) -> Path:
    """Where the ``.keras`` file of a battery model of ``kind`` lives in ``models_dir``."""
    return Path(models_dir) / f"{VARIABLE}.{kind}.keras"


def card_file(models_dir: str | Path, kind: str) -> Path:
    """Where its card lives."""
    return card_beside(model_file(models_dir, kind))


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _inputs_problems(inputs: Any) -> list[str]:
    if not isinstance(inputs, list) or not inputs:
        return ["inputs: expected a non-empty list of {name, unit, min, max}"]
    problems, seen = [], set()
    for i, item in enumerate(inputs):
        where = f"inputs[{i}]"
        if not isinstance(item, dict) or set(item) != {"name", "unit", "min", "max"}:
            problems.append(f"{where}: expected an object {{name, unit, min, max}}")
            continue
        name = item["name"]
        if name not in FEATURES:
            problems.append(f"{where}.name: {name!r} is not a battery feature ({', '.join(FEATURES)})")
            continue
        where += f" ({name})"
        if name in seen:
            problems.append(f"{where}: listed twice")
        seen.add(name)
        if item["unit"] != FEATURES[name][0]:
            problems.append(f"{where}.unit: {item['unit']!r}, the feature's unit is {FEATURES[name][0]!r}")
        if not (_number(item["min"]) and _number(item["max"])):
            problems.append(f"{where}: min and max must be finite numbers")
        elif item["min"] > item["max"]:
            problems.append(f"{where}.min: {item['min']} is above max {item['max']}")
    return problems


def _output_problems(output: Any, kind: Any) -> list[str]:
    if not isinstance(output, dict):
        return ["output: expected an object {name, unit}"]
    problems = [f"output.{k}: {output.get(k)!r}, expected {v!r}" for k, v in OUTPUT.items()
                if output.get(k) != v]
    if kind == "hybrid" and (output.get("residual_of") != "physics" or not isinstance(output.get("baseline"),
                                                                                       dict)):
        problems.append("output: a hybrid's network returns the residual over 'physics' "
                        "(residual_of: physics, and the baseline)")
    if kind == "nn" and output.get("residual_of") is not None:
        problems.append("output.residual_of: an nn model returns the capacity fraction itself")
    return problems


def _metrics_problems(metrics: Any) -> list[str]:
    if not isinstance(metrics, dict):
        return ["metrics: expected an object {split: {truth|measured: {mae, rmse, r2}}}"]
    problems = [f"metrics: missing split {s!r}" for s in SPLITS if s not in metrics]
    for split, refs in metrics.items():
        if not isinstance(refs, dict):
            problems.append(f"metrics.{split}: expected an object {{truth|measured: {{mae, rmse, r2}}}}")
            continue
        for ref, scores in refs.items():
            where = f"metrics.{split}.{ref}"
            if ref not in _REFERENCES:
                problems.append(f"{where}: unknown reference (known: {', '.join(_REFERENCES)})")
            elif not isinstance(scores, dict) or not all(
                    scores.get(m) is None or _number(scores.get(m)) for m in ("mae", "rmse", "r2")) \
                    or not {"mae", "rmse", "r2"} <= set(scores):
                problems.append(f"{where}: expected {{mae, rmse, r2}} as numbers or null")
    return problems


def card_problems(raw: Any) -> list[str]:
    """Every problem of a parsed battery card, one line each, named by field; empty when valid."""
    if not isinstance(raw, dict):
        return [f"expected a JSON object, got {type(raw).__name__}"]
    problems = [f"missing field {f!r}" for f in _FIELDS if f not in raw]
    problems += [f"unknown field {f!r} (known: {', '.join(_FIELDS)})" for f in raw if f not in _FIELDS]
    if problems:
        return problems
    if raw["schema_version"] != SCHEMA_VERSION:
        problems.append(f"schema_version: {raw['schema_version']!r}, this co2twin reads version "
                        f"{SCHEMA_VERSION}")
    if raw["variable"] != VARIABLE:
        problems.append(f"variable: {raw['variable']!r}, a battery card is for {VARIABLE!r}")
    if raw["kind"] not in KINDS:
        problems.append(f"kind: {raw['kind']!r} is not one of {', '.join(KINDS)}")
    problems += _inputs_problems(raw["inputs"])
    problems += _output_problems(raw["output"], raw["kind"])
    problems += _metrics_problems(raw["metrics"])
    data = raw["data"]
    if not isinstance(data, dict) or not {"hash", "rows", "source", "splits"} <= set(data):
        problems.append("data: expected an object {hash, rows, source, splits}")
    else:
        try:
            BatterySplits.from_dict(data["splits"] if isinstance(data["splits"], dict) else {})
        except ModelError as exc:
            problems.append("data.splits: " + str(exc).removeprefix("<card>: data.splits "))
    training = raw["training"]
    if not isinstance(training, dict) or not isinstance(training.get("seed"), int):
        problems.append("training: expected an object with the seed (an integer) and the settings")
    versions = raw["versions"]
    if not isinstance(versions, dict) or not all(v is None or isinstance(v, str) for v in versions.values()):
        problems.append("versions: expected an object of package -> version string")
    try:
        datetime.fromisoformat(raw["created"])
    except (TypeError, ValueError):
        problems.append(f"created: {raw['created']!r} is not an ISO 8601 timestamp")
    return problems


def read_card(path: str | Path) -> ModelCard:
    """The card at ``path``, checked; :class:`ModelError` lists every problem, naming the file."""
    return ModelCard.read(path, check=card_problems, what="battery model card")


def write_card(card: ModelCard, path: str | Path) -> Path:
    """Check and write a card atomically (against the battery's card schema, not the reactor's)."""
    return card.write(path, check=card_problems, what="battery model card")

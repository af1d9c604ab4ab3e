"""Checks of a ``.keras`` model file before a twin relies on it (``co2twin models check PATH``).

:func:`check_model` loads the file with the NumPy runtime, lists what it takes
and returns, and looks for a model fed its own target: the VALCO2T networks
each take the quantity they estimate as an input (V, C_H2_out, C_CO2_out, pH),
a training leak that makes them useless as estimators. The target comes from
the model card beside the file (``output.name``) or else from the file name
(``DNN_CH2_model.keras`` -> ``CH2``, ``cell_voltage.hybrid.keras`` ->
``cell_voltage``); the suspicion is then measured: how far the output moves
with that input at a mid-range operating point.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cosim.errors import ModelError

from .runtime import Network, load_keras

__all__ = ["LEVELS", "Finding", "check_model", "model_target", "operating_point", "self_inputs"]

#: finding levels, most severe first
LEVELS = ("error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    """One result of a check: ``level`` is one of :data:`LEVELS`."""

    level: str
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.message}"


def _card(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    card = path.with_name(path.name.removesuffix(".keras") + ".card.json")
    if not card.is_file():
        return None, None
    try:
        raw = json.loads(card.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return None, f"{card}: cannot read the model card ({exc})"
    return (raw, None) if isinstance(raw, dict) else (None, f"{card}: the model card is not a JSON object")


def _card_inputs(card: dict[str, Any] | None) -> list[dict[str, Any]]:
    inputs = (card or {}).get("inputs")
    return [i for i in inputs if isinstance(i, dict)] if isinstance(inputs, list) else []


def model_target(path: str | Path) -> tuple[str, str]:
    """``(target, source)``: what the model estimates, from its card's ``output.name`` or its file name."""
    path = Path(path)
    card, _ = _card(path)
    output = (card or {}).get("output")
    if isinstance(output, dict) and isinstance(output.get("name"), str):
        return output["name"], "its model card"
    stem = path.name.removesuffix(".keras").split(".")[0]
    stem = re.sub(r"^(dnn|ann|nn|mlp)_", "", stem, flags=re.IGNORECASE)
    stem = re.sub(r"_model$", "", stem, flags=re.IGNORECASE)
    return stem, "its file name"


def _norm(name: str) -> str:
    return name.lower().replace("_", "")


def self_inputs(input_names: tuple[str, ...] | list[str], target: str) -> list[str]:
    """Inputs named like ``target``: equal after lowercasing and dropping ``_``, or that plus ``out``.

    ``C_H2_out`` matches ``CH2`` and ``V`` matches ``V``; ``C_CO2_in`` does not match ``CCO2``.
    """
    t = _norm(target)
    return [n for n in input_names if _norm(n) in (t, t + "out")]


def operating_point(net: Network, card: dict[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(center, spread)`` per input column: card envelope, else training statistics, else 0 +- 1."""
    center, spread = np.zeros(net.n_columns), np.ones(net.n_columns)
    known = np.isfinite(net.input_center) & np.isfinite(net.input_scale) & (net.input_scale > 0)
    center[known], spread[known] = net.input_center[known], net.input_scale[known]
    ranges = {i.get("name"): i for i in _card_inputs(card)}
    col = 0
    for name, size in zip(net.input_names, net.input_sizes, strict=True):
        spec = ranges.get(name)
        if size == 1 and spec is not None and isinstance(spec.get("min"), (int, float)) \
                and isinstance(spec.get("max"), (int, float)) and spec["max"] > spec["min"]:
            center[col], spread[col] = (spec["min"] + spec["max"]) / 2, (spec["max"] - spec["min"]) / 2
        col += size
    return center, spread


def _sized(names: tuple[str, ...], sizes: tuple[int, ...]) -> str:
    """``a, b[3]``: the names, each wider than one column with its width."""
    return ", ".join(n if s == 1 else f"{n}[{s}]" for n, s in zip(names, sizes, strict=True))


def check_model(path: str | Path) -> list[Finding]:
    """Findings about one ``.keras`` file; a file the runtime cannot load gives one ``error``.

    Sensitivities are of the first output column, by central differences at
    :func:`operating_point`'s center.
    """
    path = Path(path)
    try:
        net = load_keras(path)
    except ModelError as exc:
        return [Finding("error", str(exc))]
    card, card_problem = _card(path)
    findings = [Finding("error", card_problem)] if card_problem else []
    columns = _sized(net.input_names, net.input_sizes)
    outputs = _sized(net.output_names, net.output_sizes)
    findings.append(Finding("info", f"{path}: inputs {columns}; outputs {outputs}"))
    if card is not None:
        listed = [i.get("name") for i in _card_inputs(card)]
        if listed and listed != list(net.input_names):
            findings.append(Finding("warning", f"{path}: the model card lists inputs "
                                    f"{', '.join(map(str, listed))} but the network takes "
                                    f"{', '.join(net.input_names)} (in that order)"))
    center, spread = operating_point(net, card)
    y0 = net.predict(center[None, :])[0, 0]
    if not np.isfinite(y0):
        return findings + [Finding("error", f"{path}: the output is {y0} at the mid-range point "
                                            f"{center.tolist()}")]
    target, source = model_target(path)
    starts = np.cumsum((0,) + net.input_sizes)
    for name in self_inputs(net.input_names, target):
        j = int(starts[net.input_names.index(name)])
        probe = np.repeat(center[None, :], 4, axis=0)
        h = 1e-4 * spread[j]
        probe[:, j] += np.array([h, -h, spread[j], -spread[j]])
        y = net.predict(probe)[:, 0]
        slope, swing = (y[0] - y[1]) / (2 * h), y[2] - y[3]
        if abs(swing) <= 1e-12 * max(1.0, abs(y0)):
            findings.append(Finding("info", f"{path}: input {name!r} is named like the output {target!r} "
                                    f"(from {source}), but the output does not depend on it"))
            continue
        findings.append(Finding("warning", (
            f"{path}: the model takes its own output as an input: {name!r} is the estimated {target!r} "
            f"(from {source}); output moves {slope:.3g} per unit of {name} at the mid-range point "
            f"({swing:+.3g} over {name} = {center[j]:.4g} +- {spread[j]:.3g}); the estimate is only as "
            f"good as the value fed there")))
    return findings

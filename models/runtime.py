"""NumPy inference for Keras 3 ``.keras`` files, without TensorFlow or Keras.

:func:`load_keras` reads the file with :mod:`models.keras_file` (the archive,
the layer configs and the weights, by Keras's weight-naming rule) and compiles
the Functional or Sequential graph into a :class:`~models.network.Network`: a
short list of float64 NumPy steps ``act(x @ W + b)``. Concatenate's column
selection, affine layers (Normalization, BatchNormalization, Rescaling), linear
Dense layers and the affine half of a sigmoid (``0.5 + 0.5 tanh(x/2)``) fold
into the next Dense, so the VALCO2T models run as three matrix products.

Multi-output models return their outputs' units side by side, in
``output_names`` order. Tensors must be 2-D (samples x features).
"""
from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cosim.errors import ModelError

from .keras_file import KerasFile, TensorRef, Weights, input_size, layer_error, structure_refs, tensor_refs
from .network import (
    ACTIVATIONS,
    SUPPORTED_ACTIVATIONS,
    Array,
    Network,
    Step,
    expm1_negative,
    sigmoid,
    softmax,
)

# Network and SUPPORTED_ACTIVATIONS live in models.network; they stay importable from here.
__all__ = ["SUPPORTED_ACTIVATIONS", "SUPPORTED_LAYERS", "Network", "load_keras"]

_NO_OPS = ("Dropout", "AlphaDropout", "GaussianNoise", "GaussianDropout", "ActivityRegularization",
           "Identity", "Flatten")
_AFFINE = ("BatchNormalization", "Normalization", "Rescaling")
SUPPORTED_LAYERS: tuple[str, ...] = tuple(sorted(_NO_OPS + _AFFINE + (
    "InputLayer", "Concatenate", "Dense", "Activation", "ReLU", "LeakyReLU", "ELU", "PReLU", "Softmax")))


class _Lazy:
    """A tensor not computed yet: ``slots[slot] @ m + c`` (``m``/``c`` None: identity/zero)."""

    __slots__ = ("c", "m", "slot", "width")

    def __init__(self, slot: int, width: int, m: Array | None = None, c: Array | None = None) -> None:
        if m is not None and c is None and m.shape == (width, width) and np.array_equal(m, np.eye(width)):
            m = None
        self.slot, self.width, self.m, self.c = slot, width, m, c


class _Compiler:
    """Turns a Keras config and its weights into the steps of a :class:`Network`."""

    def __init__(self, weights: Weights, n_columns: int) -> None:
        self.where, self.store = weights.where, weights
        self.steps: list[Step] = []
        self.widths = [n_columns]
        self.summary: list[str] = []
        self.center, self.scale = np.full(n_columns, np.nan), np.full(n_columns, np.nan)

    def fail(self, layer: Mapping[str, Any], problem: str) -> ModelError:
        return layer_error(self.where, layer, problem)

    def emit(self, ins: tuple[int, ...], width: int, w: Any = None, b: Any = None, act: Any = None) -> int:
        self.steps.append((ins, w, b, act))
        self.widths.append(width)
        return len(self.steps)

    def materialize(self, t: _Lazy, act: Any = None) -> int:
        if t.m is None and t.c is None and act is None:
            return t.slot
        return self.emit((t.slot,), t.width, t.m, t.c, act)

    def last_axis(self, layer: Mapping[str, Any], *ok: Any) -> None:
        axis = layer["config"].get("axis", -1)
        if axis not in (-1, 1, [-1], [1]) + ok:
            raise self.fail(layer, f"works on axis {axis}; only the last axis is supported")

    def layer(self, layer: dict[str, Any], ins: list[_Lazy]) -> _Lazy:
        kind, cfg, t = layer["class_name"], layer["config"], ins[0]
        how = "no-op at inference"
        if kind in _NO_OPS or kind == "InputLayer":
            out = t
        elif kind == "Concatenate":
            self.last_axis(layer)
            out, how = self.concatenate(ins), "column selection, folded into what follows"
        elif kind == "Dense":
            out, how = self.dense(layer, t)
        elif kind in _AFFINE:
            out, how = self.affine(t, *self.affine_params(layer, t.width)), "affine, folded into what follows"
        else:
            act = (self.activation(layer, cfg.get("activation")) if kind == "Activation"
                   else self.parametric(layer, t.width))
            out, how = (t if act is None else _Lazy(self.materialize(t, act), t.width)), "elementwise"
        group = self.store.path(layer["name"]) or "-"
        self.summary.append(f"{layer['name']} ({kind}) at layers/{group}: {how}")
        return out

    def concatenate(self, ins: list[_Lazy]) -> _Lazy:
        width = sum(t.width for t in ins)
        if len({t.slot for t in ins}) > 1:
            return _Lazy(self.emit(tuple(self.materialize(t) for t in ins), width), width)
        rows = self.widths[ins[0].slot]
        m = np.hstack([np.eye(rows) if t.m is None else t.m for t in ins])
        c = None if all(t.c is None for t in ins) else np.concatenate(
            [np.zeros(t.width) if t.c is None else t.c for t in ins])
        return _Lazy(ins[0].slot, width, m, c)

    def dense(self, layer: dict[str, Any], t: _Lazy) -> tuple[_Lazy, str]:
        cfg = layer["config"]
        units, use_bias = int(cfg["units"]), bool(cfg.get("use_bias", True))
        if cfg.get("quantization_config") or "int8" in json.dumps(cfg.get("dtype")):
            raise self.fail(layer, "is quantized, which the NumPy runtime does not support")
        act = self.activation(layer, cfg.get("activation", "linear"))
        vals = self.store.read(layer, [(t.width, units)] + ([(units,)] if use_bias else []))
        kernel = vals[0] if t.m is None else t.m @ vals[0]
        bias = (vals[1] if use_bias else np.zeros(units)) + (0.0 if t.c is None else t.c @ vals[0])
        if act is None:
            return _Lazy(t.slot, units, kernel, bias), "linear, folded into what follows"
        if act is sigmoid:
            slot = self.emit((t.slot,), units, 0.5 * kernel, 0.5 * bias, np.tanh)
            return _Lazy(slot, units, 0.5 * np.eye(units), np.full(units, 0.5)), "matmul + sigmoid as tanh"
        return _Lazy(self.emit((t.slot,), units, kernel, bias, act), units), f"matmul + {cfg['activation']}"

    def affine(self, t: _Lazy, scale: Any, offset: Any, mean: Any = None, std: Any = None) -> _Lazy:
        scale, offset = (np.broadcast_to(np.asarray(v, float), (t.width,)) for v in (scale, offset))
        m = np.eye(t.width) if t.m is None else t.m
        if mean is not None and t.slot == 0 and t.c is None:
            mean, std = (np.broadcast_to(v, (t.width,)) for v in (mean, std))
            for j in range(t.width):
                rows = np.flatnonzero(m[:, j])
                if len(rows) == 1 and m[rows[0], j] == 1.0 and np.isnan(self.center[rows[0]]):
                    self.center[rows[0]], self.scale[rows[0]] = mean[j], std[j]
        return _Lazy(t.slot, t.width, m * scale, offset if t.c is None else t.c * scale + offset)

    def affine_params(self, layer: dict[str, Any], width: int) -> tuple[Any, ...]:
        """``(scale, offset[, mean, std])`` with layer(x) = x * scale + offset, as Keras evaluates it."""
        kind, cfg = layer["class_name"], layer["config"]
        if kind == "Rescaling":
            return cfg.get("scale", 1.0), cfg.get("offset", 0.0)
        axis = cfg.get("axis", -1)
        self.last_axis(layer, *((None, []) if kind == "Normalization" else ()))
        if kind == "BatchNormalization":
            scale, center = bool(cfg.get("scale", True)), bool(cfg.get("center", True))
            vals = self.store.read(layer, [(width,)] * (scale + center + 2 + 3 * bool(cfg.get("renorm"))))
            gamma, beta = (vals[0] if scale else 1.0), (vals[scale] if center else 0.0)
            mean, var = vals[scale + center], vals[scale + center + 1]
            std = np.sqrt(var + float(cfg.get("epsilon", 1e-3)))
            return gamma / std, beta - mean * gamma / std, mean, std
        if cfg.get("invert"):
            raise self.fail(layer, "has invert=True (it de-normalises), which the NumPy runtime refuses")
        if cfg.get("mean") is not None:
            mean, var = np.asarray(cfg["mean"], float), np.asarray(cfg["variance"], float)
        else:
            shape = () if axis in (None, []) else (width,)
            mean, var, _ = self.store.read(layer, [shape, shape, ()])
        std = np.maximum(np.sqrt(var), 1e-7)
        return 1.0 / std, -mean / std, mean, std

    def parametric(self, layer: dict[str, Any], width: int) -> Callable[[Array], Array]:
        kind, cfg = layer["class_name"], layer["config"]
        if kind == "LeakyReLU":
            slope = float(cfg.get("negative_slope", cfg.get("alpha", 0.3)))
            return lambda x: np.where(x > 0, x, slope * x)
        if kind == "ELU":
            alpha = float(cfg.get("alpha", 1.0))
            return lambda x: np.where(x > 0, x, alpha * expm1_negative(x))
        if kind == "PReLU":
            slopes = self.store.read(layer, [(width,)])[0]
            return lambda x: np.where(x > 0, x, slopes * x)
        if kind == "Softmax":
            self.last_axis(layer)
            return softmax
        top = math.inf if cfg.get("max_value") is None else float(cfg["max_value"])
        slope, thr = float(cfg.get("negative_slope", 0.0)), float(cfg.get("threshold", 0.0))
        return lambda x: np.where(x >= top, top, np.where(x >= thr, x, slope * (x - thr)))

    def activation(self, layer: Mapping[str, Any], spec: Any) -> Any:
        if isinstance(spec, dict) and isinstance(spec.get("config"), str):
            spec = spec["config"]
        if not isinstance(spec, str) or spec not in ACTIVATIONS:
            raise self.fail(layer, f"uses activation {spec!r}, which the NumPy runtime does not support; "
                            f"supported: {', '.join(SUPPORTED_ACTIVATIONS)}")
        return ACTIVATIONS[spec]

    def network(self, path: Path, inputs: list[tuple[str, int]], outputs: list[tuple[str, _Lazy]]) -> Network:
        result = [self.materialize(t) for _, t in outputs]
        return Network(path, inputs, [(n, t.width) for n, t in outputs], self.steps, result,
                       self.center, self.scale, self.summary)


def load_keras(path: str | Path) -> Network:
    """Read a Keras 3 ``.keras`` file into a NumPy :class:`Network`; TensorFlow is never imported.

    A file read once is kept, by its path and a hash of its bytes (a changed file is read anew,
    however soon after): the builds of one scenario, a Gym environment's resets and a sweep's
    variants each loaded the same four networks from disk, ~10 ms apiece, most of a reset's
    time. The kept network's arrays are read-only, so the model sets that share it cannot
    change it (their banks and buffers are their own).
    """
    try:
        content = Path(path).read_bytes()  # ~50-70 kB; parsing it costs ~100x the hash
    except OSError:
        return _read(Path(path))  # not there (or unreadable): KerasFile.read says so, naming it
    key = (str(path), hashlib.blake2b(content, digest_size=16).hexdigest())
    with _KEPT_LOCK:
        found = _KEPT.get(key)
    if found is None:
        # the bytes hashed are the bytes parsed: a file rewritten in between is not kept under
        # the old content's hash (a network parsed twice by two threads at once is harmless)
        found = _read(Path(path), content)
        found.freeze()
        with _KEPT_LOCK:
            if len(_KEPT) >= _KEEP_AT_MOST:
                del _KEPT[next(iter(_KEPT))]  # the first kept
            _KEPT[key] = found
    return found


#: the networks :func:`load_keras` has read, by path and a hash of the file's bytes
_KEPT: dict[tuple[str, str], Network] = {}
_KEPT_LOCK = threading.Lock()
_KEEP_AT_MOST = 64


def _read(path: Path, content: bytes | None = None) -> Network:
    """The file (or its ``content``) compiled to a :class:`Network`, or a :class:`ModelError`
    naming what is wrong."""
    file = KerasFile.read(path, content)
    where = file.where
    for layer in file.layers:
        if layer["class_name"] not in SUPPORTED_LAYERS or layer.get("registered_name") not in (
                None, layer["class_name"]):
            raise ModelError(f"{where}: layer {layer['name']!r} ({layer['class_name']}) is not supported by "
                             f"the NumPy runtime; supported: {', '.join(SUPPORTED_LAYERS)}")
    weights = file.open_weights()
    try:
        with weights:
            return (_sequential if file.kind == "Sequential" else _functional)(file, weights)
    except ModelError:
        raise
    except (KeyError, TypeError, IndexError, ValueError, AttributeError) as exc:
        raise ModelError(f"{where}: config.json is not a Keras model config this runtime understands "
                         f"({type(exc).__name__}: {exc})") from None


def _sequential(file: KerasFile, weights: Weights) -> Network:
    layers = file.model_layers  # without the InputLayer, which gives the input's name and size
    if file.layers and file.layers[0]["class_name"] == "InputLayer":
        first = file.layers[0]
        name, size = first["name"], input_size(file.where, first["name"], first["config"])
    else:
        shape = file.body.get("build_input_shape") or (layers[0].get("build_config") or {}).get("input_shape")
        name, size = "input", input_size(file.where, "input", {"batch_shape": shape})
    comp = _Compiler(weights, size)
    t = _Lazy(0, size)
    for layer in layers:
        t = comp.layer(layer, [t])
    return comp.network(file.path, [(name, size)], [(layers[-1]["name"] if layers else name, t)])


def _functional(file: KerasFile, weights: Weights) -> Network:
    where = file.where
    by_name = {layer["name"]: layer for layer in file.layers}
    inputs = []
    for name, _, _ in structure_refs(file.body["input_layers"]):
        if by_name[name]["class_name"] != "InputLayer":
            raise ModelError(f"{where}: model input {name!r} is not an InputLayer")
        inputs.append((name, input_size(where, name, by_name[name]["config"])))
    comp = _Compiler(weights, sum(s for _, s in inputs))
    cache: dict[TensorRef, _Lazy] = {}
    start = 0
    for name, size in inputs:
        select = np.zeros((comp.widths[0], size))
        select[start:start + size] = np.eye(size)
        cache[(name, 0, 0)], start = _Lazy(0, size, select), start + size
    active: set[TensorRef] = set()

    def resolve(ref: TensorRef) -> _Lazy:
        if ref not in cache:
            nodes = by_name[ref[0]].get("inbound_nodes") or [] if ref[0] in by_name else []
            if ref in active or ref[1] >= len(nodes) or ref[2] != 0:
                raise ModelError(f"{where}: the config graph has no usable output {ref[2]} of node {ref[1]} "
                                 f"of layer {ref[0]!r}")
            active.add(ref)
            args = tensor_refs(nodes[ref[1]]["args"])
            cache[ref] = comp.layer(by_name[ref[0]], [resolve(r) for r in args])
        return cache[ref]

    outputs = [(ref[0], resolve(ref)) for ref in structure_refs(file.body["output_layers"])]
    return comp.network(file.path, inputs, outputs)

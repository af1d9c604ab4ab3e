"""NumPy inference for Keras 3 ``.keras`` files, without TensorFlow or Keras.

:func:`load_keras` reads the archive (``config.json`` + ``model.weights.h5``) with
:mod:`zipfile`, :mod:`json` and :mod:`h5py` and compiles the Functional or
Sequential graph into a :class:`Network`: a short list of float64 NumPy steps
``act(x @ W + b)``. Concatenate's column selection, affine layers
(Normalization, BatchNormalization, Rescaling), linear Dense layers and the
affine half of a sigmoid (``0.5 + 0.5 tanh(x/2)``) fold into the next Dense, so
the VALCO2T models run as three matrix products.

Weights live at ``layers/<object path>/vars/<i>``, where the object path is not
the layer's name but its snake-cased class name plus a per-class counter, in
``model.layers`` order (the config's layer order; a Sequential model's
InputLayer is not counted): Keras's rule in
``saving_lib._save_container_state``. The ``name`` attribute Keras 3.11+ writes
on each group is checked against that rule.

Multi-output models return their outputs' units side by side, in
``output_names`` order. Tensors must be 2-D (samples x features).
"""
from __future__ import annotations

import io
import json
import math
import re
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cosim.errors import ModelError

__all__ = ["SUPPORTED_ACTIVATIONS", "SUPPORTED_LAYERS", "Network", "load_keras"]

Array = np.ndarray
Step = tuple[tuple[int, ...], Any, Any, Any]  # (input slots, kernel, bias, activation)

_ERF = np.array([  # Chebyshev fit of erfc (Numerical Recipes 3rd ed., 6.2.2); |error| < 1e-15
    -1.3026537197817094, 6.4196979235649026e-1, 1.9476473204185836e-2, -9.561514786808631e-3,
    -9.46595344482036e-4, 3.66839497852761e-4, 4.2523324806907e-5, -2.0278578112534e-5,
    -1.624290004647e-6, 1.303655835580e-6, 1.5626441722e-8, -8.5238095915e-8, 6.529054439e-9,
    5.059343495e-9, -9.91364156e-10, -2.27365122e-10, 9.6467911e-11, 2.394038e-12, -6.886027e-12,
    8.94487e-13, 3.13092e-13, -1.12708e-13, 3.81e-16, 7.106e-15, -1.523e-15, -9.4e-17, 1.21e-16,
    -2.8e-17])


def _erf(x: Array) -> Array:
    if x.size <= 64:
        return np.fromiter(map(math.erf, x.ravel()), float, x.size).reshape(x.shape)
    z = np.abs(x)
    t = 2.0 / (2.0 + z)
    ty = 4.0 * t - 2.0
    d = dd = np.zeros_like(z)
    for c in _ERF[:0:-1]:
        d, dd = ty * d - dd + c, d
    return np.sign(x) * (1.0 - t * np.exp(-z * z + 0.5 * (_ERF[0] + ty * d) - dd))


def _sigmoid(x: Array) -> Array:
    return 0.5 + 0.5 * np.tanh(0.5 * x)


def _softmax(x: Array) -> Array:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _hard_sigmoid(x: Array) -> Array:
    return np.clip(x / 6.0 + 0.5, 0.0, 1.0)


def _neg(x: Array) -> Array:
    return np.expm1(np.minimum(x, 0.0))


_SELU_A, _SELU_S = 1.6732632423543772, 1.0507009873554805
#: Keras 3 activations by serialized name as float64 NumPy functions, with Keras's default arguments.
_ACTIVATIONS: dict[str, Callable[[Array], Array] | None] = {
    "linear": None, "relu": lambda x: np.maximum(x, 0.0), "relu6": lambda x: np.clip(x, 0.0, 6.0),
    "leaky_relu": lambda x: np.where(x > 0, x, 0.2 * x), "sigmoid": _sigmoid, "tanh": np.tanh,
    "softplus": lambda x: np.logaddexp(0.0, x), "softsign": lambda x: x / (1.0 + np.abs(x)),
    "elu": lambda x: np.where(x > 0, x, _neg(x)),
    "selu": lambda x: _SELU_S * np.where(x > 0, x, _SELU_A * _neg(x)),
    "celu": lambda x: np.maximum(x, 0.0) + _neg(x),
    "gelu": lambda x: 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0))),
    "silu": lambda x: x * _sigmoid(x), "swish": lambda x: x * _sigmoid(x), "exponential": np.exp,
    "hard_sigmoid": _hard_sigmoid, "hard_silu": lambda x: x * _hard_sigmoid(x),
    "hard_swish": lambda x: x * _hard_sigmoid(x), "hard_tanh": lambda x: np.clip(x, -1.0, 1.0),
    "softmax": _softmax, "log_softmax": lambda x: np.log(_softmax(x)),
    "log_sigmoid": lambda x: -np.logaddexp(0.0, -x), "mish": lambda x: x * np.tanh(np.logaddexp(0.0, x)),
    "tanh_shrink": lambda x: x - np.tanh(x), "squareplus": lambda x: 0.5 * (x + np.sqrt(x * x + 4.0)),
}
SUPPORTED_ACTIVATIONS: tuple[str, ...] = tuple(sorted(_ACTIVATIONS))
_NO_OPS = ("Dropout", "AlphaDropout", "GaussianNoise", "GaussianDropout", "ActivityRegularization",
           "Identity", "Flatten")
_AFFINE = ("BatchNormalization", "Normalization", "Rescaling")
SUPPORTED_LAYERS: tuple[str, ...] = tuple(sorted(_NO_OPS + _AFFINE + (
    "InputLayer", "Concatenate", "Dense", "Activation", "ReLU", "LeakyReLU", "ELU", "PReLU", "Softmax")))


def _snake(name: str) -> str:
    """Keras's ``naming.to_snake_case``, which names the weight groups."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _apply(x: Array, w: Array | None, b: Array | None, act: Any) -> Array:
    if w is not None:
        x = x @ w
    if b is not None:
        x = x + b
    return x if act is None else act(x)


class _Lazy:
    """A tensor not computed yet: ``slots[slot] @ m + c`` (``m``/``c`` None: identity/zero)."""

    __slots__ = ("c", "m", "slot", "width")

    def __init__(self, slot: int, width: int, m: Array | None = None, c: Array | None = None) -> None:
        if m is not None and c is None and m.shape == (width, width) and np.array_equal(m, np.eye(width)):
            m = None
        self.slot, self.width, self.m, self.c = slot, width, m, c


class Network:
    """A Keras model compiled to NumPy; evaluates in float64.

    ``predict`` takes an (n, ``n_columns``) array whose columns are the inputs in
    ``input_names`` order (an input of size k takes k columns), or a mapping of
    input name to values, and returns (n, sum of ``output_sizes``).
    ``input_center``/``input_scale`` are the mean and spread a Normalization or
    BatchNormalization layer fed straight by the inputs standardises each column
    with (the training statistics; NaN where the model has none).
    """

    def __init__(self, path: Path, inputs: list[tuple[str, int]], outputs: list[tuple[str, int]],
                 steps: list[Step], result: list[int], center: Array, scale: Array,
                 summary: list[str]) -> None:
        self.path = path
        self.input_names = tuple(n for n, _ in inputs)
        self.input_sizes = tuple(s for _, s in inputs)
        self.output_names = tuple(n for n, _ in outputs)
        self.output_sizes = tuple(s for _, s in outputs)
        self.n_columns = sum(self.input_sizes)
        self.input_center, self.input_scale = center, scale
        self._steps, self._result, self._summary = steps, result, summary
        chain = result == [len(steps)] and all(ins == (i,) for i, (ins, *_) in enumerate(steps))
        self._chain = [s[1:] for s in steps] if chain else None
        self._one = None if not chain else [
            (None if w is None else np.ascontiguousarray(w.T), b, act) for _, w, b, act in steps]

    def _columns_message(self, got: int) -> str:
        cols = ", ".join(n if s == 1 else f"{n}[{s}]" for n, s in zip(self.input_names, self.input_sizes))
        what = "inputs" if self.n_columns == len(self.input_names) else "columns"
        return f"{self.path}: expects {self.n_columns} {what} ({cols}), got {got}"

    def _from_mapping(self, x: Mapping[str, Any]) -> Array:
        missing = [n for n in self.input_names if n not in x]
        if missing:
            raise ModelError(f"{self.path}: no values for input(s) {', '.join(missing)}; "
                             f"expects {', '.join(self.input_names)}")
        parts = []
        for n, s in zip(self.input_names, self.input_sizes):
            v = np.asarray(x[n], dtype=np.float64)
            parts.append(v.reshape(-1, 1) if s == 1 and v.ndim < 2 else np.atleast_2d(v))
            if parts[-1].ndim != 2 or parts[-1].shape[1] != s:
                raise ModelError(f"{self.path}: input {n!r} takes {s} value(s) per sample, "
                                 f"got shape {v.shape}")
        if len({p.shape[0] for p in parts}) > 1:
            rows = ", ".join(f"{n}: {p.shape[0]}" for n, p in zip(self.input_names, parts))
            raise ModelError(f"{self.path}: inputs have different numbers of samples ({rows})")
        return np.hstack(parts)

    def predict(self, x: Array | Mapping[str, Any]) -> Array:
        """Outputs (n, n_outputs) of n samples given as an (n, n_columns) array or name -> values."""
        if isinstance(x, Mapping):
            x = self._from_mapping(x)
        else:
            x = np.asarray(x, dtype=np.float64)
            if x.ndim != 2:
                raise ModelError(f"{self.path}: expects a 2-D array (samples, {self.n_columns} columns), "
                                 f"got shape {x.shape}; use predict_one for one sample")
            if x.shape[1] != self.n_columns:
                raise ModelError(self._columns_message(x.shape[1]))
        if self._chain is not None:
            for w, b, act in self._chain:
                x = _apply(x, w, b, act)
            return x
        slots = [x]
        for ins, w, b, act in self._steps:
            h = slots[ins[0]] if len(ins) == 1 else np.concatenate([slots[i] for i in ins], axis=-1)
            slots.append(_apply(h, w, b, act))
        out = [slots[i] for i in self._result]
        return out[0] if len(out) == 1 else np.hstack(out)

    def predict_one(self, values: Sequence[float]) -> float:
        """The first output of one sample (``values`` in column order): the fast scalar path."""
        h = np.array(values, dtype=np.float64)
        if h.shape != (self.n_columns,):
            raise ModelError(self._columns_message(h.size))
        if self._one is None:
            return float(self.predict(h[None, :])[0, 0])
        for wt, b, act in self._one:
            if wt is not None:
                h = wt.dot(h)
            if b is not None:
                h += b
            if act is not None:
                h = act(h)
        return float(h[0])

    @property
    def chain(self) -> list[tuple[Array | None, Array | None, Any]] | None:
        """For a single-path network: ``(W, b, activation)`` per step, ``h <- act(W @ h + b)``
        on one sample (``None`` where a part is absent); ``None`` for other graphs."""
        return None if self._one is None else list(self._one)

    def layers_summary(self) -> list[str]:
        """One line per Keras layer: name, class, weight group and what the runtime made of it."""
        return list(self._summary)

    def __repr__(self) -> str:
        return (f"Network({str(self.path)!r}, inputs={list(self.input_names)}, "
                f"outputs={list(self.output_names)}, steps={len(self._steps)})")


class _Compiler:
    """Turns a Keras config and its weights into the steps of a :class:`Network`."""

    def __init__(self, where: str, h5: Any, n_columns: int, layers: list[dict[str, Any]]) -> None:
        self.where, self.h5 = where, h5
        self.steps: list[Step] = []
        self.widths = [n_columns]
        self.summary: list[str] = []
        self.center, self.scale = np.full(n_columns, np.nan), np.full(n_columns, np.nan)
        self.paths: dict[str, str] = {}
        used: dict[str, int] = {}
        for layer in layers:
            base = _snake(layer["class_name"])
            used[base] = used.get(base, -1) + 1
            self.paths[layer["name"]] = base if used[base] == 0 else f"{base}_{used[base]}"

    def fail(self, layer: Mapping[str, Any], problem: str) -> ModelError:
        return ModelError(f"{self.where}: layer {layer['name']!r} ({layer['class_name']}) {problem}")

    def weights(self, layer: Mapping[str, Any], shapes: list[tuple[int, ...]]) -> list[Array]:
        at = f"layers/{self.paths.get(layer['name'])}/vars"
        group = self.h5.get(at)
        if group is None:
            raise self.fail(layer, f"has no weights at {at} in model.weights.h5")
        owner = group.attrs.get("name")
        owner = owner.decode() if isinstance(owner, bytes) else owner
        if owner is not None and owner != layer["name"]:
            raise self.fail(layer, f"expects its weights at {at}, which belong to layer {owner!r}")
        if len(group) != len(shapes):
            raise self.fail(layer, f"has {len(group)} weight arrays at {at}, "
                            f"the config implies {len(shapes)}")
        out = []
        for i, shape in enumerate(shapes):
            if group[str(i)].attrs.get("dtype") == "bfloat16":
                raise self.fail(layer, "has bfloat16 weights, which the NumPy runtime does not read")
            out.append(np.asarray(group[str(i)], dtype=np.float64))
            if out[-1].shape != shape:
                raise self.fail(layer, f"weight {i} at {at} has shape {out[-1].shape}, "
                                f"the config implies {shape}")
        return out

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
        self.summary.append(f"{layer['name']} ({kind}) at layers/{self.paths.get(layer['name'], '-')}: {how}")
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
        vals = self.weights(layer, [(t.width, units)] + ([(units,)] if use_bias else []))
        kernel = vals[0] if t.m is None else t.m @ vals[0]
        bias = (vals[1] if use_bias else np.zeros(units)) + (0.0 if t.c is None else t.c @ vals[0])
        if act is None:
            return _Lazy(t.slot, units, kernel, bias), "linear, folded into what follows"
        if act is _sigmoid:
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
            vals = self.weights(layer, [(width,)] * (scale + center + 2 + 3 * bool(cfg.get("renorm"))))
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
            mean, var, _ = self.weights(layer, [shape, shape, ()])
        std = np.maximum(np.sqrt(var), 1e-7)
        return 1.0 / std, -mean / std, mean, std

    def parametric(self, layer: dict[str, Any], width: int) -> Callable[[Array], Array]:
        kind, cfg = layer["class_name"], layer["config"]
        if kind == "LeakyReLU":
            slope = float(cfg.get("negative_slope", cfg.get("alpha", 0.3)))
            return lambda x: np.where(x > 0, x, slope * x)
        if kind == "ELU":
            alpha = float(cfg.get("alpha", 1.0))
            return lambda x: np.where(x > 0, x, alpha * _neg(x))
        if kind == "PReLU":
            alpha = self.weights(layer, [(width,)])[0]
            return lambda x: np.where(x > 0, x, alpha * x)
        if kind == "Softmax":
            self.last_axis(layer)
            return _softmax
        top = math.inf if cfg.get("max_value") is None else float(cfg["max_value"])
        slope, thr = float(cfg.get("negative_slope", 0.0)), float(cfg.get("threshold", 0.0))
        return lambda x: np.where(x >= top, top, np.where(x >= thr, x, slope * (x - thr)))

    def activation(self, layer: Mapping[str, Any], spec: Any) -> Any:
        if isinstance(spec, dict) and isinstance(spec.get("config"), str):
            spec = spec["config"]
        if not isinstance(spec, str) or spec not in _ACTIVATIONS:
            raise self.fail(layer, f"uses activation {spec!r}, which the NumPy runtime does not support; "
                            f"supported: {', '.join(SUPPORTED_ACTIVATIONS)}")
        return _ACTIVATIONS[spec]

    def network(self, path: Path, inputs: list[tuple[str, int]], outputs: list[tuple[str, _Lazy]]) -> Network:
        result = [self.materialize(t) for _, t in outputs]
        return Network(path, inputs, [(n, t.width) for n, t in outputs], self.steps, result,
                       self.center, self.scale, self.summary)


def _read_archive(path: Path) -> tuple[str, dict[str, Any], bytes]:
    where = str(path)
    if not path.is_file():
        raise ModelError(f"{where}: no such model file" if not path.exists() else f"{where}: not a file")
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            raw = {n: zf.read(n) for n in ("config.json", "metadata.json", "model.weights.h5") if n in names}
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, zlib.error) as exc:
        raise ModelError(f"{where}: not a .keras archive (cannot read it as a zip file: {exc})") from None
    if "config.json" not in raw:
        raise ModelError(f"{where}: the archive has no config.json, so it is not a Keras 3 .keras file")
    if "model.weights.h5" not in raw:
        other = sorted(n for n in names if n.startswith("model.weights"))
        hint = f" ({', '.join(other)}: sharded or NPZ weights are not supported)" if other else ""
        raise ModelError(f"{where}: the archive has no model.weights.h5{hint}")
    try:
        config, meta = json.loads(raw["config.json"]), json.loads(raw.get("metadata.json", b"{}"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelError(f"{where}: config.json or metadata.json is not valid JSON ({exc})") from None
    version = str(meta.get("keras_version", "3")) if isinstance(meta, dict) else "3"
    if not version.startswith("3"):
        raise ModelError(f"{where}: saved by Keras {version}; only Keras 3 files are supported")
    kind = config.get("class_name") if isinstance(config, dict) else None
    body = config.get("config") if isinstance(config, dict) else None
    if kind not in ("Functional", "Sequential") or not isinstance(body, dict) \
            or not isinstance(body.get("layers"), list):
        raise ModelError(f"{where}: config.json does not describe a Keras Functional or Sequential "
                         f"model (class_name {kind!r})")
    return kind, body, raw["model.weights.h5"]


def load_keras(path: str | Path) -> Network:
    """Read a Keras 3 ``.keras`` file into a NumPy :class:`Network`; TensorFlow is never imported."""
    path = Path(path)
    where = str(path)
    kind, body, weights = _read_archive(path)
    layers = [dict(layer, name=layer.get("name") or layer["config"]["name"]) for layer in body["layers"]]
    for layer in layers:
        if layer["class_name"] not in SUPPORTED_LAYERS or layer.get("registered_name") not in (
                None, layer["class_name"]):
            raise ModelError(f"{where}: layer {layer['name']!r} ({layer['class_name']}) is not supported by "
                             f"the NumPy runtime; supported: {', '.join(SUPPORTED_LAYERS)}")
    try:
        import h5py
    except ImportError:
        raise ModelError(f"{where}: reading .keras weights needs h5py (pip install h5py)") from None
    try:
        h5 = h5py.File(io.BytesIO(weights), "r")
    except OSError as exc:
        raise ModelError(f"{where}: model.weights.h5 is not a readable HDF5 file ({exc})") from None
    try:
        with h5:
            return (_sequential if kind == "Sequential" else _functional)(path, layers, body, h5)
    except ModelError:
        raise
    except (KeyError, TypeError, IndexError, ValueError, AttributeError) as exc:
        raise ModelError(f"{where}: config.json is not a Keras model config this runtime understands "
                         f"({type(exc).__name__}: {exc})") from None


def _input_size(where: str, name: str, cfg: Mapping[str, Any] | None) -> int:
    shape = (cfg or {}).get("batch_shape", (cfg or {}).get("batch_input_shape"))
    if not isinstance(shape, (list, tuple)) or len(shape) != 2 or not isinstance(shape[1], int):
        raise ModelError(f"{where}: input {name!r} has shape {shape}; the NumPy runtime "
                         f"handles inputs of shape (None, features) only")
    return shape[1]


def _sequential(path: Path, layers: list[dict[str, Any]], body: Mapping[str, Any], h5: Any) -> Network:
    if layers and layers[0]["class_name"] == "InputLayer":
        name, size = layers[0]["name"], _input_size(str(path), layers[0]["name"], layers[0]["config"])
        layers = layers[1:]
    else:
        shape = body.get("build_input_shape") or (layers[0].get("build_config") or {}).get("input_shape")
        name, size = "input", _input_size(str(path), "input", {"batch_shape": shape})
    comp = _Compiler(str(path), h5, size, layers)
    t = _Lazy(0, size)
    for layer in layers:
        t = comp.layer(layer, [t])
    return comp.network(path, [(name, size)], [(layers[-1]["name"] if layers else name, t)])


def _structure_refs(obj: Any) -> list[tuple[str, int, int]]:
    """``input_layers``/``output_layers`` flattened as Keras does (dict keys sorted)."""
    if isinstance(obj, list) and len(obj) == 3 and isinstance(obj[0], str):
        return [(obj[0], int(obj[1]), int(obj[2]))]
    if isinstance(obj, dict):
        return [r for k in sorted(obj) for r in _structure_refs(obj[k])]
    return [r for v in obj for r in _structure_refs(v)]


def _tensor_refs(obj: Any) -> list[tuple[str, int, int]]:
    """The ``keras_history`` of every ``__keras_tensor__`` in a node's args, in order."""
    if isinstance(obj, dict):
        if obj.get("class_name") == "__keras_tensor__":
            name, node, index = obj["config"]["keras_history"]
            return [(name, int(node), int(index))]
        return [r for v in obj.values() for r in _tensor_refs(v)]
    return [r for v in obj for r in _tensor_refs(v)] if isinstance(obj, (list, tuple)) else []


def _functional(path: Path, layers: list[dict[str, Any]], body: Mapping[str, Any], h5: Any) -> Network:
    where = str(path)
    by_name = {layer["name"]: layer for layer in layers}
    inputs = []
    for name, _, _ in _structure_refs(body["input_layers"]):
        if by_name[name]["class_name"] != "InputLayer":
            raise ModelError(f"{where}: model input {name!r} is not an InputLayer")
        inputs.append((name, _input_size(where, name, by_name[name]["config"])))
    comp = _Compiler(where, h5, sum(s for _, s in inputs), layers)
    cache: dict[tuple[str, int, int], _Lazy] = {}
    start = 0
    for name, size in inputs:
        select = np.zeros((comp.widths[0], size))
        select[start:start + size] = np.eye(size)
        cache[(name, 0, 0)], start = _Lazy(0, size, select), start + size
    active: set[tuple[str, int, int]] = set()

    def resolve(ref: tuple[str, int, int]) -> _Lazy:
        if ref not in cache:
            nodes = by_name[ref[0]].get("inbound_nodes") or [] if ref[0] in by_name else []
            if ref in active or ref[1] >= len(nodes) or ref[2] != 0:
                raise ModelError(f"{where}: the config graph has no usable output {ref[2]} of node {ref[1]} "
                                 f"of layer {ref[0]!r}")
            active.add(ref)
            args = _tensor_refs(nodes[ref[1]]["args"])
            cache[ref] = comp.layer(by_name[ref[0]], [resolve(r) for r in args])
        return cache[ref]

    outputs = [(ref[0], resolve(ref)) for ref in _structure_refs(body["output_layers"])]
    return comp.network(path, inputs, outputs)

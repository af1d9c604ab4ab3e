"""A Keras model compiled to float64 NumPy: the activations and the forward pass.

A :class:`Network` is a short list of steps ``act(x @ W + b)``, each reading one
or more earlier results (the inputs are result 0). :mod:`models.runtime` builds
it from a ``.keras`` file; nothing here reads files or knows Keras's formats.
The activation functions reproduce Keras 3's definitions, with its default
arguments, so that a network evaluated here agrees with Keras to rounding.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cosim.errors import ModelError

__all__ = [
    "ACTIVATIONS", "SUPPORTED_ACTIVATIONS", "Array", "ChainStep", "Step", "Network", "apply_step", "erf",
    "expm1_negative", "hard_sigmoid", "sigmoid", "softmax",
]

Array = np.ndarray
Step = tuple[tuple[int, ...], Any, Any, Any]  # (input slots, kernel, bias, activation)
#: one step of a single-path network on one sample: ``h <- act(W @ h + b)``
ChainStep = tuple[Array | None, Array | None, Any]

_ERFC = np.array([  # Chebyshev fit of erfc (Numerical Recipes 3rd ed., 6.2.2); |error| < 1e-15
    -1.3026537197817094, 6.4196979235649026e-1, 1.9476473204185836e-2, -9.561514786808631e-3,
    -9.46595344482036e-4, 3.66839497852761e-4, 4.2523324806907e-5, -2.0278578112534e-5,
    -1.624290004647e-6, 1.303655835580e-6, 1.5626441722e-8, -8.5238095915e-8, 6.529054439e-9,
    5.059343495e-9, -9.91364156e-10, -2.27365122e-10, 9.6467911e-11, 2.394038e-12, -6.886027e-12,
    8.94487e-13, 3.13092e-13, -1.12708e-13, 3.81e-16, 7.106e-15, -1.523e-15, -9.4e-17, 1.21e-16,
    -2.8e-17])


def erf(x: Array) -> Array:
    """The error function, elementwise (``math.erf`` on small arrays, a Chebyshev fit on large)."""
    if x.size <= 64:
        return np.fromiter(map(math.erf, x.ravel()), float, x.size).reshape(x.shape)
    z = np.abs(x)
    t = 2.0 / (2.0 + z)
    ty = 4.0 * t - 2.0
    d = dd = np.zeros_like(z)
    for c in _ERFC[:0:-1]:
        d, dd = ty * d - dd + c, d
    return np.sign(x) * (1.0 - t * np.exp(-z * z + 0.5 * (_ERFC[0] + ty * d) - dd))


def sigmoid(x: Array) -> Array:
    """Keras's sigmoid, as ``0.5 + 0.5 tanh(x/2)`` (no overflow for large ``|x|``)."""
    return 0.5 + 0.5 * np.tanh(0.5 * x)


def softmax(x: Array) -> Array:
    """Softmax over the last axis."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def hard_sigmoid(x: Array) -> Array:
    """Keras 3's piecewise-linear sigmoid ``clip(x/6 + 1/2, 0, 1)``."""
    return np.clip(x / 6.0 + 0.5, 0.0, 1.0)


def expm1_negative(x: Array) -> Array:
    """``exp(x) - 1`` of the negative part of ``x`` (the negative branch of ELU, SELU, CELU)."""
    return np.expm1(np.minimum(x, 0.0))


_SELU_A, _SELU_S = 1.6732632423543772, 1.0507009873554805
#: Keras 3 activations by serialized name as float64 NumPy functions, with Keras's default arguments.
ACTIVATIONS: dict[str, Callable[[Array], Array] | None] = {
    "linear": None, "relu": lambda x: np.maximum(x, 0.0), "relu6": lambda x: np.clip(x, 0.0, 6.0),
    "leaky_relu": lambda x: np.where(x > 0, x, 0.2 * x), "sigmoid": sigmoid, "tanh": np.tanh,
    "softplus": lambda x: np.logaddexp(0.0, x), "softsign": lambda x: x / (1.0 + np.abs(x)),
    "elu": lambda x: np.where(x > 0, x, expm1_negative(x)),
    "selu": lambda x: _SELU_S * np.where(x > 0, x, _SELU_A * expm1_negative(x)),
    "celu": lambda x: np.maximum(x, 0.0) + expm1_negative(x),
    "gelu": lambda x: 0.5 * x * (1.0 + erf(x / math.sqrt(2.0))),
    "silu": lambda x: x * sigmoid(x), "swish": lambda x: x * sigmoid(x), "exponential": np.exp,
    "hard_sigmoid": hard_sigmoid, "hard_silu": lambda x: x * hard_sigmoid(x),
    "hard_swish": lambda x: x * hard_sigmoid(x), "hard_tanh": lambda x: np.clip(x, -1.0, 1.0),
    "softmax": softmax, "log_softmax": lambda x: np.log(softmax(x)),
    "log_sigmoid": lambda x: -np.logaddexp(0.0, -x), "mish": lambda x: x * np.tanh(np.logaddexp(0.0, x)),
    "tanh_shrink": lambda x: x - np.tanh(x), "squareplus": lambda x: 0.5 * (x + np.sqrt(x * x + 4.0)),
}
SUPPORTED_ACTIVATIONS: tuple[str, ...] = tuple(sorted(ACTIVATIONS))


def apply_step(x: Array, w: Array | None, b: Array | None, act: Any) -> Array:
    """``act(x @ w + b)`` on rows of ``x``, skipping the parts that are ``None``."""
    if w is not None:
        x = x @ w
    if b is not None:
        x = x + b
    return x if act is None else act(x)


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
        self._chain: list[ChainStep] | None = [s[1:] for s in steps] if chain else None
        self._one: list[ChainStep] | None = None if not chain else [
            (None if w is None else np.ascontiguousarray(w.T), b, act) for _, w, b, act in steps]

    def freeze(self) -> None:
        """Make every array of the network read-only (a network shared between model sets:
        :func:`models.runtime.load_keras` keeps the networks it has read)."""
        arrays: list[Any] = [self.input_center, self.input_scale]
        for _, w, b, _ in self._steps:
            arrays += [w, b]
        for w, b, _ in self._one or []:
            arrays += [w, b]
        for a in arrays:
            if isinstance(a, np.ndarray):
                a.flags.writeable = False

    def _columns_message(self, got: int) -> str:
        sized = zip(self.input_names, self.input_sizes, strict=True)
        cols = ", ".join(n if s == 1 else f"{n}[{s}]" for n, s in sized)
        what = "inputs" if self.n_columns == len(self.input_names) else "columns"
        return f"{self.path}: expects {self.n_columns} {what} ({cols}), got {got}"

    def _from_mapping(self, x: Mapping[str, Any]) -> Array:
        missing = [n for n in self.input_names if n not in x]
        if missing:
            raise ModelError(f"{self.path}: no values for input(s) {', '.join(missing)}; "
                             f"expects {', '.join(self.input_names)}")
        parts = []
        for n, s in zip(self.input_names, self.input_sizes, strict=True):
            v = np.asarray(x[n], dtype=np.float64)
            parts.append(v.reshape(-1, 1) if s == 1 and v.ndim < 2 else np.atleast_2d(v))
            if parts[-1].ndim != 2 or parts[-1].shape[1] != s:
                raise ModelError(f"{self.path}: input {n!r} takes {s} value(s) per sample, "
                                 f"got shape {v.shape}")
        if len({p.shape[0] for p in parts}) > 1:
            rows = ", ".join(f"{n}: {p.shape[0]}" for n, p in zip(self.input_names, parts, strict=True))
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
                x = apply_step(x, w, b, act)
            return x
        slots = [x]
        for ins, w, b, act in self._steps:
            h = slots[ins[0]] if len(ins) == 1 else np.concatenate([slots[i] for i in ins], axis=-1)
            slots.append(apply_step(h, w, b, act))
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
    def chain(self) -> list[ChainStep] | None:
        """For a single-path network: ``(W, b, activation)`` per step, ``h <- act(W @ h + b)``
        on one sample (``None`` where a part is absent); ``None`` for other graphs."""
        return None if self._one is None else list(self._one)

    def layers_summary(self) -> list[str]:
        """One line per Keras layer: name, class, weight group and what the runtime made of it."""
        return list(self._summary)

    def __repr__(self) -> str:
        return (f"Network({str(self.path)!r}, inputs={list(self.input_names)}, "
                f"outputs={list(self.output_names)}, steps={len(self._steps)})")

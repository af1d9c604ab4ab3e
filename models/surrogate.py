"""Surrogates: one estimated variable from named reactor signals, evaluated in NumPy.

A :class:`Surrogate` maps the reactor's signals (:data:`SIGNALS`: the features of
:mod:`models.variables` plus the raw current and ambient temperature) to one
variable. :class:`NetworkSurrogate` runs a ``.keras`` file through the
TensorFlow-free :mod:`models.runtime`, as the value itself (``nn``) or as a
correction on the physics baseline (``hybrid``). The reactor holds them in a
:class:`models.model_set.ModelSet`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from cosim.errors import ModelError

from .cards import card_beside
from .network import Network
from .variables import FEATURES, FILE_KINDS, SPACES, VARIABLES

__all__ = [
    "SIGNALS", "DEFAULT_KIND", "TRAINED_DIR", "Surrogate", "NetworkSurrogate", "EnvelopeWarning",
    "load_network_surrogate",
]

#: reactor signals a model may take as input -> unit
SIGNALS: dict[str, str] = {
    **{name: f.unit for name, f in FEATURES.items()},
    "current": "A",
    "ambient_temperature": "degC",
}
#: the kind a scenario gets for every variable it does not name
DEFAULT_KIND = "hybrid"
#: where the committed default models live (``co2twin train`` regenerates them)
TRAINED_DIR = Path(__file__).resolve().parent / "trained"


class EnvelopeWarning(UserWarning):
    """A model was evaluated outside the range of the data it was trained on."""


@dataclass(frozen=True)
class _Column:
    """One model input: a reactor signal or a held constant."""

    model_input: str
    signal: str | None
    constant: float = 0.0


class Surrogate:
    """One variable's model: named signal inputs, an optional envelope, and ``predict``.

    ``inputs`` are reactor signals (keys of :data:`SIGNALS`), in the column order
    ``predict`` takes. ``lower``/``upper`` are the training envelope per input
    (``None`` when the model came without one). ``estimates`` is what the estimate is:
    the variable itself, or the quantity its learning space names (the outlet CO2
    models of :mod:`models.variables` estimate the carbonate demand per electron); the
    physics value handed to ``predict`` is of the same quantity. A surrogate with
    ``takes_ceiling`` also takes ``ceiling``, the largest FE the charge and the CO2 fed
    allow, as a third argument of ``predict``/``predict_one``/``finish`` (an FE model in the
    ``fe_logit`` space stays under it); others are called with two.
    """

    variable: str
    kind: str
    source: str
    inputs: tuple[str, ...]
    lower: np.ndarray | None
    upper: np.ndarray | None
    estimates: str = ""
    takes_ceiling: bool = False

    def predict(self, x: np.ndarray, physics: np.ndarray) -> np.ndarray:
        """Estimates for rows of ``x`` (n, len(inputs)) given the physics values (n,)."""
        raise NotImplementedError

    def predict_one(self, x: Sequence[float], physics: float) -> float:
        """The estimate for one sample (the fast path the reactor uses every step)."""
        return float(self.predict(np.asarray([x], dtype=float), np.asarray([physics]))[0])

    def finish(self, y: float, physics: float) -> float:
        """The estimate of one sample from its raw model output ``y``, computed elsewhere.

        :class:`ModelSet` may evaluate the networks of several surrogates together (a
        :class:`~models.bank.Bank`) and hand each its raw output to finish. Here the raw
        output is the estimate, unchanged; a surrogate that transforms its model's output
        (abs, a learning space, a residual on ``physics``) overrides this, as
        :class:`NetworkSurrogate` does.
        """
        return y

    def describe(self) -> str:
        return f"{self.variable} {self.kind} model ({self.source})"


class NetworkSurrogate(Surrogate):
    """A Keras network evaluated by the NumPy runtime.

    ``columns`` lists every model input in the network's order, each fed from a
    signal or held at a constant. ``residual=True`` adds the network's output to
    the physics value (a hybrid model); ``absolute=True`` takes ``abs()`` of the
    output, as the original VALCO2T service did with negative predictions.
    """

    def __init__(
        self,
        network: Network,
        *,
        variable: str,
        kind: str,
        columns: Sequence[_Column],
        residual: bool = False,
        absolute: bool = False,
        envelope: Mapping[str, tuple[float, float]] | None = None,
        source: str = "",
        space: str = "value",
    ) -> None:
        self.network = network
        self.variable = variable
        self.kind = kind
        self.source = source or str(getattr(network, "path", "?"))
        self.residual = residual
        self.absolute = absolute
        if space not in SPACES:
            raise ModelError(f"{source}: unknown learning space {space!r}; expected one of "
                             f"{', '.join(SPACES)}")
        self.space = space
        self._to, self._back = SPACES[space].to_space, SPACES[space].from_space
        self._plain = space == "value"
        self.estimates = SPACES[space].estimates or variable
        self.takes_ceiling = True
        self.columns = tuple(columns)
        self.inputs = tuple(c.signal for c in self.columns if c.signal is not None)
        self._template = [c.constant for c in self.columns]
        self._slots = [i for i, c in enumerate(self.columns) if c.signal is not None]
        if envelope:
            self.lower = np.array([envelope[s][0] for s in self.inputs], dtype=float)
            self.upper = np.array([envelope[s][1] for s in self.inputs], dtype=float)
        else:
            self.lower = self.upper = None

    def _full(self, x: np.ndarray) -> np.ndarray:
        if len(self._slots) == len(self.columns):
            return x
        full = np.empty((x.shape[0], len(self.columns)))
        full[:] = self._template
        full[:, self._slots] = x
        return full

    def predict(self, x: np.ndarray, physics: np.ndarray, ceiling: Any = None) -> np.ndarray:
        y = self.network.predict(self._full(np.asarray(x, dtype=float)))[:, 0]
        if self.absolute:
            y = np.abs(y)
        if self._plain:
            return physics + y if self.residual else y
        ceiling = 1.0 if ceiling is None else np.asarray(ceiling, dtype=float)
        return self._back(self._to(physics, ceiling) + y if self.residual else y, ceiling)

    def predict_one(self, x: Sequence[float], physics: float, ceiling: float = 1.0) -> float:
        values = self._template[:]
        for slot, v in zip(self._slots, x, strict=True):
            values[slot] = v
        return self.finish(self.network.predict_one(values), physics, ceiling)

    def finish(self, y: float, physics: float, ceiling: float = 1.0) -> float:
        """The estimate from the network's raw output ``y`` for one sample."""
        if self.absolute:
            y = abs(y)
        if self._plain:
            return physics + y if self.residual else y
        return self._back(self._to(physics, ceiling) + y if self.residual else y, ceiling)

    def finish_on_floats(self) -> Callable[[float, float, float], float]:
        """:meth:`finish` for plain floats as one call ``(y, physics, ceiling)``: a hybrid's
        residual fused in its space (:attr:`models.variables.Space.residual`, the same bits),
        else finish itself (``absolute``, an ``nn`` model, a subclass's own finish)."""
        residual = SPACES[self.space].residual
        if (type(self).finish is NetworkSurrogate.finish and self.residual and not self.absolute
                and residual is not None):
            return residual
        return self.finish


def _read_card(model: Path) -> dict[str, Any] | None:
    path = card_beside(model)
    if not path.exists():
        return None
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: cannot read the model card ({exc})") from None
    if not isinstance(card, dict) or not isinstance(card.get("inputs"), list):
        raise ModelError(f"{path}: expected a model card with an 'inputs' list")
    return card


def load_network_surrogate(
    variable: str,
    path: str | Path,
    *,
    kind: str | None = None,
    inputs: Mapping[str, str] | None = None,
    constants: Mapping[str, float] | None = None,
    absolute: bool = False,
) -> NetworkSurrogate:
    """A ``.keras`` model as the surrogate of ``variable``.

    Model inputs are fed by name: ``inputs`` maps a model input to a reactor
    signal, ``constants`` holds a model input at a value, and any other model
    input must be named like a signal. ``kind`` is ``nn`` (the model gives the
    value) or ``hybrid`` (it gives a correction on physics); a model card beside
    the file supplies the kind, the units and the training envelope.
    """
    from .runtime import load_keras

    if variable not in VARIABLES:
        raise ModelError(f"unknown variable {variable!r}; expected one of {', '.join(VARIABLES)}")
    path = Path(path)
    network = load_keras(path)
    card = _read_card(path)
    where = str(path)
    kind = _kind(where, variable, kind, card)
    columns = _columns(where, variable, list(network.input_names), dict(inputs or {}),
                       dict(constants or {}), card)
    envelope = None if card is None else _card_envelope(card_beside(path), card, columns)
    space = (card or {}).get("output", {}).get("space", "value")
    return NetworkSurrogate(
        network, variable=variable, kind=kind, columns=columns, residual=kind == "hybrid",
        absolute=absolute, envelope=envelope, source=where, space=space,
    )


def _kind(where: str, variable: str, kind: str | None, card: Mapping[str, Any] | None) -> str:
    """The model's kind, as asked and as its card says (they must agree); ``nn`` by default."""
    if card is not None:
        card_kind = card.get("kind")
        if kind is not None and card_kind is not None and kind != card_kind:
            raise ModelError(f"{where}: asked for a {kind} model, but its card says {card_kind!r}")
        kind = kind or card_kind
        card_var = card.get("variable")
        if card_var is not None and card_var != variable:
            raise ModelError(f"{where}: the model estimates {card_var!r} (its card), "
                             f"not {variable!r}")
    kind = kind or "nn"
    if kind not in FILE_KINDS:
        raise ModelError(f"{where}: expected kind nn or hybrid, found {kind!r}")
    return kind


def _columns(where: str, variable: str, names: list[str], inputs: Mapping[str, str],
             constants: Mapping[str, float], card: Mapping[str, Any] | None) -> list[_Column]:
    """What feeds each model input (in the network's order); every mismatch raised at once."""
    problems = [f"inputs.{k}: the model has no input {k!r}" for k in inputs if k not in names]
    problems += [f"constants.{k}: the model has no input {k!r}" for k in constants if k not in names]
    problems += [f"{k}: both mapped to a signal and held constant" for k in inputs if k in constants]
    units = {i["name"]: i.get("unit") for i in (card or {}).get("inputs", []) if "name" in i}
    columns = []
    for name in names:
        column, problem = _column(name, inputs, constants, units.get(name))
        if problem is not None:
            problems.append(problem)
        if column is not None:
            columns.append(column)
    if problems:
        raise ModelError(f"{where}: input mismatch for {variable}:\n" + "\n".join(
            f"  - {p}" for p in problems))
    return columns


def _column(name: str, inputs: Mapping[str, str], constants: Mapping[str, float],
            unit: str | None) -> tuple[_Column | None, str | None]:
    """The column of one model input and the problem with it, if any (``unit``: its card's)."""
    if name in constants:
        return _Column(name, None, float(constants[name])), None
    signal = inputs.get(name, name)
    if name in inputs and signal not in SIGNALS:
        return None, (f"model input {name!r} is mapped to {signal!r}, which is not a "
                      f"reactor signal; signals: {', '.join(SIGNALS)}")
    if signal not in SIGNALS:
        return None, (f"model input {name!r} is fed by no signal; map it (inputs: {{{name}: <signal>}}) "
                      f"or hold it (constants: {{{name}: <value>}}); signals: {', '.join(SIGNALS)}")
    problem = None
    if unit is not None and unit != SIGNALS[signal]:
        problem = (f"model input {name!r} is in {unit!r} (its card) but the signal "
                   f"{signal!r} is in {SIGNALS[signal]!r}")
    return _Column(name, signal), problem


def _card_envelope(card_file: Path, card: Mapping[str, Any],
                   columns: Sequence[_Column]) -> dict[str, tuple[float, float]] | None:
    """The training range of each signal-fed input from the card; ``None`` unless it gives all."""
    by_input = {i["name"]: i for i in card["inputs"]}
    envelope = {}
    for c in columns:
        spec = by_input.get(c.model_input)
        if c.signal is not None and spec is not None:
            lo, hi = float(spec["min"]), float(spec["max"])
            if not lo <= hi:
                raise ModelError(f"{card_file}: input {c.model_input!r} has min {lo:g} "
                                 f"above max {hi:g}")
            envelope[c.signal] = (lo, hi)
    if len(envelope) != sum(c.signal is not None for c in columns):
        return None
    return envelope

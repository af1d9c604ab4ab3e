"""Surrogates: one estimated variable from named reactor signals, evaluated in NumPy.

A :class:`Surrogate` maps the reactor's signals (:data:`SIGNALS`: the features of
:mod:`models.variables` plus the raw current and ambient temperature) to one
variable. :class:`NetworkSurrogate` runs a ``.keras`` file through the
TensorFlow-free :mod:`models.runtime`, as the value itself (``nn``) or as a
correction on the physics baseline (``hybrid``). :class:`ModelSet` is what the
reactor holds: one surrogate per variable it does not take from physics, and the
envelope policy that decides what happens when an input leaves the range a
model was trained on.
"""
from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from collections.abc import Mapping, Sequence

import numpy as np

from cosim.errors import ModelError

from .bank import Bank
from .cards import card_beside
from .envelope import Envelope
from .network import Network
from .variables import FEATURES, FILE_KINDS, SPACES, VARIABLES

__all__ = [
    "SIGNALS", "POLICIES", "DEFAULT_KIND", "TRAINED_DIR", "Surrogate", "NetworkSurrogate",
    "ModelSet", "EnvelopeWarning", "load_network_surrogate",
]

#: reactor signals a model may take as input -> unit
SIGNALS: dict[str, str] = {
    **{name: f.unit for name, f in FEATURES.items()},
    "current": "A",
    "ambient_temperature": "degC",
}
#: what happens when a model input leaves the training envelope
POLICIES = ("warn", "clamp", "physics", "stop")
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


class ModelSet:
    """The surrogates a reactor uses, and its envelope policy.

    Variables without a surrogate come from physics. ``estimate`` returns the
    value and a 0/1 flag that is 1 when an input was outside the model's
    training envelope; the policy decides the value then: ``warn`` (use the
    model, warn once per variable), ``clamp`` (clip the inputs into the
    envelope), ``physics`` (use the physics value), ``stop`` (raise
    :class:`ModelError` naming the input, its value and the envelope).
    Which variables have warned is state: :meth:`get_state`/:meth:`set_state`
    carry it through the reactor's checkpoints. The physics value handed in for a
    variable is of the quantity its surrogate estimates (:meth:`estimates`).
    """

    def __init__(self, surrogates: Mapping[str, Surrogate] | None = None,
                 envelope: str = "warn") -> None:
        if envelope not in POLICIES:
            raise ModelError(f"envelope policy {envelope!r}; expected one of {', '.join(POLICIES)}")
        self.surrogates = dict(surrogates or {})
        unknown = sorted(set(self.surrogates) - set(VARIABLES))
        if unknown:
            raise ModelError(f"unknown variable(s) {', '.join(unknown)}; expected {', '.join(VARIABLES)}")
        self.policy = envelope
        self._warned: set[str] = set()
        self._bank = _bank(self.surrogates)
        self._envelopes = {v: Envelope.of(s.lower, s.upper) for v, s in self.surrogates.items()
                           if s.lower is not None and s.upper is not None}
        # one check per step for the whole bank: inside the narrowest of its envelopes, every
        # network is inside its own and no policy acts (outside it, each is checked as before)
        self._common = None if self._bank is None else Envelope.narrowest(self._bank.inputs, [
            (self.surrogates[v].inputs, self._envelopes[v])
            for v in self._bank.variables if v in self._envelopes])

    def kind(self, variable: str) -> str:
        s = self.surrogates.get(variable)
        return "physics" if s is None else s.kind

    def estimates(self, variable: str) -> str:
        """What the estimate of ``variable`` is: the variable itself, or the quantity its
        surrogate's learning space names (``carbonate_demand`` for the outlet CO2 models)."""
        s = self.surrogates.get(variable)
        return variable if s is None else (s.estimates or variable)

    def describe(self) -> dict[str, str]:
        return {v: (self.surrogates[v].describe() if v in self.surrogates else f"{v} physics")
                for v in VARIABLES}

    def get_state(self) -> dict[str, Any]:
        """A snapshot for a checkpoint: the variables that have warned about their envelope."""
        return {"warned": sorted(self._warned)}

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Return to a :meth:`get_state` snapshot: a variable that warned only after it warns again."""
        self._warned = set(state["warned"])

    def estimate(self, variable: str, signals: Mapping[str, Any], physics: Any,
                 t: float = math.nan, ceiling: Any = 1.0) -> tuple[Any, Any]:
        """``(value, outside)`` of ``variable`` from the reactor's signals at time ``t``;
        ``ceiling`` is the largest FE the charge and the CO2 fed allow (FE models stay under it)."""
        s = self.surrogates.get(variable)
        if s is None:
            return physics, 0.0
        if isinstance(physics, np.ndarray):
            return self._estimate_batch(s, signals, physics, t, ceiling)
        return self._guarded(variable, s, signals, physics, t, None, ceiling)

    def estimate_all(self, signals: Mapping[str, Any], physics: Mapping[str, Any],
                     t: float = math.nan, ceilings: Mapping[str, Any] | None = None,
                     ) -> tuple[dict[str, Any], dict[str, Any]]:
        """:meth:`estimate` of every variable: ``(values, outside flags)``; the networks
        that share a :class:`~models.bank.Bank` run as one on a single sample.
        ``ceilings``: per variable, the ``ceiling`` of :meth:`estimate` (default 1)."""
        arrays = isinstance(next(iter(physics.values())), np.ndarray)
        if arrays and self._bank is not None:
            return self._estimate_all_batch(self._bank, signals, physics, t, ceilings or {})
        raw: dict[str, float] = {}
        inside = False
        if self._bank is not None and not arrays:
            x = [signals[n] for n in self._bank.inputs]
            raw = dict(zip(self._bank.variables, self._bank.outputs(x), strict=True))
            inside = self._common is not None and self._common.contains(x)
        ceilings = ceilings or {}
        values, flags = {}, {}
        for variable, value in physics.items():
            s = self.surrogates.get(variable)
            if s is None:
                values[variable], flags[variable] = value, 0.0
            elif variable in raw and inside:  # what _guarded does for a sample inside
                values[variable] = (s.finish(raw[variable], value, ceilings.get(variable, 1.0))  # type: ignore[call-arg]
                                    if s.takes_ceiling else s.finish(raw[variable], value))
                flags[variable] = 0.0
            elif variable in raw:
                values[variable], flags[variable] = self._guarded(
                    variable, s, signals, value, t, raw[variable], ceilings.get(variable, 1.0))
            else:
                values[variable], flags[variable] = self.estimate(
                    variable, signals, value, t, ceilings.get(variable, 1.0))
        return values, flags

    def _estimate_all_batch(self, bank: Bank, signals: Mapping[str, Any],
                            physics: Mapping[str, Any], t: float, ceilings: Mapping[str, Any],
                            ) -> tuple[dict[str, Any], dict[str, Any]]:
        """:meth:`estimate_all` on arrays of variants (an ensemble): the bank's networks run
        once on all of them; each variable then goes through the envelope policy per variant,
        as :meth:`_estimate_batch` does (a variant outside under ``clamp`` is evaluated anew)."""
        n = next(iter(physics.values())).shape[0]
        raw = bank.run_batch(signals, n)
        rows = dict(zip(bank.variables, raw, strict=True))
        # every variant inside the bank's narrowest envelope: no network needs its own check
        inside_all = self._common is not None and _inside(self._common, bank.inputs, signals)
        values: dict[str, Any] = {}
        flags: dict[str, Any] = {}
        for variable, value in physics.items():
            s = self.surrogates.get(variable)
            ceiling = ceilings.get(variable, 1.0)
            if s is None:
                values[variable], flags[variable] = value, 0.0
                continue
            if variable not in rows:
                values[variable], flags[variable] = self._estimate_batch(s, signals, value, t, ceiling)
                continue
            envelope = self._envelopes.get(variable)
            outside = np.zeros(n)
            if envelope is not None and not inside_all and not _inside(envelope, s.inputs, signals):
                x = np.column_stack([np.broadcast_to(np.asarray(signals[name], dtype=float), (n,))
                                     for name in s.inputs])
                if self.policy == "clamp":  # the clamped inputs need their own evaluation
                    values[variable], flags[variable] = self._estimate_batch(
                        s, signals, value, t, ceiling)
                    continue
                bad = envelope.outside(x)
                self._batch_outside(s, envelope, x, bad, t)  # stop raises, warn warns once
                outside = bad.any(axis=1).astype(float)
            ceilings_n = np.broadcast_to(np.asarray(ceiling, dtype=float), (n,))
            estimate: Any = (s.finish(rows[variable], value, ceilings_n)  # type: ignore[call-arg]
                             if s.takes_ceiling else s.finish(rows[variable], value))
            if self.policy == "physics":
                estimate = np.where(outside > 0.0, value, estimate)
            values[variable], flags[variable] = estimate, outside
        return values, flags

    def _guarded(self, variable: str, s: Surrogate, signals: Mapping[str, Any], physics: float,
                 t: float, raw: float | None, ceiling: float = 1.0) -> tuple[float, float]:
        """One sample through the envelope policy; ``raw`` is the network output if known."""
        x = [signals[name] for name in s.inputs]
        envelope = self._envelopes.get(variable)
        i = None if envelope is None else envelope.first_outside(x)
        if envelope is None or i is None:
            return _one(s, x, physics, raw, ceiling), 0.0
        if self.policy == "stop":
            raise _error(s, envelope, i, x[i], t)
        if self.policy == "physics":
            return physics, 1.0
        if self.policy == "clamp":
            return _one(s, envelope.clamp(x), physics, None, ceiling), 1.0
        if variable not in self._warned:
            self._warned.add(variable)
            warnings.warn(_message(s, envelope, i, x[i], t), EnvelopeWarning, stacklevel=3)
        return _one(s, x, physics, raw, ceiling), 1.0

    def _estimate_batch(self, s: Surrogate, signals: Mapping[str, Any], physics: np.ndarray,
                        t: float, ceiling: Any = 1.0) -> tuple[np.ndarray, np.ndarray]:
        n = physics.shape[0]
        x = np.column_stack([np.broadcast_to(np.asarray(signals[name], dtype=float), (n,))
                             for name in s.inputs])
        ceiling = np.broadcast_to(np.asarray(ceiling, dtype=float), (n,))
        envelope = self._envelopes.get(s.variable)
        if envelope is None:
            return _batch(s, x, physics, ceiling), np.zeros(n)
        bad = envelope.outside(x)
        outside = bad.any(axis=1)
        if outside.any():
            x = self._batch_outside(s, envelope, x, bad, t)
        value = _batch(s, x, physics, ceiling)
        if self.policy == "physics":
            value = np.where(outside, physics, value)
        return value, outside.astype(float)

    def _batch_outside(self, s: Surrogate, envelope: Envelope, x: np.ndarray, bad: np.ndarray,
                       t: float) -> np.ndarray:
        """The policy on variants with an input outside (``bad``): the inputs to evaluate."""
        row, col = np.argwhere(bad)[0]
        if self.policy == "stop":
            raise _error(s, envelope, int(col), float(x[row, col]), t, row=int(row))
        if self.policy == "clamp":
            return envelope.clamp_batch(x)
        if self.policy == "warn" and s.variable not in self._warned:
            self._warned.add(s.variable)
            # stacklevel: the caller of estimate, as for a single sample
            warnings.warn(_message(s, envelope, int(col), float(x[row, col]), t, row=int(row)),
                          EnvelopeWarning, stacklevel=3)
        return x


def _bank(surrogates: Mapping[str, Surrogate]) -> Bank | None:
    """The networks of the set run as one, if they fit one bank."""
    members = {v: s for v, s in surrogates.items() if isinstance(s, NetworkSurrogate)}
    chains = {v: s.network.chain for v, s in members.items()}
    if not Bank.fits(list(chains.values())):
        return None
    return Bank({v: (chains[v] or [], [(c.signal, c.constant) for c in s.columns])
                 for v, s in members.items()})


def _inside(envelope: Envelope, inputs: Sequence[str], signals: Mapping[str, Any]) -> bool:
    """Whether every variant's inputs lie inside the envelope (the usual case, checked on
    each input's smallest and largest value)."""
    for name, low, high in zip(inputs, envelope.low, envelope.high, strict=True):
        v = signals[name]
        if not (low <= np.min(v) and np.max(v) <= high):
            return False
    return True


def _one(s: Surrogate, x: Sequence[float], physics: float, raw: float | None,
         ceiling: float = 1.0) -> float:
    """The estimate of one sample: evaluated, or finished from the bank's raw output."""
    if not s.takes_ceiling:
        return s.predict_one(x, physics) if raw is None else s.finish(raw, physics)
    if raw is None:
        return s.predict_one(x, physics, ceiling)  # type: ignore[call-arg]
    return s.finish(raw, physics, ceiling)  # type: ignore[call-arg]


def _batch(s: Surrogate, x: np.ndarray, physics: np.ndarray, ceiling: np.ndarray) -> np.ndarray:
    """The estimates of a batch of samples."""
    if s.takes_ceiling:
        return s.predict(x, physics, ceiling)  # type: ignore[call-arg]
    return s.predict(x, physics)


def _message(s: Surrogate, envelope: Envelope, i: int, value: float, t: float,
             row: int | None = None) -> str:
    """Input ``i`` of ``s`` is outside its envelope: which, its value, when and the envelope."""
    name = s.inputs[i]
    when = f" at t = {t:g} s" if math.isfinite(t) else ""
    variant = f" (variant {row})" if row is not None else ""
    return (f"{s.describe()}: input {name} = {value:g} {SIGNALS[name]}{variant}{when} is "
            f"outside its training envelope [{envelope.lower[i]:g}, {envelope.upper[i]:g}]")


def _error(s: Surrogate, envelope: Envelope, i: int, value: float, t: float,
           row: int | None = None) -> ModelError:
    return ModelError(_message(s, envelope, i, value, t, row) + " (models.envelope: stop; "
                      "use warn, clamp or physics to run on)")

"""The surrogates a reactor uses, as one set: which variable comes from which model, the
envelope policy, and the two fast paths the set runs every step.

:class:`ModelSet` holds one :class:`~models.surrogate.Surrogate` per variable the reactor does
not take from physics. Where the networks fit one :class:`~models.bank.Bank`, a step runs them
as one: on a single sample (:meth:`ModelSet.estimate_sample`, a single run's every step, by
position and without dicts) or on the arrays of an ensemble's variants
(:meth:`ModelSet.start_batch` / :meth:`ModelSet.estimate_all_batch`, the networks in threads
while the physics is computed). :meth:`ModelSet.estimate_all` is the general call both agree
with; the envelope policy decides what a sample outside a model's training range gets.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cosim.errors import ModelError
from cosim.values import getter

from .bank import Bank, PendingBatch
from .envelope import Envelope
from .surrogate import SIGNALS, EnvelopeWarning, NetworkSurrogate, Surrogate
from .variables import SPACES, VARIABLES

__all__ = ["ModelSet", "POLICIES", "SAMPLE_VARIABLES"]

#: the order of the variables in :meth:`ModelSet.estimate_sample`: the reactor's, in which
#: :meth:`ModelSet.estimate_all` has always met them (a step's envelope warnings, or the
#: error under ``stop``, come in this order)
SAMPLE_VARIABLES = ("cell_voltage", "anolyte_ph", "fe_formate", "outlet_co2_fraction")
if sorted(SAMPLE_VARIABLES) != sorted(VARIABLES):
    raise ImportError(f"models/model_set.py: SAMPLE_VARIABLES {SAMPLE_VARIABLES} are not the "
                      f"variables of models.variables.VARIABLES {tuple(VARIABLES)}")
#: what happens when a model input leaves the training envelope
POLICIES = ("warn", "clamp", "physics", "stop")


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
        self._single = _single_plan(self.surrogates, self._bank, self._common)

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
        return self._estimate_all_one(signals, physics, t, ceilings or {}, stacklevel=4)

    def _estimate_all_one(self, signals: Mapping[str, Any], physics: Mapping[str, Any], t: float,
                          ceilings: Mapping[str, Any], stacklevel: int,
                          ) -> tuple[dict[str, Any], dict[str, Any]]:
        """:meth:`estimate_all` on one sample (or on arrays without a bank); ``stacklevel``
        of an envelope warning: the frame of whoever called estimate_all or estimate_sample."""
        raw: dict[str, float] = {}
        inside = False
        if self._bank is not None:  # never here with arrays (estimate_all takes those)
            x = [signals[n] for n in self._bank.inputs]
            raw = dict(zip(self._bank.variables, self._bank.outputs(x), strict=True))
            inside = self._common is not None and self._common.contains(x)
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
                    variable, s, signals, value, t, raw[variable], ceilings.get(variable, 1.0),
                    stacklevel)
            elif isinstance(value, np.ndarray):  # arrays with no bank
                values[variable], flags[variable] = self.estimate(
                    variable, signals, value, t, ceilings.get(variable, 1.0))
            else:  # a model outside the bank, on one sample: what estimate does, warning alike
                values[variable], flags[variable] = self._guarded(
                    variable, s, signals, value, t, None, ceilings.get(variable, 1.0), stacklevel)
        return values, flags

    def estimate_sample(self, signals: Sequence[float], physics: Sequence[float],
                        ceilings: Sequence[float], t: float = math.nan,
                        ) -> tuple[list[float], Sequence[float]]:
        """:meth:`estimate_all` of one sample of every variable, given by position (the
        reactor's every step): ``signals`` in :data:`SIGNALS` order, ``physics`` and
        ``ceilings`` (each variable's ``ceiling``) in :data:`SAMPLE_VARIABLES` order; returns
        the values and the outside flags in that order.

        The same bits as :meth:`estimate_all` (tests/test_single_sample.py checks): a sample
        inside the bank's narrowest envelope goes straight from the bank's outputs through
        each network's :meth:`NetworkSurrogate.finish_on_floats`, without the dicts of the
        general call (which cost about as much as the networks); any other sample, or a set
        the plan does not cover (:func:`_single_plan`), goes through estimate_all's own code,
        so every policy acts, warns and raises exactly as there.
        """
        plan = self._single
        if plan is not None:
            x = plan.pick(signals)
            if plan.inside(x):
                raw = plan.outputs(x)
                values = list(physics)
                for k, i, finish in plan.members:
                    values[i] = finish(raw[k], physics[i], ceilings[i])
                return values, _NO_FLAGS
        est, flags = self._estimate_all_one(
            dict(zip(SIGNALS, signals, strict=True)), dict(zip(SAMPLE_VARIABLES, physics, strict=True)),
            t, dict(zip(SAMPLE_VARIABLES, ceilings, strict=True)), stacklevel=4)
        return [est[v] for v in SAMPLE_VARIABLES], [flags[v] for v in SAMPLE_VARIABLES]

    def start_batch(self, signals: Mapping[str, Any], n: int) -> PendingBatch | None:
        """The bank's networks begun on ``n`` variants of ``signals`` (arrays of ``n`` or
        floats; :meth:`~models.bank.Bank.start_batch`), for :meth:`estimate_all_batch`, so
        that the caller computes something else meanwhile; None without a bank."""
        return None if self._bank is None else self._bank.start_batch(signals, n)

    def estimate_all_batch(self, signals: Mapping[str, Any], physics: Mapping[str, Any],
                           t: float = math.nan, ceilings: Mapping[str, Any] | None = None,
                           started: PendingBatch | None = None,
                           ) -> tuple[dict[str, Any], dict[str, Any]]:
        """:meth:`estimate_all` on arrays of variants (the physics values arrays of N), with
        the bank's networks begun by :meth:`start_batch` on these ``signals`` if ``started``."""
        if self._bank is None:
            return self.estimate_all(signals, physics, t, ceilings)
        return self._estimate_all_batch(self._bank, signals, physics, t, ceilings or {}, started)

    def _estimate_all_batch(self, bank: Bank, signals: Mapping[str, Any],
                            physics: Mapping[str, Any], t: float, ceilings: Mapping[str, Any],
                            started: PendingBatch | None = None,
                            ) -> tuple[dict[str, Any], dict[str, Any]]:
        """:meth:`estimate_all` on arrays of variants (an ensemble): the bank's networks run
        once on all of them; each variable then goes through the envelope policy per variant,
        as :meth:`_estimate_batch` does (a variant outside under ``clamp`` is evaluated anew)."""
        n = next(iter(physics.values())).shape[0]
        # what needs no network output first, while the started networks run in the batch
        # threads: the envelope check, and each hybrid's physics value in its learning space
        # every variant inside the bank's narrowest envelope: no network needs its own check
        inside_all = self._common is not None and _inside(self._common, bank.inputs, signals)
        spaced = {v: _in_space(s, physics[v], ceilings.get(v, 1.0), n)
                  for v in bank.variables if v in physics and (s := self.surrogates.get(v))}
        raw = bank.run_batch(signals, n) if started is None else started.result()
        rows = dict(zip(bank.variables, raw, strict=True))
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
            estimate: Any
            prepared = spaced.get(variable)
            if prepared is not None and isinstance(s, NetworkSurrogate):
                estimate = _finish_in_space(s, rows[variable], *prepared)
            elif s.takes_ceiling:
                ceilings_n = np.broadcast_to(np.asarray(ceiling, dtype=float), (n,))
                estimate = s.finish(rows[variable], value, ceilings_n)  # type: ignore[call-arg]
            else:
                estimate = s.finish(rows[variable], value)
            if self.policy == "physics":
                estimate = np.where(outside > 0.0, value, estimate)
            values[variable], flags[variable] = estimate, outside
        return values, flags

    def _guarded(self, variable: str, s: Surrogate, signals: Mapping[str, Any], physics: float,
                 t: float, raw: float | None, ceiling: float = 1.0,
                 stacklevel: int = 3) -> tuple[float, float]:
        """One sample through the envelope policy; ``raw`` is the network output if known.
        ``stacklevel`` of the warning: by default the frame that called :meth:`estimate`."""
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
            warnings.warn(_message(s, envelope, i, x[i], t), EnvelopeWarning, stacklevel=stacklevel)
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


@dataclass(frozen=True)
class _SinglePlan:
    """What :meth:`ModelSet.estimate_sample` does on one sample, worked out once: ``pick``
    takes the bank's inputs from the signals (in :data:`SIGNALS` order), ``inside`` checks
    them against the bank's narrowest envelope, ``outputs`` is the bank's single-sample run,
    and ``members`` per network its output's index, its variable's index in SAMPLE_VARIABLES
    and its finish on floats (bound methods and functions: no lookups left per step)."""

    pick: Callable[[Sequence[float]], Sequence[float]]
    inside: Callable[[Sequence[float]], bool]
    outputs: Callable[[Sequence[float]], list[float]]
    members: tuple[tuple[int, int, Callable[[float, float, float], float]], ...]


def _single_plan(surrogates: Mapping[str, Surrogate], bank: Bank | None,
                 common: Envelope | None) -> _SinglePlan | None:
    """The plan of :meth:`ModelSet.estimate_sample`, when every surrogate runs in the bank
    (else that call takes :meth:`ModelSet.estimate_all`'s general path)."""
    if bank is None or common is None or set(bank.variables) != set(surrogates):
        return None
    signals, variables = list(SIGNALS), list(SAMPLE_VARIABLES)
    members = []
    for k, v in enumerate(bank.variables):
        s = surrogates[v]
        if not isinstance(s, NetworkSurrogate):  # a bank holds only networks
            return None
        members.append((k, variables.index(v), s.finish_on_floats()))
    return _SinglePlan(getter([signals.index(n) for n in bank.inputs]), common.contains,
                       bank.outputs, tuple(members))


#: the outside flags of a sample inside every envelope (a tuple: shared, never changed)
_NO_FLAGS = (0.0,) * len(SAMPLE_VARIABLES)


def _bank(surrogates: Mapping[str, Surrogate]) -> Bank | None:
    """The networks of the set run as one, if they fit one bank."""
    members = {v: s for v, s in surrogates.items() if isinstance(s, NetworkSurrogate)}
    chains = {v: s.network.chain for v, s in members.items()}
    if not Bank.fits(list(chains.values())):
        return None
    return Bank({v: (chains[v] or [], [(c.signal, c.constant) for c in s.columns])
                 for v, s in members.items()})


def _in_space(s: Surrogate, physics: Any, ceiling: Any, n: int) -> tuple[Any, Any] | None:
    """A hybrid network's physics values in its learning space and the ceilings, for
    :func:`_finish_in_space`: the first half of :meth:`NetworkSurrogate.finish` on arrays of
    ``n`` variants, which needs no network output. None where finish does otherwise."""
    if not (isinstance(s, NetworkSurrogate) and type(s).finish is NetworkSurrogate.finish
            and s.residual and s.space != "value"):
        return None
    ceilings = np.broadcast_to(np.asarray(ceiling, dtype=float), (n,))
    return SPACES[s.space].to_space(physics, ceilings), ceilings


def _finish_in_space(s: NetworkSurrogate, y: Any, spaced: Any, ceilings: Any) -> Any:
    """:meth:`NetworkSurrogate.finish` of raw outputs ``y`` from :func:`_in_space`'s values:
    the same operations in the same order, so the same bits."""
    if s.absolute:
        y = abs(y)
    return SPACES[s.space].from_space(spaced + y, ceilings)


def _inside(envelope: Envelope, inputs: Sequence[str], signals: Mapping[str, Any]) -> bool:
    """Whether every variant's inputs lie inside the envelope (the usual case, checked on
    each input's smallest and largest value)."""
    for name, low, high in zip(inputs, envelope.low, envelope.high, strict=True):
        v = signals[name]
        if isinstance(v, np.ndarray):  # its own min and max: np.min's wrapper costs as much
            if not (low <= v.min() and v.max() <= high):
                return False
        elif not low <= v <= high:
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

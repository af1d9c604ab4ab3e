"""The surrogates' single-sample path (ModelSet.estimate_sample, the reactor's every step)
gives what the general path (ModelSet.estimate_all) gives: the same bits, flags, warnings
(text, order, the line they name) and errors, inside and outside the envelopes, under every
policy. The fused residual of each learning space gives the bits of its two conversions, and
a copied or pickled bank runs on buffers of its own."""
from __future__ import annotations

import copy
import math
import pickle
import warnings
from typing import Any

import numpy as np
import pytest

from models.selection import model_set
from models.model_set import POLICIES, SAMPLE_VARIABLES, ModelSet
from models.surrogate import (
    SIGNALS,
    EnvelopeWarning,
    NetworkSurrogate,
    Surrogate,
)
from models.variables import SPACES

VALUES = [0.0, -0.0, 1e-300, 1e-13, 1e-12, 0.3, 0.5, 1.0 - 1e-13, 1.0, 1.5, 7.0, 13.7, 14.0,
          16.0, -2.0, -1.0, 100.0, 400.0, math.inf, -math.inf, math.nan]
RAW = [0.0, -0.0, 0.37, -2.5, 30.0, -800.0, 800.0, math.inf, math.nan]
CEILINGS = [1.0, 0.6, 1e-9, 0.0, -0.5, math.nan]


def _outcome(f: Any, *args: Any) -> Any:
    """What ``f(*args)`` gives, as text (NaN equal to NaN, -0.0 told from 0.0), or what it
    raises."""
    try:
        return repr(f(*args))
    except Exception as exc:
        return type(exc).__name__, str(exc)


@pytest.mark.parametrize("space", sorted(SPACES))
def test_fused_residual_of_each_space_gives_the_bits_of_its_conversions(space):
    sp = SPACES[space]
    assert sp.residual is not None
    raised = 0
    for value in VALUES:
        for y in RAW:
            for c in CEILINGS:
                want = _outcome(lambda v, y, c: sp.from_space(sp.to_space(v, c) + y, c), value, y, c)
                assert _outcome(sp.residual, y, value, c) == want, (value, y, c)
                raised += isinstance(want, tuple)
    assert raised or space in ("value", "log_value", "fe_logit", "logit_carbonate_demand")


@pytest.mark.parametrize("kind", ["hybrid", "nn"])
def test_finish_on_floats_is_finish(kind):
    """Each trained network's finish on floats gives finish's bits; a hybrid's is its space's
    fused residual (what the reactor's every step runs), plain or absolute ones are finish."""
    rng = np.random.default_rng(2)
    for s in model_set(default=kind).surrogates.values():
        assert isinstance(s, NetworkSurrogate)
        fused = s.finish_on_floats()
        if kind == "hybrid":
            assert fused is SPACES[s.space].residual
        absolute = copy.copy(s)
        absolute.absolute = True
        assert absolute.finish_on_floats() == absolute.finish
        for _ in range(300):
            y, physics = float(rng.normal(0.0, 3.0)), float(rng.uniform(-3.0, 16.0))
            ceiling = float(rng.choice([1.0, 0.0, rng.uniform(0.0, 1.0)]))
            assert repr(fused(y, physics, ceiling)) == repr(s.finish(y, physics, ceiling))
            assert (repr(absolute.finish_on_floats()(y, physics, ceiling))
                    == repr(absolute.finish(y, physics, ceiling)))


class _Voltage(Surrogate):
    """A cell voltage model that is no network (so no bank member), trained on 0-10 A."""

    def __init__(self) -> None:
        self.variable, self.kind, self.source = "cell_voltage", "nn", "<test>"
        self.inputs = ("current",)
        self.lower, self.upper = np.array([0.0]), np.array([10.0])

    def predict(self, x: np.ndarray, physics: np.ndarray) -> np.ndarray:
        return np.asarray(physics, dtype=float) + 0.01 * x[:, 0]


def _sets() -> dict[str, ModelSet]:
    hybrid = model_set(default="hybrid")
    nn = model_set(default="nn")
    return {
        "hybrid": hybrid,
        "nn": nn,
        "mixed": model_set({"anolyte_ph": "nn", "outlet_co2_fraction": "nn"}),
        "fe physics": model_set({"fe_formate": "physics"}),
        "not banked": ModelSet({**hybrid.surrogates, "cell_voltage": _Voltage()}),
    }


def _cases(m: ModelSet) -> list[tuple[list[float], list[float], list[float]]]:
    """(signals, physics, ceilings) by position: inside every envelope, then each bank input
    at and just beyond each bound of each network's envelope, NaN, and odd physics values."""
    bank = m._bank
    assert bank is not None and m._common is not None
    mid = {name: (lo + hi) / 2.0 for name, lo, hi in
           zip(bank.inputs, m._common.lower, m._common.upper, strict=True)}
    base = {name: mid.get(name, 1.0) for name in SIGNALS}
    base["current"] = 5.0
    physics, ceilings = [3.4, 13.7, 0.8, 0.12], [1.0, 1.0, 0.7, 1.0]
    cases = [(base, physics, ceilings), (base, [0.0, -2.0, 0.0, 0.0], [1.0, 1.0, 0.0, 1.0]),
             (base, [math.nan, 16.0, 1.2, 1.5], [1.0, 1.0, math.nan, 1.0])]
    for variable in bank.variables:
        e = m._envelopes[variable]
        for i, name in enumerate(m.surrogates[variable].inputs):
            for v in (e.lower[i], e.upper[i], e.low[i], e.high[i],
                      np.nextafter(e.low[i], -math.inf), np.nextafter(e.high[i], math.inf)):
                cases.append(({**base, name: float(v)}, physics, ceilings))
    cases += [({**base, name: math.nan}, physics, ceilings) for name in bank.inputs]
    cases += [({**base, "current": 20.0}, physics, ceilings)]  # outside _Voltage's only
    return [([s[n] for n in SIGNALS], p, c) for s, p, c in cases]


def _general(m: ModelSet) -> Any:
    """estimate_all called as estimate_sample is (by position)."""
    def general(signals: list[float], physics: list[float], ceilings: list[float],
                t: float) -> Any:
        values, flags = m.estimate_all(dict(zip(SIGNALS, signals, strict=True)),
                                       dict(zip(SAMPLE_VARIABLES, physics, strict=True)), t,
                                       dict(zip(SAMPLE_VARIABLES, ceilings, strict=True)))
        return [values[v] for v in SAMPLE_VARIABLES], [flags[v] for v in SAMPLE_VARIABLES]
    return general


def _as_lists(f: Any, *args: Any) -> list[list[float]]:
    return [list(part) for part in f(*args)]


def _run(m: ModelSet, cases: list[Any], sample: bool) -> list[Any]:
    out = []
    for signals, physics, ceilings in cases:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = _outcome(_as_lists, m.estimate_sample if sample else _general(m), signals,
                           physics, ceilings, 7.0)
        said = [(str(w.message), w.filename) for w in caught if w.category is EnvelopeWarning]
        out.append((got, said, sorted(m._warned)))
    return out


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("which", ["hybrid", "nn", "mixed", "fe physics", "not banked"])
def test_single_sample_path_gives_what_estimate_all_gives(which, policy):
    """Values and flags (the same bits), each warning (text, order, and the caller's line),
    the variables that have warned, and the error under stop, case after case."""
    base = _sets()[which]
    fast, general = (ModelSet(base.surrogates, envelope=policy) for _ in range(2))
    assert (fast._single is None) == (which == "not banked")
    cases = _cases(fast)
    got, want = _run(fast, cases, sample=True), _run(general, cases, sample=False)
    assert len(cases) > 20
    outside = 0
    for case, g, w in zip(cases, got, want, strict=True):
        assert g == w, case
        assert all(filename == __file__ for _, filename in g[1])
        outside += "1.0" in g[0] or isinstance(g[0], tuple)
    assert outside > 10


def test_single_sample_inside_runs_the_plan_and_not_the_general_code():
    """Inside every envelope the sample skips estimate_all's code (where the time went);
    just outside one it takes it."""
    m = model_set(default="hybrid")
    calls: list[int] = []
    real = m._estimate_all_one
    m._estimate_all_one = lambda *a, **k: calls.append(1) or real(*a, **k)  # type: ignore[method-assign]
    inside = _cases(m)[0][0]
    outside = list(inside)  # the first input just below the narrowest envelope
    outside[list(SIGNALS).index(m._bank.inputs[0])] = float(np.nextafter(m._common.low[0], -math.inf))
    values, flags = m.estimate_sample(inside, [3.4, 13.7, 0.8, 0.12], [1.0, 1.0, 0.7, 1.0])
    assert not calls and list(flags) == [0.0] * 4 and values != [3.4, 13.7, 0.8, 0.12]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.estimate_sample(outside, [3.4, 13.7, 0.8, 0.12], [1.0, 1.0, 0.7, 1.0])
    assert calls == [1]


def test_a_copied_or_pickled_bank_runs_on_buffers_of_its_own():
    """The single-sample buffers of a copy alias each other as the original's do, and are
    not the original's: each copy's outputs follow its own inputs."""
    m = model_set(default="hybrid")
    bank = m._bank
    assert bank is not None
    rng = np.random.default_rng(4)
    x1, x2 = (rng.uniform(1.0, 50.0, len(bank.inputs)).tolist() for _ in range(2))
    want1 = bank.outputs(x1)
    want2 = bank.outputs(x2)
    assert want1 != want2
    for other in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        b = other._bank
        assert b is not None and b is not bank
        assert b.outputs(x1) == want1
        assert bank.outputs(x2) == want2 and b.outputs(x1) == want1
        assert b.outputs(x2) == want2 and other.estimate_sample is not m.estimate_sample


@pytest.mark.parametrize("choices", [{}, {"anolyte_ph": "nn", "outlet_co2_fraction": "nn"},
                                     {"fe_formate": "physics"}])
def test_reactor_float_step_inside_the_envelope_gives_the_general_steps_bits(choices):
    """The reactor's float step (on estimate_sample's plan) against its general step (on
    estimate_all), step after step on inputs mostly inside the training envelope
    (tests/test_float_steps.py covers the inputs that leave it)."""
    from components.reactor import Reactor
    from models import electrochemistry as ec

    fast, general = Reactor(models=model_set(choices)), Reactor(models=model_set(choices))
    assert fast.models is not None and fast.models._single is not None
    fallbacks: list[int] = []
    real = fast.models._estimate_all_one
    fast.models._estimate_all_one = (  # type: ignore[method-assign]
        lambda *a, **k: fallbacks.append(1) or real(*a, **k))
    for r in (fast, general):
        r.initialize(0.0)
    rng = np.random.default_rng(8)
    steps = 300
    for k in range(steps):
        inputs = {"current": rng.uniform(0.0, 8.0), "gas_flow": rng.uniform(10.0, 300.0),
                  "co2_fraction": rng.uniform(5.0, 100.0), "anolyte_flow": rng.uniform(0.0, 20.0),
                  "catholyte_flow": rng.uniform(0.0, 20.0), "anolyte_conc": rng.uniform(0.3, 3.0),
                  "catholyte_conc": rng.uniform(0.3, 3.0), "humidity": rng.uniform(0.0, 100.0),
                  "ambient_temperature": rng.uniform(10.0, 40.0)}
        dt = float(rng.choice([1.0, 60.0]))
        a = fast.step(float(k), dt, inputs)
        b = general._step_general(float(k), dt, inputs, ec.SCALAR)
        assert a.keys() == b.keys()
        for name, value in b.items():
            assert repr(a[name]) == repr(value), (k, name, a[name], value)
        for name in Reactor.state_names:
            assert repr(getattr(fast, name)) == repr(getattr(general, name)), (k, name)
    assert len(fallbacks) < steps // 10  # the plan ran (the first step takes the general path)

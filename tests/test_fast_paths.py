"""The per-step fast paths give what the plain code gave, bit for bit, and stay loud.

The engine steps every component and commits in one SimPy process per step (it had one
per component plus one for the commit), writes a component's outputs by one slice, picks
a recorded row by one slice; the recorder packs a row of numbers with one ``struct`` call;
the surrogate bank checks one envelope, the narrowest of its networks', before falling
back to each network's own check. Each test runs the fast path beside the plain one (the
engine's former processes are kept here as the reference) and compares the bits.
"""
from __future__ import annotations

import math
import pickle
import types
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cosim import Component, Port, Simulation, SimulationError
from cosim.recorder import Recorder
from cosim.profiles import CONTINUOUS, Ramp, Steps
from cosim.simulation import _PRIO_COMPONENT, _PRIO_SOURCE, EventPriority, _Tick
from models.envelope import Envelope
from models.model_set import SAMPLE_VARIABLES, ModelSet
from models.surrogate import SIGNALS, EnvelopeWarning

# -- the engine: one process per step against one per component ----------------------------


def _reference_processes(self: Simulation, *, resample: bool = False) -> None:
    """The engine's processes as they were: one per component at priority 10 + rank, the
    commit at 10 + n, each yielding its own SimPy event every step (kept as the reference)."""
    env = self.env
    commit_priority = EventPriority(_PRIO_COMPONENT + len(self.order))

    def member_process(member: Any) -> Any:
        values, step = self._values, member.component.step
        every, prio, dt = member.every, member.priority, member.every * self.step_size
        yield _Tick(env, (-int(env.now)) % every, prio)
        while True:
            t = self._at(env.now)
            if member.faults or member.truth:
                self._step_member(member, t, dt)
            else:
                out = step(t, dt, {n: values[i] for n, i in member.gather})
                try:
                    for n, i in member.scatter:
                        values[i] = out[n]
                except (KeyError, TypeError):
                    raise self._bad_outputs(member, out, t) from None
            yield _Tick(env, every, prio)

    def commit_process() -> Any:
        values, indices, every = self._values, self._record_indices, self._record_every
        yield _Tick(env, 0, commit_priority)
        while True:
            k1 = env.now + 1
            t1 = self._at(k1)
            self._commit_values(t1)
            recorded = k1 % every == 0
            if recorded:
                self.recorder.append(t1, [values[i] for i in indices])
            if self._stop_requested:
                self._halt_after_commit(t1, recorded)
            yield _Tick(env, 1, commit_priority)

    for member in self._members.values():
        env.process(member_process(member))
    for name in self.external_inputs:
        self._start_source(name, resample=resample)
    for item in self._schedule:
        if item.seq not in self._applied:
            self._arm(item)
    env.process(commit_process())


def _reference_source(self: Simulation, name: str, profile: Any, generation: int,
                      resample: bool) -> Any:
    """An input's source process as it was: the time computed twice a step, every value
    through ``_checked_input`` (kept as the reference)."""
    env, slot = self.env, self._slots[name]
    base, t0, at = self.step_size, self.start, self._at
    if resample:
        yield _Tick(env, 0, _PRIO_SOURCE)
        if self._generation[name] != generation:
            return
        self._values[slot] = self._checked_input(name, profile.value(at(env.now)))
    while True:
        nxt = profile.next_change(at(env.now))
        if nxt == math.inf:
            return
        delay = 1 if nxt == CONTINUOUS else max(1, math.ceil((nxt - t0) / base - 1e-9) - int(env.now))
        yield _Tick(env, delay, _PRIO_SOURCE)
        if self._generation[name] != generation:
            return
        self._values[slot] = self._checked_input(name, profile.value(at(env.now)))


#: the hybrid plant with what makes the step loop branch: a ramp and steps (sources), a
#: component every 3 steps, sensor faults (true-value slots), a parameter change and a
#: pump fault (events), rows every 2 steps
_BUSY = {
    "name": "busy", "duration": "20 min", "step": 1.0, "seed": 3,
    "inputs": {"current": {"ramp": {"from": 2.0, "to": 6.0, "at": 60, "duration": 600}},
               "gas_flow": {"steps": [[0, 100.0], [300, 80.0], [900, 120.0]]}},
    "rates": {"separation": 3},
    "events": [
        {"at": 120, "type": "sensor_drift", "target": "reactor.cell_voltage", "rate": 1.0e-4},
        {"at": 200, "type": "sensor_noise", "target": "reactor.cell_temperature", "std": 0.05},
        {"at": 420, "type": "set", "target": "anolyte_flow", "value": 4.0},
        {"at": 700, "type": "sensor_clear", "target": "reactor.cell_voltage"},
    ],
    "record": {"signals": "all", "every": 2},
}


def _busy(reference: bool) -> Simulation:
    from co2twin.scenario import build, parse_scenario

    sim = build(parse_scenario(dict(_BUSY), source="<test>"))
    if reference:
        sim._start_processes = types.MethodType(_reference_processes, sim)  # type: ignore[method-assign]
        sim._source_process = types.MethodType(_reference_source, sim)  # type: ignore[method-assign]
    return sim


def _same_bits(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns)
    assert np.array_equal(a.index.to_numpy().view(np.int64), b.index.to_numpy().view(np.int64))
    assert np.array_equal(a.to_numpy().view(np.int64), b.to_numpy().view(np.int64))


def test_one_step_process_gives_the_bits_of_one_process_per_component():
    """Profiles, a slower component, sensor faults, events and decimated rows: the same frame,
    bit for bit, and the same event log."""
    fast, ref = _busy(False), _busy(True)
    a, b = fast.run(1200.0, progress=False), ref.run(1200.0, progress=False)
    assert len(a) == 601 and "reactor.cell_voltage:true" in a.columns
    _same_bits(a, b)
    assert fast.event_log == ref.event_log


def test_one_step_process_through_a_rollback_and_a_stop():
    """get_state/set_state (processes restarted mid-period of the slower component) and a stop
    request end where they did and record what they did."""
    runs = []
    for reference in (False, True):
        sim = _busy(reference)
        sim.advance_to(301.0)
        state = sim.get_state()
        sim.advance_to(500.0)
        sim.set_state(state)  # back to k = 301: separation (every 3) next steps at 303
        sim.advance_to(655.0)
        sim.request_stop()
        sim.advance_to(900.0)
        assert sim.stopped and sim.time == 656.0
        sim.advance_to(1200.0)
        runs.append(sim.results())
    _same_bits(*runs)


class _Pair(Component):
    """Outputs a, b, c; from its call number ``after`` on, ``out`` instead of good outputs."""

    inputs = (Port("u", "1", -1e9, 1e9, "in"),)
    outputs = (Port("a", "1", -1e9, 1e9, "first"), Port("b", "1", -1e9, 1e9, "second"),
               Port("c", "1", -1e9, 1e9, "third"))

    def __init__(self, out: Any = None, after: int = 10**9) -> None:
        super().__init__()
        self.out, self.after, self.calls = out, after, 0

    def step(self, t: float, dt: float, inputs: Any) -> Any:
        self.calls += 1
        if self.calls > self.after:
            return self.out
        # keys in another order than the ports, and one more than asked
        return {"c": 3.0 * t, "extra": -1.0, "a": t, "b": 2.0 * t}


def test_outputs_land_by_name_whatever_the_order_of_the_dict():
    frame = Simulation({"p": _Pair()}, step=1.0).run(3)
    assert frame["p.a"].tolist() == [0.0, 0.0, 1.0, 2.0]
    assert frame["p.b"].tolist() == [0.0, 0.0, 2.0, 4.0]
    assert frame["p.c"].tolist() == [0.0, 0.0, 3.0, 6.0]


@pytest.mark.parametrize("out, said", [
    ({"a": 1.0, "c": 2.0}, "p.step() at t=2 s returned outputs a, c but not b"),
    ([1.0, 2.0, 3.0], "p.step() at t=2 s returned [1.0, 2.0, 3.0]"),
    (None, "p.step() at t=2 s returned None"),
])
def test_bad_outputs_in_the_run_are_named_as_before(out, said):
    """Good outputs at t0 and for two steps, then bad ones: the error names the step and
    what came back (the run's step loop, not the start's)."""
    with pytest.raises(SimulationError) as caught:
        Simulation({"p": _Pair(out, after=3)}, step=1.0).run(5)
    assert said in str(caught.value)


@pytest.mark.parametrize("profile", [Ramp(0.0, 2e9, 0.0, 10.0), Steps([(0.0, 1.0), (4.0, math.inf)]),
                                     Ramp(0, 2 * 10**9, 0, 10)])
def test_an_input_leaving_its_bounds_is_reported_as_before(profile):
    """A ramp or a step past the port's bounds (a float, an infinity, ints): the same error
    at the same step as through the former source process."""
    said = []
    for reference in (False, True):
        sim = Simulation({"p": _Pair()}, step=1.0)
        if reference:
            sim._source_process = types.MethodType(_reference_source, sim)  # type: ignore[method-assign]
        sim.drive("p.u", profile)
        with pytest.raises(SimulationError) as caught:
            sim.run(10)
        said.append((str(caught.value), sim.time))
    assert said[0] == said[1]
    assert "p.u at t=" in said[0][0] and "expected a finite value in" in said[0][0]


def test_recorded_columns_picked_from_any_slots():
    """A chosen subset in another order than the slots, and a true-value column, are picked
    one by one (not the slice of every signal)."""
    sim = Simulation({"p": _Pair()}, step=1.0)
    sim.record(["p.c", "p.a"])
    frame = sim.run(3)
    assert list(frame.columns) == ["p.c", "p.a"]
    assert frame["p.c"].tolist() == [0.0, 0.0, 3.0, 6.0]
    assert frame["p.a"].tolist() == [0.0, 0.0, 1.0, 2.0]


# -- the recorder: one struct call per row ------------------------------------------------

_ROW = [1.5, 2, True, np.float32(0.1), np.int64(-7), math.nan, math.inf, -0.0, 2**60 + 1, 1e-320]


def test_struct_rows_hold_the_bits_numpy_would_store():
    """Floats, ints, bools, NumPy scalars, NaN, infinity, -0, a large int and a subnormal."""
    rec = Recorder([f"s{i}" for i in range(len(_ROW))], ["1"] * len(_ROW), capacity=2)
    for k in range(5):  # past the capacity: the buffer grows and the new one is written
        rec.append(float(k), _ROW)
    data = rec.frame().to_numpy()
    expected = np.array(_ROW, dtype=float)
    assert data.shape == (5, len(_ROW))
    assert all(np.array_equal(row.view(np.int64), expected.view(np.int64)) for row in data)


def test_rows_numpy_rejects_are_rejected_as_before():
    """A wrong length or an array in a row raise as NumPy's row assignment did, and nothing
    is kept; None becomes NaN, as NumPy makes it."""
    rec = Recorder(["a", "b"], ["1", "1"])
    with pytest.raises(ValueError):
        rec.append(0.0, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError):
        rec.append(0.0, [1.0, np.array([2.0, 3.0])])
    assert len(rec) == 0
    rec.append(1.0, [None, 2.0])
    assert np.isnan(rec.frame()["a"].iloc[0]) and rec.frame()["b"].iloc[0] == 2.0


@pytest.mark.parametrize("columns, rows", [(1, 1), (1, 5), (3, 1), (3, 5)])
def test_a_frame_is_a_copy_whatever_its_shape(columns, rows):
    """One row or one column (an array both C- and F-ordered) included: the recorder going on
    (rolled back and rewritten) leaves the frame taken before as it was."""
    rec = Recorder([f"c{i}" for i in range(columns)], ["1"] * columns)
    for k in range(rows):
        rec.append(float(k), [k + 1.0] * columns)
    frame = rec.frame()
    rec.truncate(-1.0)
    for k in range(rows):
        rec.append(float(k), [-9.0] * columns)
    assert frame.to_numpy().tolist() == [[k + 1.0] * columns for k in range(rows)]
    assert frame.index.tolist() == [float(k) for k in range(rows)]


def test_recorder_without_columns_counts_rows():
    rec = Recorder([], [])
    rec.append(0.0, [])
    rec.append(1.0, ())
    assert len(rec) == 2 and rec.frame().shape == (2, 0)


def test_streamed_chunks_and_a_pickled_recorder_keep_every_row():
    class Sink:
        def __init__(self) -> None:
            self.rows: list[np.ndarray] = []

        def open(self, names: Any, units: Any) -> None:
            pass

        def write(self, times: np.ndarray, rows: np.ndarray) -> None:
            self.rows.append(np.column_stack([times, rows]).copy())

    sink = Sink()
    rec = Recorder(["a", "b"], ["1", "1"], sink=sink, chunk_bytes=16 * 3 * 8)  # 16 rows
    for k in range(40):
        rec.append(float(k), [k * 0.5, -k])
    rec.flush()
    got = np.vstack(sink.rows)
    assert np.array_equal(got, np.array([[k, k * 0.5, -k] for k in range(40)], dtype=float))
    kept = Recorder(["a"], ["1"], capacity=2)
    kept.append(0.0, [1.0])
    copy = pickle.loads(pickle.dumps(kept))
    for k in range(1, 4):
        copy.append(float(k), [k + 1.0])  # grows after unpickling
    assert copy.frame()["a"].tolist() == [1.0, 2.0, 3.0, 4.0]


# -- the surrogates: one envelope check for the whole bank --------------------------------


def test_narrowest_envelope_contains_exactly_what_every_part_contains():
    rng = np.random.default_rng(1)
    a = Envelope.of(np.array([0.0, 10.0]), np.array([1.0, 20.0]))
    b = Envelope.of(np.array([0.5, -5.0]), np.array([2.0, 5.0]))
    c = Envelope.of(np.array([12.0]), np.array([30.0]))
    names = ["x", "y", "z", "free"]
    parts = [(["x", "y"], a), (["x", "z"], b), (["y"], c)]
    common = Envelope.narrowest(names, parts)
    assert common.lower == [0.5, 12.0, -5.0, -math.inf]
    assert common.upper == [1.0, 20.0, 5.0, math.inf]
    samples = rng.uniform(-10.0, 35.0, size=(4000, 4)).tolist()
    samples += [[0.5, 12.0, -5.0, 1e300], [1.0, 20.0, 5.0, 0.0], [0.7, math.nan, 0.0, 0.0],
                [0.7, 15.0, 0.0, math.nan]]
    for s in samples:
        each = all(e.first_outside([s[names.index(n)] for n in inputs]) is None
                   for inputs, e in parts)
        if not math.isnan(s[3]):  # a NaN nobody checks fails the common check (safe side)
            assert common.contains(s) == each, s
        assert common.contains(s) <= each, s


@pytest.fixture(scope="module")
def sample() -> dict[str, Any]:
    """The signals and physics values the reactor hands its surrogates in a running plant."""
    from co2twin.bench import BENCH_24H
    from co2twin.scenario import build, parse_scenario

    sim = build(parse_scenario(dict(BENCH_24H), source="<test>"))
    sim.advance_to(60.0)
    models = sim.components["reactor"].models
    seen: dict[str, Any] = {}
    real = models.estimate_sample

    def spy(signals: Any, physics: Any, ceilings: Any, t: float) -> Any:
        # as the arguments of estimate_all (signals, physics, t, ceilings), by name
        seen["args"] = (dict(zip(SIGNALS, signals, strict=True)),
                        dict(zip(SAMPLE_VARIABLES, physics, strict=True)), t,
                        dict(zip(SAMPLE_VARIABLES, ceilings, strict=True)))
        return real(signals, physics, ceilings, t)

    models.estimate_sample = spy
    sim.advance_to(61.0)
    return {"models": models, "args": seen["args"]}


def _estimates(models: ModelSet, policy: str, cases: list[dict[str, Any]], args: Any,
               fast: bool) -> list[Any]:
    m = ModelSet(models.surrogates, envelope=policy)
    assert m._bank is not None and m._common is not None
    if not fast:
        m._common = None  # every network through its own check, as before
    out = []
    for signals in cases:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                values, flags = m.estimate_all(signals, *args[1:])
                got: Any = (values, flags)
            except Exception as exc:  # stop: the same error, word for word
                got = (type(exc).__name__, str(exc))
        out.append((got, [str(w.message) for w in caught if w.category is EnvelopeWarning],
                    sorted(m._warned)))
    return out


@pytest.mark.parametrize("policy", ["warn", "clamp", "physics", "stop"])
def test_one_bank_check_decides_as_each_networks_own_check(sample, policy):
    """Inside, at the bounds, just outside one network's envelope, NaN: values, flags (with
    the warnings and errors that name the input, its value and the envelope) are the same
    bits as with every network checked on its own."""
    models, args = sample["models"], sample["args"]
    signals = dict(args[0])
    cases = [signals] + [{**signals, name: math.nan} for name in models._bank.inputs]
    for variable in models._bank.variables:  # each network's own bounds, as trained and widened
        e = models._envelopes[variable]
        for i, name in enumerate(models.surrogates[variable].inputs):
            for v in (e.lower[i], e.upper[i], e.low[i], e.high[i],
                      np.nextafter(e.low[i], -math.inf), np.nextafter(e.high[i], math.inf)):
                cases.append({**signals, name: float(v)})
    fast = _estimates(models, policy, cases, args, fast=True)
    slow = _estimates(models, policy, cases, args, fast=False)
    assert len(cases) > 10
    flagged = 0
    for case, f, s in zip(cases, fast, slow, strict=True):
        assert repr(f) == repr(s), case  # repr: NaN equal to NaN, -0.0 told from 0.0
        if isinstance(f[0][1], dict):
            flagged += any(v == 1.0 for v in f[0][1].values())
    assert flagged or policy == "stop"


def test_bank_outputs_are_its_run(sample):
    bank = sample["models"]._bank
    signals = sample["args"][0]
    raw = bank.run(signals)
    assert list(raw) == list(bank.variables)
    assert list(raw.values()) == bank.outputs([signals[n] for n in bank.inputs])

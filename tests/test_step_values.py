"""The positional step (``Component.step_values``: inputs as a tuple, outputs in port order),
which the engine calls where a component offers it, gives what ``step`` gives, bit for bit;
the engine's per-step path around it stays loud and follows a rewiring during the run; the
recorder's room made up front keeps the same rows."""
from __future__ import annotations

import math
import random
from functools import partial
import warnings
from typing import Any
from collections.abc import Callable, Mapping

import numpy as np
import pytest

from co2twin.scenario import parse_scenario
from co2twin.surrogates import load_models
from components.feed import Feed
from components.plant import build_plant
from components.power import PowerSupply
from components.reactor import Reactor
from components.separation import Separation
from cosim import Component, Port, Simulation, SimulationError
from cosim.recorder import Recorder
from step_inputs import feed_inputs, power_inputs, reactor_inputs, separation_inputs


def _bits(value: Any) -> Any:
    return np.asarray(value, dtype=float).view(np.int64)


def _hybrid() -> Any:
    scenario = parse_scenario({"name": "m", "duration": 10, "step": 1.0,
                               "models": {"envelope": "warn"}}, source="<test>")
    return load_models(scenario)


#: (make a fresh component, draw its inputs, a tunable parameter to change midway)
_CASES: dict[str, tuple[Callable[[], Component], Callable[[random.Random], dict[str, float]],
                        tuple[str, float] | None]] = {
    "power": (PowerSupply, power_inputs, ("output_enabled", 0.0)),
    "feed": (Feed, feed_inputs, ("co2_supply_fraction", 0.5)),
    "separation": (Separation, separation_inputs, None),
    "reactor": (Reactor, partial(reactor_inputs, co2=True), None),
    "reactor-hybrid": (lambda: Reactor(models=_hybrid()), partial(reactor_inputs, co2=True), None),
}


@pytest.mark.parametrize("case", list(_CASES))
def test_step_values_gives_the_bits_of_step(case: str):
    """The same inputs, one instance through ``step`` (dicts), one through ``step_values``
    (tuples): every output in port order and every state, bit for bit, from the first step
    on (the general path), with zero steps, other steps and a parameter changed midway."""
    make, draw, change = _CASES[case]
    by_dict, by_values = make(), make()
    assert type(by_values).has_step_values()
    for c in (by_dict, by_values):
        c.initialize(0.0)
    names = [p.name for p in type(by_dict).inputs]
    outputs = [p.name for p in type(by_dict).outputs]
    rng = random.Random(14)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k in range(300):
            inputs = draw(rng)
            dt = rng.choice((1.0, 1.0, 0.0, 0.5, 30.0))
            if change is not None and k == 150:
                for c in (by_dict, by_values):
                    c.set_parameter(*change)
            a = by_dict.step(float(k), dt, inputs)
            b = by_values.step_values(float(k), dt, tuple(inputs[n] for n in names))
            assert len(b) == len(outputs), k
            for name, value in zip(outputs, b, strict=True):
                assert _bits(value) == _bits(a[name]), (k, name, value, a[name])
            for name in type(by_dict).state_names:
                assert np.array_equal(_bits(getattr(by_values, name)),
                                      _bits(getattr(by_dict, name))), (k, name)


@pytest.mark.parametrize("case", ["power", "feed", "separation", "reactor"])
def test_step_values_on_arrays_of_variants_is_the_step_of_arrays(case: str):
    """Arrays (an ensemble's variants) and numbers that are not floats go through ``step``."""
    make, draw, _ = _CASES[case]
    rng = random.Random(3)
    for kind in ("arrays", "ints"):
        by_dict, by_values = make(), make()
        for c in (by_dict, by_values):
            c.initialize(0.0)
        names = [p.name for p in type(by_dict).inputs]
        for k in range(4):
            rows = [draw(rng) for _ in range(3)]
            if kind == "arrays":
                inputs: dict[str, Any] = {n: np.array([r[n] for r in rows]) for n in names}
            else:  # plain ints: numbers, not floats
                inputs = {n: int(rows[0][n]) for n in names}
            a = by_dict.step(float(k), 1.0, inputs)
            b = by_values.step_values(float(k), 1.0, tuple(inputs[n] for n in names))
            for port, value in zip(type(by_dict).outputs, b, strict=True):
                assert np.array_equal(_bits(value), _bits(a[port.name])), (kind, k, port.name)


def test_the_default_step_values_goes_through_step():
    class Doubler(Component):
        inputs = (Port("u", "1"), Port("w", "1"))
        outputs = (Port("y", "1"), Port("z", "1"))

        def step(self, t: float, dt: float, inputs: Mapping[str, Any]) -> dict[str, Any]:
            return {"z": inputs["w"], "y": 2 * inputs["u"]}

    d = Doubler()
    assert not Doubler.has_step_values() and Reactor.has_step_values()
    assert list(d.step_values(0.0, 1.0, (3.0, 5.0))) == [6.0, 5.0]


# -- the engine's path ------------------------------------------------------------------------
class _Source(Component):
    outputs = (Port("a", "1"), Port("b", "1"))

    def __init__(self) -> None:
        super().__init__()
        self.calls = {"step": 0, "step_values": 0}
        self.values: tuple[Any, ...] = (1.0, 2.0)

    def step(self, t: float, dt: float, inputs: Mapping[str, Any]) -> dict[str, Any]:
        self.calls["step"] += 1
        return {"a": self.values[0], "b": self.values[1]}

    def step_values(self, t: float, dt: float, values: tuple[Any, ...]) -> Any:
        self.calls["step_values"] += 1
        return self.values


class _Sink(Component):
    inputs = (Port("x", "1"),)
    outputs = (Port("y", "1"),)

    def step(self, t: float, dt: float, inputs: Mapping[str, Any]) -> dict[str, Any]:
        return {"y": inputs["x"] + 1.0}


def _pair() -> tuple[Simulation, _Source]:
    from cosim import Connection

    src = _Source()
    return Simulation({"s": src, "k": _Sink()}, [Connection("s.b", "k.x")], step=1.0), src


def test_the_engine_steps_a_component_by_its_step_values_where_it_has_one():
    sim, src = _pair()
    frame = sim.run(5.0, progress=False)
    assert src.calls == {"step": 1, "step_values": 5}  # the evaluation at t0 through step
    assert frame["k.y"].tolist() == [3.0] * 6


@pytest.mark.parametrize("returned, shown", [((1.0,), r"\(1.0,\)"), (None, "None"),
                                             ((1.0, 2.0, 3.0), r"\(1.0, 2.0, 3.0\)")])
def test_step_values_of_the_wrong_length_is_an_error_naming_the_component(returned: Any,
                                                                         shown: str):
    sim, src = _pair()
    sim.advance_to(2.0)
    src.values = returned
    with pytest.raises(SimulationError, match=rf"s.step_values\(\) at t=2 s returned {shown}; "
                                              r"expected a sequence of 2 values, the outputs a, b"):
        sim.advance_to(3.0)
    assert len(sim._values) == sim._n_signals  # no slot shifted


def test_a_non_finite_value_from_step_values_is_named_and_finite_extremes_pass():
    sim, src = _pair()
    src.values = (1e308, 1e308)  # finite, though their sum is not
    sim.advance_to(2.0)
    src.values = (1.0, math.nan)
    with pytest.raises(SimulationError, match=r"non-finite signal\(s\) at t=3 s: s.b = nan"):
        sim.advance_to(3.0)


def _plant(positional: bool, monkeypatch: pytest.MonkeyPatch) -> Simulation:
    if not positional:
        monkeypatch.setattr(Component, "has_step_values", classmethod(lambda cls: False))
    components, connections = build_plant()
    sim = Simulation(components, connections, step=1.0)
    sim.initialize()
    return sim


@pytest.mark.parametrize("positional", [True, False])
def test_a_sensor_fault_made_during_the_run_changes_no_physics(positional: bool,
                                                              monkeypatch: pytest.MonkeyPatch):
    """A fault on feed.gas_flow's sensor made between advances: the reactor (on the positional
    path) is rewired to the true gas flow at once, so nothing it computes changes; the same
    frame through step_values as through dicts."""
    with monkeypatch.context() as m:
        clean = _plant(positional, m)
        faulty = _plant(positional, m)
        for sim in (clean, faulty):
            sim.advance_to(50.0)
        faulty.sensor_fault("feed.gas_flow", "offset", offset=40.0)
        a, b = clean.run(120.0, progress=False), faulty.run(120.0, progress=False)
    assert (b["feed.gas_flow"] - a["feed.gas_flow"]).iloc[-1] == pytest.approx(40.0)
    physics = [c for c in a.columns if c.startswith(("reactor.", "separation.", "power."))]
    assert np.array_equal(a[physics].to_numpy(), b[physics].to_numpy())


def test_positional_and_dict_paths_give_the_same_plant_frame(monkeypatch: pytest.MonkeyPatch):
    with monkeypatch.context() as m:
        by_dict = _plant(False, m)
        a = by_dict.run(200.0, progress=False)
    by_values = _plant(True, monkeypatch)
    b = by_values.run(200.0, progress=False)
    assert np.array_equal(a.to_numpy().view(np.int64), b.to_numpy().view(np.int64))


# -- the recorder: room made up front -----------------------------------------------------------
def test_reserve_makes_room_once_and_still_grows_geometrically():
    rec = Recorder(["a"], ["1"], capacity=4)
    rec.reserve(1000)
    assert len(rec._data) == 1000
    for k in range(1000):
        rec.append(float(k), [float(k)])
    rec.reserve(1002)  # a short advance asks for a little more: the buffer doubles
    assert len(rec._data) == 2000
    frame = rec.frame()
    assert frame.index.tolist() == frame["a"].tolist() == [float(k) for k in range(1000)]


def test_a_run_reserves_its_rows_and_records_what_it_did_without():
    components, connections = build_plant()
    sim = Simulation(components, connections, step=1.0)
    sim.record(["reactor.cell_voltage", "power.current"], every=3)
    frame = sim.run(30000.0, progress=False)
    # the row at t0, 10,000 rows to come, one a stop request could add, and one to spare
    assert len(sim.recorder._data) == 10003
    ref_components, ref_connections = build_plant()
    ref = Simulation(ref_components, ref_connections, step=1.0)
    ref.record(["reactor.cell_voltage", "power.current"], every=3)
    ref.initialize()
    for k in range(1, 30001):  # a step at a time: the buffer doubles as it fills
        ref.advance_to(float(k))
    assert np.array_equal(ref.results().to_numpy(), frame.to_numpy())
    assert ref.results().index.equals(frame.index)


def test_a_subclass_or_instance_that_overrides_step_alone_is_stepped_through_it():
    """step_values inherited from below a newer step would skip that step: not taken."""
    class Louder(Separation):
        def step(self, t: float, dt: float, inputs: Mapping[str, Any]) -> dict[str, Any]:
            return {n: 2 * v for n, v in super().step(t, dt, inputs).items()}

    class Both(Louder):
        def step_values(self, t: float, dt: float, values: tuple[Any, ...]) -> Any:
            return Component.step_values(self, t, dt, values)

    assert Separation.has_step_values() and Both.has_step_values()
    assert not Louder.has_step_values() and not Component.has_step_values()
    class Quick(_Sink):
        def step_values(self, t: float, dt: float, values: tuple[Any, ...]) -> Any:
            return (1.0,)

    from cosim import Connection

    sink = Quick()
    calls: list[float] = []
    sink.step = lambda t, dt, inputs: calls.append(t) or {"y": 0.0}  # type: ignore[method-assign]
    sim = Simulation({"s": _Source(), "k": sink}, [Connection("s.b", "k.x")], step=1.0)
    frame = sim.run(3.0, progress=False)
    assert calls == [0.0, 0.0, 1.0, 2.0]  # the evaluation at t0, then each step
    assert frame["k.y"].tolist() == [0.0] * 4


def test_positional_refuses_ports_out_of_the_written_order():
    """Component.positional: a class whose ports no longer run in the order its positional
    step is written in fails at import, naming the class; in order, it reads a mapping in it."""
    class Two(Component):
        inputs = (Port("a", "1"), Port("b", "1"))
        outputs = (Port("y", "1"),)

    assert Two.positional(("a", "b"), ("y",))({"b": 2.0, "a": 1.0}) == (1.0, 2.0)
    with pytest.raises(ImportError, match=r"\.Two: its positional step takes and returns the ports"):
        Two.positional(("b", "a"), ("y",))
    with pytest.raises(ImportError, match="the ports changed"):
        Two.positional(("a", "b"), ("y", "z"))

    class One(Component):
        inputs = (Port("a", "1"),)
        outputs = (Port("y", "1"),)

    assert One.positional(("a",), ("y",))({"a": 3.0}) == (3.0,)  # a tuple, as for several

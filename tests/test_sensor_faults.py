"""Sensor faults (:mod:`cosim.sensor_faults`) rewire physics to the true value, also across
delayed connections and when a fault is made between advances.

Diagrams as in test_simulation.py: ``c: Clock(1) -(delayed)-> f: Follower(1)`` is a clock
feeding a follower over a delayed connection. The modes themselves (bias, drift, freeze,
noise, clear) and their recorded ``:true`` columns are proved in test_simulation.py.
"""
from __future__ import annotations

from cosim import Connection, SensorFault, Simulation


def _delayed_pair(tiny) -> Simulation:
    return Simulation({"c": tiny.clock("c"), "f": tiny.follower("f")},
                      [Connection("c.y", "f.u", delayed=True)], step=1.0)


def test_a_delayed_consumer_gets_the_true_value(tiny):
    """`c: Clock(1) -(delayed)-> f: Follower(1)` with `bias +10 at 1` on c.y: f follows the
    true c.y one step late, exactly as without the fault, while the reading is biased."""
    clean = _delayed_pair(tiny).run(5)
    sim = _delayed_pair(tiny)
    sim.schedule(SensorFault(1.0, "c.y", "bias", offset=10.0))
    faulty = sim.run(5)
    assert list(faulty["c.y"]) == [0, 1, 12, 13, 14, 15]
    assert list(faulty["f.y"]) == list(clean["f.y"]) == [0, 0, 1, 2, 3, 4]


def test_a_fault_made_between_advances_rewires_a_delayed_consumer_at_once(tiny):
    """The same pair, the fault made by ``sensor_fault`` at 2 s (no true value existed
    before): from then on f still follows the true c.y, and ``get_true`` and a true
    ``reader`` made before the fault give it too."""
    sim = _delayed_pair(tiny)
    read_true = sim.reader(["c.y", "f.u"], true=True)
    sim.advance_to(2.0)
    sim.sensor_fault("c.y", "bias", offset=10.0)
    sim.advance_to(5.0)
    assert sim.get("c.y") == 15.0
    assert sim.get_true("c.y") == 5.0
    assert read_true() == (5.0, 5.0)  # f.u: the held true c.y, for the step from 5 s
    assert list(sim.results()["f.y"]) == [0, 0, 1, 2, 3, 4]


def _faulty_run(tiny, restore_at: float | None = None):
    """The delayed pair to 2 s, a checkpoint, a drift fault made at 3 s, on to 6 s; then, with
    ``restore_at``, back to the checkpoint and on to 6 s again."""
    sim = _delayed_pair(tiny)
    sim.advance_to(2.0)
    snapshot = sim.get_state()
    sim.advance_to(3.0)
    sim.sensor_fault("c.y", "drift", rate=1.0)
    sim.advance_to(6.0)
    if restore_at is not None:
        sim.set_state(snapshot)
        sim.advance_to(6.0)
    return sim, snapshot


def test_a_checkpoint_from_before_a_fault_restores_the_unfaulted_run(tiny):
    """Back to a checkpoint taken before the fault made its true-value slot: the run goes on
    as the fault never was (the reading is the true value again), not an IndexError."""
    clean = _delayed_pair(tiny)
    clean.advance_to(6.0)
    sim, _ = _faulty_run(tiny, restore_at=2.0)
    assert sim.get("c.y") == clean.get("c.y") == 6.0
    assert sim.get_true("c.y") == 6.0 and sim.get("f.y") == clean.get("f.y")


def test_a_fresh_build_takes_a_checkpoint_with_a_fault_acting(tiny):
    """A checkpoint taken while the drift acts, restored into a fresh build (which has no true
    slot yet): the fresh one goes on exactly as the original, reading and physics alike."""
    sim, _ = _faulty_run(tiny)
    state = sim.get_state()
    sim.advance_to(9.0)
    fresh = _delayed_pair(tiny)
    fresh.initialize()
    fresh.set_state(state)
    fresh.advance_to(9.0)
    for signal in ("c.y", "f.u", "f.y"):
        assert fresh.get(signal) == sim.get(signal), signal
    assert fresh.get_true("c.y") == sim.get_true("c.y") == 9.0
    assert fresh.get("c.y") == 9.0 + 6.0  # drifting 1/s since 3 s

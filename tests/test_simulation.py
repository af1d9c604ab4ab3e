"""The master algorithm, as tiny scenarios with the recorded order and values asserted.

Each test opens with a diagram: ``a: Clock(1) -> b: Follower(1)`` means component
``a`` (a Clock) steps every base step and feeds ``b``; ``-(delayed)->`` is a
delayed connection and ``(3)`` a component stepping every 3 base steps.
Rows are zero-order hold: the row at ``t`` holds the outputs at ``t`` and the
inputs held over the step that ended at ``t``, so a change applied at ``t``
shows from the row ``t + step`` on.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from cosim import (
    Connection,
    Constant,
    Port,
    RampInput,
    SensorFault,
    SetInput,
    SetParameter,
    Simulation,
    SimulationError,
    Steps,
    SwitchProfile,
    WiringError,
)


def col(frame: pd.DataFrame, name: str) -> list[float]:
    return frame[name].tolist()


def test_gauss_seidel_downstream_sees_same_step_output(tiny):
    """`a: Clock(1) -> b: Follower(1)`: b steps after a (whatever the dict order) and sees a's output."""
    sim = Simulation({"b": tiny.follower("b"), "a": tiny.clock("a")},
                     [Connection("a.y", "b.u")], step=1.0)
    frame = sim.run(3)
    assert sim.order == ["a", "b"]
    assert tiny.order(stepping=False)[:2] == ["a", "b"]  # the dt = 0 evaluation at t0
    assert tiny.order() == ["a", "b"] * 3
    assert col(frame, "a.y") == [0, 1, 2, 3]
    assert col(frame, "b.y") == col(frame, "a.y")


def test_delayed_edge_sees_previous_step_value(tiny):
    """`a: Clock(1) -(delayed)-> b: Follower(1)`: b's row t+1 is a's row t."""
    sim = Simulation({"a": tiny.clock("a"), "b": tiny.follower("b")},
                     [Connection("a.y", "b.u", delayed=True)], step=1.0)
    frame = sim.run(4)
    assert col(frame, "a.y") == [0, 1, 2, 3, 4]
    assert col(frame, "b.y") == [0, 0, 1, 2, 3]


def test_feedback_loop_through_a_delayed_edge(tiny):
    """`i: Integrator(1) -> f: Follower(1) -(delayed)-> i`: a_{k+1} = a_k + b_k, b = a/2 + 1."""
    sim = Simulation(
        {"f": tiny.follower("f", gain=0.5, offset=1.0), "i": tiny.integrator("i")},
        [Connection("i.y", "f.u"), Connection("f.y", "i.u", delayed=True)], step=1.0,
    )
    frame = sim.run(6)
    a, b = [0.0], [1.0]
    for _ in range(6):
        a.append(a[-1] + b[-1])
        b.append(0.5 * a[-1] + 1.0)
    assert sim.order == ["i", "f"]
    assert col(frame, "i.y") == a and col(frame, "f.y") == b


def test_multi_rate_component_steps_every_k_and_holds_outputs(tiny):
    """`s: Integrator(3) -> f: Follower(1)`, step 0.5 s: s steps at 0, 1.5, 3 with dt 1.5; f every step."""
    sim = Simulation({"s": tiny.integrator("s"), "f": tiny.follower("f")},
                     [Connection("s.y", "f.u")], step=0.5, rates={"s": 3})
    sim.set("s.u", 2.0)
    frame = sim.run(4.5)
    s_steps = [(t, dt) for label, t, dt in tiny.trace if label == "s" and dt > 0]
    assert s_steps == [(0.0, 1.5), (1.5, 1.5), (3.0, 1.5)]
    assert tiny.order().count("f") == 9
    assert col(frame, "s.y") == [0, 3, 3, 3, 6, 6, 6, 9, 9, 9]
    assert col(frame, "f.y") == col(frame, "s.y")
    assert col(frame, "s.steps") == [0, 1, 1, 1, 2, 2, 2, 3, 3, 3]


@pytest.mark.parametrize("rates, fragment", [({"s": 0}, "whole number >= 1"),
                                              ({"s": 1.5}, "whole number >= 1"),
                                              ({"zz": 2}, "unknown component")])
def test_bad_rates_are_rejected(tiny, rates, fragment):
    """A rate must be a whole number >= 1 of a known component."""
    with pytest.raises(WiringError, match=fragment):
        Simulation({"s": tiny.integrator("s")}, step=1.0, rates=rates)


def _loop(tiny_factory):
    return Simulation({"i": tiny_factory.integrator("i"), "f": tiny_factory.follower("f", gain=2.0)},
                      [Connection("i.y", "f.u")], step=0.5)


def _law(reading: float) -> float:
    return 1.0 if reading < 4.0 else -0.5


def test_advance_to_from_outside_matches_run(tiny):
    """`i: Integrator(1) -> f: Follower(1)`, u set from f.y between steps == run() with that u as events."""
    sim = _loop(tiny)
    sim.initialize()
    applied = []
    for k in range(20):
        t = k * 0.5
        assert sim.time == t
        u = _law(sim.get("f.y"))
        applied.append(u)
        sim.set("i.u", u)
        sim.advance_to(t + 0.5)
        assert sim.get("f.y") == 2.0 * sim.get("i.y")
    stepped = sim.results()
    assert stepped["f.y"].iloc[-1] == sim.get("f.y")

    replay = _loop(type(tiny)())
    for k, u in enumerate(applied):
        replay.schedule(SetInput(k * 0.5, "i.u", u))
    ran = replay.run(10.0)
    pd.testing.assert_frame_equal(stepped, ran, check_exact=True)
    assert len(set(applied)) == 2  # the law switched, so the loop really was closed


def test_step_advances_one_base_step(tiny):
    """`sim.step()` moves exactly one base step."""
    sim = Simulation({"a": tiny.clock("a")}, step=0.25, start=10.0)
    sim.initialize()
    sim.step()
    sim.step()
    assert sim.time == 10.5 and sim.get("a.y") == 10.5


@pytest.mark.parametrize("target, fragment", [(2.3, "not on the step grid"),
                                               (0.5, "cannot go back"),
                                               (-1.0, "before the start")])
def test_advance_to_off_grid_or_backwards_raises(tiny, target, fragment):
    """`advance_to` refuses times off the grid, before now, or before the start; the run goes on."""
    sim = Simulation({"a": tiny.clock("a")}, step=0.5)
    sim.advance_to(1.0)
    with pytest.raises(SimulationError, match=fragment):
        sim.advance_to(target)
    sim.advance_to(2.0)
    assert sim.get("a.y") == 2.0


# -- events ---------------------------------------------------------------------------------
def _follower_sim(tiny, **kw):
    return Simulation({"f": tiny.follower("f")}, step=1.0, **kw)


def test_set_input_applies_from_its_time(tiny):
    """`SetInput(2, f.u, 5)` -> `f: Follower(1)`: the step starting at 2 sees 5 (rows from 3)."""
    sim = _follower_sim(tiny)
    sim.schedule(SetInput(2.0, "f.u", 5.0))
    frame = sim.run(5)
    assert col(frame, "f.u") == [0, 0, 0, 5, 5, 5]
    assert col(frame, "f.y") == [0, 0, 0, 5, 5, 5]
    assert sim.event_log == [(2.0, "set f.u = 5")]


def test_ramp_input_moves_linearly_from_the_present_value(tiny):
    """`RampInput(2, f.u, to 4, over 4 s)` after `set 1`: the held value is the ramp at each step start."""
    sim = _follower_sim(tiny)
    sim.set("f.u", 1.0)
    sim.schedule(RampInput(2.0, "f.u", 4.0, 4.0))
    frame = sim.run(9)
    assert col(frame, "f.y") == [1, 1, 1, 1, 1.75, 2.5, 3.25, 4, 4, 4]
    assert sim.event_log == [(2.0, "ramp f.u 1 -> 4 over 4 s")]


def test_zero_duration_ramp_jumps_at_once(tiny):
    """`RampInput(2, f.u, to 4, over 0 s)` is a step to 4 at 2."""
    sim = _follower_sim(tiny)
    sim.schedule(RampInput(2.0, "f.u", 4.0, 0.0))
    frame = sim.run(5)
    assert col(frame, "f.y") == [0, 0, 0, 4, 4, 4]


def test_switch_profile_starts_its_clock_at_the_event(tiny):
    """`SwitchProfile(3, f.u, steps 0:1, 2:5)`: 1 from 3 s, 5 from 5 s."""
    sim = _follower_sim(tiny)
    sim.schedule(SwitchProfile(3.0, "f.u", Steps(((0.0, 1.0), (2.0, 5.0))), "test steps"))
    frame = sim.run(7)
    assert col(frame, "f.y") == [0, 0, 0, 0, 1, 1, 5, 5]
    assert sim.event_log == [(3.0, "switch f.u to test steps")]


def test_event_replaces_a_profile_changing_at_the_same_time(tiny):
    """Events apply before input sources: `SetInput(3, 7)` wins over a step of the old profile at 3."""
    sim = _follower_sim(tiny)
    sim.drive("f.u", Steps(((0.0, 1.0), (3.0, 2.0), (5.0, 9.0))))
    sim.schedule(SetInput(3.0, "f.u", 7.0))
    frame = sim.run(7)
    assert col(frame, "f.y") == [1, 1, 1, 1, 7, 7, 7, 7]


def test_events_at_one_time_apply_in_the_order_scheduled(tiny):
    """Two SetInputs at 2: the later-scheduled one holds; both are logged in order."""
    sim = _follower_sim(tiny)
    sim.schedule(SetInput(2.0, "f.u", 5.0))
    sim.schedule(SetInput(2.0, "f.u", 6.0))
    frame = sim.run(4)
    assert col(frame, "f.y")[-1] == 6
    assert sim.event_log == [(2.0, "set f.u = 5"), (2.0, "set f.u = 6")]


def test_set_parameter_changes_a_tunable_parameter(tiny):
    """`SetParameter(2, f.offset, 3)` -> f.y = u + 3 from the step at 2; the log shows old -> new."""
    sim = _follower_sim(tiny)
    sim.set("f.u", 1.0)
    sim.schedule(SetParameter(2.0, "f.offset", 3.0, label="recalibration"))
    frame = sim.run(4)
    assert col(frame, "f.y") == [1, 1, 1, 4, 4]
    assert sim.event_log == [(2.0, "recalibration (f.offset: 0 -> 3)")]
    assert frame.attrs["events"] == [[2.0, "recalibration (f.offset: 0 -> 3)"]]


@pytest.mark.parametrize("target, fragment", [
    ("f.gain", "fixed during a run; tunable parameters: offset"),
    ("f.nope", "no parameter 'nope'"),
    ("g.offset", "unknown component 'g'"),
])
def test_set_parameter_is_refused_unless_tunable(tiny, target, fragment):
    """A fixed, unknown or misplaced parameter is refused when the event is scheduled, before running."""
    sim = _follower_sim(tiny)
    with pytest.raises(SimulationError, match=fragment):
        sim.schedule(SetParameter(2.0, target, 3.0))
    assert not sim.started


def test_set_parameter_value_out_of_bounds_is_refused(tiny):
    """`SetParameter(f.offset, 1e12)` is outside [-1e9, 1e9] and refused when scheduled."""
    sim = _follower_sim(tiny)
    with pytest.raises(SimulationError, match=r"\[-1e\+09, 1e\+09\]"):
        sim.schedule(SetParameter(2.0, "f.offset", 1e12))


@pytest.mark.parametrize("at, fragment", [(1.5, "not on the step grid"), (-1.0, "before the start")])
def test_event_off_grid_is_refused(tiny, at, fragment):
    """An event must lie on the step grid, not before the start."""
    with pytest.raises(SimulationError, match=fragment):
        _follower_sim(tiny).schedule(SetInput(at, "f.u", 1.0))


def test_event_in_the_past_is_refused(tiny):
    """After advancing to 3, an event at 2 is refused; one at 3 applies next."""
    sim = _follower_sim(tiny)
    sim.advance_to(3.0)
    with pytest.raises(SimulationError, match="in the past"):
        sim.schedule(SetInput(2.0, "f.u", 1.0))
    sim.schedule(SetInput(3.0, "f.u", 8.0))
    sim.advance_to(4.0)
    assert sim.get("f.y") == 8.0


def test_event_scheduled_at_now_applies_before_components_step(tiny):
    """`initialize()` then `schedule(SetInput(0, ...))`: the first step already sees the new value."""
    sim = _follower_sim(tiny)
    sim.initialize()
    sim.schedule(SetInput(0.0, "f.u", 8.0))
    sim.advance_to(1.0)
    assert sim.get("f.y") == 8.0


# -- sensor faults ----------------------------------------------------------------------------
def _sensor_run(tiny, *faults, until=8.0, seed=0):
    sim = Simulation({"c": tiny.clock("c")}, step=1.0, seed=seed)
    for fault in faults:
        sim.schedule(fault)
    return sim, sim.run(until)


def test_sensor_bias_adds_an_offset_and_records_the_truth(tiny):
    """`bias +10 at 2` on c.y: readings from row 3 are t + 10; `c.y:true` stays t."""
    sim, frame = _sensor_run(tiny, SensorFault(2.0, "c.y", "bias", offset=10.0), until=5)
    assert list(frame.columns) == ["c.y", "c.y:true"]
    assert frame.attrs["units"]["c.y:true"] == "1"
    assert col(frame, "c.y") == [0, 1, 2, 13, 14, 15]
    assert col(frame, "c.y:true") == [0, 1, 2, 3, 4, 5]
    assert sim.event_log == [(2.0, "sensor c.y: bias by 10")]


def test_sensor_drift_grows_with_time_since_the_fault(tiny):
    """`drift 0.5/s at 2`: reading = t + 0.5 (t - 2) after the fault."""
    sim, frame = _sensor_run(tiny, SensorFault(2.0, "c.y", "drift", rate=0.5), until=6)
    assert col(frame, "c.y") == [0, 1, 2, 3.5, 5, 6.5, 8]
    assert col(frame, "c.y:true") == [0, 1, 2, 3, 4, 5, 6]
    assert sim.event_log == [(2.0, "sensor c.y: drift at 0.5 per s")]


def test_sensor_freeze_holds_the_reading_at_the_fault(tiny):
    """`freeze at 2`: the reading stays at row 2's value while the truth moves on."""
    _, frame = _sensor_run(tiny, SensorFault(2.0, "c.y", "freeze"), until=5)
    assert col(frame, "c.y") == [0, 1, 2, 2, 2, 2]
    assert col(frame, "c.y:true") == [0, 1, 2, 3, 4, 5]


def test_sensor_noise_has_the_requested_spread(tiny):
    """`noise std 2 at 10`: readings before are exact, after they scatter with std ~2 around the truth."""
    _, frame = _sensor_run(tiny, SensorFault(10.0, "c.y", "noise", std=2.0), until=4000)
    error = (frame["c.y"] - frame["c.y:true"]).to_numpy()
    assert (error[:11] == 0).all()
    assert abs(error[11:].std() - 2.0) < 0.1 and abs(error[11:].mean()) < 0.1


def test_sensor_clear_restores_the_truth_and_it_stays_recorded(tiny):
    """`bias at 2`, `clear at 4`: readings equal the truth again, and `c.y:true` keeps following."""
    sim, frame = _sensor_run(
        tiny, SensorFault(2.0, "c.y", "bias", offset=10.0), SensorFault(4.0, "c.y", "clear"), until=7
    )
    assert col(frame, "c.y") == [0, 1, 2, 13, 14, 5, 6, 7]
    assert col(frame, "c.y:true") == [0, 1, 2, 3, 4, 5, 6, 7]
    assert sim.event_log == [(2.0, "sensor c.y: bias by 10"), (4.0, "sensor c.y: clear")]


def test_sensor_faults_stack_and_clear_together(tiny):
    """`bias +10 at 1` then `drift 1/s at 2`: both add up; `clear at 4` removes both."""
    _, frame = _sensor_run(tiny, SensorFault(1.0, "c.y", "bias", offset=10.0),
                           SensorFault(2.0, "c.y", "drift", rate=1.0),
                           SensorFault(4.0, "c.y", "clear"), until=6)
    assert col(frame, "c.y") == [0, 1, 12, 14, 16, 5, 6]


def test_sensor_fault_spares_physical_consumers(tiny):
    """`c: Clock(1) -> f: Follower(1)` with `bias +10` on c.y: f's plain input gets the true value."""
    sim = Simulation({"c": tiny.clock("c"), "f": tiny.follower("f")},
                     [Connection("c.y", "f.u")], step=1.0)
    sim.schedule(SensorFault(1.0, "c.y", "bias", offset=10.0))
    frame = sim.run(3)
    assert col(frame, "c.y") == [0, 1, 12, 13]
    assert col(frame, "f.y") == [0, 1, 2, 3]


def test_sensor_fault_reading_reaches_measuring_inputs(tiny):
    """`c: Clock(1) -> m: Sense(1)` with `bias +10` on c.y: an input declared measured sees the reading."""

    class Sense(type(tiny.follower("x"))):
        inputs = (Port("u", "1", description="reads a sensor", measured=True),)

    sim = Simulation({"c": tiny.clock("c"), "m": Sense("m", tiny.trace)},
                     [Connection("c.y", "m.u")], step=1.0)
    sim.schedule(SensorFault(1.0, "c.y", "bias", offset=10.0))
    frame = sim.run(3)
    assert col(frame, "m.y") == [0, 1, 12, 13]


@pytest.mark.parametrize("target, fragment", [("i.steps", "not a measured signal; measured: i.y"),
                                               ("i.u", "not a component output"),
                                               ("x.y", "not a component output")])
def test_sensor_fault_needs_a_measured_output(tiny, target, fragment):
    """A sensor fault on an unmeasured output, an input or an unknown signal is refused when scheduled."""
    sim = Simulation({"i": tiny.integrator("i")}, step=1.0)
    with pytest.raises(SimulationError, match=fragment):
        sim.schedule(SensorFault(1.0, target, "bias", offset=1.0))
    assert sim.run(3.0)["i.y"].tolist() == [0, 1, 2, 3]  # the refused event is not kept


def test_sensor_fault_mode_is_checked():
    """An unknown mode is refused when the event is made, listing the modes."""
    with pytest.raises(ValueError, match="drift, bias, freeze, noise, clear"):
        SensorFault(1.0, "c.y", "stuck")


# -- errors from components -------------------------------------------------------------------
@pytest.mark.parametrize("how, shown", [("nan", "f.y = nan"), ("inf", "f.y = inf")])
def test_non_finite_output_raises_naming_the_signal(tiny, how, shown):
    """`c: Clock(1) -> f: Faulty(1)` going non-finite at 3: the error names f.y, its value and t = 4."""
    sim = Simulation({"c": tiny.clock("c"), "f": tiny.faulty("f", fail_at=3.0, how=how)},
                     [Connection("c.y", "f.u")], step=1.0)
    with pytest.raises(SimulationError, match="non-finite") as err:
        sim.run(10)
    assert shown in str(err.value) and "t=4 s" in str(err.value)
    assert "c.y" not in str(err.value)


def test_non_finite_output_at_the_start_names_the_start_time(tiny):
    """A non-finite output in the evaluation at t0 = 5 is reported at t=5 s."""
    sim = Simulation({"f": tiny.faulty("f", fail_at=0.0)}, step=1.0, start=5.0)
    with pytest.raises(SimulationError, match=r"non-finite signal\(s\) at t=5 s: f.y = nan"):
        sim.initialize()


def test_non_finite_input_is_refused(tiny):
    """Setting an input to NaN or outside its port bounds is refused, naming the input."""
    sim = _follower_sim(tiny)
    with pytest.raises(SimulationError, match="f.u at t=0 s: expected a finite value"):
        sim.set("f.u", math.nan)


@pytest.mark.parametrize("how, fragment", [
    ("missing", r"f.step\(\) at t=2 s returned outputs y but not z"),
    ("none", r"f.step\(\) at t=2 s returned None; expected a dict with outputs y, z"),
])
def test_component_output_missing_raises_a_clear_error(tiny, how, fragment):
    """A component whose step leaves out an output (or returns None) is named with what is missing."""
    sim = Simulation({"f": tiny.faulty("f", fail_at=2.0, how=how)}, step=1.0)
    with pytest.raises(SimulationError, match=fragment):
        sim.run(5)


# -- state, seeds, independence ---------------------------------------------------------------
def _busy(tiny_factory, seed=0):
    """`i: Integrator(1) -> f: Follower(1)`, u stepping at 5 and 8, events at 5 and 7, sensor noise."""
    sim = Simulation({"i": tiny_factory.integrator("i"), "f": tiny_factory.follower("f")},
                     [Connection("i.y", "f.u")], step=1.0, seed=seed)
    sim.drive("i.u", Steps(((0.0, 1.0), (5.0, 3.0), (8.0, -2.0))))
    sim.schedule(SensorFault(2.0, "f.y", "noise", std=0.5))
    sim.schedule(SetParameter(5.0, "f.offset", 2.0))
    sim.schedule(SetInput(7.0, "i.u", 10.0))
    return sim


def test_get_state_set_state_rolls_back_bit_for_bit(tiny):
    """Snapshot at 5 (where an event and a profile step are due), run, roll back, run: identical."""
    sim = _busy(tiny)
    sim.advance_to(5.0)
    snapshot = sim.get_state()
    first = sim.run(12.0)
    log = list(sim.event_log)
    sim.set("i.u", 50.0)  # an outside change after the snapshot is undone too
    sim.set_state(snapshot)
    assert sim.time == 5.0 and len(sim.results()) == 6
    second = sim.run(12.0)
    straight = _busy(type(tiny)()).run(12.0)
    for other in (second, straight):
        assert np.array_equal(first.to_numpy(), other.to_numpy())
        assert list(first.index) == list(other.index)
    assert sim.event_log == log
    assert log == [(2.0, "sensor f.y: noise with std 0.5"), (5.0, "set f.offset: 0 -> 2"),
                   (7.0, "set i.u = 10")]


def test_rollback_of_the_plant_is_bit_for_bit(plant):
    """The full plant with sensor noise and a pump stop after the snapshot replays identically."""
    sim = plant(seed=3)
    sim.schedule(SensorFault(50.0, "reactor.cell_voltage", "noise", std=0.01))
    sim.schedule(SetParameter(200.0, "feed.catholyte_pump_on", 0.0))
    sim.drive("power.current_setpoint", Steps(((0.0, 5.0), (100.0, 6.0), (250.0, 4.0))))
    sim.advance_to(100.0)
    snapshot = sim.get_state()
    first = sim.run(300.0)
    sim.set_state(snapshot)
    second = sim.run(300.0)
    assert np.array_equal(first.to_numpy(), second.to_numpy())
    assert (first["reactor.cell_voltage"] != first["reactor.cell_voltage:true"]).iloc[51:].all()


def test_same_seed_same_frames_other_seed_other_noise(tiny):
    """Seed 1 twice gives identical frames; seed 2 gives other noisy readings but the same truth."""
    a = _busy(tiny, seed=1).run(12.0)
    b = _busy(tiny, seed=1).run(12.0)
    c = _busy(tiny, seed=2).run(12.0)
    assert np.array_equal(a.to_numpy(), b.to_numpy())
    assert not np.array_equal(a["f.y"].to_numpy()[3:], c["f.y"].to_numpy()[3:])
    assert np.array_equal(a["f.y:true"].to_numpy(), c["f.y:true"].to_numpy())


def test_two_simulations_in_one_process_share_nothing(plant):
    """Two plants stepped alternately give exactly what each gives alone."""
    def configured(current: float, seed: int) -> Simulation:
        sim = plant(seed=seed)
        sim.set("power.current_setpoint", current)
        sim.schedule(SensorFault(10.0, "feed.gas_flow", "noise", std=1.0))
        return sim

    alone = [configured(4.0, 1).run(200.0), configured(6.0, 2).run(200.0)]
    a, b = configured(4.0, 1), configured(6.0, 2)
    for t in range(1, 201):
        a.advance_to(float(t))
        b.advance_to(float(t))
    for sim, reference in zip((a, b), alone):
        assert np.array_equal(sim.results().to_numpy(), reference.to_numpy())
    assert not np.array_equal(alone[0].to_numpy(), alone[1].to_numpy())


# -- recording --------------------------------------------------------------------------------
def test_record_every_n_keeps_exactly_those_rows(tiny):
    """`record(every=3)` over 10 steps keeps t = 0, 3, 6, 9 with the values of a full record."""
    full = _busy(tiny).run(10.0)
    sim = _busy(type(tiny)())
    sim.record(every=3)
    thin = sim.run(10.0)
    assert list(thin.index) == [0.0, 3.0, 6.0, 9.0]
    assert np.array_equal(thin.to_numpy(), full.loc[[0.0, 3.0, 6.0, 9.0]].to_numpy())


def test_record_chooses_signals_by_glob_pattern(tiny):
    """`record(["i.*", "*.u"])` records i's outputs and the inputs, in that order, with their units."""
    sim = Simulation({"i": tiny.integrator("i"), "f": tiny.follower("f")}, step=1.0)
    sim.record(["i.*", "*.u"])
    frame = sim.run(2.0)
    assert list(frame.columns) == ["i.y", "i.steps", "i.u", "f.u"]
    assert frame.attrs["units"] == dict.fromkeys(frame.columns, "1")


def test_record_refuses_unknown_patterns_and_late_calls(tiny):
    """A pattern matching nothing is named; record() after the start is refused."""
    sim = _follower_sim(tiny)
    with pytest.raises(SimulationError, match="'g.*' matches no signal; known: f.y, f.u"):
        sim.record(["g.*"])
    sim.initialize()
    with pytest.raises(SimulationError, match="before the simulation starts"):
        sim.record(every=2)


def test_unknown_signal_get_and_set_are_refused(tiny):
    """get/set name the unknown or connected signal and list what is allowed."""
    sim = Simulation({"c": tiny.clock("c"), "f": tiny.follower("f")},
                     [Connection("c.y", "f.u")], step=1.0)
    with pytest.raises(SimulationError, match="unknown signal 'f.z'"):
        sim.get("f.z")
    with pytest.raises(SimulationError, match="f.u is fed by c.y"):
        sim.set("f.u", 1.0)
    with pytest.raises(SimulationError, match="unknown input 'q.u'"):
        sim.drive("q.u", Constant(1.0))

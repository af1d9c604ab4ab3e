"""Controllers as components (components.control) and the scenario's ``controllers:`` section.

    measured signal ─(delayed)▶ ctl.measurement      ctl.output ──▶ actuator input
    set point profile ────────▶ ctl.setpoint
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from components.control import ANTI_WINDUP, PID, OnOff, OpenLoop, PythonController, Ratio, load_class
from co2twin.scenario import build, load_scenario, parse_scenario, run
from cosim import Port, SimulationError, WiringError
from cosim.errors import ScenarioError

pytestmark = pytest.mark.filterwarnings("ignore::models.surrogate.EnvelopeWarning")

TypedPID = PID.typed(measurement=("V", 0.0, 100.0), output=("A", 0.0, 1000.0, 5.0))


def drive(ctl: Any, steps: int, dt: float = 1.0, **inputs: Any) -> list[dict[str, Any]]:
    """Initialise ``ctl`` and step it ``steps`` times with inputs held (a callable of t allowed)."""
    ctl.initialize(0.0)
    outs = []
    for k in range(steps):
        t = k * dt
        values = {n: (v(t) if callable(v) else v) for n, v in inputs.items()}
        outs.append(ctl.step(t, dt, values))
    return outs


def pid_inputs(**over: Any) -> dict[str, Any]:
    return {"measurement": 0.0, "setpoint": 0.0, "feedforward": 0.0, "manual": 0.0,
            "manual_output": 0.0, **over}


# -- PID -------------------------------------------------------------------------------------
def test_pid_is_proportional_plus_integral_in_parallel_form():
    """u_k = bias + kp e + ki e t_k for a constant error (forward-Euler integral)."""
    outs = drive(PID(kp=2.0, ki=0.5, bias=1.0), 4, **pid_inputs(setpoint=1.0, measurement=0.75))
    assert [o["output"] for o in outs] == pytest.approx([1.5 + 0.125 * k for k in range(4)])
    assert outs[0]["error"] == pytest.approx(0.25)


def test_pid_typed_ports_take_the_units_of_the_signals():
    """typed() gives the measured ports the measurement's unit and the output the actuator's;
    the output starts at the actuator's start value and its limits default to its range."""
    ports = {p.name: p for p in TypedPID.inputs + TypedPID.outputs}
    assert ports["measurement"].unit == "V" and ports["measurement"].measured
    assert ports["setpoint"].unit == "V" and not ports["setpoint"].measured
    assert ports["output"].unit == "A" and ports["output"].start == 5.0
    assert ports["error"].unit == "V" and math.isinf(ports["error"].upper)
    params = {p.name: p for p in TypedPID.parameters}
    assert (params["out_min"].default, params["out_max"].default) == (0.0, 1000.0)
    assert params["max_rate"].unit == "A/s"
    assert TypedPID is PID.typed(measurement=("V", 0.0, 100.0), output=("A", 0.0, 1000.0, 5.0))
    with pytest.raises(WiringError, match=r"out_max: expected a finite number in \[0, 1000\] A"):
        TypedPID(out_max=2000.0)


def test_pid_holds_its_output_between_samples_and_before_the_first():
    """With sample_time 3 s on 1 s steps, the output changes at t = 0, 3, 6 only; the
    start-time evaluation (dt = 0) returns the held start value."""
    ctl = TypedPID(kp=0.0, ki=1.0, sample_time=3.0, bias=1.0)
    ctl.initialize(0.0)
    assert ctl.step(0.0, 0.0, pid_inputs(setpoint=1.0))["output"] == 5.0
    outs = [ctl.step(float(k), 1.0, pid_inputs(setpoint=1.0))["output"] for k in range(8)]
    assert outs == [1.0, 1.0, 1.0, 4.0, 4.0, 4.0, 7.0, 7.0]


def _saturated_then_reversed(scheme: str) -> int:
    """Steps the output stays at its upper limit after the error turns negative, having been
    held at the limit by a large positive error for 100 s."""
    ctl = PID(kp=1.0, ki=0.2, out_min=0.0, out_max=10.0, anti_windup=ANTI_WINDUP[scheme])
    outs = drive(ctl, 300, **pid_inputs(setpoint=lambda t: 50.0 if t < 100 else -50.0))
    after = [o["output"] for o in outs[100:]]
    return next(i for i, u in enumerate(after) if u < 10.0)


def test_anti_windup_lets_the_output_leave_its_limit_at_once():
    """Without anti-windup the integral winds up at the limit and holds the output there for
    tens of steps after the error reverses; clamping and back-calculation leave it at once."""
    none = _saturated_then_reversed("none")
    assert none > 40
    assert _saturated_then_reversed("clamping") <= 1
    assert _saturated_then_reversed("back_calculation") <= 1


def test_output_and_rate_limits():
    """The output stays in [out_min, out_max] and moves at most max_rate per second."""
    ctl = PID(kp=100.0, out_min=-3.0, out_max=4.0, max_rate=0.5)
    outs = drive(ctl, 60, dt=2.0, **pid_inputs(setpoint=lambda t: 1.0 if t < 40 else -1.0))
    u = np.array([0.0] + [o["output"] for o in outs])
    assert u.max() == 4.0 and u.min() == -3.0
    assert np.abs(np.diff(u)).max() == pytest.approx(1.0)  # 0.5 per s over 2 s
    assert any(o["saturated"] == 1.0 for o in outs)


def test_setpoint_weighting_removes_the_proportional_kick():
    """With set-point weight 0 a set-point step does not jump the output; with 1 it jumps by kp."""
    for weight, jump in ((1.0, 2.0), (0.0, 0.0)):
        outs = drive(PID(kp=2.0, setpoint_weight=weight), 3,
                     **pid_inputs(setpoint=lambda t: 1.0 if t >= 1 else 0.0))
        assert outs[1]["output"] - outs[0]["output"] == pytest.approx(jump)


def test_derivative_acts_on_the_measurement_with_its_filter():
    """D = kd d(c r - y)/dt: a ramp of the measurement gives -kd * slope (filtered towards it)."""
    outs = drive(PID(kp=0.0, kd=4.0), 5, **pid_inputs(measurement=lambda t: 0.5 * t))
    assert [o["output"] for o in outs[1:]] == pytest.approx([-2.0] * 4)
    filtered = drive(PID(kp=0.0, kd=4.0, derivative_filter=1.0), 5,
                     **pid_inputs(measurement=lambda t: 0.5 * t))
    assert [o["output"] for o in filtered[1:]] == pytest.approx([-1.0, -1.5, -1.75, -1.875])


def test_bumpless_transfer_from_manual_to_automatic():
    """In manual the output follows manual_output; switching to automatic starts from it
    (the integral tracked it), instead of jumping to bias + kp e."""
    ctl = PID(kp=2.0, ki=0.1, bias=0.0)
    outs = drive(ctl, 20, **pid_inputs(setpoint=1.0, measurement=0.0, manual_output=7.0,
                                       manual=lambda t: 1.0 if t < 10 else 0.0))
    assert [o["output"] for o in outs[:10]] == [7.0] * 10
    assert outs[10]["output"] == pytest.approx(7.0, abs=0.11)  # only the integral's one step moved
    assert outs[11]["output"] - outs[10]["output"] == pytest.approx(0.1)


def test_feedforward_is_added_with_its_gain():
    """u = PID + ff_gain * feedforward."""
    outs = drive(PID(kp=0.0, ff_gain=1.5, bias=1.0), 2, **pid_inputs(feedforward=4.0))
    assert outs[-1]["output"] == pytest.approx(7.0)


def test_pid_steps_arrays_of_variants_like_scalars():
    """The PID maths works on NumPy arrays (one element per variant) as on floats."""
    errors = [0.3, -2.0, 5.0]
    vector = drive(PID(kp=1.5, ki=0.2, out_min=-2.0, out_max=3.0, max_rate=1.0), 30,
                   **pid_inputs(setpoint=np.array(errors)))
    for i, e in enumerate(errors):
        scalar = drive(PID(kp=1.5, ki=0.2, out_min=-2.0, out_max=3.0, max_rate=1.0), 30,
                       **pid_inputs(setpoint=e))
        assert [o["output"][i] for o in vector] == pytest.approx([o["output"] for o in scalar])


def test_pid_refuses_inconsistent_parameters():
    with pytest.raises(WiringError, match="out_min 5 is above out_max 1"):
        PID(out_min=5.0, out_max=1.0)
    with pytest.raises(WiringError, match=r"anti_windup: expected one of 0 \(none\)"):
        PID(anti_windup=1.5)


# -- on/off, ratio, open loop ---------------------------------------------------------------
def test_onoff_switches_outside_the_band_only():
    """On below set point - h/2, off above set point + h/2, unchanged inside the band."""
    readings = [9.0, 9.8, 10.2, 10.6, 10.2, 9.8, 9.4, 10.0]
    outs = drive(OnOff(hysteresis=1.0, on_value=3.0, off_value=1.0), len(readings),
                 measurement=lambda t: readings[int(t)], setpoint=10.0)
    assert [o["on"] for o in outs] == [1, 1, 1, 0, 0, 0, 1, 1]
    assert outs[0]["output"] == 3.0 and outs[3]["output"] == 1.0
    above = drive(OnOff(hysteresis=1.0, action=-1.0), 2, measurement=lambda t: [11.0, 9.0][int(t)],
                  setpoint=10.0)
    assert [o["on"] for o in above] == [1, 0]


def test_ratio_follows_the_measurement_within_limits():
    """output = ratio * measurement + bias, clipped to the limits."""
    outs = drive(Ratio(ratio=1.4, bias=0.5, out_min=1.0, out_max=10.0), 4,
                 measurement=lambda t: [0.0, 3.0, 5.0, 9.0][int(t)])
    assert [o["output"] for o in outs] == pytest.approx([1.0, 4.7, 7.5, 10.0])
    assert [o["saturated"] for o in outs] == [1.0, 0.0, 0.0, 1.0]


def test_open_loop_applies_its_profile_from_the_start():
    ctl = OpenLoop()
    ctl.initialize(0.0)
    assert ctl.step(0.0, 0.0, {"value": 3.0}) == {"output": 3.0}


# -- Python controllers ---------------------------------------------------------------------
class Bang:
    """A user's controller: full current below the voltage set point, none above."""

    def __init__(self, high: float = 8.0) -> None:
        self.high = high
        self.calls = 0

    def initialise(self, t0: float) -> None:
        self.calls = 0

    def step(self, t: float, measurements: Mapping[str, float]) -> dict[str, float]:
        self.calls += 1
        low = measurements["reactor.cell_voltage"] > measurements["reactor.cell_voltage.setpoint"]
        return {"current": 2.0 if low else self.high}

    def get_state(self) -> dict[str, Any]:
        return {"calls": self.calls}

    def set_state(self, state: Mapping[str, Any]) -> None:
        self.calls = state["calls"]


def adapter(controller: Any, **params: float) -> PythonController:
    volts = Port("cell_voltage", "V", 0.0, 100.0)
    amps = Port("current_setpoint", "A", 0.0, 1000.0, start=5.0)
    cls = PythonController.for_signals([("reactor.cell_voltage", volts)], [("current", amps)],
                                       [("reactor.cell_voltage", volts)])
    return cls(controller, **params)


def test_python_controller_sees_measurements_and_set_points_by_name():
    """Ports per signal; the object's step gets {signal, signal.setpoint} and returns actions."""
    ctl = adapter(Bang(), sample_time=2.0)
    assert [p.name for p in ctl.inputs] == ["reactor_cell_voltage", "reactor_cell_voltage_setpoint"]
    assert [p.name for p in ctl.outputs] == ["current"]
    assert next(p for p in ctl.inputs if p.name == "reactor_cell_voltage").measured
    outs = drive(ctl, 4, reactor_cell_voltage=lambda t: 3.0 if t < 2 else 4.0,
                 reactor_cell_voltage_setpoint=3.5)
    assert [o["current"] for o in outs] == [8.0, 8.0, 2.0, 2.0]
    assert ctl.controller.calls == 2  # called at the samples only


@pytest.mark.parametrize(("actions", "message"), [
    ({"current": -1.0}, r"current = -1.0; expected a finite value in \[0, 1000\] A"),
    ({"current": float("nan")}, "current = nan; expected a finite value"),
    ({}, "gave no action for 'current'"),
    ({"current": 1.0, "curent": 2.0}, "unknown actuator"),
    ([1.0], "expected a mapping of actuator -> value"),
])
def test_python_controller_bad_actions_are_named(actions, message):
    """A wrong action stops the run with an error naming the class, the time and the key."""
    class Bad:
        def initialise(self, t0):
            pass

        def step(self, t, measurements):
            return actions

    ctl = adapter(Bad())
    ctl.initialize(0.0)
    with pytest.raises(SimulationError, match=message) as info:
        ctl.step(0.0, 1.0, {"reactor_cell_voltage": 3.0, "reactor_cell_voltage_setpoint": 3.5})
    assert "Bad.step() at t=0 s" in str(info.value)


def test_python_controller_state_round_trips():
    """get_state/set_state go through the object's own; rolling back replays the same calls."""
    ctl = adapter(Bang())
    drive(ctl, 3, reactor_cell_voltage=3.0, reactor_cell_voltage_setpoint=3.5)
    state = ctl.get_state()
    ctl.step(3.0, 1.0, {"reactor_cell_voltage": 3.0, "reactor_cell_voltage_setpoint": 3.5})
    assert ctl.controller.calls == 4
    ctl.set_state(state)
    assert ctl.controller.calls == 3


def test_load_class_finds_a_module_beside_the_scenario_and_explains_failures(tmp_path):
    (tmp_path / "mine.py").write_text(
        "class Good:\n    def initialise(self, t0): pass\n    def step(self, t, m): return {}\n"
        "class NoStep:\n    def initialise(self, t0): pass\n")
    assert load_class("mine:Good", [tmp_path]).__name__ == "Good"
    with pytest.raises(WiringError, match="has no step"):
        load_class("mine:NoStep", [tmp_path])
    with pytest.raises(WiringError, match="mine has no 'Nope'; it defines: Good, NoStep"):
        load_class("mine:Nope", [tmp_path])
    with pytest.raises(WiringError, match="cannot import 'not_there'"):
        load_class("not_there:X", [tmp_path])
    with pytest.raises(WiringError, match="expected 'module:Class'"):
        load_class("mine.Good", [tmp_path])


# -- in scenarios ------------------------------------------------------------------------------
def scenario(**extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"name": "loop", "duration": "10 min", "step": 1.0}
    data.update(extra)
    return data


VOLTAGE_PI = {"type": "pid", "measurement": "reactor.cell_voltage", "setpoint": {"constant": 3.6},
              "actuator": "current", "gains": {"kp": 2.0, "ki": 0.05},
              "limits": {"low": 0.0, "high": 10.0}, "bias": 5.0}


def test_a_pid_in_a_scenario_closes_the_loop():
    """controllers: wires measurement -> controller -> actuator; the voltage reaches its set
    point and the controller's signals are recorded like any other."""
    frame = run(parse_scenario(scenario(controllers={"vc": VOLTAGE_PI})), progress=False)
    assert {"vc.output", "vc.error", "vc.setpoint"} <= set(frame.columns)
    assert frame["vc.setpoint"].iloc[-1] == 3.6
    np.testing.assert_allclose(frame["power.current"].iloc[1:], frame["vc.output"].iloc[1:], rtol=1e-12)
    assert abs(frame["reactor.cell_voltage"].iloc[-1] - 3.6) < 0.005


def test_sensor_faults_reach_the_controller():
    """A voltage sensor reading 0.1 V high makes the loop hold the true voltage 0.1 V low:
    the controller reads the faulty sensor, the plant does not."""
    data = scenario(controllers={"vc": VOLTAGE_PI},
                    events=[{"at": 60, "type": "sensor_bias", "target": "reactor.cell_voltage",
                             "offset": 0.1}])
    frame = run(parse_scenario(data), progress=False)
    assert frame["reactor.cell_voltage"].iloc[-1] == pytest.approx(3.6, abs=0.005)
    assert frame["reactor.cell_voltage:true"].iloc[-1] == pytest.approx(3.5, abs=0.005)


def test_cascade_by_wiring():
    """The outer loop (tank concentration) drives the inner loop's set point (the current):
    the tank follows its set-point step and the inner loop follows the outer's output."""
    inner = {"type": "pid", "measurement": "power.current", "actuator": "current",
             "gains": {"kp": 0.5, "ki": 0.2}, "limits": {"low": 0, "high": 10}, "bias": 4.0}
    outer = {"type": "pid", "measurement": "separation.tank_formate_conc",
             "setpoint": {"steps": [[0, 0.1], [60, 0.11]]}, "actuator": "inner.setpoint",
             "gains": {"kp": 300.0, "ki": 0.25}, "limits": {"low": 0, "high": 6.8}, "bias": 4.0,
             "sample_time": 10}
    data = scenario(duration="40 min", controllers={"inner": inner, "outer": outer},
                    inputs={"product_draw": 10.0},
                    plant={"separation": {"tank_volume_L": 0.2, "initial_formate_conc": 0.1}})
    frame = run(parse_scenario(data), progress=False)
    assert "inner.setpoint" not in frame.columns  # fed by the outer loop, not driven
    late = frame.loc[1200.0:]
    assert late["inner.error"].abs().max() < 1e-3
    np.testing.assert_allclose(late["power.current"], late["outer.output"], atol=1e-3)
    assert frame["separation.tank_formate_conc"].iloc[-1] == pytest.approx(0.11, abs=0.001)


def test_rollback_with_controllers_in_the_loop():
    """get_state/set_state of a simulation with PID and Python controllers replays bit for bit."""
    data = scenario(controllers={"vc": VOLTAGE_PI, "ph": {
        "type": "ratio", "measurement": "power.current", "actuator": "anolyte_flow", "ratio": 1.4,
        "limits": {"low": 1, "high": 30}}})
    sim = build(parse_scenario(data))
    sim.advance_to(100.0)
    state = sim.get_state()
    sim.advance_to(300.0)
    first = sim.results().loc[100.0:].copy()
    sim.set_state(state)
    sim.advance_to(300.0)
    second = sim.results().loc[100.0:]
    assert first.equals(second)


def write(folder: Path, data: dict[str, Any]) -> Path:
    path = folder / "scenario.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_every_problem_in_the_section_is_reported_at_once(tmp_path):
    """One ScenarioError names each bad controller field by its YAML path."""
    data = scenario(
        inputs={"current": 5.0},
        controllers={
            "vc": VOLTAGE_PI,                                            # conflicts with inputs.current
            "a": {**VOLTAGE_PI, "measurement": "reactor.fe_formate",     # not measured
                  "actuator": "gas_flow", "limits": {"low": 0, "high": 20000}},  # above 10000 mL/min
            "b": {**VOLTAGE_PI, "measurement": "reactor.nothing", "actuator": "reactor.current"},
            "c": {"type": "onoff", "measurement": "reactor.anolyte_ph", "actuator": "anolyte_flow",
                  "on_value": 10, "off_value": 2},                       # no set point
            "d": {"type": "python", "python": "nowhere:Ctl", "measurements": ["power.current"],
                  "actuators": ["humidity"]},
            "e": {"type": "ratio", "measurement": "power.current", "actuator": "humidity", "ratio": 1},
            "f": {**VOLTAGE_PI, "type": "pi"},
            "power": {"type": "ratio", "measurement": "power.current", "actuator": "catholyte_flow",
                      "ratio": 1},
        })
    with pytest.raises(ScenarioError) as info:
        load_scenario(write(tmp_path, data))
    text = str(info.value)
    assert str(tmp_path / "scenario.yaml") in text
    for expected in [
        "inputs.current: power.current_setpoint is fed by another component (vc.output)",
        "controllers.a.measurement: reactor.fe_formate is not a measured signal",
        "controllers.a.limits.high: expected a value in [0, 10000] mL/min (the actuator's range), "
        "found 20000",
        "controllers.b.measurement: unknown signal 'reactor.nothing'",
        "controllers.b.actuator: reactor.current is fed by power.current",
        "controllers.c.setpoint: required",
        "controllers.d.python: cannot import 'nowhere'",
        "controllers.e.actuator: feed.humidity_setpoint is driven by controllers.d already",
        "controllers.f.type: expected one of 'pid', 'onoff', 'ratio', 'open_loop', 'python'",
        "controllers.power: a component is already named 'power'",
    ]:
        assert expected in text, f"{expected!r} not in:\n{text}"


def test_controller_profiles_are_checked_and_converted(tmp_path):
    """A set point outside the measurement's bounds is refused; one in another unit converts."""
    bad = scenario(controllers={"vc": {**VOLTAGE_PI, "setpoint": {"steps": [[0, 3.6], [60, 120]]}}})
    with pytest.raises(ScenarioError, match=r"controllers.vc.setpoint.steps\[1\]: expected a value "
                       r"in \[0, 100\] V, found 120"):
        parse_scenario(bad)
    milli = scenario(duration=60, controllers={
        "vc": {**VOLTAGE_PI, "setpoint": {"constant": 3600, "unit": "mV"}}})
    assert run(parse_scenario(milli), progress=False)["vc.setpoint"].iloc[-1] == pytest.approx(3.6)


def test_controllers_section_in_the_json_schema():
    """The JSON Schema offers the controllers: section with each type's keys."""
    from co2twin.scenario import json_schema

    schema = json_schema()
    assert "controllers" in schema["properties"] and "case" in schema["properties"]
    defs = schema["$defs"]
    assert {"PidSpec", "OnOffSpec", "RatioSpec", "OpenLoopSpec", "PythonSpec"} <= set(defs)
    assert "gains" in defs["PidSpec"]["properties"]

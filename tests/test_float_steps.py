"""The components' float steps (the single run's every step, unrolled for speed) give the
bits of their general steps (the physics functions in the SCALAR namespace, which the arrays
of an ensemble take too), on inputs that reach every branch: no current, no flow, stopped
pumps, an acid anolyte, saturated actuators, product drawn, a zero step."""
from __future__ import annotations

import math
import random
import warnings
from typing import Any

import numpy as np
import pytest

from co2twin.scenario import parse_scenario
from co2twin.surrogates import load_models
from components.feed import Feed
from components.reactor import Reactor
from components.separation import Separation
from models import electrochemistry as ec
from step_inputs import feed_inputs, reactor_inputs, separation_inputs


def _bits(value: Any) -> Any:
    return np.float64(value).view(np.int64)


def _same(fast: dict[str, Any], general: dict[str, Any], step: int) -> None:
    assert fast.keys() == general.keys()
    for name, value in general.items():
        assert _bits(fast[name]) == _bits(value), (step, name, fast[name], value)


def _models(choices: dict[str, Any]) -> Any:
    scenario = parse_scenario({"name": "m", "duration": 10, "step": 1.0, "models": choices}, source="<test>")
    return load_models(scenario)


@pytest.mark.parametrize("choices", [
    None,  # physics: no surrogates
    {"envelope": "warn"},  # the trained hybrid models (carbonate demand)
    {"envelope": "physics", "fe_formate": "physics"},
    {"envelope": "clamp", "anolyte_ph": "nn", "outlet_co2_fraction": "nn"},
])
def test_reactor_float_step_gives_the_general_steps_bits(choices: dict[str, Any] | None):
    fast = Reactor(models=None if choices is None else _models(choices))
    general = Reactor(models=None if choices is None else _models(choices))
    for r in (fast, general):
        r.initialize(0.0)
    rng = random.Random(14)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k in range(400):
            inputs = reactor_inputs(rng, co2=choices is not None)
            dt = rng.choice((1.0, 1.0, 0.5, 60.0))
            a = fast.step(k, dt, inputs)
            b = general._step_general(k, dt, inputs, ec.SCALAR)
            _same(a, b, k)
            for name in Reactor.state_names:
                assert _bits(getattr(fast, name)) == _bits(getattr(general, name)), (k, name)


def test_reactor_float_step_reaches_its_branches():
    """The sequence above does reach the acid anolyte, no current and no flow branches."""
    r = Reactor()
    r.initialize(0.0)
    rng = random.Random(14)
    seen = set()
    for k in range(400):
        inputs = reactor_inputs(rng)
        r.step(k, rng.choice((1.0, 1.0, 0.5, 60.0)), inputs)
        seen.add(("acid", r._oh < 0.0))
        seen.add(("current", inputs["current"] > 0.0))
        seen.add(("anolyte flow", inputs["anolyte_flow"] / 60000.0 > 1e-12))
    assert len(seen) == 6


def test_feed_float_step_gives_the_general_steps_bits():
    fast, general = Feed(), Feed()
    for f in (fast, general):
        f.initialize(0.0)
    rng = random.Random(5)
    for k in range(300):
        inputs = feed_inputs(rng)
        if k == 150:  # a time constant changed: the decay factors follow
            for f in (fast, general):
                f.p.mfc_time_constant = 0.0
                f.p.co2_supply_fraction = 0.5
        dt = rng.choice((1.0, 1.0, 0.0, 7.0))
        _same(fast.step(k, dt, inputs), general._step_general(dt, inputs, ec.SCALAR), k)


def test_separation_float_step_gives_the_general_steps_bits():
    fast, general = Separation(), Separation()
    for s in (fast, general):
        s.initialize(0.0)
    rng = random.Random(9)
    for k in range(300):
        inputs = separation_inputs(rng)
        dt = rng.choice((1.0, 1.0, 0.0, 30.0))
        _same(fast.step(k, dt, inputs), general._step_general(dt, inputs, ec.SCALAR), k)


def _power_reference(p: Any, previous: float | None, dt: float, setpoint: float,
                     voltage: float) -> tuple[float, dict[str, float]]:
    """PowerSupply's float step as it was written with the builtins min and max."""
    rated = setpoint > p.max_current and p.output_enabled > 0.0
    target = min(setpoint, p.max_current) * p.output_enabled
    limited = voltage > p.max_voltage
    prev = target if previous is None else previous
    if limited:
        target = min(target, prev * p.max_voltage / voltage)
    slewed = False
    if previous is None or p.output_enabled == 0.0:
        current = target
    else:
        change = p.slew_rate * dt
        current = prev + max(-change, min(change, target - prev))
        slewed = dt > 0.0 and abs(target - prev) > change
    return current, {"current": current, "voltage_limited": 1.0 if limited else 0.0,
                     "current_limited": 1.0 if rated else 0.0, "slew_limited": 1.0 if slewed else 0.0}


def test_power_float_step_gives_the_builtins_bits():
    """Signed zeros and a NaN set point included: what min and max return, bit for bit."""
    from components.power import PowerSupply

    supply = PowerSupply()
    supply.initialize(0.0)
    rng = random.Random(3)
    previous = None
    for k in range(300):
        setpoint = rng.choice((0.0, -0.0, 60.0, math.nan, rng.uniform(0.0, 20.0)))
        voltage = rng.choice((0.0, 7.0, rng.uniform(2.0, 6.5)))
        dt = rng.choice((1.0, 0.0, 0.1))
        if k == 100:
            supply.p.output_enabled = 0.0
        if k == 120:
            supply.p.output_enabled = 1.0
        previous, expected = _power_reference(supply.p, previous, dt, setpoint, voltage)
        _same(supply.step(k, dt, {"current_setpoint": setpoint, "cell_voltage": voltage}), expected, k)


def _close_reference(current: float, co2_in: float, n2: float, fe: float, demand: float) -> tuple:
    """models.balance._close_one as it was written with the builtins min and max."""
    from models.balance import _ZF, _ZH, DEMAND_BOUNDS, TOLERANCE, outlet_fraction

    ceiling = min(co2_in * _ZF / max(current, 1e-300), 1.0)
    formate = min(min(max(fe, 0.0), ceiling) * current / _ZF, co2_in)
    fe_used = formate * _ZF / max(current, 1e-300)
    fe_correction = abs(fe - fe_used) if current > 0.0 else 0.0
    h2 = max((current - formate * _ZF) / _ZH, 0.0)
    remaining = co2_in - formate
    electrons = current / ec.F
    lo, hi = DEMAND_BOUNDS
    k = min(max(demand, lo), hi)
    carbonate = ec.carbonate_from_demand(remaining, k * electrons)
    co2_out = remaining - carbonate
    carbon_correction = 0.0
    if k != demand:
        raw = remaining - ec.carbonate_from_demand(remaining, min(max(demand, lo), 1e300) * electrons)
        carbon_correction = abs(outlet_fraction(raw, n2, h2) - outlet_fraction(co2_out, n2, h2))
    return (fe_used, formate, h2, carbonate, co2_out, fe_correction, carbon_correction,
            1.0 if fe_correction > TOLERANCE else 0.0, 0.0 if k == demand else 1.0)


def test_close_one_gives_the_builtins_bits():
    """FE and demand estimates inside and outside their bounds, no current, no CO2, NaN."""
    from models.balance import close

    rng = random.Random(21)
    for k in range(2000):
        current = rng.choice((0.0, -0.0, 1e-310, rng.uniform(0.0, 20.0)))
        co2_in = rng.choice((0.0, 1e-310, rng.uniform(0.0, 1e-3)))
        n2 = rng.choice((0.0, rng.uniform(0.0, 1e-3)))
        fe = rng.choice((-0.2, -0.0, 0.0, 1.0, 1.5, math.nan, rng.uniform(0.0, 1.0)))
        demand = rng.choice((-0.5, -0.0, 0.0, 1.0, 3.0, math.nan, rng.uniform(0.0, 0.4)))
        got = close(current, co2_in, n2, fe, demand, demand=True, physics_demand=0.2)
        want = _close_reference(current, co2_in, n2, fe, demand)
        assert [_bits(v) for v in got] == [_bits(v) for v in want], (k, got, want)

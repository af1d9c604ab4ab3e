"""Random inputs for the plant's components that reach the branches of their float steps
(no current, no flow, stopped pumps, saturated actuators, product drawn), shared by the tests
that step a component two ways and compare the bits (test_float_steps, test_step_values)."""
from __future__ import annotations

import random


def reactor_inputs(rng: random.Random, co2: bool = False) -> dict[str, float]:
    """``co2``: always some CO2 fed (the surrogates' FE ceiling is then > 0)."""
    def pick(*special: float, lo: float, hi: float) -> float:
        return rng.choice(special) if rng.random() < 0.2 else rng.uniform(lo, hi)

    return {
        "current": pick(0.0, 50.0, lo=0.0, hi=12.0),
        "gas_flow": pick(10.0 if co2 else 0.0, 20000.0, lo=10.0, hi=300.0),
        "co2_fraction": pick(1.0 if co2 else 0.0, 100.0, lo=1.0, hi=100.0),
        "anolyte_flow": pick(0.0, 1e-13, lo=0.0, hi=20.0),
        "catholyte_flow": pick(0.0, lo=0.0, hi=20.0),
        "anolyte_conc": pick(0.0, lo=0.0, hi=3.0),
        "catholyte_conc": pick(0.0, lo=0.0, hi=3.0),
        "humidity": pick(0.0, 100.0, lo=0.0, hi=100.0),
        "ambient_temperature": pick(-40.0, 80.0, lo=0.0, hi=40.0),
    }


def feed_inputs(rng: random.Random) -> dict[str, float]:
    return {
        "gas_flow_setpoint": rng.choice((0.0, 100.0, 900.0, rng.uniform(0.0, 600.0))),
        "co2_fraction_setpoint": rng.uniform(0.0, 100.0),
        "anolyte_flow_setpoint": rng.choice((0.0, 80.0, rng.uniform(0.0, 60.0))),
        "catholyte_flow_setpoint": rng.choice((0.0, 80.0, rng.uniform(0.0, 60.0))),
        "anolyte_conc_setpoint": rng.uniform(0.0, 2.0),
        "catholyte_conc_setpoint": rng.uniform(0.0, 2.0),
        "humidity_setpoint": rng.uniform(0.0, 100.0),
        "co2_recycle": rng.choice((0.0, rng.uniform(0.0, 50.0))),
    }


def separation_inputs(rng: random.Random) -> dict[str, float]:
    return {
        "co2_rate": rng.choice((0.0, rng.uniform(0.0, 1e-3))),
        "h2_rate": rng.uniform(0.0, 1e-4),
        "n2_rate": rng.choice((0.0, rng.uniform(0.0, 1e-3))),
        "formate_rate": rng.uniform(0.0, 1e-4),
        "catholyte_flow": rng.choice((0.0, rng.uniform(0.0, 20.0))),
        "recycle_fraction": rng.uniform(0.0, 1.0),
        "product_draw": rng.choice((0.0, rng.uniform(0.0, 5.0))),
    }


def power_inputs(rng: random.Random) -> dict[str, float]:
    return {"current_setpoint": rng.choice((0.0, -0.0, 60.0, rng.uniform(0.0, 20.0))),
            "cell_voltage": rng.choice((0.0, 7.0, rng.uniform(2.0, 6.5)))}

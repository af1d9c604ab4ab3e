"""The benchmark reports its figures under stable keys, measured side by side in one run.

Speed is reported, never asserted: these tests check what the figures are (keys, types,
how ratios derive from the figures beside them, nulls explained), not how fast they are.
"""
from __future__ import annotations

import json
import math
import platform
import subprocess
import sys
from typing import Any

import pytest

#: every stable key and the decimals the bench rounds it to (None: not a rounded float)
DECIMALS: dict[str, int | None] = {
    "engine_steps_per_s": 1, "plant_steps_per_s": 1, "plant_vs_engine_ratio": 4,
    "hybrid_plant_steps_per_s": 1, "hybrid_vs_physics_ratio": 4,
    "scenario_24h_wall_s": 3, "scenario_24h_steps": None, "scenario_24h_rows": None,
    "runtime_one_sample_us": 2, "batch_samples_per_s": 1,
    "keras_one_sample_us": 1, "runtime_vs_keras_speedup": 1,
    "fmu_build_s": 3, "fmu_instantiate_s": 3, "fmu_steps_per_s": 1, "fmu_inprocess_steps_per_s": 1,
    "fmu_vs_inprocess_ratio": 4, "fmu_size_mb": 1, "fmu_cold_instantiate_s": 3,
    "service_executions_rows_per_s": 1, "api_advance_ms": 3,
    "gym_env_steps_per_s": 1, "gym_hybrid_steps_per_s": 1, "gym_vs_hybrid_ratio": 4,
    "bare_simpy_steps_per_s": 1, "recorded_24h_steps_per_s": 1, "recorded_vs_bare_ratio": 4,
    "recorded_engine_steps_per_s": 1, "recorded_bound_vs_bare_ratio": 4,
    "ensemble_variants": None, "ensemble_steps": None, "ensemble_scenario_steps_per_s": 1,
    "ensemble_single_steps_per_s": 1, "ensemble_vs_single_ratio": 2,
    "sweep_variants": None, "sweep_chunk_size": None, "sweep_workers": None, "sweep_variants_per_s": 1,
    "sweep_variant_steps_per_s": 1, "sweep_peak_worker_rss_mb": 1,
    "mpc_solve_ms": 1,
    "supply_plant_steps_per_s": 1, "supply_baseline_plant_steps_per_s": 1, "supply_vs_plant_ratio": 4,
    "python": None, "machine": None,
}
FMU = ("fmu_build_s", "fmu_instantiate_s", "fmu_steps_per_s", "fmu_inprocess_steps_per_s",
       "fmu_vs_inprocess_ratio", "fmu_size_mb", "fmu_cold_instantiate_s")
KERAS = ("keras_one_sample_us", "runtime_vs_keras_speedup")
#: (ratio, numerator, denominator): each ratio is the quotient of two figures of the same run
RATIOS = [
    ("plant_vs_engine_ratio", "plant_steps_per_s", "engine_steps_per_s"),
    ("hybrid_vs_physics_ratio", "hybrid_plant_steps_per_s", "plant_steps_per_s"),
    ("runtime_vs_keras_speedup", "keras_one_sample_us", "runtime_one_sample_us"),
    ("fmu_vs_inprocess_ratio", "fmu_steps_per_s", "fmu_inprocess_steps_per_s"),
    ("gym_vs_hybrid_ratio", "gym_env_steps_per_s", "gym_hybrid_steps_per_s"),
    ("recorded_vs_bare_ratio", "recorded_24h_steps_per_s", "bare_simpy_steps_per_s"),
    ("ensemble_vs_single_ratio", "ensemble_scenario_steps_per_s", "ensemble_single_steps_per_s"),
    ("supply_vs_plant_ratio", "supply_plant_steps_per_s", "supply_baseline_plant_steps_per_s"),
]


def _strict(constant: str) -> None:
    raise ValueError(f"bench JSON holds {constant}, which strict JSON has no word for")


@pytest.fixture(scope="module")
def figures() -> dict[str, Any]:
    """One `co2twin bench --json --steps 2000` run, its stdout parsed as strict JSON."""
    done = subprocess.run(
        [sys.executable, "-m", "co2twin.cli", "bench", "--json", "--steps", "2000"],
        capture_output=True, text=True, check=False, timeout=900,  # ~1 min quiet, several under load
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout, parse_constant=_strict)


def test_bench_json_has_the_stable_keys(figures):
    """Every stable key is present (later work adds keys, never renames them); only fmu_note besides."""
    assert set(DECIMALS) <= set(figures)
    assert set(figures) - set(DECIMALS) <= {"fmu_note"}


def test_figures_have_their_types_and_rounding(figures):
    """Figures are finite floats rounded as documented (or null), counts are ints, versions are text."""
    for key, decimals in DECIMALS.items():
        value = figures[key]
        if key in ("scenario_24h_steps", "scenario_24h_rows", "ensemble_variants", "ensemble_steps",
                   "sweep_variants", "sweep_chunk_size", "sweep_workers"):
            assert type(value) is int, (key, value)
        elif key in ("python", "machine"):
            assert isinstance(value, str) and value, (key, value)
        elif value is not None or key not in KERAS + FMU:
            assert type(value) is float and math.isfinite(value) and value > 0, (key, value)
            assert round(value, decimals) == value, (key, value, decimals)
    assert figures["python"] == platform.python_version()
    assert figures["machine"] == platform.machine()


def test_the_24h_scenario_ran_every_step_and_recorded_every_row(figures):
    """The 24 h benchmark took 86,400 one-second steps and recorded the start and every step."""
    assert figures["scenario_24h_steps"] == 86_400
    assert figures["scenario_24h_rows"] == figures["scenario_24h_steps"] + 1


@pytest.mark.parametrize("ratio, numerator, denominator", RATIOS, ids=[r[0] for r in RATIOS])
def test_ratio_is_the_quotient_of_the_figures_beside_it(figures, ratio, numerator, denominator):
    """A ratio equals numerator / denominator of the same run, up to the rounding of all three."""
    r, n, d = figures[ratio], figures[numerator], figures[denominator]
    if r is None:
        assert n is None or d is None, (ratio, "is null but its figures are not")
        return
    half = {k: 0.5 * 10.0 ** -DECIMALS[k] for k in (ratio, numerator, denominator)}
    low = (n - half[numerator]) / (d + half[denominator]) - half[ratio]
    high = (n + half[numerator]) / (d - half[denominator]) + half[ratio]
    assert low * (1 - 1e-12) <= r <= high * (1 + 1e-12), (ratio, r, f"{numerator}/{denominator}", n / d)


def test_the_recorded_bound_derives_from_the_figures_beside_it(figures):
    """recorded_bound_vs_bare_ratio = bare step / (bare step + the components' time a step), the
    components' time being the recorded run's step less the held run's (engine alone)."""
    bare, run, held = (figures[k] for k in ("bare_simpy_steps_per_s", "recorded_24h_steps_per_s",
                                             "recorded_engine_steps_per_s"))
    components = max(1 / run - 1 / held, 0.0)
    assert figures["recorded_bound_vs_bare_ratio"] == pytest.approx((1 / bare) / (1 / bare + components),
                                                                    abs=2e-4)
    assert held > run  # with the physics held, a step costs less


def test_holding_the_outputs_leaves_the_engine_and_stops_the_physics():
    """_hold_outputs: each component returns its first step's outputs at every step, so what the
    held run times is the engine, SimPy and the recorder."""
    from co2twin.bench import BENCH_24H, _hold_outputs
    from co2twin.scenario import build, parse_scenario

    scenario = parse_scenario({**BENCH_24H, "duration": 50}, source="<test>")
    frame = _hold_outputs(build(scenario)).run(scenario.end, progress=False)
    moving = build(scenario).run(scenario.end, progress=False)
    for name in ("reactor.cell_voltage", "reactor.cell_temperature", "separation.tank_formate_conc"):
        assert frame[name].iloc[1:].nunique() == 1, name
        assert moving[name].iloc[1:].nunique() > 1, name


def test_null_figures_come_with_a_note(figures):
    """Keras figures are null together; FMU figures are all numbers and no note, or all null with fmu_note."""
    assert (figures["keras_one_sample_us"] is None) == (figures["runtime_vs_keras_speedup"] is None)
    nulls = [figures[k] is None for k in FMU]
    assert all(nulls) or not any(nulls), {k: figures[k] for k in FMU}
    if all(nulls):
        assert isinstance(figures.get("fmu_note"), str) and "PythonFMU" in figures["fmu_note"]
    else:
        assert "fmu_note" not in figures, figures["fmu_note"]


def test_this_environment_reports_keras_and_fmu_figures(figures):
    """With the test extra installed (Keras, PythonFMU, FMPy), no figure is null."""
    assert all(figures[k] is not None for k in KERAS)
    assert all(figures[k] is not None for k in FMU), figures.get("fmu_note")


def test_fmu_figures_are_null_without_pythonfmu(monkeypatch):
    """Without PythonFMU the FMU keys exist, are None, and a note says why."""
    from co2twin.bench import FMU_KEYS, fmu_speed

    monkeypatch.setitem(sys.modules, "pythonfmu", None)  # import raises ImportError
    figures = fmu_speed(steps=10, repeat=1)
    assert FMU_KEYS == FMU
    assert set(figures) == {*FMU_KEYS, "fmu_note"}
    assert all(figures[k] is None for k in FMU_KEYS)
    assert "PythonFMU" in figures["fmu_note"]

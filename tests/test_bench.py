"""The benchmark reports its figures under stable keys, measured in one run."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest


def test_bench_json_has_the_stable_keys():
    """`co2twin bench --json` prints one JSON object with positive engine/plant/24 h/surrogate figures."""
    done = subprocess.run(
        [sys.executable, "-m", "co2twin.cli", "bench", "--json", "--steps", "2000"],
        capture_output=True, text=True, check=True, timeout=300,
    )
    figures = json.loads(done.stdout)
    for key in ("engine_steps_per_s", "plant_steps_per_s", "scenario_24h_wall_s"):
        assert figures[key] > 0
    assert figures["scenario_24h_steps"] == 86_400
    assert figures["scenario_24h_rows"] == 86_401
    ratio = figures["plant_steps_per_s"] / figures["engine_steps_per_s"]
    assert figures["plant_vs_engine_ratio"] == pytest.approx(ratio, rel=1e-3)

    for key in ("hybrid_plant_steps_per_s", "batch_samples_per_s", "runtime_vs_keras_speedup",
                "runtime_one_sample_us", "keras_one_sample_us"):
        assert figures[key] > 0, key
    speedup = figures["keras_one_sample_us"] / figures["runtime_one_sample_us"]
    assert figures["runtime_vs_keras_speedup"] == pytest.approx(speedup, rel=0.02)
    hybrid = figures["hybrid_plant_steps_per_s"] / figures["plant_steps_per_s"]
    assert figures["hybrid_vs_physics_ratio"] == pytest.approx(hybrid, rel=1e-3)

    for key in ("fmu_build_s", "fmu_instantiate_s", "fmu_steps_per_s", "fmu_inprocess_steps_per_s",
                "fmu_vs_inprocess_ratio"):
        assert figures[key] is not None and figures[key] > 0, (key, figures.get("fmu_note"))
    fmu_ratio = figures["fmu_steps_per_s"] / figures["fmu_inprocess_steps_per_s"]
    assert figures["fmu_vs_inprocess_ratio"] == pytest.approx(fmu_ratio, rel=1e-3)


def test_fmu_figures_are_null_without_pythonfmu(monkeypatch):
    """Without PythonFMU the FMU keys exist, are None, and a note says why."""
    from co2twin.bench import FMU_KEYS, fmu_speed

    monkeypatch.setitem(sys.modules, "pythonfmu", None)  # import raises ImportError
    figures = fmu_speed(steps=10, repeat=1)
    assert all(figures[k] is None for k in FMU_KEYS)
    assert "PythonFMU" in figures["fmu_note"]

"""A sweep spec or scenario file with several problems reports all of them in one error: the
later checks run on the parts that passed the earlier ones, and say what they could not check."""
from __future__ import annotations

from pathlib import Path

import pytest

from co2twin.scenario import load_scenario
from co2twin.sweep_spec import parse_sweep_spec
from cosim.errors import ScenarioError

BASE = {"name": "short", "duration": 60, "step": 1.0, "inputs": {"current": 5.0}}


def problems(sweep: dict) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        parse_sweep_spec({"sweep": sweep}, source="bad.yaml")
    return info.value.problems


def test_schema_meaning_and_scenario_problems_in_one_round():
    """The user's spec: a misspelt distribution (schema), uneven lists and 60 Sobol samples
    (meaning), an unknown parameter and an unrecorded signal (the base scenario): five lines."""
    found = problems({
        "scenario": BASE,
        "distributions": {"plant.reactor.fe_max": {"dist": "normall", "mean": 0.9, "std": 0.1},
                          "inputs.gas_flow": {"dist": "uniform", "low": 80, "high": 120}},
        "lists": {"inputs.current": [1, 2], "seed": [1, 2, 3]},
        "samples": 60, "sampling": "sobol",
        "grid": {"plant.reactor.nonexistent": [1.0, 2.0]},
        "keep": {"signals": ["reactor.cell_voltag"]}})
    starts = ["sweep.distributions.plant.reactor.fe_max.dist: expected one of uniform",
              "sweep.lists: expected lists of one length",
              "sweep.samples: Sobol sampling expected a power of 2, found 60",
              "sweep.grid.plant.reactor.nonexistent: the scenario with plant.reactor.nonexistent",
              "sweep.keep.signals[0]: expected a signal the scenario records"]
    assert len(found) == len(starts), found
    for start in starts:
        assert any(p.startswith(start) for p in found), (start, found)


def test_a_part_that_failed_the_schema_is_not_reported_again():
    """samples: 'x' fails the schema; the distributions are not then said to lack samples, and
    a bad sampling does not make sensitivity's check complain of sampling: random."""
    found = problems({"scenario": BASE, "samples": "x", "sampling": "sobl",
                      "distributions": {"plant.reactor.fe_max": {"dist": "uniform", "low": 0.8,
                                                                 "high": 0.9}},
                      "sensitivity": {"kpis": ["mean_cell_voltage_V"]}})
    assert [p.split(":")[0] for p in found] == ["sweep.samples", "sweep.sampling"], found


def test_what_the_base_scenario_could_not_check_is_said():
    found = problems({"scenario": {**BASE, "recrod": 1}, "grid": {"inputs.current": [1.0]},
                      "keep": {"signals": ["reactor.cell_voltage"]}})
    assert found[0].startswith("sweep.scenario: expected a valid scenario")
    assert found[1:] == ["sweep.grid, sweep.keep.signals: not checked: the base scenario has errors"]
    found = problems({"grid": {"inputs.current": [1.0], "bad path!": [1]}})
    assert found == [
        "sweep: expected the key 'scenario', found none",
        "sweep.grid: expected a dotted scenario path such as inputs.current or "
        "plant.reactor.area_cm2, found the text 'bad path!'",
        "sweep.grid: not checked: sweep.scenario is missing"]


def test_a_duplicate_key_is_reported_with_the_other_problems(tmp_path: Path):
    path = tmp_path / "dup.yaml"
    path.write_text("name: t\nduration: 60\nduration: 30\nstep: 1\nrecrod: {every: 1}\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(info.value).startswith(f"{path}: 2 problems")
    assert info.value.problems[0] == ("line 3, column 1: expected each key once, found 'duration' "
                                      "again (duplicate key; first at line 2)")
    assert info.value.problems[1].startswith("recrod: unknown key; expected one of: name, ")
    path.write_text("name: t\nduration: 60\nduration: 30\nstep: 1\n")  # the only problem
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert len(info.value.problems) == 1 and "'duration' again" in info.value.problems[0]

"""Sweep specs: grids, zipped lists and distributions expand to the right variants; bad specs are
refused with one line per problem naming the file, the field, what was expected and found."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from co2twin.sweep_spec import load_sweep_spec, parse_sweep_spec
from cosim.errors import ScenarioError

BASE = {"name": "short", "duration": 60, "step": 1.0, "inputs": {"current": 5.0}}


def spec(**sweep: object) -> dict:
    return {"sweep": {"scenario": BASE, **sweep}}


def problems(data: object, tmp_path: Path | None = None) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        if tmp_path is None:
            parse_sweep_spec(data, source="bad.yaml")
        else:
            path = tmp_path / "bad.yaml"
            path.write_text(yaml.safe_dump(data))
            load_sweep_spec(path)
    assert str(info.value).startswith(str(tmp_path / "bad.yaml") if tmp_path else "bad.yaml: ")
    return info.value.problems


def test_grid_is_cartesian_and_lists_are_zipped():
    """2 x 3 grid points times 2 zipped rows: 12 variants, group-major, the grid's last path fastest."""
    s = parse_sweep_spec(spec(grid={"inputs.current": [3.0, 5.0], "plant.reactor.area_cm2": [20, 25, 30]},
                              lists={"inputs.gas_flow": [80.0, 120.0], "seed": [1, 2]}))
    variants = s.variants()
    assert s.n_variants == len(variants) == 12
    assert variants[0] == {"inputs.current": 3.0, "plant.reactor.area_cm2": 20, "inputs.gas_flow": 80.0,
                           "seed": 1}
    assert variants[1] == {"inputs.current": 3.0, "plant.reactor.area_cm2": 20, "inputs.gas_flow": 120.0,
                           "seed": 2}
    assert variants[2]["plant.reactor.area_cm2"] == 25
    assert len({tuple(sorted(v.items())) for v in variants}) == 12


def test_monte_carlo_is_seeded_and_follows_its_distributions():
    """The same seed gives the same samples, another seed others; each sample has its distribution."""
    dists = {"plant.reactor.r_membrane": {"dist": "uniform", "low": 1.0, "high": 2.0},
             "plant.reactor.fe_max": {"dist": "normal", "mean": 0.85, "std": 0.01},
             "plant.reactor.j0_cathode": {"dist": "lognormal", "median": 1e-6, "sigma": 0.3},
             "plant.reactor.e_eq": {"dist": "triangular", "low": 1.3, "mode": 1.4, "high": 1.45}}
    a = parse_sweep_spec(spec(distributions=dists, samples=4000, seed=7)).variants()
    b = parse_sweep_spec(spec(distributions=dists, samples=4000, seed=7)).variants()
    c = parse_sweep_spec(spec(distributions=dists, samples=4000, seed=8)).variants()
    assert a == b and a != c and len(a) == 4000
    x = {k: np.array([v[k] for v in a]) for k in dists}
    r = x["plant.reactor.r_membrane"]
    assert r.min() >= 1.0 and r.max() <= 2.0 and abs(r.mean() - 1.5) < 0.02
    assert abs(x["plant.reactor.fe_max"].mean() - 0.85) < 0.001
    assert abs(x["plant.reactor.fe_max"].std() - 0.01) < 0.001
    assert abs(np.median(x["plant.reactor.j0_cathode"]) / 1e-6 - 1) < 0.03
    e = x["plant.reactor.e_eq"]
    assert e.min() >= 1.3 and e.max() <= 1.45 and abs(e.mean() - (1.3 + 1.4 + 1.45) / 3) < 0.003


def test_grid_times_samples_and_sobol_morris_sizes():
    """Groups x samples; Sobol draws N(d+2) per group, Morris r(d+1)."""
    dists = {"plant.reactor.r_membrane": {"dist": "uniform", "low": 1.0, "high": 2.0},
             "plant.reactor.fe_max": {"dist": "uniform", "low": 0.8, "high": 0.9}}
    mc = parse_sweep_spec(spec(grid={"inputs.current": [3.0, 5.0]}, distributions=dists, samples=5))
    v = mc.variants()
    assert mc.n_groups == 2 and mc.n_per_group == 5 and len(v) == 10
    assert [x["inputs.current"] for x in v] == [3.0] * 5 + [5.0] * 5
    assert [x["plant.reactor.r_membrane"] for x in v[:5]] == [x["plant.reactor.r_membrane"] for x in v[5:]]
    sobol = parse_sweep_spec(spec(distributions=dists, samples=8, sampling="sobol"))
    assert sobol.n_variants == len(sobol.variants()) == 8 * 4
    morris = parse_sweep_spec(spec(distributions=dists, samples=6, sampling="morris"))
    values = np.array([[x[k] for k in dists] for x in morris.variants()])
    assert values.shape == (6 * 3, 2)
    # Morris levels map inside the bounds, never onto them
    assert (values[:, 0] > 1.0).all() and (values[:, 0] < 2.0).all()


def test_paths_are_checked_as_the_ensemble_applies_them():
    """An event's time and an input's scale are paths an ensemble varies; the run's timing is not."""
    base = {**BASE, "events": [{"at": 30, "type": "pump_stop", "pump": "catholyte"}]}
    s = parse_sweep_spec({"sweep": {"scenario": base, "grid": {"events[0].at": [10, 40],
                                                               "inputs.current.scale": [0.5, 1.5]}}})
    assert s.variants()[1] == {"events[0].at": 10, "inputs.current.scale": 1.5}
    with pytest.raises(ScenarioError) as info:
        parse_sweep_spec({"sweep": {"scenario": base, "grid": {"duration": [30]}}}, source="m.yaml")
    assert info.value.problems[0].startswith("sweep.grid.duration: the scenario with duration = 30 is "
                                             "invalid: variant: 'duration' cannot vary within an ensemble")


def test_models_paths_make_one_scenario_per_group():
    """models.* may be in a grid (each group its own scenario, checked as a file) but not sampled."""
    s = parse_sweep_spec(spec(grid={"models.default": ["physics", "hybrid"]}, lists={"seed": [1, 2]}))
    assert s.per_scenario == ["models.default"] and s.n_groups == 4
    found = problems(spec(grid={"models.default": ["physics", "bogus"]}))
    assert found[0].startswith("sweep.grid.models.default: the scenario with models.default = 'bogus' "
                               "is invalid: models.default:")
    found = problems(spec(distributions={"models.cell_voltage": {"dist": "uniform", "low": 0, "high": 1}},
                          samples=2))
    assert found == ["sweep.distributions.models.cell_voltage: expected a path one ensemble can vary; "
                     "models.* chooses the surrogates: put it in grid or lists"]


def test_spec_file_with_scenario_file_relative_to_it(tmp_path):
    """scenario: a path is read relative to the spec; the digest changes with the scenario."""
    (tmp_path / "sc").mkdir()
    (tmp_path / "sc" / "base.yaml").write_text(yaml.safe_dump(BASE))
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({"sweep": {
        "scenario": "sc/base.yaml", "grid": {"inputs.current": [1.0, 2.0]},
        "keep": {"signals": ["reactor.cell_voltage"], "every": 5, "kpis": ["mean_cell_voltage_V"]}}}))
    s = load_sweep_spec(path)
    assert s.scenario_data == BASE and s.base_dir == tmp_path / "sc" and s.name == "spec"
    assert s.signals == ["reactor.cell_voltage"] and s.every == 5 and s.kpis == ["mean_cell_voltage_V"]
    before = s.digest()
    (tmp_path / "sc" / "base.yaml").write_text(yaml.safe_dump({**BASE, "duration": 120}))
    assert load_sweep_spec(path).digest() != before


def test_the_digest_covers_the_files_a_scenario_reads(tmp_path):
    """Editing a CSV profile the base scenario reads changes the digest (a resume must not mix
    chunks run on the old profile with chunks on the new); rewriting it unchanged does not."""
    (tmp_path / "profile.csv").write_text("time_s,current\n0,3\n60,5\n")
    base = {**BASE, "inputs": {**BASE.get("inputs", {}),
                               "current": {"csv": {"path": "profile.csv", "column": "current"}}}}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({"sweep": {
        "scenario": "base.yaml", "grid": {"plant.reactor.area_cm2": [20.0, 25.0]},
        "keep": {"kpis": ["mean_cell_voltage_V"]}}}))
    before = load_sweep_spec(path).digest()
    (tmp_path / "profile.csv").write_text("time_s,current\n0,3\n60,5\n")
    assert load_sweep_spec(path).digest() == before
    (tmp_path / "profile.csv").write_text("time_s,current\n0,3\n60,6\n")
    assert load_sweep_spec(path).digest() != before


def test_the_digest_covers_what_chunks_write_only():
    """Retries, bands, sensitivity and the name leave the digest (a resume goes on); the values,
    sampling, kept signals and chunk size change it."""
    dists = {"plant.reactor.fe_max": {"dist": "uniform", "low": 0.8, "high": 0.9}}
    base = dict(distributions=dists, samples=8, sampling="sobol", keep={"signals": ["reactor.cell_voltage"]})
    digest = parse_sweep_spec(spec(**base)).digest()
    same = parse_sweep_spec(spec(**base, name="renamed", retries=5,
                                 bands={"signals": ["reactor.cell_voltage"]},
                                 sensitivity={"kpis": ["mean_cell_voltage_V"]})).digest()
    assert same == digest
    for change in ({"samples": 16}, {"seed": 1}, {"chunk_size": 7}, {"keep": {"signals": []}},
                   {"sampling": "random"}):
        assert parse_sweep_spec(spec(**{**base, **change})).digest() != digest, change


@pytest.mark.parametrize(("sweep", "expected"), [
    ({"grid": {"inputs.current": 5.0}}, "sweep.grid.inputs.current: expected a non-empty list of values, "
                                        "found the number 5.0"),
    ({"grid": {"inputs.current": []}}, "sweep.grid.inputs.current: expected a non-empty list of values, "
                                       "found a list of 0"),
    ({"grid": {"bad path!": [1]}}, "expected a dotted scenario path"),
    ({"grids": {"inputs.current": [1]}}, "sweep.grids: unknown key; expected one of: name, description, "
                                         "scenario, grid, lists, "),
    ({"lists": {"inputs.current": [1, 2], "seed": [1, 2, 3]}},
     "sweep.lists: expected lists of one length (they are zipped), found inputs.current: 2, seed: 3"),
    ({"distributions": {"plant.reactor.fe_max": {"dist": "beta", "a": 1}}, "samples": 3},
     "sweep.distributions.plant.reactor.fe_max.dist: expected one of uniform, loguniform, normal, "
     "lognormal, triangular, found the text 'beta'"),
    ({"distributions": {"plant.reactor.fe_max": {"dist": "uniform", "low": 1}}, "samples": 3},
     "sweep.distributions.plant.reactor.fe_max: expected the key 'high', found none"),
    ({"distributions": {"plant.reactor.fe_max": {"dist": "uniform", "low": 0.9, "high": 0.8}}, "samples": 3},
     "sweep.distributions.plant.reactor.fe_max: expected low < high, found low 0.9, high 0.8"),
    ({"distributions": {"plant.reactor.fe_max": {"dist": "normal", "mean": 0.9, "std": 0.0}}, "samples": 3},
     "sweep.distributions.plant.reactor.fe_max.std: expected a number > 0, found 0.0"),
    ({"distributions": {"plant.reactor.fe_max": {"dist": "uniform", "low": 0.8, "high": 0.9}}},
     "sweep.samples: expected the number of samples of the distributions, found none"),
    ({"distributions": {"plant.reactor.fe_max": {"dist": "uniform", "low": 0.8, "high": 0.9}},
      "samples": 6, "sampling": "sobol"}, "sweep.samples: Sobol sampling expected a power of 2, found 6"),
    ({"grid": {"inputs.current": [1.0]}, "sensitivity": {"kpis": ["mean_cell_voltage_V"]}},
     "sweep.sensitivity: expected sampling: sobol or morris"),
    ({"grid": {"inputs.current": [1.0]}, "chunk_size": 0}, "sweep.chunk_size: expected a number >= 1, "
                                                          "found the number 0"),
    ({"grid": {"inputs.current": [1.0]}, "samples": "many"}, "sweep.samples: expected an integer >= 1"),
    ({}, "sweep: expected at least one of grid, lists, distributions, found none"),
    ({"grid": {"inputs.current": [1.0]}, "lists": {"inputs.current": [2.0]}},
     "sweep.lists.inputs.current: expected each path in one block, found it in grid too"),
])
def test_bad_specs_name_the_field(sweep, expected):
    """Each bad spec is refused with a line naming the field, what was expected and what was found."""
    found = problems(spec(**sweep))
    assert any(expected in line for line in found), found


def test_bad_values_for_the_scenario_and_unknown_names(tmp_path):
    """Variants the scenario refuses, unknown signals and KPIs: all reported at once, with the file."""
    found = problems(spec(grid={"inputs.current": [5.0, -3.0], "plant.reactor.no_such": [1.0]},
                          keep={"signals": ["reactor.nope"], "kpis": ["no_kpi"]},
                          bands={"signals": ["reactor.cell_voltage"]}), tmp_path)
    text = "\n".join(found)
    assert "sweep.grid.inputs.current: the scenario with inputs.current = -3.0 is invalid" in text
    assert "sweep.grid.plant.reactor.no_such: the scenario with plant.reactor.no_such = 1.0 is invalid" \
        in text
    assert "sweep.keep.signals[0]: expected a signal the scenario records" in text
    assert "'reactor.nope'" in text
    assert "sweep.keep.kpis[0]: expected a KPI" in text and "'no_kpi'" in text
    assert "sweep.bands.signals[0]: expected one of the signals in sweep.keep.signals" in text
    assert len(found) == 5


def test_bad_files(tmp_path):
    """A missing scenario file, a spec without sweep:, duplicate keys and a missing spec file."""
    found = problems({"sweep": {"scenario": "nowhere.yaml", "grid": {"seed": [1]}}}, tmp_path)
    assert any("sweep.scenario: expected a readable scenario file" in p and "no such file" in p
               for p in found)
    assert problems({"name": "a scenario"}) == [
        "(top level): expected the key 'sweep', found none",
        "name: unknown key; expected one of: sweep"]
    dup = tmp_path / "dup.yaml"
    dup.write_text("sweep:\n  scenario: a.yaml\n  scenario: b.yaml\n")
    with pytest.raises(ScenarioError) as info:  # with the file's other problems
        load_sweep_spec(dup)
    assert str(info.value).startswith(f"{dup}: ")
    assert info.value.problems[0].startswith("line 3, column 3: expected each key once")
    assert any(p.startswith("sweep: expected at least one of grid") for p in info.value.problems)
    with pytest.raises(ScenarioError, match=r"missing\.yaml: no such file"):
        load_sweep_spec(tmp_path / "missing.yaml")


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "sweeps").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_shipped_sweep_specs_are_valid(path):
    """Every sweep spec shipped in sweeps/ validates; the README's example is one."""
    s = load_sweep_spec(path)
    assert s.n_variants == len(s.variants()) > 1

"""Uncertainty from a sweep: Sobol and Morris indices rank the parameters as the model says, KPI
intervals and percentile bands are the percentiles of the variants, and ``co2twin sweep`` on the
real ensemble engine gives each variant the KPIs of the same scenario run alone."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from co2twin import kpis as single_kpis
from co2twin import run
from co2twin.cli import app
from co2twin.ensemble import apply_variant
from co2twin.scenario import parse_scenario
from co2twin.sweep import run_sweep
from co2twin.sweep_spec import parse_sweep_spec
from co2twin.uncertainty import kpi_intervals, sensitivity
from sweep_kit import fake_runner

BASE = {"name": "short", "duration": 60, "step": 1.0, "inputs": {"current": 5.0}}
# energy_kWh = 2 * current + fe_max in the fake runner: current carries ~99.75 % of the variance
DISTS = {"inputs.current": {"dist": "uniform", "low": 1.0, "high": 2.0},
         "plant.reactor.fe_max": {"dist": "uniform", "low": 0.8, "high": 0.9}}


def test_sobol_indices_and_bands_through_a_sweep(tmp_path):
    """Sobol sampling on a LocalCluster: S1 and ST of current ~1, of fe_max ~0 (analytic 0.9975 and
    0.0025); the bands are the percentiles of the kept signal; the files are where the summary says."""
    spec = parse_sweep_spec({"sweep": {
        "scenario": BASE, "distributions": DISTS, "samples": 256, "sampling": "sobol", "seed": 3,
        "chunk_size": 512, "keep": {"signals": ["reactor.cell_voltage"], "every": 5},
        "bands": {"signals": ["reactor.cell_voltage"], "percentiles": [5, 50, 95]},
        "sensitivity": {"kpis": ["energy_kWh"]}}}, source="sobol.yaml")
    out = tmp_path / "out"
    result = run_sweep(spec, out, workers=1, runner=fake_runner)
    assert len(result.kpis) == 256 * 4
    table = pd.read_csv(out / "sensitivity.csv").set_index("parameter")
    assert table.loc["inputs.current", "S1"] == pytest.approx(0.9975, abs=0.03)
    assert table.loc["inputs.current", "ST"] == pytest.approx(0.9975, abs=0.03)
    assert table.loc["plant.reactor.fe_max", "ST"] == pytest.approx(0.0025, abs=0.01)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sensitivity"]["method"] == "sobol" and len(summary["sensitivity"]["indices"]) == 2
    bands = pd.read_parquet(out / "bands.parquet")
    assert list(bands.columns) == ["signal", "group", "time", "p5", "p50", "p95"]
    # the fake signal at time t is current * (1 + t / 10): its percentiles are the currents'
    currents = result.kpis["mean_current_A"].to_numpy()
    at5 = bands[bands["time"] == 5.0].iloc[0]
    assert at5["p50"] == pytest.approx(np.percentile(currents, 50) * 1.5)
    assert at5["p5"] == pytest.approx(np.percentile(currents, 5) * 1.5)
    assert (out / "bands.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    intervals = summary["kpi_intervals"]["mean_current_A"]
    assert intervals["p95"] == pytest.approx(np.percentile(currents, 95))


def test_morris_ranks_the_parameters_and_groups_are_analysed_apart():
    """Morris' mu_star of current is ~(2 / 0.1) = 20 times fe_max's; each grid group alone."""
    spec = parse_sweep_spec({"sweep": {
        "scenario": BASE, "grid": {"seed": [1, 2]}, "distributions": DISTS, "samples": 10,
        "sampling": "morris", "seed": 0,
        "sensitivity": {"kpis": ["energy_kWh", "duration_h", "mean_fe_formate"]}}})
    variants = spec.variants()
    assert len(variants) == 2 * 10 * 3
    frame = fake_runner(None, variants, keep=None, every=None).kpis().reset_index()
    frame.insert(1, "group", [i // spec.n_per_group for i in range(len(frame))])
    frame["duration_h"] = 1.0  # the same in every variant: nothing to share out
    table = sensitivity(spec, frame)
    assert sorted(set(table["group"])) == [0, 1]
    for _, part in table[table["kpi"] == "energy_kWh"].groupby("group"):
        mu = part.set_index("parameter")["mu_star"]
        assert mu["inputs.current"] / mu["plant.reactor.fe_max"] == pytest.approx(20, rel=0.01)
    notes = table[table["kpi"] != "energy_kWh"].groupby("kpi")["note"].unique().to_dict()
    assert {k: list(v) for k, v in notes.items()} == {
        "duration_h": ["KPI constant over the samples"],
        "mean_fe_formate": ["KPI not computed for this scenario"]}


def test_kpi_intervals_leave_out_what_is_not_finite():
    """p5/p50/p95 over the finite values; the variant and value columns are not KPIs."""
    frame = pd.DataFrame({"variant": range(5), "group": 0, "set:seed": range(5),
                          "x": [1.0, 2.0, np.nan, 4.0, 5.0]})
    out = kpi_intervals(frame)
    assert list(out) == ["x"]
    assert out["x"] == {"p5": pytest.approx(1.15), "p50": 3.0, "p95": pytest.approx(4.85),
                        "mean": 3.0, "n": 4}


def test_co2twin_sweep_on_the_ensemble_engine(tmp_path):
    """`co2twin sweep` on the real engine: each variant's KPIs equal the same scenario run alone
    (to 1e-12), in the sweep's order across chunks; a second call resumes and runs nothing."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"sweep": {
        "scenario": BASE, "grid": {"inputs.current": [3.0, 6.0]},
        "lists": {"plant.reactor.r_membrane": [1.2, 1.8], "seed": [4, 5]}, "chunk_size": 3,
        "keep": {"signals": ["reactor.cell_voltage"], "every": 10}}}))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["sweep", str(spec), "-o", str(out), "--workers", "2", "--json",
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    assert summary["variants"] == 4 and summary["chunks"] == 2 and summary["chunks_run"] == 2
    assert max(w["worst"] for w in summary["balances"].values()) < 1e-12
    table = pd.read_parquet(out / "kpis.parquet")
    assert list(table["set:inputs.current"]) == [3.0, 3.0, 6.0, 6.0]
    assert list(table["set:plant.reactor.r_membrane"]) == [1.2, 1.8, 1.2, 1.8]
    base = parse_scenario(BASE)
    for i in (1, 2):  # one from each chunk
        variant = {k[4:]: table.loc[i, k] for k in table.columns if k.startswith("set:")}
        variant["seed"] = int(variant["seed"])
        alone = single_kpis(run(apply_variant(base, variant), progress=False))
        for name in ("mean_cell_voltage_V", "formate_produced_mol", "energy_kWh"):
            assert table.loc[i, name] == pytest.approx(alone[name], rel=1e-12, abs=0)
    signals = pd.read_parquet(out / "signals")
    assert sorted(signals["variant"].unique()) == [0, 1, 2, 3] and len(signals) == 4 * 7
    again = CliRunner().invoke(app, ["sweep", str(spec), "-o", str(out), "--workers", "1", "--json",
                                     "--no-progress"])
    assert again.exit_code == 0, again.output
    assert "resuming: 2 of 2 chunks already written" in again.stderr
    assert json.loads(again.stdout[again.stdout.index("{"):])["chunks_run"] == 0


def test_a_grid_over_models_runs_each_group_on_its_own_surrogates(tmp_path):
    """models.default in the grid: each group's variants run on that group's models, and equal
    the same scenario run alone with them (to 1e-12)."""
    base = {**BASE, "duration": 20}
    spec = parse_sweep_spec({"sweep": {"scenario": base, "grid": {"models.default": ["physics", "hybrid"]},
                                       "lists": {"inputs.current": [3.0, 6.0]}, "chunk_size": 4}})
    result = run_sweep(spec, tmp_path / "out", workers=1)
    table = result.kpis
    assert result.n_chunks == 2
    assert list(table["set:models.default"]) == ["physics", "physics", "hybrid", "hybrid"]
    for i, models in ((1, "physics"), (3, "hybrid")):
        alone = single_kpis(run(parse_scenario({**base, "models": {"default": models},
                                                "inputs": {"current": 6.0}}), progress=False))
        assert table.loc[i, "mean_cell_voltage_V"] == pytest.approx(alone["mean_cell_voltage_V"], rel=1e-12)
    assert table.loc[3, "mean_cell_voltage_V"] != table.loc[1, "mean_cell_voltage_V"]


def test_co2twin_sweep_reports_a_bad_spec(tmp_path):
    """A bad spec: exit 1, the file and field named, nothing written."""
    spec = tmp_path / "bad.yaml"
    spec.write_text(yaml.safe_dump({"sweep": {"scenario": BASE, "grid": {"inputs.current": 3}}}))
    result = CliRunner().invoke(app, ["sweep", str(spec), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert f"{spec}: sweep.grid.inputs.current: expected a non-empty list of values, found the number 3" \
        in " ".join(result.stderr.split())
    assert not (tmp_path / "out").exists()


def test_band_plot_gives_every_group_its_own_colour():
    """A 4 x 4 sizing grid has 16 groups: no two may share a colour (the default cycle has 10),
    or the legend would name two groups for one band."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgba

    from co2twin.uncertainty import band_figure

    for n in (3, 16, 27):
        rows = [{"signal": "reactor.cell_voltage", "group": g, "time": t, "p5": 1.0 + g, "p50": 2.0 + g,
                 "p95": 3.0 + g} for g in range(n) for t in (0.0, 10.0)]
        fig = band_figure(pd.DataFrame(rows), title="t", group_labels=[f"g{g}" for g in range(n)],
                          units={"reactor.cell_voltage": "V"})
        colours = [to_rgba(line.get_color()) for line in fig.axes[0].get_lines()]
        plt.close(fig)
        assert len(colours) == n and len(set(colours)) == n, n

"""Every scenario shipped in scenarios/ validates, runs and closes its balances."""
from __future__ import annotations

from pathlib import Path

import pytest

from co2twin.kpi import balances, kpis
from cosim import read_results, write_results

SCENARIOS_DIR = Path(__file__).parents[1] / "scenarios"
SCENARIOS = sorted(SCENARIOS_DIR.glob("*.yaml"))


def test_at_least_the_five_required_scenarios_ship():
    """Baseline, current steps, dilution, pump failure and the 24 h run are all there."""
    names = {p.stem for p in SCENARIOS}
    assert {"baseline", "current_steps", "flue_gas_dilution", "catholyte_pump_failure",
            "long_run_24h"} <= names


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_shipped_scenario_runs_with_closed_balances(shipped_run, path, tmp_path):
    """The scenario runs, every balance closes to 1e-9, and results round-trip with units."""
    scenario, frame = shipped_run(path)
    assert len(frame) == scenario.steps // scenario.record.every + 1
    assert frame.index[-1] == pytest.approx(scenario.end)
    residuals = balances(frame)
    assert {"charge", "carbon_cell", "carbon_feed"} <= set(residuals)
    if scenario.record.every == 1:
        assert {"carbon_separator", "tank", "recycle_link", "carbon_plant"} <= set(residuals)
    assert max(residuals.values()) < 1e-9, residuals
    fe_sum = frame["reactor.fe_formate"] + frame["reactor.fe_h2"]
    assert (fe_sum - 1.0).abs().max() < 1e-12
    assert (frame["reactor.formate_rate"] <= frame["reactor.co2_in_rate"]).all()
    figures = kpis(frame)
    assert 0.0 <= figures["mean_fe_formate"] <= 1.0
    assert figures["formate_produced_mol"] > 0
    out = write_results(frame, tmp_path / f"{scenario.name}.parquet")
    back = read_results(out)
    assert back.attrs["units"]["reactor.cell_voltage"] == "V"
    assert back.shape == frame.shape


def test_long_run_accumulates_product_and_recycles_co2(shipped_run):
    """Over 24 h the tank concentration grows monotonically and recycle raises conversion."""
    scenario, frame = shipped_run(SCENARIOS_DIR / "long_run_24h.yaml")
    assert scenario.end == 86_400.0
    conc = frame["separation.tank_formate_conc"].to_numpy()
    assert (conc[1:] >= conc[:-1]).all() and conc[-1] > 0.5
    figures = kpis(frame)
    assert figures["overall_conversion_pct"] > figures["single_pass_conversion_pct"]
    assert frame["feed.recycle_co2_rate"].iloc[-1] > 0
    assert frame["reactor.catalyst_damage"].iloc[-1] > frame["reactor.catalyst_damage"].iloc[1]

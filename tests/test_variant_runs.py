"""Sweeps of scenarios an ensemble cannot take (the solar supply): each variant runs on its own
(co2twin.variant_runs) and gives the tables an ensemble gives; ``supply.*`` paths size the supply.

Each variant's KPIs, balances, flags and kept signals are compared with the same variant run
alone through ``co2twin.run`` and the KPI functions on its DataFrame (what ``co2twin run``
reports), so a variant that ran with the wrong values, or a table built from the wrong rows,
fails here.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from co2twin.ensemble import apply_variant, run_ensemble, scalar_components
from co2twin.kpi import balances, flags, kpis
from co2twin.scenario import parse_scenario, run
from co2twin.sweep import plan_chunks, run_chunk
from co2twin.sweep_spec import parse_sweep_spec
from co2twin.variant_runs import run_variants
from cosim.errors import ScenarioError

ROOT = Path(__file__).parent.parent
#: six hours of the sunny day from sunrise (so PV, battery and curtailment all act)
SUNNY = {**yaml.safe_load((ROOT / "scenarios" / "solar_battery_sunny.yaml").read_text()),
         "duration": "6 h", "start": 14400}
SUNNY.pop("output", None)
VARIANTS = [
    {},
    {"supply.pv.peak_power": 180.0},
    {"supply.battery.capacity": 2.0, "seed": 4},
    {"supply.clearness": 0.5},
    {"supply.converter_efficiency": 0.9, "inputs.current": 4.0},
]


def _scenario(data=SUNNY):
    return parse_scenario(data, source="sunny.yaml", base_dir=ROOT / "scenarios")


def _alone(scenario, variant, every):
    """The variant run alone as ``co2twin run`` runs it: its frame, KPIs, balances and flags."""
    s = apply_variant(scenario, variant, record={"signals": "all", "every": every})
    frame = run(s, progress=False)
    limits = frame.attrs["scenario"]["limits"]
    return frame, kpis(frame, limits), balances(frame), flags(frame, limits)


def _same(a, b) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def test_each_variant_equals_its_run_alone():
    scenario = _scenario()
    result = run_variants(scenario, VARIANTS, keep=["power.current", "battery.soc", "pv.*"], every=3,
                          first_variant=10)
    table, bal, raised, long = result.kpis(), result.balances(), result.flags(), result.frame_long()
    assert list(table["variant"]) == list(range(10, 15))
    assert list(long.columns[:2]) == ["variant", "time"] and "pv.power" in long.columns
    pv_energy = []
    for i, variant in enumerate(VARIANTS):
        frame, figures, residuals, found = _alone(scenario, variant, 3)
        row = table.iloc[i]
        flat = {f"{k}[{s}]" if isinstance(v, dict) else k: x
                for k, v in figures.items() for s, x in (v.items() if isinstance(v, dict) else [(None, v)])}
        assert flat, "no KPIs"
        for key, value in flat.items():
            assert _same(float(row[key]), float(value)), (variant, key, row[key], value)
        for key, value in residuals.items():
            assert bal.iloc[i][key] == value, (variant, key)
        mine = raised[raised["variant"] == 10 + i]
        assert sorted(mine["signal"]) == sorted(f["signal"] for f in found)
        rows = long[long["variant"] == 10 + i]
        assert np.array_equal(rows["time"].to_numpy(), frame.index.to_numpy())
        for name in ("power.current", "battery.soc", "pv.power"):
            assert np.array_equal(rows[name].to_numpy(), frame[name].to_numpy()), (variant, name)
        pv_energy.append(float(row["pv_energy_kWh"]))
    # the paths acted: more PV made more, clouds less; the small battery and the lower current differ
    assert pv_energy[1] > pv_energy[0] > pv_energy[3]
    assert table.iloc[2]["capacity_start_Ah"] == pytest.approx(2.0)
    assert table.iloc[4]["mean_current_A"] < table.iloc[0]["mean_current_A"]
    assert long.attrs["units"]["power.current"] == "A"


def test_supply_paths_are_checked_and_named():
    scenario = _scenario()
    with pytest.raises(ScenarioError) as info:
        run_variants(scenario, [{}, {"supply.pv.peak_pwr": 100.0}])
    assert "variant 1" in str(info.value) and "'supply.pv.peak_pwr' names no parameter of supply.pv" \
        in str(info.value) and "peak_power" in str(info.value)
    with pytest.raises(ScenarioError) as info:
        run_variants(scenario, [{"supply.grid.size": 1.0}])
    assert "expected supply.<section>.<parameter>" in str(info.value)
    with pytest.raises(ScenarioError) as info:
        run_variants(scenario, [{"supply.battery.capacity": -5.0}])
    text = str(info.value)
    assert "variant 0" in text and "supply.battery.capacity" in text
    plain = _scenario({"name": "plain", "duration": 60, "step": 1.0})
    with pytest.raises(ScenarioError) as info:
        apply_variant(plain, {"supply.pv.peak_power": 100.0})
    assert "sets the solar supply, but the scenario has none" in str(info.value)


def test_an_ensemble_of_the_supply_equals_its_runs_one_at_a_time():
    """The supply's components step arrays: an ensemble of the sunny day over the weather
    (the clearness the PV reads), the seed and a plant parameter gives, variant by variant, the
    KPIs (the supply's included), balances and flags of the same variants run alone."""
    scenario = _scenario()
    assert scalar_components(scenario) == []
    variants = [{}, {"inputs.pv.clearness": 0.6, "seed": 3}, {"inputs.pv.clearness": 0.35},
                {"plant.reactor.area_cm2": 30.0, "inputs.pv.clearness": 0.8}]
    together = run_ensemble(scenario, variants, keep=["power.current", "battery.soc"], every=3)
    alone = run_variants(scenario, variants, keep=["power.current", "battery.soc"], every=3)
    a, b = together.kpis(), alone.kpis()
    assert "pv_energy_kWh" in a and "capacity_lost_Ah" in a and sorted(a.columns) == sorted(b.columns)
    for column in b.columns:
        np.testing.assert_allclose(a[column].to_numpy(float), b[column].to_numpy(float), rtol=1e-12,
                                   atol=1e-12, err_msg=column)
    assert a["pv_energy_kWh"].iloc[2] < a["pv_energy_kWh"].iloc[1] < a["pv_energy_kWh"].iloc[0]
    np.testing.assert_allclose(together.balances().to_numpy(float), alone.balances().to_numpy(float),
                               atol=1e-12)
    flagged = together.flags()
    assert sorted(zip(flagged["variant"], flagged["signal"])) == \
        sorted(zip(alone.flags()["variant"], alone.flags()["signal"]))
    assert "ems.curtailed" in set(flagged["signal"])  # a supply flag, found in the ensemble too
    long_a, long_b = together.frame_long(), alone.frame_long()
    np.testing.assert_allclose(long_a["battery.soc"], long_b["battery.soc"], rtol=1e-12, atol=1e-15)


def test_an_ensemble_of_the_supply_moves_the_current_request_as_its_runs_alone():
    """With a supply the current input and the events on it move the energy manager's request
    (the single run's build moves them): an ensemble whose variants set the current, an event's
    value and time does the same, variant by variant."""
    data = {**SUNNY, "duration": "4 h",
            "events": [{"at": 18000, "type": "set", "target": "current", "value": 3.0},
                       {"at": 21600, "type": "ramp", "target": "current", "to": 5.0, "duration": 1800}]}
    scenario = _scenario(data)
    variants = [{}, {"events[0].value": 4.0}, {"events[1].at": 23400, "inputs.pv.clearness": 0.5},
                {"inputs.current": 4.5}]
    keep = ["ems.current_request", "power.current", "battery.soc"]
    together = run_ensemble(scenario, variants, keep=keep, every=5).frame_long()
    alone = run_variants(scenario, variants, keep=keep, every=5).frame_long()
    for name in keep:
        np.testing.assert_allclose(together[name], alone[name], rtol=1e-12, atol=1e-12, err_msg=name)
    asked = together.groupby("variant")["ems.current_request"]
    assert asked.max().tolist() == [6.0, 6.0, 6.0, 5.0]  # variant 3 asks 4.5, then the ramp to 5
    assert asked.min().tolist() == [3.0, 4.0, 3.0, 3.0]


def test_an_ensemble_refuses_the_supply_parameters_and_says_what_to_do():
    scenario = _scenario()
    with pytest.raises(ScenarioError) as info:
        run_ensemble(scenario, [{}, {"supply.battery.capacity": 10.0}])
    assert "varies the solar supply's parameters" in str(info.value)
    assert "co2twin.variant_runs.run_variants" in str(info.value)
    with pytest.raises(ScenarioError) as info:
        run_ensemble(scenario, [{"supply.clearness": 0.5}])
    assert "in an ensemble vary the input it drives: inputs.pv.clearness" in str(info.value)
    assert scalar_components(_scenario({"name": "plain", "duration": 60, "step": 1.0})) == []


def _sizing_spec(tmp_path: Path, **extra):
    data = {"sweep": {"name": "sizing", "scenario": {**SUNNY, "duration": "2 h"},
                      "grid": {"supply.pv.peak_power": [60, 200],
                               "supply.battery.capacity": [2.5, 10]},
                      "keep": {"signals": ["battery.soc"], "every": 10,
                               "kpis": ["formate_produced_mol", "pv_energy_kWh", "capacity_start_Ah"]},
                      "chunk_size": 3, **extra}}
    path = tmp_path / "sizing.yaml"
    path.write_text(yaml.safe_dump(data))
    return path, parse_sweep_spec(data, source=str(path), base_dir=ROOT / "scenarios")


def test_a_sweep_chunk_of_the_supply_runs_one_run_per_variant(tmp_path):
    _, spec = _sizing_spec(tmp_path)
    assert spec.mode == ("one run per variant: supply.pv.peak_power, supply.battery.capacity "
                                "vary the solar supply's parameters")
    tasks = plan_chunks(spec, tmp_path / "out")
    assert [len(t.variants) for t in tasks] == [3, 1]
    record = run_chunk(tasks[1])
    assert record["mode"] == "one run per variant"
    table = pd.read_parquet(tmp_path / "out" / "kpis" / "chunk=000001" / "part.parquet")
    assert list(table["variant"]) == [3]
    assert table["set:supply.battery.capacity"].tolist() == [10]
    alone = _alone(parse_scenario(tasks[1].scenario_data, source="s", base_dir=ROOT / "scenarios"),
                   tasks[1].variants[0], 10)[1]
    assert table["formate_produced_mol"].tolist() == [alone["formate_produced_mol"]]
    assert table["capacity_start_Ah"].tolist() == [pytest.approx(10.0)]
    # not among the spec's KPIs, kept all the same: the 10 Ah battery discharges below the
    # ageing model's C/4 envelope, and the table says so
    assert table["time_outside_envelope_s"].tolist() == [alone["time_outside_envelope_s"]]
    assert alone["time_outside_envelope_s"] > 0.0


def test_an_ensemble_capable_sweep_keeps_its_ensembles():
    spec = parse_sweep_spec({"sweep": {"scenario": {"name": "p", "duration": 60, "step": 1.0},
                                       "grid": {"inputs.current": [4.0, 5.0]}}})
    assert spec.mode == "ensemble"
    # the supply over the weather, its sizes fixed: ensembles too
    weather = parse_sweep_spec({"sweep": {"scenario": {**SUNNY, "duration": "1 h"},
                                          "grid": {"inputs.pv.clearness": [0.4, 0.9]}}},
                               base_dir=ROOT / "scenarios")
    assert weather.mode == "ensemble" and weather.chunk_size == 1000


def test_co2twin_sweep_sizes_the_supply_and_says_how_it_runs(tmp_path):
    path, _ = _sizing_spec(tmp_path)
    out = tmp_path / "res"
    done = subprocess.run([sys.executable, "-m", "co2twin", "sweep", str(path), "-o", str(out),
                           "--workers", "1", "--json"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    said = done.stderr.split("(each ", 1)[1]
    assert said.startswith("one run per variant: ") and "vary the solar supply's parameters" in said
    assert "supply.pv.peak_power" in said and "supply.battery.capacity" in said
    summary = json.loads((out / "summary.json").read_text())
    assert summary["chunk_mode"].startswith("one run per variant")
    merged = pd.read_parquet(out / "kpis.parquet")
    assert list(merged["variant"]) == [0, 1, 2, 3]
    # more PV, more energy from it, at either battery size
    pv = merged.set_index(["set:supply.pv.peak_power", "set:supply.battery.capacity"])["pv_energy_kWh"]
    assert pv[(200, 2.5)] > pv[(60, 2.5)] and pv[(200, 10)] > pv[(60, 10)]
    signals = pd.read_parquet(out / "signals")
    assert sorted(signals["variant"].unique()) == [0, 1, 2, 3] and "battery.soc" in signals
    # the flags the spec's KPIs leave out are in the summary and printed, with their size
    envelope = summary["flags"]["time_outside_envelope_s"]
    big = merged[merged["set:supply.battery.capacity"] == 10]
    assert envelope["variants"] == int((merged["time_outside_envelope_s"] > 0).sum()) == len(big)
    assert envelope["max_s"] == merged["time_outside_envelope_s"].max() > 0
    assert json.loads(done.stdout)["flags"] == summary["flags"]
    from co2twin.cli.console import out as console
    from co2twin.cli.sweep import _print_summary

    with console.capture() as printed:
        _print_summary(summary, out)
    line = next(x for x in printed.get().splitlines() if x.startswith("flags: "))
    assert "time_outside_envelope_s in 2 of 4 variants (up to" in line


def test_a_bad_supply_value_in_a_sweep_names_the_field(tmp_path):
    with pytest.raises(ScenarioError) as info:
        _sizing_spec(tmp_path, grid={"supply.pv.peak_power": [100, -10]})
    text = "\n".join(info.value.problems)
    assert "sweep.grid.supply.pv.peak_power: the scenario with supply.pv.peak_power = -10 is invalid" \
        in text


def test_a_python_controller_scenario_runs_one_run_per_variant(fixed_controller):
    """A user's controller class steps one run at a time: its variants run alone, each with its
    own values (the plant's parameter reaches the run)."""
    tmp_path = fixed_controller
    data = {"name": "mine", "duration": 120, "step": 1.0,
            "controllers": {"mine": {"type": "python", "python": "mine:Fixed", "actuators": ["current"]}}}
    scenario = parse_scenario(data, source=str(tmp_path / "s.yaml"), base_dir=tmp_path)
    assert [c.split(" ")[0] for c in scalar_components(scenario)] == ["mine"]
    result = run_variants(scenario, [{"plant.reactor.area_cm2": 20.0}, {"plant.reactor.area_cm2": 40.0}])
    table = result.kpis()
    assert table["mean_current_A"].tolist() == pytest.approx([5.0, 5.0], rel=1e-12)
    small, large = table["mean_cell_voltage_V"]  # the same current on twice the area: lower voltage
    assert large < small
    alone = _alone(scenario, {"plant.reactor.area_cm2": 40.0}, 1)[1]
    assert table["mean_cell_voltage_V"].iloc[1] == alone["mean_cell_voltage_V"]


def test_a_sweep_run_one_at_a_time_defaults_to_small_chunks(tmp_path):
    """Each variant is a whole run: without chunk_size, the chunks are RUN_CHUNK variants (so
    two workers share 16), not the ensembles' 1000 (one worker's whole sweep)."""
    from co2twin.sweep_spec import RUN_CHUNK

    _, spec = _sizing_spec(tmp_path)
    data = {"sweep": {k: v for k, v in spec.raw.items() if k != "chunk_size"}}
    data["sweep"]["scenario"] = {**SUNNY, "duration": "2 h"}
    assert parse_sweep_spec(data, source="s.yaml", base_dir=ROOT / "scenarios").chunk_size == RUN_CHUNK
    plain = {"sweep": {"scenario": {"name": "p", "duration": 60, "step": 1.0},
                       "grid": {"inputs.current": [4.0, 5.0]}}}
    assert parse_sweep_spec(plain).chunk_size == 1000


def test_flag_counts_say_which_flags_were_raised_and_how_long():
    from co2twin.uncertainty import flag_counts

    kpis = pd.DataFrame({"variant": [5, 6, 7], "time_saturated_s": [0.0, 30.0, 10.0],
                         "time_outside_envelope_s": [0.0, 0.0, 0.0], "loop_saturated_s[pi]": [0.0, 0.0, 60.0],
                         "formate_produced_mol": [1.0, 2.0, 3.0]})
    assert flag_counts(kpis) == {
        "time_saturated_s": {"variants": 2, "max_s": 30.0, "first_variant": 6},
        "loop_saturated_s[pi]": {"variants": 1, "max_s": 60.0, "first_variant": 7}}
    assert flag_counts(kpis.assign(**{"time_saturated_s": 0.0, "loop_saturated_s[pi]": 0.0})) == {}

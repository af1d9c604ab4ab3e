"""The energy-management test case (scenarios/control/solar_grid_price.yaml): a controller runs
the cell from PV, battery and grid at the day-ahead price, and is scored by the grid cost.

    controller ──current──▶ ems (curtails to PV + battery + grid) ──▶ power ──▶ reactor
        ▲                                                                       │
        └──── pv.power, battery.soc, reactor.cell_voltage (measured) ◀──────────┘
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from co2twin.control import compare, load_case, run_case
from cosim.errors import ScenarioError

pytestmark = pytest.mark.filterwarnings("ignore::models.surrogate.EnvelopeWarning")

CASE = Path(__file__).parents[1] / "scenarios" / "control" / "solar_grid_price.yaml"


@pytest.fixture(scope="module")
def results():
    """The case run with its two shipped controllers, by name (once per module)."""
    return {r.controller: r for r in compare(load_case(CASE), ["baseline", "flat"])}


def test_baseline_meets_the_target_within_the_grid_budget_and_flat_does_not(results):
    """Both make the day's 60 g; only the controller that follows the sun, the battery and the
    cheap hours keeps the grid cost within the threshold (the flat current fails on it alone)."""
    base, flat = results["baseline"], results["flat"]
    assert base.passed and not flat.passed
    assert [v.kpi for v in flat.verdicts if not v.ok] == ["grid_cost"]
    for r in (base, flat):
        assert r.kpis["production_kg"] >= 0.060
    assert base.kpis["grid_cost"] < 0.006 < flat.kpis["grid_cost"]
    assert base.kpis["solar_fraction"] > flat.kpis["solar_fraction"]


def test_grid_cost_is_what_the_bus_paid(results):
    """The grid_cost KPI is the bus's running cost over the day, which is the grid energy of each
    step at the price of that step."""
    for r in results.values():
        frame = r.frame
        cost = frame["bus.cost"].to_numpy()
        assert r.kpis["grid_cost"] == pytest.approx(cost[-1] - cost[0], rel=1e-12)
        step_kwh = frame["bus.grid_import"].to_numpy()[1:] * 60.0 / 3.6e6
        paid = float(np.sum(step_kwh * frame["ems.price"].to_numpy()[1:]))
        assert r.kpis["grid_cost"] == pytest.approx(paid, rel=1e-9)


class ReadsTheBattery:
    """Asks 5 A while the battery holds more than half its charge, else 1 A."""

    #: the measurements it was given (on the class: the runner may work on a copy of the object)
    seen: set[str] = set()

    def initialise(self, t0: float) -> None:
        pass

    def step(self, t: float, measurements: Mapping[str, float]) -> dict[str, float]:
        ReadsTheBattery.seen |= set(measurements)
        return {"current": 5.0 if measurements["battery.soc"] > 0.5 else 1.0}


def test_a_controller_reads_the_supply_and_its_current_goes_to_the_energy_manager():
    """A Python controller gets the supply's measurements; its current is the energy manager's
    request, which the manager curtails (never the power supply's set point directly)."""
    r = run_case(load_case(CASE), ReadsTheBattery())
    assert {"battery.soc", "pv.power"} <= ReadsTheBattery.seen
    assert r.actuators == {"power.current_setpoint": "controller.current"}  # the command, not the cut
    request = r.frame["controller.current"].to_numpy()
    assert set(np.round(np.unique(request[1:]), 9)) == {1.0, 5.0}
    setpoint = r.frame["ems.current_setpoint"].to_numpy()
    assert np.all(setpoint <= request + 1e-12)


def test_supply_kpis_need_a_supply_and_supply_signals_are_checked(tmp_path):
    """A grid_cost threshold in a case without a supply: section is refused; a misspelt supply
    signal among the measurements is refused naming it."""
    import yaml

    data = yaml.safe_load(CASE.read_text())
    plain = {k: v for k, v in data.items() if k not in ("supply", "case")}
    plain["case"] = {"objective": {"description": "cheap", "minimise": "grid_cost"},
                     "measurements": ["power.current"], "actuators": ["current"],
                     "kpis": {"grid_cost": {"max": 0.01}},
                     "controllers": {"flat": data["case"]["controllers"]["flat"]}}
    (tmp_path / "plain.yaml").write_text(yaml.safe_dump(plain))
    with pytest.raises(ScenarioError, match=r"case.kpis.grid_cost: this KPI needs a supply"):
        load_case(tmp_path / "plain.yaml")
    data["case"]["measurements"][1] = "battery.sco"
    (tmp_path / "profiles").symlink_to(CASE.parent / "profiles")
    (tmp_path / "misspelt.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ScenarioError,
                       match=r"case.measurements\[1\]: expected a measured signal .* found 'battery.sco'"):
        load_case(tmp_path / "misspelt.yaml")

"""Units a user writes: any unit compatible with the signal's is converted (pint), offset
temperatures included; an incompatible one is refused naming both; results keep the ports' units."""
from __future__ import annotations

import pytest

from co2twin import parse_scenario, run
from cosim.errors import ScenarioError
from cosim import units

HEAD = {"name": "u", "duration": 60, "step": 1, "models": {"default": "physics"}}


def scenario(**sections):
    return parse_scenario({**HEAD, **sections}, source="u.yaml")


def problems(**sections) -> str:
    with pytest.raises(ScenarioError) as info:
        scenario(**sections)
    return str(info.value)


# -- the conversion itself ---------------------------------------------------------------
@pytest.mark.parametrize("value, unit, to, expected", [
    (1.0, "L/min", "mL/min", 1000.0),
    (6.0, "L/h", "mL/min", 100.0),
    (5000.0, "mA", "A", 5.0),
    (0.2, "A/cm2", "mA/cm2", 200.0),
    (298.15, "K", "degC", 25.0),
    (77.0, "degF", "degC", 25.0),
    (0.5, "1", "%", 50.0),
    (50.0, "%", "1", 0.5),
    (2.0, "h", "s", 7200.0),
    (1500.0, "mmol/L", "mol/L", 1.5),
    (1.0, "Ohm*cm2", "Ohm*cm2", 1.0),
])
def test_compatible_units_convert_offsets_included(value, unit, to, expected):
    """Scale and offset units convert to the port's unit; temperatures as absolute values."""
    assert units.convert(value, unit, to) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("unit, to, fragments", [
    ("V", "A", ["'V' measures electric potential", "'A' electric current"]),
    ("mol/s", "mL/min", ["'mol/s' measures molar flow", "'mL/min' volumetric flow"]),
    ("pH", "1", ["'pH' measures acidity"]),
    ("K", "mL/min", ["'K' measures temperature"]),
    ("bananas", "A", ["no unit 'bananas' is known"]),
    (" ", "A", ["an empty unit is no unit"]),
])
def test_incompatible_or_unknown_units_are_refused_naming_both(unit, to, fragments):
    """A unit that measures something else (or no unit at all) raises UnitError naming both."""
    with pytest.raises(units.UnitError) as info:
        units.converter(unit, to)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_every_port_unit_is_known_to_pint_as_what_it_measures():
    """Each unit a port may declare parses (cm2 as cm**2, pH as its own dimension, Ohm)."""
    for unit in units.UNITS:
        assert units.converter(unit, unit)(2.5) == 2.5
        assert units.convert(1.0, unit, unit) == 1.0
    assert units.convert(1.0, "cm2", "cm2") == 1.0
    with pytest.raises(units.UnitError):
        units.converter("pH", "H")  # pH is no pico-henry


# -- in scenarios: inputs, events, limits, CSV profiles ----------------------------------
def test_inputs_in_other_units_are_converted_and_results_keep_the_ports_units(tmp_path):
    """L/min, K, mA and a fraction in '1' reach the plant in mL/min, degC, A and %."""
    sc = scenario(inputs={
        "gas_flow": {"constant": 0.15, "unit": "L/min"},
        "ambient_temperature": {"constant": 303.15, "unit": "K"},
        "current": {"steps": [[0, 4000], [30, 6000]], "unit": "mA"},
        "co2_fraction": {"ramp": {"from": 1.0, "to": 0.5, "at": 10, "duration": 20}, "unit": "1"},
    })
    assert sc.inputs["gas_flow"].constant == pytest.approx(150.0)
    assert sc.inputs["gas_flow"].unit == "mL/min"
    frame = run(sc, progress=False)
    assert frame["feed.gas_flow_setpoint"].iloc[-1] == pytest.approx(150.0)
    assert frame["reactor.ambient_temperature"].iloc[-1] == pytest.approx(30.0)
    assert frame.loc[10.0, "power.current_setpoint"] == pytest.approx(4.0)
    assert frame.loc[31.0, "power.current_setpoint"] == pytest.approx(6.0)
    assert frame["feed.co2_fraction_setpoint"].iloc[-1] == pytest.approx(50.0)
    port_units = frame.attrs["units"]
    assert (port_units["feed.gas_flow_setpoint"], port_units["reactor.ambient_temperature"],
            port_units["power.current_setpoint"]) == ("mL/min", "degC", "A")


def test_events_and_limits_in_other_units_are_converted():
    """set/ramp/profile events and limits take a unit; the run sees the port's unit."""
    sc = scenario(
        inputs={"current": 5},
        events=[{"at": 10, "type": "set", "target": "ambient_temperature", "value": 86,
                 "unit": "degF"},
                {"at": 20, "type": "ramp", "target": "current", "to": 3000, "duration": 10,
                 "unit": "mA"},
                {"at": 40, "type": "profile", "target": "gas_flow", "steps": [[0, 0.2]],
                 "unit": "L/min"}],
        limits={"reactor.cell_temperature": {"high": 308.15, "unit": "K"},
                "reactor.cell_voltage": {"low": 1000, "high": 4200, "unit": "mV"}})
    frame = run(sc, progress=False)
    assert frame.loc[11.0, "reactor.ambient_temperature"] == pytest.approx(30.0)
    assert frame.loc[31.0, "power.current_setpoint"] == pytest.approx(3.0)  # a row: the step before
    assert frame.loc[41.0, "feed.gas_flow_setpoint"] == pytest.approx(200.0)
    limits = frame.attrs["scenario"]["limits"]
    assert limits["reactor.cell_temperature"][1] == pytest.approx(35.0)
    assert limits["reactor.cell_voltage"] == pytest.approx([1.0, 4.2])


def test_a_csv_profile_in_another_unit_is_converted(tmp_path):
    """A CSV column in L/min drives a mL/min input; its bounds are checked after conversion."""
    (tmp_path / "flow.csv").write_text("time_s,q\n0,0.1\n60,0.3\n")
    spec = {"csv": {"path": "flow.csv", "column": "q"}, "unit": "L/min"}
    sc = parse_scenario({**HEAD, "inputs": {"gas_flow": spec}}, source="u.yaml", base_dir=tmp_path)
    frame = run(sc, progress=False)
    assert frame.loc[31.0, "feed.gas_flow_setpoint"] == pytest.approx(200.0)  # 0.2 L/min at 30 s
    (tmp_path / "big.csv").write_text("time_s,q\n0,0.1\n60,30\n")
    with pytest.raises(ScenarioError) as info:
        parse_scenario({**HEAD, "inputs": {"gas_flow": {**spec, "csv": {"path": "big.csv",
                                                                          "column": "q"}}}},
                       source="u.yaml", base_dir=tmp_path)
    assert "expected a value in [0, 10000] mL/min, found 30.0 L/min (30000 mL/min)" in str(info.value)


def test_bounds_are_checked_after_conversion_and_show_both_units():
    """15 L/min is 15000 mL/min, above the 10000 mL/min bound: the message shows both."""
    text = problems(inputs={"gas_flow": {"constant": 15, "unit": "L/min"}})
    assert ("inputs.gas_flow.constant: expected a value in [0, 10000] mL/min, "
            "found 15.0 L/min (15000 mL/min)") in text


@pytest.mark.parametrize("sections, fragment", [
    ({"inputs": {"current": {"constant": 5, "unit": "V"}}},
     "inputs.current.unit: expected a unit convertible to 'A' (the signal's unit), found 'V': "
     "'V' measures electric potential, 'A' electric current"),
    ({"events": [{"at": 5, "type": "set", "target": "gas_flow", "value": 1, "unit": "mol/s"}]},
     "events[0].unit: expected a unit convertible to 'mL/min'"),
    ({"events": [{"at": 5, "type": "ramp", "target": "current", "to": 1, "duration": 5,
                  "unit": "degC"}]},
     "events[0].unit: expected a unit convertible to 'A'"),
    ({"limits": {"reactor.cell_temperature": {"high": 300, "unit": "mL/min"}}},
     "limits.reactor.cell_temperature.unit: expected a unit convertible to 'degC'"),
    ({"limits": {"reactor.cell_voltage": {"low": 5, "high": 4000, "unit": "mV"}}}, None),
    ({"limits": {"reactor.cell_voltage": {"low": 4000, "high": 3000, "unit": "mV"}}},
     "limits.reactor.cell_voltage: expected low <= high, found low 4000 above high 3000"),
])
def test_incompatible_units_in_scenarios_are_refused_naming_both(sections, fragment):
    """Inputs, events and limits with a unit that does not convert are each reported."""
    if fragment is None:
        scenario(**sections)  # 5 mV .. 4 V is a valid range
        return
    assert fragment in problems(**sections)

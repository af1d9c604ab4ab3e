"""Input checks say what was expected: an unknown key's message lists the keys taken at its
place (and the closest one), and a broken ``supply:`` section does not make its signals unknown."""
from __future__ import annotations

import pytest

from co2twin.scenario import parse_scenario
from cosim.errors import ScenarioError

HEAD = {"name": "t", "duration": 10, "step": 1}


def problems(data: dict) -> list[str]:
    with pytest.raises(ScenarioError) as err:
        parse_scenario({**HEAD, **data})
    return err.value.problems


@pytest.mark.parametrize(("data", "line"), [
    ({"recrod": {"every": 1}},
     "recrod: unknown key; expected one of: name, description, start, duration, step, seed, plant, "
     "components, connections, rates, inputs, events, record, output, limits, models, controllers, "
     "case, supply (did you mean 'record'?)"),
    ({"source": "x"}, "source: unknown key; expected one of: name, description, start, duration, "
     "step, seed, plant, components, connections, rates, inputs, events, record, output, limits, "
     "models, controllers, case, supply"),
    ({"inputs": {"current": {"ramp": {"from": 1, "to": 2, "duration": 1, "initial": 1}}}},
     "inputs.current.ramp.initial: unknown key; expected one of: from, to, at, duration"),
    ({"events": [{"type": "set", "at": 1, "target": "current", "value": 3, "vlaue": 2}]},
     "events[0].vlaue: unknown key; expected one of: at, type, target, value, unit "
     "(did you mean 'value'?)"),
    ({"controllers": {"c": {"type": "pid", "measurement": "reactor.cell_voltage",
                            "actuator": "current", "gains": {"kpp": 1}}}},
     "controllers.c.gains.kpp: unknown key; expected one of: kp, ki, kd (did you mean 'kp'?)"),
    ({"models": {"cell_voltage": {"path": "x.keras", "knd": "nn"}}},
     "cell_voltage.ModelFileSpec.knd: unknown key; expected one of: path, kind, inputs, constants, "
     "absolute (did you mean 'kind'?)"),
])
def test_unknown_key_names_the_keys_taken_there(data, line):
    """The keys pydantic's model takes at the error's place, found through the union tags
    (event type, controller type, model file) that pydantic puts in the location."""
    assert any(p.endswith(line) for p in problems(data))


def test_unknown_supply_key_says_the_closest_parameter():
    found = [p for p in problems({"supply": {"battery": {"capcity": 5.0}}})
             if p.startswith("supply.battery.capcity")]
    assert len(found) == 1
    assert found[0].startswith("supply.battery.capcity: unknown key; expected one of: cells_series, "
                               "capacity, ")
    assert found[0].endswith("(did you mean 'capacity'?)")


@pytest.mark.parametrize("supply", [{"battery": {"capcity": 5.0}}, 5])
def test_a_broken_supply_section_does_not_make_its_signals_unknown(supply):
    """A typo inside supply: is the only problem; a limit on a supply signal is not reported
    as needing a supply: section the scenario has."""
    found = problems({"supply": supply, "limits": {"bus.grid_import": {"high": 5}}})
    assert len(found) == 1 and found[0].startswith("supply")
    assert not any("bus.grid_import" in p for p in found)


def test_the_rest_of_a_supply_with_a_typo_is_still_checked():
    """Only the broken part of supply: is left out: its signals are checked as usual."""
    found = problems({"supply": {"battery": {"capcity": 5.0}},
                      "limits": {"bus.grid_imprt": {"high": 5}}})
    assert any(p.startswith("limits.bus.grid_imprt: unknown signal") and "bus.grid_import" in p
               for p in found)


def test_the_message_helper():
    from co2twin.scenario_schema import Scenario, keys_at, unknown_key

    assert unknown_key("a.b", "x", None) == "a.b: unknown key"
    assert unknown_key("a", "zzz", ["one", "two"]) == "a: unknown key; expected one of: one, two"
    assert keys_at(Scenario, ("plant", "overrides", "reactor")) is None  # a plain mapping

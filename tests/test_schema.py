"""The JSON Schema of scenario files (``co2twin.json_schema()``), checked by jsonschema's Draft 2020-12
validator: every shipped scenario fits it, and malformed scenarios that the loader refuses fail it too."""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import jsonschema
import pytest
import yaml

from co2twin.scenario import parse_scenario
from cosim.errors import ScenarioError

SCENARIOS = Path(__file__).parents[1] / "scenarios"
SHIPPED = sorted(p for p in SCENARIOS.rglob("*") if p.suffix in (".yaml", ".yml"))
#: the document every malformed case below changes in one place
VALID = {"name": "t", "duration": "1 h", "step": 1, "inputs": {"current": 5}}
#: (id, change to VALID, JSON path of the flaw, keyword that catches it, fragment of its message)
MALFORMED = [
    ("unknown-key", {"colour": "blue"}, "$", "additionalProperties", "'colour' was unexpected"),
    ("empty-name", {"name": ""}, "$.name", "minLength", "''"),
    ("bad-duration", {"duration": "5 parsecs"}, "$.duration", "pattern", "'5 parsecs' does not match"),
    ("negative-step", {"step": -1}, "$.step", "exclusiveMinimum",
     "-1 is less than or equal to the minimum of 0"),
    ("boolean-step", {"step": True}, "$.step", "type", "True is not of type 'number'"),
    ("text-input", {"inputs": {"current": "lots"}}, "$.inputs.current", "type",
     "'lots' is not of type 'object'"),
    ("unknown-input-key", {"inputs": {"current": {"constant": 5, "wobble": 1}}}, "$.inputs.current",
     "additionalProperties", "'wobble' was unexpected"),
    ("record-every-0", {"record": {"every": 0}}, "$.record.every", "minimum",
     "0 is less than the minimum of 1"),
    ("unknown-event", {"events": [{"at": 1, "type": "explode"}]}, "$.events[0].type", "enum",
     "'explode' is not one of"),
    ("set-without-value", {"events": [{"at": 1, "type": "set", "target": "current"}]}, "$.events[0]",
     "required", "'value' is a required property"),
    ("fraction-above-1", {"events": [{"at": 1, "type": "co2_supply_drop", "fraction": 2}]},
     "$.events[0].fraction", "maximum", "2 is greater than the maximum of 1"),
    ("event-before-start", {"events": [{"at": -1, "type": "power_trip"}]}, "$.events[0].at", "minimum",
     "-1 is less than the minimum of 0"),
]


@pytest.fixture(scope="module")
def validator(scenario_schema: dict) -> jsonschema.Draft202012Validator:
    """A Draft 2020-12 validator of the scenario schema."""
    return jsonschema.Draft202012Validator(scenario_schema)


def leaves(errors: Iterable[jsonschema.ValidationError]) -> Iterator[jsonschema.ValidationError]:
    """The innermost errors: anyOf/oneOf failures replaced by what failed in each of their options."""
    for error in errors:
        if error.context:
            yield from leaves(error.context)
        else:
            yield error


def test_schema_is_valid_2020_12_with_the_top_level_keys_and_no_others(scenario_schema):
    """A valid 2020-12 schema, plain JSON: name/duration/step/inputs/events, nothing else allowed."""
    assert scenario_schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(scenario_schema)
    assert json.loads(json.dumps(scenario_schema, allow_nan=False)) == scenario_schema
    assert {"name", "duration", "step", "inputs", "events"} <= set(scenario_schema["properties"])
    assert {"base_dir", "source"}.isdisjoint(scenario_schema["properties"])
    assert scenario_schema["additionalProperties"] is False
    assert set(scenario_schema["required"]) == {"name", "duration", "step"}


def test_schema_uses_only_json_schema_keywords_for_bounds(scenario_schema):
    """Bounds appear as minimum/exclusiveMinimum..., never as pydantic's gt/ge/lt/le (ignored by editors)."""
    text = json.dumps(scenario_schema)
    assert not re.search(r'"(gt|ge|lt|le|allow_inf_nan)":', text), text


def test_the_required_scenarios_are_among_those_checked():
    """The scenarios checked below include the five required ones (the glob did not come back empty)."""
    assert {"baseline", "current_steps", "flue_gas_dilution", "catholyte_pump_failure",
            "long_run_24h"} <= {p.stem for p in SHIPPED}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_scenario_fits_the_schema(validator, path):
    """Every scenario under scenarios/ (durations as text, bare-number inputs, events) fits the schema."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(document)]
    assert errors == []


def test_the_unchanged_document_passes_schema_and_loader(validator):
    """The document the malformed cases start from fits the schema and loads (so each flaw is the cause)."""
    assert list(validator.iter_errors(VALID)) == []
    parse_scenario(VALID)


@pytest.mark.parametrize("change, path, keyword, fragment", [c[1:] for c in MALFORMED],
                         ids=[c[0] for c in MALFORMED])
def test_schema_rejects_what_the_loader_rejects(validator, change, path, keyword, fragment):
    """A scenario with one flaw fails the schema at the flaw's path and keyword, and the loader refuses it."""
    document = {**VALID, **change}
    assert not validator.is_valid(document)
    found = [(e.json_path, e.validator, e.message) for e in leaves(validator.iter_errors(document))]
    assert any((p, k) == (path, keyword) and fragment in m for p, k, m in found), found
    with pytest.raises(ScenarioError):
        parse_scenario(document)

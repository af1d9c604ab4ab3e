"""An unknown key in an experiment request (HTTP API or `co2twin service enqueue --set`) says
which keys were expected there and the closest one."""
from __future__ import annotations

import pytest

from co2twin.service.errors import Invalid
from co2twin.service.experiment import parse_request

OVERRIDES = ("expected one of: current, gas_flow, co2_fraction, humidity, anolyte_flow, "
             "catholyte_flow, anolyte_conc, catholyte_conc, ambient_temperature, recycle_fraction, "
             "area_cm2, duration, step, record_every, seed, models")


def test_request_unknown_key_lists_the_overrides():
    """What `co2twin service enqueue --set curent=5` checks (parse_request)."""
    with pytest.raises(Invalid) as err:
        parse_request({"overrides": {"curent": 5}, "priorty": 1})
    assert err.value.problems == [
        f"request.overrides.curent: unknown key; {OVERRIDES} (did you mean 'current'?)",
        "request.priorty: unknown key; expected one of: name, base_experiment, overrides, scenario, "
        "scenario_yaml, pace, priority (did you mean 'priority'?)"]


def test_api_unknown_key_lists_the_overrides(client):
    """The 422 of POST /api/experiments and of a session's advance (another body model)."""
    bad = client.post("/api/experiments", json={"overrides": {"curent": 5}})
    assert bad.status_code == 422
    assert bad.json()["problems"] == [
        f"overrides.curent: unknown key; {OVERRIDES} (did you mean 'current'?)"]
    start = client.post("/api/sessions", json={"sceanrio_yaml": "x"})
    assert start.status_code == 422
    assert start.json()["problems"] == [
        "sceanrio_yaml: unknown key; expected one of: scenario, scenario_yaml, testcase, name "
        "(did you mean 'scenario_yaml'?)"]

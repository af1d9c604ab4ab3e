"""The HTTP API: experiments (enqueue, list, status, results as JSON/CSV/Parquet), control
sessions (start, advance, measurements, forecast, KPIs, stop), errors, authentication, the
OpenAPI document, injection strings, and a client written in shell with curl."""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

import httpx
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from co2twin.service import Service, ServiceConfig, db
from co2twin.service.api import check_binding
from co2twin.service.errors import Invalid
from co2twin.service.loadtest import INJECTIONS, running_api
from co2twin.service.sessions import ScenarioCase

HERE = Path(__file__).resolve().parent


def test_experiments_and_results_in_three_formats(client, service):
    """Enqueue, run, then read the status and the rows as JSON columns, CSV and Parquet (with
    units in its metadata); `since` returns only later rows."""
    created = client.post("/api/experiments", json={
        "name": "api", "overrides": {"current": 4.0, "duration": 100, "record_every": 10}})
    assert created.status_code == 201 and created.json()["rows"] == 11
    exp_id = created.json()["id"]
    assert client.get(f"/api/experiments/{exp_id}").json()["status"] == "queued"
    service.run_worker()
    info = client.get(f"/api/experiments/{exp_id}").json()
    assert info["status"] == "done" and info["progress"] == 1.0 and info["kpis"]["energy_kWh"] > 0
    listed = client.get("/api/experiments", params={"status": "done"}).json()
    assert [e["id"] for e in listed] == [exp_id]
    data = client.get(f"/api/experiments/{exp_id}/results").json()
    assert data["time_s"] == [float(t) for t in range(0, 101, 10)]
    assert data["units"]["reactor.cell_voltage"] == "V"
    assert len(data["signals"]["reactor.cell_voltage"]) == 11
    later = client.get(f"/api/experiments/{exp_id}/results", params={"since": 50}).json()
    assert later["time_s"] == [60.0, 70.0, 80.0, 90.0, 100.0]
    every = client.get(f"/api/experiments/{exp_id}/results", params={"signals": "all"}).json()
    assert len(every["signals"]) > 60
    csv = client.get(f"/api/experiments/{exp_id}/results", params={"format": "csv"})
    frame = pd.read_csv(io.StringIO(csv.text), index_col="time_s")
    assert csv.headers["content-type"].startswith("text/csv") and len(frame) == 11
    assert frame["reactor.cell_voltage"].tolist() == data["signals"]["reactor.cell_voltage"]
    raw = client.get(f"/api/experiments/{exp_id}/results", params={"format": "parquet"}).content
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(raw))
    units = json.loads(table.schema.metadata[b"co2twin"])["units"]
    assert units["reactor.cell_voltage"] == "V" and table.num_rows == 11
    events = client.get(f"/api/experiments/{exp_id}/events").json()
    assert [e["event"] for e in events] == ["queued", "claimed", "done"]


def test_errors_have_a_status_and_every_problem(client, service):
    """404 for what is not there, 422 listing every invalid field, 409 for a wrong state."""
    assert client.get("/api/experiments/999").status_code == 404
    bad = client.post("/api/experiments", json={"name": "", "overrides": {
        "current": "lots", "colour": "red"}, "priority": 10**6})
    assert bad.status_code == 422
    problems = bad.json()["problems"]
    assert len(problems) == 4
    assert any(p.startswith("overrides.colour: unknown key") for p in problems)
    invalid = client.post("/api/experiments", json={"overrides": {"current": 2000}})
    assert invalid.status_code == 422
    assert "inputs.current.constant: expected a value in [0, 1000] A, found 2000" in invalid.text
    missing = client.post("/api/experiments", json={"base_experiment": 42})
    assert missing.status_code == 422 and "no such base experiment" in missing.text
    done = client.post("/api/experiments", json={"overrides": {"duration": 10}}).json()["id"]
    service.run_worker()
    conflict = client.post(f"/api/experiments/{done}/cancel")
    assert conflict.status_code == 409 and "found it done" in conflict.text
    assert client.get("/api/experiments", params={"status": "x' OR 1=1"}).status_code == 422


SCENARIO = {"name": "session", "duration": 300, "step": 1.0,
            "inputs": {"current": 5.0, "co2_fraction": {"steps": [[0, 100], [60, 50]]}}}


def test_a_control_session(client):
    """Start, advance with actuator values, read measurements, forecast the scheduled inputs
    (exactly, and without moving the session), read KPIs and rows, stop."""
    start = client.post("/api/sessions", json={"scenario": SCENARIO, "name": "mine"})
    assert start.status_code == 201
    body = start.json()
    sid = body["id"]
    assert {i["name"] for i in body["inputs"]} >= {"current", "gas_flow", "co2_fraction"}
    assert "reactor.cell_voltage" in body["y"] and body["time"] == 0.0
    step = client.post(f"/api/sessions/{sid}/advance", json={"u": {"current": 6.0}, "steps": 20})
    assert step.status_code == 200
    assert step.json()["time"] == 20.0 and step.json()["y"]["power.current"] == pytest.approx(6.0)
    forecast = client.get(f"/api/sessions/{sid}/forecast", params={
        "horizon": 80, "interval": 20, "signals": "feed.co2_fraction_setpoint,power.current"})
    assert forecast.status_code == 200
    ahead = forecast.json()
    assert ahead["time"] == [20.0, 40.0, 60.0, 80.0, 100.0]
    # as the run records them: an input at t is the value held over the step ending at t
    assert ahead["feed.co2_fraction_setpoint"] == [100.0, 100.0, 100.0, 50.0, 50.0]
    assert ahead["power.current"] == pytest.approx([6.0] * 5)
    after = client.get(f"/api/sessions/{sid}").json()
    assert after["time"] == 20.0
    # the session goes on as if no forecast had been made: compare with a twin session
    twin = client.post("/api/sessions", json={"scenario": SCENARIO}).json()["id"]
    client.post(f"/api/sessions/{twin}/advance", json={"u": {"current": 6.0}, "steps": 20})
    mine = client.post(f"/api/sessions/{sid}/advance", json={"seconds": 50}).json()
    other = client.post(f"/api/sessions/{twin}/advance", json={"seconds": 50}).json()
    assert mine == other
    kpis = client.get(f"/api/sessions/{sid}/kpis").json()
    assert kpis["time"] == 70.0 and kpis["kpis"]["mean_current_A"] > 5.0
    rows = client.get(f"/api/sessions/{sid}/results", params={"format": "csv"})
    assert len(pd.read_csv(io.StringIO(rows.text))) == 71
    assert client.get(f"/api/sessions/{sid}/measurements",
                      params={"signals": "reactor.fe_formate"}).json()["y"].keys() == \
        {"reactor.fe_formate"}
    assert {s["id"] for s in client.get("/api/sessions").json()} == {sid, twin}
    stopped = client.delete(f"/api/sessions/{sid}")
    assert stopped.status_code == 200 and stopped.json()["kpis"]["duration_h"] > 0
    assert client.get(f"/api/sessions/{sid}").status_code == 404


def test_advance_refuses_what_it_cannot_do(client):
    """Unknown actuators and values outside the port's bounds are listed (422); advancing past
    the end is a conflict (409); too many steps in one call is refused (403)."""
    sid = client.post("/api/sessions", json={"scenario": SCENARIO}).json()["id"]
    bad = client.post(f"/api/sessions/{sid}/advance", json={"u": {"current": -1, "valve": 3}})
    assert bad.status_code == 422 and len(bad.json()["problems"]) == 2
    assert "u.current: expected a value in [0, 1000]" in bad.text
    assert client.post(f"/api/sessions/{sid}/advance", json={"steps": 301}).status_code == 409
    assert client.post(f"/api/sessions/{sid}/advance", json={"seconds": 1.5}).status_code == 422
    assert client.get(f"/api/sessions/{sid}").json()["time"] == 0.0


class _Case:
    """What co2twin.control's ControlCase offers a session: a scenario, the actuators it allows,
    the measurements, and known futures (a price)."""

    def __init__(self, path: Path) -> None:
        self.scenario = ScenarioCase(__import__("co2twin").load_scenario(path)).scenario
        self.name = path.stem
        self.actuators = ["power.current_setpoint"]
        self.spec = type("Spec", (), {"measurements": ["reactor.cell_voltage"], "price": 1.0,
                                      "setpoints": {}})()

    def profile(self, name: str) -> object:
        from cosim.profiles import Steps

        return Steps(((0.0, 0.10), (30.0, 0.25)))


def test_a_session_from_a_test_case(sqlite_url, tmp_path):
    """A test case by name: its scenario, only its actuators and measurements, and its known
    futures (price) in the forecast. Names cannot leave the cases folder."""
    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "hold_voltage.yaml").write_text(yaml.safe_dump(SCENARIO))
    config = ServiceConfig(cases_dir=cases)
    with Service(sqlite_url, config, case_loader=_Case) as svc, running_api(svc) as base, \
            httpx.Client(base_url=base) as http:
        body = http.post("/api/sessions", json={"testcase": "hold_voltage"}).json()
        assert [i["name"] for i in body["inputs"]] == ["current"]
        assert list(body["y"]) == ["reactor.cell_voltage"]
        refused = http.post(f"/api/sessions/{body['id']}/advance", json={"u": {"gas_flow": 50}})
        assert refused.status_code == 422
        ahead = http.get(f"/api/sessions/{body['id']}/forecast", params={
            "horizon": 60, "interval": 30}).json()
        assert ahead["price"] == [0.10, 0.25, 0.25]
        assert http.post("/api/sessions", json={"testcase": "../cases/hold_voltage"}
                         ).status_code == 422
        assert http.post("/api/sessions", json={"testcase": "nope"}).status_code == 404


def test_a_bearer_token_guards_the_api(sqlite_url):
    """With a token, every /api route but health needs `Authorization: Bearer <token>`."""
    with Service(sqlite_url) as svc, running_api(svc, token="t0ken") as base, \
            httpx.Client(base_url=base) as http:
        assert http.get("/api/health").status_code == 200
        assert http.get("/api/experiments").status_code == 401
        wrong = http.get("/api/experiments", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        right = http.get("/api/experiments", headers={"Authorization": "Bearer t0ken"})
        assert right.status_code == 200
        assert http.post("/api/sessions", json={"scenario": SCENARIO}).status_code == 401


def test_serving_beyond_loopback_needs_a_token():
    """The server refuses a non-loopback address without a token, and says how to set one."""
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        check_binding(host, None)
    with pytest.raises(Invalid, match="CO2TWIN_API_TOKEN"):
        check_binding("0.0.0.0", None)
    check_binding("0.0.0.0", "token")


def test_openapi_documents_every_route(client):
    """/openapi.json names every route, each with a description; the dashboard is served."""
    spec = client.get("/openapi.json").json()
    paths = set(spec["paths"])
    assert paths >= {"/api/experiments", "/api/experiments/{experiment_id}",
                     "/api/experiments/{experiment_id}/results", "/api/sessions",
                     "/api/sessions/{sid}/advance", "/api/sessions/{sid}/forecast",
                     "/api/sessions/{sid}/kpis", "/api/sessions/{sid}", "/api/health"}
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            assert op.get("description"), f"{method.upper()} {path} has no description"
    page = client.get("/")
    assert page.status_code == 200 and "co2twin service" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]


def test_injection_strings_are_stored_verbatim_and_harm_nothing(client, service):
    """Every text field the API takes (names, a scenario's name and description, a session's
    name, query values) holds injection strings: they come back verbatim, the tables stand."""
    ids = []
    for text in INJECTIONS:
        response = client.post("/api/experiments", json={"name": text, "scenario": {
            "name": text, "description": text, "duration": 10, "step": 1}})
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
        session = client.post("/api/sessions", json={"scenario": {
            "name": text, "duration": 10, "step": 1}, "name": text})
        assert session.status_code == 201 and session.json()["name"] == text
        client.delete(f"/api/sessions/{session.json()['id']}")
        assert client.get(f"/api/experiments/{text}").status_code in (404, 422)
    service.add_base_experiment(name=INJECTIONS[0])
    service.run_worker()
    for exp_id, text in zip(ids, INJECTIONS, strict=True):
        info = client.get(f"/api/experiments/{exp_id}").json()
        assert info["name"] == text and info["status"] == "done"
        assert yaml.safe_load(info["scenario_yaml"])["description"] == text
    assert client.get("/api/base-experiments").json()[0]["name"] == INJECTIONS[0]
    tables = set(sa.inspect(service.engine).get_table_names())
    assert {"experiments", "executions", "electrodes", "base_experiments"} <= tables
    with service.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(db.executions)
                            ).scalar_one() == 11 * len(INJECTIONS)


def test_a_shell_client_with_curl(sqlite_url):
    """tests/service/client.sh — no Python — queues and reads an experiment and closes a loop in
    a control session through the API; a worker runs beside the server."""
    curl = shutil.which("curl")
    assert curl, "curl is needed by the shell client test"
    with Service(sqlite_url) as svc, running_api(svc, token="sh-token") as base:
        worker = svc.worker()
        thread = threading.Thread(target=worker.run)
        thread.start()
        try:
            done = subprocess.run(["sh", str(HERE / "client.sh")], capture_output=True, text=True,
                                  timeout=300, env={**os.environ, "BASE": base, "TOKEN": "sh-token"})
        finally:
            worker.stop()
            thread.join(60)
    assert done.returncode == 0, done.stderr
    word, exp_id, rows, steps, voltage = done.stdout.split()
    assert (word, rows, steps) == ("ok", "13", "30")
    assert 3.0 < float(voltage) < 4.5

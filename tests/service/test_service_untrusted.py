"""Untrusted scenarios, tried through the HTTP API: files only inside the data folders, FMUs and
Python controllers only when allowlisted, no file's contents in any message, caps per request."""
from __future__ import annotations

import hashlib

import httpx
import pytest
import yaml

from co2twin.scenario import parse_scenario
from co2twin.service import Limits, Service, ServiceConfig
from co2twin.service.loadtest import running_api
from co2twin.service.untrusted import sanitise
from cosim.errors import ScenarioError


def _csv_scenario(path: str, column: str = "current") -> str:
    return yaml.safe_dump({"name": "u", "duration": 60, "step": 1, "inputs": {"current": {
        "csv": {"path": path, "column": column, "hold": True}}}})


def _post(client: httpx.Client, text: str) -> httpx.Response:
    return client.post("/api/experiments", json={"name": "u", "scenario_yaml": text})


@pytest.mark.parametrize("path", ["../etc/passwd", "/etc/passwd", "profiles/../../../etc/passwd",
                                  "~/x.csv", "..\\..\\etc\\passwd", "C:/Windows/win.ini"])
def test_paths_outside_the_data_folders_are_refused_unread(client, path):
    """Absolute paths, `..`, `~` and backslashes are refused before any file is opened, and the
    answer quotes nothing of /etc/passwd."""
    response = _post(client, _csv_scenario(path))
    assert response.status_code == 403, response.text
    (problem,) = response.json()["problems"]
    assert problem.startswith("experiment: inputs.current.csv.path: expected a")
    assert "root:" not in response.text and "/bin/" not in response.text


def test_a_symbolic_link_out_of_the_data_folder_is_refused(client, data_dir):
    (data_dir / "link.csv").symlink_to("/etc/passwd")
    response = _post(client, _csv_scenario("link.csv"))
    assert response.status_code == 403
    assert "leads outside" in response.text and "root:" not in response.text


def test_no_message_quotes_a_files_contents(client, data_dir):
    """A CSV inside the data folder whose header is not what the scenario expects: the problem
    names the file and the column asked for, and withholds what the file holds."""
    response = _post(client, _csv_scenario("secret.csv", column="current"))
    assert response.status_code == 422
    text = response.text
    assert "secret.csv" in text and "'current'" in text
    assert "TOPSECRET" not in text and "hunter2" not in text and str(data_dir) not in text


def test_the_scenario_checks_themselves_quote_the_first_line():
    """Why the sanitiser exists: co2twin's own checks quote a CSV's header back (a trusted, local
    user's aid); the service's layer removes it from every message it sends."""
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(yaml.safe_load(_csv_scenario("/etc/passwd")))
    quoted = [p for p in caught.value.problems if "root:" in p]
    assert quoted, caught.value.problems
    assert all("root:" not in sanitise(p) for p in quoted)


def test_a_file_inside_the_data_folder_is_used(client):
    response = _post(client, _csv_scenario("profiles/current.csv"))
    assert response.status_code == 201, response.text


def test_fmus_need_their_hash_allowlisted(sqlite_url, data_dir):
    """An FMU (native code) is refused unless its SHA-256 is allowlisted; allowlisted, it is
    loaded (this one is not a real FMU: the load fails, without quoting the file)."""
    fmu = data_dir / "ctl.fmu"
    fmu.write_bytes(b"PK\x03\x04 not really an FMU SECRET-BYTES")
    scenario = yaml.safe_dump({"name": "f", "duration": 10, "step": 1, "components": {
        "ctl": {"type": "fmu", "path": "ctl.fmu"}}})
    digest = hashlib.sha256(fmu.read_bytes()).hexdigest()
    for allow, status in ((frozenset(), 403), (frozenset({digest}), 422)):
        with Service(sqlite_url, ServiceConfig(data_dirs=(data_dir,), allow_fmus=allow)) as svc, \
                running_api(svc) as base, httpx.Client(base_url=base) as http:
            response = _post(http, scenario)
        assert response.status_code == status, response.text
        assert "SECRET-BYTES" not in response.text
        if status == 403:
            assert digest in response.text and "allow_fmus" in response.text


def test_python_controllers_need_their_module_allowlisted(sqlite_url, data_dir):
    """A `python:` controller runs code: refused unless its module (or package.*) is allowlisted."""
    scenario = yaml.safe_dump({"name": "p", "duration": 10, "step": 1, "controllers": {
        "c": {"type": "python", "python": "os:system", "measurements": ["reactor.cell_voltage"],
              "actuators": ["current"]}}})
    with Service(sqlite_url, ServiceConfig(data_dirs=(data_dir,))) as svc, \
            running_api(svc) as base, httpx.Client(base_url=base) as http:
        response = _post(http, scenario)
        assert response.status_code == 403
        assert "'os' is not in the service's allowlist" in response.text
        session = http.post("/api/sessions", json={"scenario_yaml": scenario})
        assert session.status_code == 403
    allowed = ServiceConfig(data_dirs=(data_dir,), allow_python=frozenset({"mypkg.*"}))
    permitted = scenario.replace("os:system", "mypkg.ctl:Controller")
    with Service(sqlite_url, allowed) as svc, running_api(svc) as base, \
            httpx.Client(base_url=base) as http:
        assert _post(http, scenario).status_code == 403  # os is still not allowed
        response = _post(http, permitted)  # allowed: passes the gate (the module does not exist)
        assert "allowlist" not in response.text and response.status_code == 422


def test_caps_per_request(sqlite_url, data_dir):
    """Duration, steps, rows, scenario size, values (alias bombs) and body size are capped."""
    limits = Limits(max_duration_s=3600, max_rows=1000, max_scenario_bytes=20_000,
                    max_nodes=2_000, max_request_bytes=50_000)
    with Service(sqlite_url, ServiceConfig(data_dirs=(data_dir,), limits=limits)) as svc, \
            running_api(svc) as base, httpx.Client(base_url=base) as http:
        long = http.post("/api/experiments", json={"overrides": {"duration": 7200}})
        assert long.status_code == 403 and "at most 3600 s" in long.text
        rows = http.post("/api/experiments", json={"overrides": {"duration": 3000,
                                                                 "record_every": 1}})
        assert rows.status_code == 403 and "at most 1,000 recorded rows" in rows.text
        big = _post(http, "name: b\nduration: 10\nstep: 1\ndescription: " + "x" * 30_000)
        assert big.status_code == 403 and "at most 20,000 bytes" in big.text
        bomb = "a: &a [1,1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n" \
               "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
        nodes = _post(http, "name: n\nduration: 10\nstep: 1\n" + bomb)
        assert nodes.status_code == 403 and "at most 2,000 values" in nodes.text
        body = http.post("/api/experiments", content=b"{" + b" " * 60_000 + b"}",
                         headers={"Content-Type": "application/json"})
        assert body.status_code == 413


def test_no_object_constructing_yaml_and_no_output_file(client):
    """A YAML tag that would construct a Python object is refused; an output: section is ignored
    (results go to the database) and said so."""
    tagged = _post(client, "name: !!python/object/apply:os.system ['echo pwned']\nduration: 1\n")
    assert tagged.status_code == 422 and "tag" in tagged.text
    with_output = _post(client, "name: o\nduration: 10\nstep: 1\noutput: {file: /etc/cron.d/x.csv}\n")
    assert with_output.status_code == 201
    assert "output: ignored" in " ".join(with_output.json()["notes"])

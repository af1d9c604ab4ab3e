"""The command line: `co2twin service migrate|enqueue|worker|status|import-valco2t|grafana`, and
`co2twin serve` as a real process: it serves, its workers run the queue, SIGTERM stops it and
its workers (none is left behind), and it refuses to listen beyond loopback without a token."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from typer.testing import CliRunner

from co2twin.cli import app
from co2twin.service.loadtest import _free_port

runner = CliRunner()


def _run(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_service_commands(tmp_path, monkeypatch):
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    assert "schema revision 0001" in _run("service", "migrate", "--db", db)
    monkeypatch.setenv("CO2TWIN_DB_URL", db)  # the URL may come from the environment
    job = json.loads(_run("service", "enqueue", "--set", "current=4", "--set", "duration=30",
                          "--name", "cli"))
    assert job["status"] == "queued" and job["rows"] == 4
    stats = json.loads(_run("service", "worker", "--drain"))
    assert stats["done"] == 1
    info = json.loads(_run("service", "status", str(job["id"])))
    assert info["status"] == "done" and info["submitted_by"] == "cli"
    assert [e["id"] for e in json.loads(_run("service", "status"))] == [job["id"]]
    (tmp_path / "e.csv").write_text("id,nombre,area\n1,GDE,10\n")
    (tmp_path / "x.csv").write_text("id,id_electrodo,intensidad\n4,1,2.0\n")
    summary = json.loads(_run("service", "import-valco2t", "--electrodes", str(tmp_path / "e.csv"),
                              "--experiments", str(tmp_path / "x.csv")))
    assert (summary["electrodes_added"], summary["experiments_added"]) == (1, 1)
    assert "co2twin.yaml" in _run("service", "grafana", "-o", str(tmp_path / "grafana"))
    bad = runner.invoke(app, ["service", "enqueue", "--set", "current=-1"])
    assert bad.exit_code == 1 and "expected a value in [0, 1000] A" in bad.output


def test_serve_refuses_a_public_address_without_a_token(tmp_path, monkeypatch):
    monkeypatch.delenv("CO2TWIN_API_TOKEN", raising=False)
    result = runner.invoke(app, ["serve", "--db", f"sqlite:///{tmp_path / 's.db'}", "--host",
                                 "0.0.0.0", "--workers", "0"])
    assert result.exit_code == 1 and "CO2TWIN_API_TOKEN" in result.output


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_serve_runs_the_queue_and_stops_with_its_workers(tmp_path):
    """`co2twin serve --workers 2`: an experiment posted over HTTP is run; SIGTERM ends the server
    and both workers (no orphan is left)."""
    port = _free_port()
    env = {**os.environ, "CO2TWIN_API_TOKEN": ""}
    process = subprocess.Popen(
        [sys.executable, "-m", "co2twin", "serve", "--db", f"sqlite:///{tmp_path / 's.db'}",
         "--workers", "2", "--port", str(port), "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(base + "/api/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "serve did not start"
            time.sleep(0.2)
        job = httpx.post(base + "/api/experiments", json={"overrides": {"duration": 20}}).json()
        while httpx.get(f"{base}/api/experiments/{job['id']}").json()["status"] != "done":
            assert time.monotonic() < deadline, "the experiment was not run"
            time.sleep(0.2)
        workers = [p for p in _children(process.pid) if "spawn_main" in
                   Path(f"/proc/{p}/cmdline").read_text(errors="replace")]
        assert len(workers) == 2
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
        time.sleep(0.5)
        assert not [p for p in workers if _alive(p)]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    output = process.stdout.read() if process.stdout else ""
    assert f"dashboard http://127.0.0.1:{port}/" in output

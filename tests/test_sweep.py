"""Sweeps on dask.distributed: chunks written by the workers, retries, a worker killed mid-sweep,
resume of an interrupted sweep, and the folder rules.

The chunk runner here is ``sweep_kit.fake_runner`` (KPIs computed from the variants' values, so
every row can be checked; a sleep gives a window to kill a worker in); the ensemble engine's
own equivalence is tested with the ensembles. One test at the end runs ``co2twin sweep`` on the
real engine.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from co2twin.sweep import ChunkTask, _chunk_kpis, plan_chunks, run_sweep
from co2twin.sweep_spec import parse_sweep_spec
from cosim.errors import ScenarioError, SimulationError
from sweep_kit import attempts, fake_runner

TESTS = Path(__file__).parent
BASE = {"name": "short", "duration": 60, "step": 1.0, "inputs": {"current": 5.0}}
N, CHUNK = 24, 3  # 8 chunks


def currents(n: int = N) -> list[float]:
    return [round(1.0 + i / 100, 4) for i in range(n)]


def make_spec(n: int = N, chunk: int = CHUNK, **extra: object):
    return parse_sweep_spec({"sweep": {"scenario": BASE, "lists": {"inputs.current": currents(n)},
                                       "chunk_size": chunk,
                                       "keep": {"signals": ["reactor.cell_voltage"], "every": 2},
                                       **extra}}, source="test-sweep.yaml")


def check_complete(out: Path, n: int = N) -> pd.DataFrame:
    """Every variant exactly once in the merged KPI table, each with its own values."""
    kpis = pd.read_parquet(out / "kpis.parquet")
    assert list(kpis["variant"]) == list(range(n))
    assert list(kpis["set:inputs.current"]) == currents(n)
    assert np.array_equal(kpis["mean_current_A"], kpis["set:inputs.current"])
    signals = pd.read_parquet(out / "signals")
    assert sorted(signals["variant"].unique()) == list(range(n))
    assert len(signals) == n * 5  # 10 s of fake signal every 2 s
    return kpis


@pytest.fixture
def log(tmp_path, monkeypatch):
    """A folder where the fake runner logs each chunk attempt (workers inherit the variable)."""
    folder = tmp_path / "log"
    folder.mkdir()
    monkeypatch.setenv("SWEEP_KIT_LOG", str(folder))
    monkeypatch.setenv("SWEEP_KIT_SLEEP", "0")
    return folder


def test_local_cluster_retries_a_failed_chunk_and_writes_only_its_folder(tmp_path, log, monkeypatch):
    """A chunk that fails once is retried; every variant lands once; nothing beside --out, not
    even dask's lock files in the temporary directory."""
    monkeypatch.setenv("SWEEP_KIT_FAIL_ONCE", f"{currents()[6]:.4f}")  # chunk 2's first variant
    monkeypatch.chdir(tmp_path)
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(system_tmp))  # the workers' temporary directory
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))  # and this process's
    out = tmp_path / "out"
    seen: list[dict] = []
    run = run_sweep(make_spec(), out, workers=2, runner=fake_runner, retries=1, on_chunk=seen.append)
    check_complete(out)
    assert sorted(run.ran) == list(range(8)) and run.skipped == []
    assert sorted(r["chunk"] for r in seen) == list(range(8))
    tried = [first for first, _ in attempts(log)]
    assert tried.count(f"{currents()[6]:.4f}") == 2 and len(tried) == 9
    assert (log / f"failed-{currents()[6]:.4f}").exists()
    # the run's own files only: no dask scratch space, no stray temporaries
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log", "out", "system-tmp"]
    assert list(system_tmp.iterdir()) == []
    assert sorted(p.name for p in out.iterdir()) == ["balances", "done", "kpis", "kpis.parquet",
                                                     "manifest.json", "signals", "summary.json"]
    assert not [p for p in out.rglob(".*")]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["variants"] == N and summary["chunks"] == 8
    assert summary["balances"] == {"charge": {"worst": pytest.approx(1.23e-15), "variant": 23}}
    assert summary["kpi_intervals"]["mean_current_A"]["p50"] == pytest.approx(np.median(currents()))


def test_a_chunk_that_keeps_failing_is_reported_and_the_rest_kept(tmp_path, log, monkeypatch):
    """With no retries left the sweep fails naming the chunk; a rerun runs only that chunk."""
    monkeypatch.setenv("SWEEP_KIT_FAIL_ONCE", f"{currents()[3]:.4f}")  # chunk 1
    out = tmp_path / "out"
    with pytest.raises(SimulationError, match=r"1 of 8 chunks failed.*\nchunk 1: RuntimeError: planned"):
        run_sweep(make_spec(), out, workers=1, runner=fake_runner, retries=0)
    assert len(list((out / "done").glob("chunk=*.json"))) == 7
    run = run_sweep(make_spec(), out, workers=1, runner=fake_runner, retries=0)
    assert run.ran == [1] and len(run.skipped) == 7
    check_complete(out)


def _start(args: list[str], tmp_path: Path, name: str, **env_extra: str) -> subprocess.Popen:
    env = {**os.environ, **env_extra, "DASK_TEMPORARY_DIRECTORY": str(tmp_path / "dask-tmp"),
           "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_" + args[0], *args[1:]],
                            stdout=open(tmp_path / f"{name}.log", "w"), stderr=subprocess.STDOUT,
                            env=env, cwd=tmp_path)


def _wait_for(predicate, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_a_worker_killed_mid_sweep_loses_and_duplicates_nothing(tmp_path, log, monkeypatch):
    """A real scheduler and two worker processes; one is SIGKILLed while running a chunk: the
    scheduler gives that chunk to the other worker and the sweep completes, each variant once."""
    scheduler_file = tmp_path / "scheduler.json"
    procs = [_start(["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                     "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(scheduler_file)],
                    tmp_path, "scheduler")]
    try:
        _wait_for(scheduler_file.exists, 60, "the scheduler")
        address = json.loads(scheduler_file.read_text())["address"]
        # the victim's chunks take long enough that it is surely killed inside its first one
        for name, sleep in (("w1", "60"), ("w2", "0.2")):
            procs.append(_start(["worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
                                 "--name", name, "--local-directory", str(tmp_path / name)],
                                tmp_path, name, SWEEP_KIT_SLEEP=sleep))
        victim = procs[1]
        from distributed import Client

        with Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=60)
        killed: list[str] = []

        def kill_when_busy() -> None:
            # the victim has started a chunk: kill it before that chunk can be written
            def busy() -> bool:
                return any(pid == victim.pid for _, pid in attempts(log))
            _wait_for(busy, 120, "the victim to start a chunk")
            victim.send_signal(signal.SIGKILL)
            killed.extend(first for first, pid in attempts(log) if pid == victim.pid)

        killer = threading.Thread(target=kill_when_busy)
        killer.start()
        out = tmp_path / "out"
        run_sweep(make_spec(), out, scheduler=address, runner=fake_runner, retries=0)
        killer.join()
        assert victim.wait(10) == -signal.SIGKILL and len(killed) == 1
        check_complete(out)
        # the chunk the victim had started was run again, by the other worker, and written once
        survivor = procs[2].pid
        records = [json.loads(p.read_text()) for p in sorted((out / "done").glob("chunk=*.json"))]
        assert len(records) == 8 and {r["pid"] for r in records} == {survivor}
        for first in killed:
            assert (first, survivor) in attempts(log)
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


_INTERRUPTED = """
import sys
from co2twin.sweep import ChunkTask, _chunk_kpis, plan_chunks, run_sweep
from co2twin.sweep_spec import parse_sweep_spec
from sweep_kit import fake_runner
import test_sweep
run_sweep(test_sweep.make_spec(), sys.argv[1], workers=1, runner=fake_runner)
"""


def test_an_interrupted_sweep_resumes_with_only_the_missing_chunks(tmp_path, log, monkeypatch):
    """Kill a sweep (client, cluster and workers) after a few chunks; the rerun runs only the rest."""
    monkeypatch.setenv("SWEEP_KIT_SLEEP", "0.4")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", _INTERRUPTED, str(out)], env=env, cwd=tmp_path,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: len(list(out.glob("done/chunk=*.json"))) >= 3, 180, "three chunks")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole group: the client, nanny and worker
        proc.wait()
    done = {p.name for p in out.glob("done/chunk=*.json")}
    assert 3 <= len(done) < 8 and not (out / "kpis.parquet").exists()
    first_run = {first for first, _ in attempts(log)}
    for path in log.iterdir():
        path.unlink()
    monkeypatch.setenv("SWEEP_KIT_SLEEP", "0")
    run = run_sweep(make_spec(), out, workers=1, runner=fake_runner)
    assert len(run.skipped) == len(done) and len(run.ran) == 8 - len(done)
    rerun = {first for first, _ in attempts(log)}
    written_first = {f"{currents()[int(name[6:12]) * CHUNK]:.4f}" for name in done}
    assert rerun == {f"{c:.4f}" for c in currents()[::CHUNK]} - written_first
    assert first_run >= written_first
    check_complete(out)
    assert not [p for p in out.rglob(".*")]


def test_the_folder_of_another_sweep_or_other_files_is_refused(tmp_path, log):
    """A changed spec does not resume onto old chunks; a folder with other files is not used;
    --restart deletes the sweep's own files and starts over."""
    out = tmp_path / "out"
    run_sweep(make_spec(n=6), out, workers=1, runner=fake_runner)
    with pytest.raises(ScenarioError, match=r"out: the folder holds another sweep's chunks"):
        run_sweep(make_spec(n=9), out, workers=1, runner=fake_runner)
    run = run_sweep(make_spec(n=9), out, workers=1, runner=fake_runner, restart=True)
    assert run.ran == [0, 1, 2] and run.skipped == []
    check_complete(out, n=9)
    other = tmp_path / "other"
    other.mkdir()
    (other / "thesis.tex").write_text("mine")
    with pytest.raises(ScenarioError, match=r"other: expected a new or empty folder"):
        run_sweep(make_spec(n=6), other, workers=1, runner=fake_runner)
    assert [p.name for p in other.iterdir()] == ["thesis.tex"]


def test_chunks_never_span_two_model_choices():
    """With models.* in the grid, chunks are cut at each group; each carries its group's models."""
    spec = parse_sweep_spec({"sweep": {
        "scenario": BASE, "grid": {"models.default": ["physics", "hybrid"]}, "samples": 5, "chunk_size": 3,
        "distributions": {"inputs.current": {"dist": "uniform", "low": 3.0, "high": 6.0}}}})
    tasks = plan_chunks(spec, Path("out"))
    assert [(t.start, t.stop) for t in tasks] == [(0, 3), (3, 5), (5, 8), (8, 10)]
    assert [t.scenario_data["models"]["default"] for t in tasks] == ["physics", "physics", "hybrid", "hybrid"]
    assert all(set(v) == {"inputs.current"} for t in tasks for v in t.variants)
    assert tasks[2].values[0]["models.default"] == "hybrid"
    assert tasks[2].values[0]["inputs.current"] == tasks[0].values[0]["inputs.current"]


def test_a_kpi_table_with_model_files_as_mappings_writes_to_parquet(tmp_path):
    """set: columns holding a model file as a mapping beside a kind are kept as JSON text."""
    task = ChunkTask(index=0, start=10, variants=[{}, {}], groups=[0, 1], scenario_data={}, base_dir=".",
                     source="s", signals=[], every=1, kpis=None, out="o", digest="d",
                     values=[{"models.cell_voltage": "hybrid"}, {"models.cell_voltage": {"path": "a.keras"}}])
    table = _chunk_kpis(task, pd.DataFrame({"variant": [0, 1], "x": [1.0, 2.0]}))
    assert list(table["variant"]) == [10, 11] and list(table["x"]) == [1.0, 2.0]
    assert list(table["set:models.cell_voltage"]) == ["hybrid", '{"path": "a.keras"}']
    table.to_parquet(tmp_path / "t.parquet")


def test_a_scheduler_that_is_not_there_is_named(tmp_path):
    """A bad --scheduler address fails with the address and what was expected."""
    with pytest.raises(SimulationError, match=r"--scheduler foo://nowhere:1: expected the address of a "
                                              r"running dask scheduler \(tcp://host:port\)"):
        run_sweep(make_spec(n=3), tmp_path / "out", scheduler="foo://nowhere:1", runner=fake_runner)

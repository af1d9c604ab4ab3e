"""Load and faults, measured: many experiments, several worker processes, one SIGKILLed
mid-run, many concurrent API clients; and the service's two bench figures.

``python -m co2twin.service.loadtest --db URL`` (or ``co2twin service loadtest``) runs the full
figures (200 experiments, 4 workers, 50 clients); the tests run :func:`run_load` with smaller
numbers. Every request goes to 127.0.0.1 only; loops are bounded in count and time.

:func:`measure` gives the bench keys ``service_executions_rows_per_s`` (a worker running one
experiment that records every step, simulation and SQLite writes included) and
``api_advance_ms`` (median wall time of one ``POST /api/sessions/{id}/advance`` of one step,
HTTP on loopback included).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from .config import Limits, Pace, ServiceConfig
from .db import (
    create_engine,
    downgrade,
    executions,
    experiment_events,
    experiments,
    redacted,
    upgrade,
)
from .errors import Invalid
from .service import Service

__all__ = ["measure", "run_load", "running_api", "api_process", "INJECTIONS", "main"]

#: SQL-injection strings used as names (each must come back verbatim and harm nothing)
INJECTIONS = (
    "x'); DROP TABLE experiments; --",
    "1 OR 1=1",
    "' OR '1'='1",
    "\"; DELETE FROM executions WHERE \"1\"=\"1",
    "Robert'); DROP TABLE electrodes;--",
    "%' UNION SELECT lease_token FROM experiments --",
    "\\'; SELECT pg_sleep(5); --",
    "<script>alert('x')</script>",
    "ñandú ☃ 中文 'quote' \"dq\" `bt`",
    "0x27; SHUTDOWN; --",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_api(service: Service, *, token: str | None = None) -> Iterator[str]:
    """The service's API served by uvicorn on a free 127.0.0.1 port in a thread; its base URL."""
    import uvicorn

    from .api import create_app

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(service, token=token), host="127.0.0.1",
                                           port=port, log_level="warning", access_log=False))
    # uvicorn installs signal handlers only in the main thread: this one is not
    thread = threading.Thread(target=server.run, name="co2twin-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30.0
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API server did not start within 30 s")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15.0)


@contextmanager
def api_process(url: str, config: ServiceConfig) -> Iterator[str]:
    """The API served by its own process (as ``co2twin serve`` serves it beside its workers), on a
    free 127.0.0.1 port; its base URL. Clients measured from this process then time the server,
    not this process's own threads."""
    import multiprocessing

    import httpx

    from .server import api_main

    port = _free_port()
    process = multiprocessing.get_context("spawn").Process(
        target=api_main, args=(url, config, port), name="co2twin-api")
    process.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120.0
    try:
        while True:
            try:
                if httpx.get(f"{base}/api/health", timeout=5.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or not process.is_alive():
                raise RuntimeError("the API process did not start")
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.join(30.0)
        if process.is_alive():
            process.kill()
            process.join(5.0)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(*, rows: int = 3600, advances: int = 200) -> dict[str, float]:
    """The bench keys ``service_executions_rows_per_s`` and ``api_advance_ms``."""
    import httpx

    with tempfile.TemporaryDirectory(prefix="co2twin-bench-") as tmp:
        service = Service(f"sqlite:///{tmp}/bench.db", ServiceConfig(pace=Pace(None)))
        try:
            service.enqueue({"name": "bench", "overrides": {"duration": float(rows),
                                                            "record_every": 1}})
            worker = service.worker()
            start = time.perf_counter()
            worker.run(drain=True)
            rows_per_s = worker.stats.rows / (time.perf_counter() - start)
            with running_api(service) as base, httpx.Client(base_url=base, timeout=30.0) as client:
                sid = client.post("/api/sessions", json={"scenario": {
                    "name": "bench", "duration": advances + 10, "step": 1.0}}).json()["id"]
                times = []
                for _ in range(advances):
                    t0 = time.perf_counter()
                    client.post(f"/api/sessions/{sid}/advance",
                                json={"u": {"current": 5.0}}).raise_for_status()
                    times.append((time.perf_counter() - t0) * 1000.0)
                client.delete(f"/api/sessions/{sid}")
        finally:
            service.close()
    return {"service_executions_rows_per_s": round(rows_per_s, 1),
            "api_advance_ms": round(statistics.median(times), 3)}


def _clients(base: str, count: int, requests: int, ids: list[int], stop: threading.Event,
             *, sessions: int) -> dict[str, Any]:
    """``count`` concurrent clients, ``requests`` each (a mix of reads; the first ``sessions``
    clients advance a control session instead); latencies in ms, errors counted."""
    import httpx

    latencies: list[float] = []
    advance: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        rng = random.Random(n)
        with httpx.Client(base_url=base, timeout=60.0) as http:
            sid = None
            if n < sessions:
                got = http.post("/api/sessions", json={"scenario": {
                    "name": f"load {n}", "duration": requests + 10, "step": 1.0}})
                sid = got.json().get("id") if got.status_code == 201 else None
            for _ in range(requests):
                if stop.is_set():
                    break
                choice = rng.random()
                if sid is not None:
                    path, method = f"/api/sessions/{sid}/advance", "POST"
                elif choice < 0.4:
                    path, method = "/api/experiments?limit=20", "GET"
                elif choice < 0.8:
                    path, method = f"/api/experiments/{rng.choice(ids)}", "GET"
                else:
                    path, method = f"/api/experiments/{rng.choice(ids)}/results?since=0", "GET"
                t0 = time.perf_counter()
                try:
                    if method == "POST":
                        response = http.post(path, json={"u": {"current": 5.0}})
                    else:
                        response = http.get(path)
                    ok = response.status_code < 500
                    detail = f"{response.status_code} {path}"
                except httpx.HTTPError as exc:
                    ok, detail = False, f"{type(exc).__name__} {path}"
                ms = (time.perf_counter() - t0) * 1000.0
                with lock:
                    (advance if sid is not None else latencies).append(ms)
                    if not ok:
                        errors.append(detail)
            if sid is not None:
                http.delete(f"/api/sessions/{sid}")

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600.0)
    everything = latencies + advance
    return {"clients": count, "requests": len(everything), "errors": len(errors),
            "error_examples": errors[:5],
            "p50_ms": round(_percentile(everything, 0.5), 2),
            "p99_ms": round(_percentile(everything, 0.99), 2),
            "max_ms": round(max(everything, default=float("nan")), 2),
            "reads_p50_ms": round(_percentile(latencies, 0.5), 2),
            "advance_p50_ms": round(_percentile(advance, 0.5), 2)}


def run_load(url: str, *, experiments_count: int = 200, workers: int = 4, kill: bool = True,
             clients: int = 50, requests: int = 20, duration_s: float = 300.0,
             batch_rows: int = 100, lease_s: float = 5.0, timeout_s: float = 1800.0,
             pace: float | None = 100.0, seed: int = 0, fresh: bool = False) -> dict[str, Any]:
    """Queue experiments, run them with ``workers`` worker processes, SIGKILL one of them in the
    middle of an experiment, hammer the API with ``clients`` clients meanwhile; check that every
    experiment completed exactly once with every row, once; return the figures.

    ``pace``: simulated seconds per wall second (paced runs make "mid-run" a window the kill
    can hit; None runs as fast as possible). The database must hold no experiments, or
    ``fresh`` drops the service's tables first.
    """
    from .server import Supervisor

    engine = create_engine(url)
    if fresh:
        downgrade(engine, "base")
    upgrade(engine)
    with engine.connect() as conn:
        if conn.execute(sa.select(sa.func.count()).select_from(experiments)).scalar_one():
            raise Invalid(f"{redacted(engine.url)}: expected a database without experiments for "
                          "the load test (it counts every row), found some; use an empty one")
    config = ServiceConfig(pace=Pace(pace), lease_s=lease_s, batch_rows=batch_rows, poll_s=0.2,
                           flush_s=0.2, limits=Limits(max_sessions=64))
    service = Service(engine, config, migrate=False)
    rows_each = int(duration_s) + 1
    ids = []
    for i in range(experiments_count):
        job = service.enqueue({"name": INJECTIONS[i % len(INJECTIONS)], "overrides": {
            "current": 3.0 + i % _VARIANTS, "duration": duration_s, "record_every": 1}})
        ids.append(job["id"])
    supervisor = Supervisor(engine.url, config, workers, log_level="WARNING", restart=False)
    started = time.monotonic()
    supervisor.start()
    killed: dict[str, Any] = {}
    api: dict[str, Any] = {}
    try:
        with api_process(engine.url.render_as_string(hide_password=False), config) as base:
            load = threading.Thread(target=lambda: api.update(_clients(
                base, clients, requests, ids, threading.Event(),
                sessions=min(8, clients // 5))), daemon=True)
            load.start()
            if kill:
                killed = _kill_mid_run(engine, supervisor, rows_each - batch_rows,
                                       random.Random(seed), started + timeout_s)
            if killed:
                killed["at_s"] = round(killed["at_s"] - started, 2)
            _wait_done(engine, started + timeout_s, supervisor)
            wall = time.monotonic() - started
            load.join(600.0)
    finally:
        supervisor.stop()
    figures = _verify(engine, ids, rows_each, killed)
    service.close()
    return {"database": engine.dialect.name, "experiments": experiments_count,
            "workers": workers, "rows_per_experiment": rows_each, "wall_s": round(wall, 2),
            "experiments_per_s": round(experiments_count / wall, 2),
            "rows_per_s": round(figures["rows_stored"] / wall, 1), "killed": killed,
            **figures, "api": api}


_VARIANTS = 4


def _kill_mid_run(engine: Any, supervisor: Any, below: int, rng: random.Random,
                  deadline: float) -> dict[str, Any]:
    """SIGKILL the worker of a running experiment that has written some rows, not all."""
    e = experiments.c
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            running = conn.execute(sa.select(e.id, e.worker, e.rows_written).where(
                e.status == "running", e.rows_written > 0, e.rows_written < below)).all()
            left = conn.execute(sa.select(sa.func.count()).select_from(experiments).where(
                e.status.in_(("queued", "running")))).scalar_one()
        if not left:
            return {}
        if running:
            victim = rng.choice(running)
            index = int(str(victim.worker).split(":w")[1].split(":")[0])
            process = supervisor.processes[index]
            os.kill(process.pid, signal.SIGKILL)
            return {"worker": victim.worker, "pid": process.pid, "experiment": int(victim.id),
                    "rows_at_kill": int(victim.rows_written), "at_s": time.monotonic()}
        time.sleep(0.01)
    return {}


def _wait_done(engine: Any, deadline: float, supervisor: Any) -> None:
    """Until no experiment is queued or running (or no worker is left to run them)."""
    e = experiments.c
    while time.monotonic() < deadline and any(p.is_alive() for p in supervisor.processes):
        with engine.connect() as conn:
            left = conn.execute(sa.select(sa.func.count()).select_from(experiments).where(
                e.status.in_(("queued", "running")))).scalar_one()
        if not left:
            return
        time.sleep(0.2)


def _verify(engine: Any, ids: list[int], rows_each: int, killed: dict[str, Any]
            ) -> dict[str, Any]:
    """Exactly once: one done event and every row once per experiment; the resumed experiment's
    rows equal an uninterrupted one's; the injected names stored verbatim; tables intact."""
    e, x, ev = experiments.c, executions.c, experiment_events.c
    with engine.connect() as conn:
        statuses: dict[str, int] = dict(conn.execute(sa.select(e.status, sa.func.count())
                                                     .group_by(e.status)).all())
        done: dict[int, int] = dict(conn.execute(
            sa.select(ev.experiment_id, sa.func.count()).where(ev.event == "done")
            .group_by(ev.experiment_id)).all())
        counts: dict[int, int] = dict(conn.execute(sa.select(x.experiment_id, sa.func.count())
                                                   .group_by(x.experiment_id)).all())
        duplicates = conn.execute(sa.select(sa.func.count()).select_from(
            sa.select(x.experiment_id, x.time_s).group_by(x.experiment_id, x.time_s)
            .having(sa.func.count() > 1).subquery())).scalar_one()
        names = dict(conn.execute(sa.select(e.id, e.name)).all())
        resumed = conn.execute(sa.select(sa.func.count()).where(ev.event == "resumed")
                               ).scalar_one()
        identical = None
        if killed:
            victim = killed["experiment"]
            twin = next(i for n, i in enumerate(ids) if i != victim
                        and n % _VARIANTS == ids.index(victim) % _VARIANTS)
            rows = {exp_id: [tuple(r) for r in conn.execute(
                sa.select(x.time_s, x.signals).where(x.experiment_id == exp_id)
                .order_by(x.time_s)).all()] for exp_id in (victim, twin)}
            identical = rows[victim] == rows[twin]
        tables = set(sa.inspect(conn).get_table_names())
    total = sum(counts.values())
    expected = rows_each * len(ids)
    return {
        "statuses": statuses, "resumed": int(resumed),
        "every_experiment_done_exactly_once": all(done.get(i) == 1 for i in ids)
        and statuses.get("done") == len(ids),
        "rows_expected": expected, "rows_stored": total,
        "rows_lost": sum(max(0, rows_each - counts.get(i, 0)) for i in ids),
        "rows_duplicated": int(duplicates),
        "resumed_rows_identical_to_an_uninterrupted_run": identical,
        "injection_names_verbatim": all(names[i] == INJECTIONS[n % len(INJECTIONS)]
                                        for n, i in enumerate(ids)),
        "tables_intact": {"experiments", "executions", "electrodes"} <= tables,
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m co2twin.service.loadtest``: print the load/fault figures (and bench keys)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=None, help="database URL (default: a temporary SQLite)")
    parser.add_argument("--experiments", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=20, help="requests per client")
    parser.add_argument("--duration", type=float, default=300.0, help="simulated s per experiment")
    parser.add_argument("--no-kill", action="store_true")
    parser.add_argument("--bench", action="store_true", help="also print the bench keys")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="co2twin-load-") as tmp:
        url = args.db or f"sqlite:///{tmp}/load.db"
        figures = run_load(url, experiments_count=args.experiments, workers=args.workers,
                           kill=not args.no_kill, clients=args.clients, requests=args.requests,
                           duration_s=args.duration)
    if args.bench:
        figures["bench"] = measure()
    print(json.dumps(figures, indent=1, default=str))
    ok = (figures["every_experiment_done_exactly_once"] and not figures["rows_duplicated"]
          and not figures["rows_lost"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

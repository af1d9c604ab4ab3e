"""The worker: base experiment + overrides or a full scenario become the run; rows are written
in batches, paced or not; a stop (SIGTERM) writes the batch and gives the experiment back, and
another worker resumes it with identical rows; failures are recorded and the queue goes on; a
lost database connection is retried."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time

import pytest
import sqlalchemy as sa

from co2twin.service import Pace, Service, ServiceConfig, db, queue
from co2twin.service.errors import Unavailable


def _rows(svc: Service, exp_id: int) -> list[tuple[float, str]]:
    with svc.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            sa.select(db.executions.c.time_s, db.executions.c.signals)
            .where(db.executions.c.experiment_id == exp_id).order_by(db.executions.c.time_s))]


def _wait(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.02)


def test_a_base_experiment_with_overrides_becomes_the_run(service):
    """The electrode's area, the base experiment's flows and the overrides' current drive the
    plant; what of VALCO2T's columns has no counterpart is noted, not silently dropped."""
    electrode = service.add_electrode(name="Bi GDE", area_cm2=10.0)
    base = service.add_base_experiment(electrode_id=electrode, name="pilot", current_a=2.0,
                                       co2_flow=80.0, co2_concentration=60.0, co2_humidity=5.0)
    job = service.enqueue({"name": "run", "base_experiment": base,
                           "overrides": {"current": 2.5, "duration": 120, "record_every": 10}})
    assert job["rows"] == 13 and any("co2_humidity" in n for n in job["notes"])
    stats = service.run_worker()
    assert stats.done == 1
    info = service.experiment(job["id"])
    assert info["status"] == "done" and info["rows_written"] == 13
    assert info["units"]["reactor.current_density"] == "mA/cm2"
    assert info["kpis"]["mean_current_A"] == pytest.approx(2.5, rel=0.05)
    last = service.results(job["id"]).iloc[-1]
    assert last["power.current"] == pytest.approx(2.5)
    assert last["reactor.current_density"] == pytest.approx(250.0)
    assert last["feed.gas_flow"] == pytest.approx(80.0, rel=1e-3)
    assert last["feed.co2_fraction"] == pytest.approx(60.0, rel=1e-3)
    assert any("co2_humidity" in n for n in info["notes"])


def test_a_bad_row_fails_with_its_message_and_the_queue_goes_on(service):
    """A queued scenario that fails validation is marked failed with the problem; the next
    experiment runs."""
    bad = queue.enqueue(service.engine, queue.ExperimentRequest(
        name="bad", scenario_yaml="name: b\nduration: 60\nstep: 1\ninputs: {current: -3}\n"))
    good = service.enqueue({"name": "good", "scenario_yaml":
                            "name: g\nduration: 30\nstep: 1\ninputs: {current: 4}\n"})["id"]
    stats = service.run_worker()
    assert (stats.failed, stats.done) == (1, 1)
    failed = service.experiment(bad)
    assert failed["status"] == "failed"
    assert "inputs.current.constant: expected a value in [0, 1000] A, found -3" in failed["error"]
    assert service.experiment(good)["status"] == "done"
    assert len(_rows(service, good)) == 31


def test_a_stopped_worker_writes_its_batch_and_another_resumes_with_identical_rows(db_url):
    """stop() mid-run: the rows computed so far are stored, the experiment goes back to the
    queue, a second worker finishes it; its rows equal those of an uninterrupted run."""
    config = ServiceConfig(pace=Pace(200.0), flush_s=0.05, batch_rows=1000)
    with Service(db_url, config) as svc:
        request = {"name": "r", "overrides": {"current": 4.0, "duration": 300, "record_every": 1}}
        first = svc.enqueue(request)["id"]
        worker = svc.worker(name="first")
        thread = threading.Thread(target=worker.run, kwargs={"drain": True})
        thread.start()
        _wait(lambda: svc.experiment(first)["rows_written"] > 20)
        worker.stop()
        thread.join(60)
        info = svc.experiment(first)
        assert info["status"] == "queued" and 20 < info["rows_written"] < 301
        assert len(_rows(svc, first)) == info["rows_written"]
        assert worker.stats.released == 1
        svc.worker(name="second", pace=Pace(None)).run(drain=True)
        reference = svc.enqueue(request)["id"]
        svc.worker(name="reference", pace=Pace(None)).run(drain=True)
        assert svc.experiment(first)["status"] == "done"
        assert _rows(svc, first) == _rows(svc, reference)
        events = [e["event"] for e in svc.events(first)]
        assert events == ["queued", "claimed", "released", "resumed", "done"]


def test_paced_rows_arrive_as_the_run_goes(service):
    """At 10x real time the rows are written a few at a time (live plots), not at the end."""
    service.config = service.config.replace(flush_s=0.05)
    exp_id = service.enqueue({"name": "paced", "pace": "10x",
                              "overrides": {"duration": 20, "record_every": 1}})["id"]
    worker = service.worker()
    thread = threading.Thread(target=worker.run, kwargs={"drain": True})
    thread.start()
    seen = set()
    while thread.is_alive():
        seen.add(service.experiment(exp_id)["rows_written"])
        time.sleep(0.02)
    thread.join()
    assert service.experiment(exp_id)["rows_written"] == 21
    assert len({n for n in seen if 0 < n < 21}) >= 3


def test_cancel_stops_a_running_experiment(service):
    """A cancel reaches the worker at its next batch; the experiment ends cancelled."""
    service.config = service.config.replace(flush_s=0.05)
    exp_id = service.enqueue({"name": "long", "pace": "20x",
                              "overrides": {"duration": 600, "record_every": 1}})["id"]
    worker = service.worker()
    thread = threading.Thread(target=worker.run, kwargs={"drain": True})
    thread.start()
    _wait(lambda: service.experiment(exp_id)["rows_written"] > 0)
    assert service.cancel(exp_id)["status"] == "running"
    thread.join(60)
    info = service.experiment(exp_id)
    assert info["status"] == "cancelled" and info["rows_written"] < 601
    assert worker.stats.cancelled == 1


def test_sigterm_stops_a_worker_process_cleanly(sqlite_url):
    """SIGTERM to a worker process: it writes its batch, releases its experiment, exits 0."""
    from co2twin.service.server import Supervisor

    config = ServiceConfig(pace=Pace(20.0), flush_s=0.05, poll_s=0.1)
    with Service(sqlite_url, config) as svc:
        exp_id = svc.enqueue({"name": "s", "overrides": {"duration": 600, "record_every": 1}})["id"]
        supervisor = Supervisor(sqlite_url, config, 1, restart=False, log_level="WARNING")
        supervisor.start()
        try:
            _wait(lambda: svc.experiment(exp_id)["rows_written"] > 5)
            process = supervisor.processes[0]
            os.kill(process.pid, signal.SIGTERM)
            process.join(60)
            assert process.exitcode == 0
        finally:
            supervisor.stop()
        info = svc.experiment(exp_id)
        assert info["status"] == "queued"
        assert info["rows_written"] == len(_rows(svc, exp_id)) > 5
        assert [e["event"] for e in svc.events(exp_id)][-1] == "released"


def test_transactions_retry_transient_errors_with_backoff(sqlite_url):
    """A transient error (a lost connection) reruns the whole transaction; a constraint error
    does not; an outage longer than give_up_s raises Unavailable."""
    engine = db.create_engine(sqlite_url)
    calls = []

    def flaky(conn: sa.Connection) -> int:
        calls.append(1)
        if len(calls) < 3:
            raise sa.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection"))
        return int(conn.execute(sa.text("SELECT 41 + 1")).scalar_one())

    assert db.transaction(engine, flaky) == 42 and len(calls) == 3

    def broken(conn: sa.Connection) -> None:
        calls.append(1)
        raise sa.exc.IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed"))

    calls.clear()
    with pytest.raises(sa.exc.IntegrityError):
        db.transaction(engine, broken)
    assert len(calls) == 1

    def down(conn: sa.Connection) -> None:
        raise sa.exc.OperationalError("SELECT 1", {}, Exception("database is locked"))

    with pytest.raises(Unavailable, match="unreachable"):
        db.transaction(engine, down, give_up_s=0.3)
    engine.dispose()


@pytest.mark.parametrize("kind", ["mariadb", "postgresql"])
def test_a_run_survives_its_connections_being_killed(kind, request):
    """The server kills every connection of the service's user, again and again, during a run:
    the worker reconnects (pre-ping, retries) and the experiment completes with every row once."""
    from .conftest import fresh_database

    server = request.getfixturevalue("mariadb_server" if kind == "mariadb" else "postgres_server")
    url = fresh_database(server)
    config = ServiceConfig(pace=Pace(60.0), flush_s=0.05, db_outage_s=60.0)
    admin = sa.create_engine(server.admin_url, isolation_level="AUTOCOMMIT")
    with Service(url, config) as svc:
        exp_id = svc.enqueue({"name": "k", "overrides": {"duration": 150, "record_every": 1}})["id"]
        worker = svc.worker()
        errors: list[BaseException] = []

        def run() -> None:
            try:
                worker.run(drain=True)
            except BaseException as exc:  # noqa: BLE001 - the test reports it
                errors.append(exc)

        thread = threading.Thread(target=run)
        thread.start()
        kills = 0
        while thread.is_alive() and kills < 40:
            with admin.connect() as conn:
                if kind == "mariadb":
                    ids = conn.exec_driver_sql("SELECT id FROM information_schema.processlist "
                                               "WHERE user = 'co2twin'").scalars().all()
                    for pid in ids:
                        with contextlib.suppress(sa.exc.DBAPIError):  # it may have ended
                            conn.exec_driver_sql(f"KILL {int(pid)}")
                else:
                    ids = conn.exec_driver_sql(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                        "usename = 'co2twin' AND pid <> pg_backend_pid()").scalars().all()
            kills += bool(ids)
            time.sleep(0.05)
        thread.join(120)
        assert not errors, errors  # the worker survived every kill, reads included
        assert kills > 5
        info = svc.experiment(exp_id)
        assert info["status"] == "done", info
        rows = _rows(svc, exp_id)
        assert [t for t, _ in rows] == [float(t) for t in range(151)]
        assert json.loads(rows[-1][1])["power.current"] == pytest.approx(5.0)
    admin.dispose()

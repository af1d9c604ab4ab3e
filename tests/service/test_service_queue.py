"""The queue: exclusive claims, leases that expire and fence the worker that lost them,
idempotent batches, release, cancel, abandonment, priorities; on SQLite, MariaDB, PostgreSQL.

    enqueue ──▶ queued ──claim──▶ running ──write_batch*──▶ complete ──▶ done
                  ▲                 │ lease expires: another claim takes over (new token)
                  └──── release ────┘ (SIGTERM)
"""
from __future__ import annotations

import threading
from datetime import datetime

import pytest
import sqlalchemy as sa

from co2twin.service import db, queue
from co2twin.service.errors import Conflict
from co2twin.service.experiment import ExperimentRequest


def _engine(url: str) -> sa.Engine:
    engine = db.create_engine(url)
    db.upgrade(engine)
    return engine


def _rows(experiment_id: int, times: list[float]) -> list[dict[str, object]]:
    out = []
    for t in times:
        row: dict[str, object] = dict.fromkeys(db.KEY_SIGNALS)
        row.update(experiment_id=experiment_id, time_s=t, datetime=datetime(2026, 1, 1),
                   signals="{}", cell_voltage_v=3.0 + t)
        out.append(row)
    return out


def _count(engine: sa.Engine, experiment_id: int) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(db.executions).where(
            db.executions.c.experiment_id == experiment_id)).scalar_one())


def test_claims_are_exclusive(db_url):
    """Six workers claiming at once take each of 30 experiments exactly once."""
    engine = _engine(db_url)
    ids = [queue.enqueue(engine, ExperimentRequest(name=f"e{i}")) for i in range(30)]
    taken: list[int] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        while (got := queue.claim(engine, f"w{n}")) is not None:
            with lock:
                taken.append(got.id)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(taken) == ids
    engine.dispose()


def test_an_expired_lease_is_taken_over_and_fences_the_old_worker(db_url):
    """A lease that expired lets another worker resume the experiment; the first worker's
    writes then change nothing (its token no longer matches), and only the new one completes."""
    engine = _engine(db_url)
    exp_id = queue.enqueue(engine, ExperimentRequest(name="x"))
    first = queue.claim(engine, "old", lease_s=-1.0)  # expired at once
    assert first is not None and first.attempt == 1 and not first.resumed
    assert queue.write_batch(engine, first, _rows(exp_id, [0.0, 1.0]), progress_s=1.0,
                             lease_s=-1.0) == "ok"
    second = queue.claim(engine, "new", lease_s=60.0)
    assert second is not None and second.id == exp_id and second.resumed
    with engine.connect() as conn:
        assert queue.last_time(conn, exp_id) == 1.0
    assert queue.write_batch(engine, first, _rows(exp_id, [2.0]), progress_s=2.0,
                             lease_s=60.0) == "lost"
    assert _count(engine, exp_id) == 2
    assert queue.write_batch(engine, second, _rows(exp_id, [2.0, 3.0]), progress_s=3.0,
                             lease_s=60.0) == "ok"
    assert not queue.complete(engine, first, {})
    assert queue.complete(engine, second, {"k": 1.0})
    assert queue.complete(engine, second, {"k": 1.0})  # a retry finds its own work done
    assert queue.claim(engine, "third") is None
    events = [e["event"] for e in queue.events(engine, exp_id)]
    assert events == ["queued", "claimed", "resumed", "done"]
    assert _count(engine, exp_id) == 4
    engine.dispose()


def test_a_batch_written_twice_is_stored_once(db_url):
    """write_batch skips rows already stored (a retry after a lost acknowledgement)."""
    engine = _engine(db_url)
    exp_id = queue.enqueue(engine, ExperimentRequest(name="x"))
    held = queue.claim(engine, "w")
    assert held is not None
    for _ in range(2):
        assert queue.write_batch(engine, held, _rows(exp_id, [0.0, 1.0, 2.0]), progress_s=2.0,
                                 lease_s=60.0) == "ok"
    assert _count(engine, exp_id) == 3
    assert queue.get(engine, exp_id)["rows_written"] == 3
    engine.dispose()


def test_the_unique_key_refuses_a_duplicate_row(db_url):
    """Even a write that bypasses the queue cannot store one time of an experiment twice."""
    engine = _engine(db_url)
    exp_id = queue.enqueue(engine, ExperimentRequest(name="x"))
    with engine.begin() as conn:
        conn.execute(sa.insert(db.executions), _rows(exp_id, [5.0]))
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sa.insert(db.executions), _rows(exp_id, [5.0]))
    engine.dispose()


def test_release_cancel_and_abandon(sqlite_url):
    """release puts a running experiment back; cancel stops a queued one at once and a running
    one at its next batch; an experiment claimed more than max_attempts times is failed."""
    engine = _engine(sqlite_url)
    a = queue.enqueue(engine, ExperimentRequest(name="a"))
    held = queue.claim(engine, "w")
    assert held is not None and held.id == a
    assert queue.release(engine, held)
    assert queue.get(engine, a)["status"] == "queued"
    held = queue.claim(engine, "w")
    assert held is not None and held.attempt == 2
    assert queue.cancel(engine, a) == "running"
    assert queue.write_batch(engine, held, [], progress_s=0.0, lease_s=60.0) == "cancelled"
    assert queue.mark_cancelled(engine, held)
    assert queue.get(engine, a)["status"] == "cancelled"
    with pytest.raises(Conflict, match="found it cancelled"):
        queue.cancel(engine, a)
    b = queue.enqueue(engine, ExperimentRequest(name="b"))
    assert queue.cancel(engine, b) == "cancelled"
    c = queue.enqueue(engine, ExperimentRequest(name="c"))
    for attempt in (1, 2):
        held = queue.claim(engine, "w", lease_s=-1.0, max_attempts=2)
        assert held is not None and held.id == c and held.attempt == attempt
    assert queue.claim(engine, "w", max_attempts=2) is None
    row = queue.get(engine, c)
    assert row["status"] == "failed" and "abandoned after 2 attempts" in row["error"]
    engine.dispose()


def test_priority_then_order_of_arrival(sqlite_url):
    """Higher priority first; among equals, the oldest first."""
    engine = _engine(sqlite_url)
    low = queue.enqueue(engine, ExperimentRequest(name="low", priority=-1))
    first = queue.enqueue(engine, ExperimentRequest(name="first"))
    second = queue.enqueue(engine, ExperimentRequest(name="second"))
    urgent = queue.enqueue(engine, ExperimentRequest(name="urgent", priority=5))
    order = []
    while (got := queue.claim(engine, "w")) is not None:
        order.append(got.id)
    assert order == [urgent, first, second, low]
    engine.dispose()


def test_transient_errors_are_told_apart():
    """A locked SQLite file or a lost connection is retried; a constraint violation is not."""
    locked = sa.exc.OperationalError("UPDATE", {}, Exception("database is locked"))
    assert db.is_transient(locked)
    gone = sa.exc.OperationalError("SELECT", {}, Exception(2006, "MySQL server has gone away"))
    gone.orig.args = (2006, "MySQL server has gone away")
    assert db.is_transient(gone)
    assert not db.is_transient(sa.exc.IntegrityError("INSERT", {}, Exception("UNIQUE failed")))
    assert not db.is_transient(ValueError("x"))


def test_the_claim_uses_skip_locked_where_the_server_has_it(db_url):
    """MariaDB and PostgreSQL claim with SELECT ... FOR UPDATE SKIP LOCKED; SQLite with one
    UPDATE ... WHERE id = (SELECT ...) RETURNING statement."""
    engine = _engine(db_url)
    queue.enqueue(engine, ExperimentRequest(name="x"))
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute",
                    lambda conn, cursor, sql, *args: statements.append(" ".join(sql.split())))
    assert queue.claim(engine, "w") is not None
    claim_sql = " | ".join(s for s in statements if "experiments" in s)
    if engine.dialect.name == "sqlite":
        assert "UPDATE experiments SET" in claim_sql and "WHERE experiments.id = (SELECT" in \
            claim_sql and "RETURNING" in claim_sql
    else:
        assert db.supports_skip_locked(engine)
        assert "FOR UPDATE SKIP LOCKED" in claim_sql
    engine.dispose()

"""The experiment queue: enqueue, claim with a lease, write fenced batches, complete.

Claiming is one transaction. On PostgreSQL, MySQL 8 and MariaDB ≥ 10.6 it is
``SELECT ... FOR UPDATE SKIP LOCKED`` then an ``UPDATE`` of the row found (workers never wait
for each other, never take the same row); on SQLite, whose writers are serialised anyway, a
single ``UPDATE ... WHERE id = (SELECT ...) RETURNING`` (the statement holds the write lock
from the sub-select to the update, so two workers cannot both take a row).

A claim gives the worker a lease (``lease_until`` on the database clock) and a fresh
``lease_token``. Every later write of that worker is fenced by the token: it updates the
experiment row only ``WHERE lease_token = :token``, in the same transaction as the rows it
inserts, and stops if no row matched. A worker that stopped writing (killed, frozen, cut off)
lets its lease expire; the next claim takes the experiment over with a new token, so the old
worker, should it wake up, can write nothing more. The new worker resumes after the last row
stored (the run is deterministic: same scenario and seed, same rows), and the unique key on
(experiment, time) guards the rest: no row is lost, none is written twice.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from collections.abc import Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .db import (
    dialect_name,
    epoch_now,
    executions,
    experiment_events,
    experiments,
    supports_skip_locked,
    transaction,
)
from .errors import Conflict, NotFound
from .experiment import ExperimentRequest

__all__ = ["Claim", "enqueue", "claim", "write_batch", "complete", "fail", "release",
           "mark_cancelled", "cancel", "get", "listing", "events", "last_time", "utcnow",
           "enqueue_in"]


def utcnow() -> datetime:
    """Wall-clock time, UTC, naive (as the tables store it)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass(frozen=True)
class Claim:
    """An experiment a worker holds: its row as claimed, and the token that fences its writes."""

    id: int
    token: str
    worker: str
    attempt: int
    row: Mapping[str, Any]

    @property
    def resumed(self) -> bool:
        """True when an earlier claim ran (part of) this experiment."""
        return self.attempt > 1


def _event(conn: Connection, experiment_id: int, event: str, worker: str | None = None,
           attempt: int | None = None, detail: str | None = None) -> None:
    conn.execute(sa.insert(experiment_events).values(
        experiment_id=experiment_id, at=utcnow(), event=event, worker=worker, attempt=attempt,
        detail=detail))


def enqueue_in(conn: Connection, request: ExperimentRequest, *, submitted_by: str = "python",
               valco2t_dt_id: int | None = None) -> int:
    """Insert a queued experiment using ``conn`` (the caller's transaction); its id."""
    result = conn.execute(sa.insert(experiments).values(
        name=request.name, base_experiment_id=request.base_experiment,
        request=json.dumps(request.stored()), scenario_yaml=request.full_scenario,
        submitted_by=submitted_by, valco2t_dt_id=valco2t_dt_id, status="queued",
        priority=request.priority, submitted_at=utcnow(), attempts=0, cancel_requested=False,
        progress_s=0.0, rows_written=0))
    key = result.inserted_primary_key
    assert key is not None
    new_id = int(key[0])
    _event(conn, new_id, "queued", detail=submitted_by)
    return new_id


def enqueue(engine: Engine, request: ExperimentRequest, *, submitted_by: str = "python") -> int:
    """Queue an experiment; its id. (Validation is the caller's: see Service.enqueue.)"""
    return transaction(engine, lambda conn: enqueue_in(conn, request, submitted_by=submitted_by))


def _claimable() -> Any:
    e = experiments.c
    return sa.or_(e.status == "queued",
                  sa.and_(e.status == "running", e.lease_until < epoch_now()))


def _claim_values(worker: str, token: str, lease_s: float) -> dict[str, Any]:
    e = experiments.c
    now = utcnow()
    return dict(status="running", worker=worker, lease_token=token,
                lease_until=epoch_now() + lease_s, heartbeat_at=epoch_now(),
                attempts=e.attempts + 1, started_at=sa.func.coalesce(e.started_at, now),
                origin=sa.func.coalesce(e.origin, now))


def _take(conn: Connection, worker: str, token: str, lease_s: float) -> int | None:
    """Claim the next experiment in this transaction; its id, or None when the queue is empty."""
    e = experiments.c
    order = (e.priority.desc(), e.id)
    if dialect_name(conn) == "sqlite":
        pick = sa.select(e.id).where(_claimable()).order_by(*order).limit(1).scalar_subquery()
        row = conn.execute(sa.update(experiments).where(e.id == pick)
                           .values(**_claim_values(worker, token, lease_s))
                           .returning(e.id)).first()
        return None if row is None else int(row[0])
    select = sa.select(e.id).where(_claimable()).order_by(*order).limit(1)
    select = select.with_for_update(skip_locked=supports_skip_locked(conn))
    found = conn.execute(select).first()
    if found is None:
        return None
    conn.execute(sa.update(experiments).where(e.id == found[0])
                 .values(**_claim_values(worker, token, lease_s)))
    return int(found[0])


def claim(engine: Engine, worker: str, *, lease_s: float = 30.0, max_attempts: int = 3,
          give_up_s: float = 300.0) -> Claim | None:
    """Take the next queued experiment (or one whose lease expired); None when there is none.

    An experiment claimed more than ``max_attempts`` times (its workers kept dying) is marked
    failed instead, and the next one is tried.
    """
    def work(conn: Connection) -> Claim | None | str:
        token = uuid.uuid4().hex
        taken = _take(conn, worker, token, lease_s)
        if taken is None:
            return None
        row = conn.execute(sa.select(experiments).where(experiments.c.id == taken)).mappings().one()
        attempt = int(row["attempts"])
        if attempt > max_attempts:
            conn.execute(sa.update(experiments).where(experiments.c.id == taken).values(
                status="failed", finished_at=utcnow(), lease_until=None,
                error=f"abandoned after {max_attempts} attempts: the workers running it stopped "
                      "without finishing (killed, or lost the database)"))
            _event(conn, taken, "abandoned", worker, attempt)
            return "again"
        _event(conn, taken, "resumed" if attempt > 1 else "claimed", worker, attempt)
        return Claim(taken, token, worker, attempt, dict(row))

    while True:
        got = transaction(engine, work, give_up_s=give_up_s)
        if got != "again":
            return got if isinstance(got, Claim) else None


def _fenced(claim: Claim) -> Any:
    e = experiments.c
    return sa.and_(e.id == claim.id, e.lease_token == claim.token, e.status == "running")


def last_time(conn: Connection, experiment_id: int) -> float | None:
    """Time of the last row stored for an experiment (None: none yet)."""
    return conn.execute(sa.select(sa.func.max(executions.c.time_s))
                        .where(executions.c.experiment_id == experiment_id)).scalar()


def write_batch(engine: Engine, claim: Claim, rows: Sequence[Mapping[str, Any]], *,
                progress_s: float, lease_s: float, meta: Mapping[str, Any] | None = None,
                give_up_s: float = 300.0) -> str:
    """Store rows and renew the lease, in one transaction fenced by the claim's token.

    Returns ``ok``, ``lost`` (another worker holds the experiment now: nothing was written) or
    ``cancelled`` (a cancel was asked: nothing was written). Rows already stored (a retried
    batch whose commit did happen) are skipped, so the call is idempotent.
    """
    e = experiments.c

    def work(conn: Connection) -> str:
        values: dict[str, Any] = dict(lease_until=epoch_now() + lease_s, heartbeat_at=epoch_now(),
                                      progress_s=progress_s)
        values.update(meta or {})
        done = conn.execute(sa.update(experiments)
                            .where(_fenced(claim), e.cancel_requested == sa.false())
                            .values(**values))
        if done.rowcount != 1:
            state = conn.execute(sa.select(e.lease_token, e.cancel_requested, e.status)
                                 .where(e.id == claim.id)).first()
            if state is not None and state.lease_token == claim.token and state.cancel_requested:
                return "cancelled"
            return "lost"
        if rows:
            first = min(float(r["time_s"]) for r in rows)
            stored = set(conn.execute(sa.select(executions.c.time_s).where(
                executions.c.experiment_id == claim.id, executions.c.time_s >= first)).scalars())
            new = [dict(r) for r in rows if float(r["time_s"]) not in stored]
            if new:
                conn.execute(sa.insert(executions), new)
                conn.execute(sa.update(experiments).where(e.id == claim.id)
                             .values(rows_written=e.rows_written + len(new)))
        return "ok"

    return transaction(engine, work, give_up_s=give_up_s)


def _finish(engine: Engine, claim: Claim, status: str, event: str, give_up_s: float,
            **values: Any) -> bool:
    e = experiments.c

    def work(conn: Connection) -> bool:
        done = conn.execute(sa.update(experiments).where(_fenced(claim)).values(
            status=status, finished_at=utcnow(), lease_until=None, **values))
        if done.rowcount == 1:
            _event(conn, claim.id, event, claim.worker, claim.attempt,
                   values.get("error"))
            return True
        # a retry after a commit whose acknowledgement was lost finds its own work done
        state = conn.execute(sa.select(e.status, e.lease_token).where(e.id == claim.id)).first()
        return state is not None and state.status == status and state.lease_token == claim.token

    return transaction(engine, work, give_up_s=give_up_s)


def complete(engine: Engine, claim: Claim, kpis: Mapping[str, Any], *,
             notes: Sequence[str] | None = None, give_up_s: float = 300.0) -> bool:
    """Mark the experiment done with its KPIs (and notes); False if the claim was lost."""
    values: dict[str, Any] = {"kpis": json.dumps(kpis, allow_nan=False)}
    if notes is not None:
        values["notes"] = json.dumps(list(notes))
    return _finish(engine, claim, "done", "done", give_up_s, **values)


def fail(engine: Engine, claim: Claim, message: str, *, give_up_s: float = 300.0) -> bool:
    """Mark the experiment failed with ``message``; False if the claim was lost meanwhile."""
    return _finish(engine, claim, "failed", "failed", give_up_s, error=message[:60_000])


def mark_cancelled(engine: Engine, claim: Claim, *, give_up_s: float = 300.0) -> bool:
    """Mark a running experiment cancelled (its worker saw the request)."""
    return _finish(engine, claim, "cancelled", "cancelled", give_up_s,
                   error="cancelled on request")


def release(engine: Engine, claim: Claim, *, give_up_s: float = 300.0) -> bool:
    """Give the experiment back to the queue (the worker is stopping): another resumes it."""
    def work(conn: Connection) -> bool:
        done = conn.execute(sa.update(experiments).where(_fenced(claim)).values(
            status="queued", worker=None, lease_token=None, lease_until=None))
        if done.rowcount == 1:
            _event(conn, claim.id, "released", claim.worker, claim.attempt)
        return bool(done.rowcount == 1)

    return transaction(engine, work, give_up_s=give_up_s)


def cancel(engine: Engine, experiment_id: int) -> str:
    """Cancel a queued experiment at once, or ask a running one's worker to stop; the status."""
    e = experiments.c

    def work(conn: Connection) -> str:
        row = conn.execute(sa.select(e.status).where(e.id == experiment_id)).first()
        if row is None:
            raise NotFound(f"experiment {experiment_id}: no such experiment")
        if row.status == "queued":
            conn.execute(sa.update(experiments).where(e.id == experiment_id, e.status == "queued")
                         .values(status="cancelled", finished_at=utcnow(),
                                 error="cancelled on request"))
            _event(conn, experiment_id, "cancelled")
            return "cancelled"
        if row.status == "running":
            conn.execute(sa.update(experiments).where(e.id == experiment_id)
                         .values(cancel_requested=True))
            return "running"
        raise Conflict(f"experiment {experiment_id}: expected a queued or running experiment, "
                       f"found it {row.status}")

    return transaction(engine, work)


_PUBLIC = ("id", "name", "base_experiment_id", "submitted_by", "valco2t_dt_id", "status",
           "priority", "submitted_at", "started_at", "finished_at", "origin", "worker",
           "attempts", "cancel_requested", "duration_s", "progress_s", "rows_written", "error")
_JSON = ("kpis", "units", "limits", "notes", "request")


def _public(row: Any, *, full: bool) -> dict[str, Any]:
    out = {k: row[k] for k in _PUBLIC}
    for k in ("submitted_at", "started_at", "finished_at", "origin"):
        out[k] = out[k].isoformat() + "Z" if out[k] is not None else None
    duration = row["duration_s"]
    out["progress"] = (1.0 if row["status"] == "done" else
                       min(1.0, float(row["progress_s"]) / duration) if duration else 0.0)
    if full:
        for k in _JSON:
            out[k] = json.loads(row[k]) if row[k] else None
        out["scenario_yaml"] = row["scenario_yaml"]
    return out


def get(engine: Engine, experiment_id: int) -> dict[str, Any]:
    """One experiment: status, progress, KPIs, units, limits, notes, error."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(experiments).where(experiments.c.id == experiment_id)
                           ).mappings().first()
    if row is None:
        raise NotFound(f"experiment {experiment_id}: no such experiment")
    return _public(row, full=True)


def listing(engine: Engine, *, status: str | None = None, limit: int = 100, offset: int = 0
            ) -> list[dict[str, Any]]:
    """Experiments, newest first (optionally of one status)."""
    e = experiments.c
    query = sa.select(experiments).order_by(e.id.desc()).limit(limit).offset(offset)
    if status is not None:
        query = query.where(e.status == status)
    with engine.connect() as conn:
        return [_public(r, full=False) for r in conn.execute(query).mappings()]


def events(engine: Engine, experiment_id: int) -> list[dict[str, Any]]:
    """The audit trail of an experiment, in order."""
    ev = experiment_events.c
    with engine.connect() as conn:
        rows = conn.execute(sa.select(experiment_events).where(ev.experiment_id == experiment_id)
                            .order_by(ev.id)).mappings().all()
    return [{**dict(r), "at": r["at"].isoformat() + "Z"} for r in rows]

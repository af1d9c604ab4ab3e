"""The worker: claims queued experiments, runs them, writes their executions in batches.

One worker runs one experiment at a time; run several (processes, or machines sharing the
database) for throughput: the queue's claim never gives one experiment to two live workers.

* **Pace:** ``fast`` runs as fast as the twin computes; ``realtime`` waits so that one
  simulated second takes one wall second (the VALCO2T service's seconds between iterations);
  ``10x`` ten simulated seconds per wall second.
* **Batches:** rows are written ``batch_rows`` at a time, or at least every ``flush_s`` wall
  seconds (so a paced run is plotted live), each batch in one transaction that also renews the
  lease (:func:`co2twin.service.queue.write_batch`).
* **Resume:** an experiment taken over from a worker that died is run again from its start
  (deterministic: same scenario and seed, same values) without writing, up to the last row
  stored, then continued; no row is lost or written twice.
* **Stop:** :meth:`Worker.stop` (SIGTERM, SIGINT in a worker process) finishes and writes the
  current batch, gives the experiment back to the queue and returns.
* **Failures:** an experiment that fails validation or the run is marked failed with its
  message and the worker goes on; a lost database connection is retried with backoff
  (:func:`co2twin.service.db.transaction`).
"""
from __future__ import annotations

import json
import logging
import math
import multiprocessing
import multiprocessing.connection
import os
import re
import signal
import socket
import threading
import time
import warnings
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.engine import Engine

from co2twin.kpi import kpis as run_kpis
from co2twin.scenario import build, operating_limits
from co2twin.strict_json import json_safe
from cosim.errors import CosimError
from models.surrogate import EnvelopeWarning

from .config import Pace, ServiceConfig
from .db import KEY_SIGNALS, create_engine, require_current, transaction
from .errors import ServiceError
from .experiment import Prepared, parse_request, resolve
from .queue import Claim, claim, complete, fail, last_time, mark_cancelled, release, write_batch
from .untrusted import sanitise
from .valco2t import intake

__all__ = ["Worker", "WorkerStats", "worker_main", "json_safe"]

log = logging.getLogger("co2twin.service")


@dataclass
class WorkerStats:
    """What a worker did (for tests and the load figures)."""

    claimed: int = 0
    done: int = 0
    failed: int = 0
    lost: int = 0
    released: int = 0
    cancelled: int = 0
    rows: int = 0
    retries: int = 0


def _envelope_note(caught: warnings.WarningMessage) -> str:
    """An envelope warning as a note, without the server's folders."""
    text = str(caught.message)
    return "model envelope: " + re.sub(r"(/[^\s():]+/)([^/\s():]+\.keras)", r"\2", text)


class _Batches:
    """The rows of one experiment waiting to be written, and how the last write went."""

    def __init__(self, worker: Worker, held: Claim, meta: dict[str, Any]) -> None:
        self.worker = worker
        self.held = held
        self.meta: dict[str, Any] | None = meta  # written with the first batch only
        self.rows: list[dict[str, Any]] = []
        self.progress = 0.0
        self.outcome = "ok"
        self.last = time.monotonic()

    def since_flush(self) -> float:
        return time.monotonic() - self.last

    def flush(self) -> bool:
        """Write the rows and renew the lease; False when the experiment was lost or cancelled."""
        cfg = self.worker.config
        self.outcome = write_batch(self.worker.engine, self.held, self.rows,
                                   progress_s=self.progress, lease_s=cfg.lease_s, meta=self.meta,
                                   give_up_s=cfg.db_outage_s)
        if self.outcome == "ok":
            self.worker.stats.rows += len(self.rows)
            self.meta = None
        self.rows.clear()
        self.last = time.monotonic()
        return self.outcome == "ok"


class Worker:
    """Claims and runs experiments until stopped (or the queue is empty, with ``drain``)."""

    def __init__(self, engine: Engine, config: ServiceConfig | None = None, *,
                 name: str | None = None, pace: Pace | None = None) -> None:
        self.engine = engine
        self.config = config or ServiceConfig()
        if pace is not None:
            self.config = self.config.replace(pace=pace)
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{id(self) % 10000}"
        self.stats = WorkerStats()
        self._stop = threading.Event()
        self.current: int | None = None  # experiment being run (tests read it)

    # -- control ---------------------------------------------------------------------------
    def stop(self) -> None:
        """Finish the current batch, give the experiment back, and return from :meth:`run`."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self, *, drain: bool = False, max_experiments: int | None = None) -> WorkerStats:
        """Poll the queue and run what it holds. ``drain``: return when it is empty."""
        count = 0
        while not self._stop.is_set():
            if max_experiments is not None and count >= max_experiments:
                break
            if self.run_one():
                count += 1
                continue
            if drain:
                break
            self._stop.wait(self.config.poll_s)
        return self.stats

    def run_one(self) -> bool:
        """Take in VALCO2T's new rows, claim one experiment and run it; False if none was queued."""
        cfg = self.config
        intake(self.engine, give_up_s=cfg.db_outage_s)
        got = claim(self.engine, self.name, lease_s=cfg.lease_s, max_attempts=cfg.max_attempts,
                    give_up_s=cfg.db_outage_s)
        if got is None:
            return False
        self.stats.claimed += 1
        self.current = got.id
        try:
            self._execute(got)
        finally:
            self.current = None
        return True

    # -- one experiment ----------------------------------------------------------------------
    def _fail(self, held: Claim, message: str) -> None:
        log.info("experiment %d failed: %s", held.id, message.splitlines()[0][:200])
        if fail(self.engine, held, message, give_up_s=self.config.db_outage_s):
            self.stats.failed += 1

    def _execute(self, held: Claim) -> None:
        try:
            row = held.row
            prepared = resolve(self.engine, parse_request(json.loads(row["request"])),
                               row["scenario_yaml"], self.config, experiment_id=held.id)
            sim = build(prepared.scenario)
        except ServiceError as exc:
            self._fail(held, str(exc))
            return
        except CosimError as exc:
            self._fail(held, sanitise(str(exc), self.config))
            return
        caught: list[warnings.WarningMessage] = []
        try:
            with warnings.catch_warnings(record=True) as caught:
                # a model outside its training envelope is reported in the experiment's notes
                warnings.simplefilter("always", EnvelopeWarning)
                self._simulate(held, prepared, sim, caught)
        except CosimError as exc:
            self._fail(held, sanitise(f"the run stopped: {exc}", self.config))
        except ServiceError:
            raise
        except (ArithmeticError, ValueError, KeyError, IndexError, TypeError) as exc:
            log.exception("experiment %d: internal error", held.id)
            self._fail(held, f"internal error: {type(exc).__name__}: {exc}"[:2000])
        finally:
            for w in caught:
                if not issubclass(w.category, EnvelopeWarning):
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            close = [getattr(c, "close", None) for c in sim.components.values()]
            for fn in close:
                if callable(fn):
                    fn()

    def _simulate(self, held: Claim, prepared: Prepared, sim: Any,
                  caught: list[warnings.WarningMessage]) -> None:
        cfg = self.config
        sc = prepared.scenario
        pace = prepared.pace or cfg.pace
        resume_after = transaction(self.engine, lambda conn: last_time(conn, held.id),
                                   write=False, give_up_s=cfg.db_outage_s)
        sim.initialize()
        names = [n for n in sim.recorder.names if not n.endswith(":true")]
        key_columns = {col: sig for col, (sig, _) in KEY_SIGNALS.items() if sig in names}
        limits = operating_limits(sc)
        out = _Batches(self, held, {
            "units": json.dumps({n: sim.unit(n) for n in names}),
            "limits": json.dumps(json_safe(limits)),
            "duration_s": sc.duration, "notes": json.dumps(prepared.notes)})
        origin = held.row["origin"]
        every, steps = sc.record.every, sc.steps
        wall0 = time.monotonic()
        t_paced: float | None = None  # simulated time the pacing counts from
        get, isfinite, dumps = sim.get, math.isfinite, json.dumps
        for k in range(0, steps + 1, every):
            if k:
                sim.advance_to(sc.start + k * sc.step)
            t = float(sim.time)
            if resume_after is not None and t <= resume_after:
                continue  # stored by an earlier claim: fast-forward without writing
            if pace.speed is not None:
                if t_paced is None:
                    t_paced, wall0 = t, time.monotonic()
                if not self._wait(wall0 + (t - t_paced) / pace.speed, out):
                    return self._ended(held, out.outcome)
            # the hot path of a fast run: plain floats, NaN and infinities as null (strict JSON)
            values = {n: v if isfinite(v := float(get(n))) else None for n in names}
            row = dict.fromkeys(KEY_SIGNALS)
            row.update({"experiment_id": held.id, "time_s": t,
                        "datetime": origin + timedelta(seconds=t - sc.start),
                        "signals": dumps(values, separators=(",", ":"))})
            for col, sig in key_columns.items():
                row[col] = values[sig]
            out.progress = t - sc.start
            out.rows.append(row)
            due = len(out.rows) >= cfg.batch_rows or out.since_flush() >= cfg.flush_s
            if (due or self._stop.is_set()) and not out.flush():
                return self._ended(held, out.outcome)
            if self._stop.is_set() and k < steps:
                if release(self.engine, held, give_up_s=cfg.db_outage_s):
                    self.stats.released += 1
                return None
        out.progress = sc.duration
        if not out.flush():
            return self._ended(held, out.outcome)
        figures = json_safe(run_kpis(sim.results(), limits))
        notes = prepared.notes + [_envelope_note(w) for w in caught
                                  if issubclass(w.category, EnvelopeWarning)]
        if complete(self.engine, held, figures, notes=notes, give_up_s=cfg.db_outage_s):
            self.stats.done += 1
        else:
            self.stats.lost += 1
        return None

    def _wait(self, until: float, out: _Batches) -> bool:
        """Sleep until the wall time ``until``, renewing the lease meanwhile; False if the
        experiment was lost or cancelled meanwhile (a stop request ends the wait early)."""
        while not self._stop.is_set():
            left = until - time.monotonic()
            if left <= 0:
                return True
            self._stop.wait(min(left, self.config.flush_s))
            if out.since_flush() >= self.config.flush_s and not out.flush():
                return False
        return True

    def _ended(self, held: Claim, outcome: str) -> None:
        if outcome == "cancelled":
            if mark_cancelled(self.engine, held, give_up_s=self.config.db_outage_s):
                self.stats.cancelled += 1
        else:
            log.warning("experiment %d: lease lost (another worker took it over)", held.id)
            self.stats.lost += 1


def worker_main(url: str, config: ServiceConfig, name: str | None = None,
                log_level: str = "INFO") -> int:
    """A worker process: SIGTERM or SIGINT stops it after the current batch. Exit status 0."""
    logging.basicConfig(level=log_level, format="%(asctime)s %(name)s[%(process)d] %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    engine = create_engine(url)
    require_current(engine)
    worker = Worker(engine, config, name=name)

    def _stop(signum: int, frame: Any) -> None:
        log.info("worker %s: signal %d, stopping after the current batch", worker.name, signum)
        worker.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    parent = multiprocessing.parent_process()
    if parent is not None:  # a worker of `co2twin serve`: never outlive it
        def _orphaned() -> None:
            multiprocessing.connection.wait([parent.sentinel])
            log.warning("worker %s: the serving process ended; stopping", worker.name)
            worker.stop()

        threading.Thread(target=_orphaned, name="co2twin-parent-watch", daemon=True).start()
    try:
        worker.run()
    finally:
        engine.dispose()
    return 0

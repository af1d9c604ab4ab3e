"""The service as one Python object: everything the HTTP API does is a method here.

>>> from co2twin.service import Service
>>> svc = Service("sqlite:///service.db")                      # doctest: +SKIP
>>> job = svc.enqueue({"name": "5 A", "overrides": {"current": 5.0}})   # doctest: +SKIP
>>> svc.run_worker(drain=True)                                   # doctest: +SKIP
>>> svc.experiment(job["id"])["status"], svc.results(job["id"])   # doctest: +SKIP
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from collections.abc import Mapping, Sequence

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

from . import queue
from .config import Pace, ServiceConfig
from .db import (
    STATUSES,
    base_experiments,
    create_engine,
    current_revision,
    electrodes,
    experiments,
    head_revision,
    redacted,
    require_current,
    upgrade,
)
from .errors import Invalid
from .experiment import ExperimentRequest, parse_request, resolve
from .results import read_frame
from .sessions import CaseLoader, SessionManager
from .valco2t import ImportSummary, import_csv, import_database, intake
from .worker import Worker, WorkerStats

__all__ = ["Service"]


class Service:
    """The experiment queue, results, VALCO2T import and control sessions over one database.

    ``db``: an engine or a URL (default: ``CO2TWIN_DB_URL``, else a SQLite file);
    ``migrate``: bring the schema to the newest revision first (else require it there).
    """

    def __init__(self, db: Engine | str | URL | None = None, config: ServiceConfig | None = None,
                 *, migrate: bool = True, case_loader: CaseLoader | None = None) -> None:
        self.engine = db if isinstance(db, Engine) else create_engine(db)
        self.config = config or ServiceConfig()
        if migrate:
            upgrade(self.engine)
        else:
            require_current(self.engine)
        self.sessions = SessionManager(self.config, case_loader=case_loader)

    def close(self) -> None:
        """Close the sessions and the database connections."""
        self.sessions.close_all()
        self.engine.dispose()

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- health ------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """Database reachable and at the newest schema revision; counts by status."""
        found = current_revision(self.engine)
        e = experiments.c
        with self.engine.connect() as conn:
            counts: dict[str, int] = dict(conn.execute(sa.select(e.status, sa.func.count())
                                       .group_by(e.status)).all())
        return {"database": self.engine.dialect.name, "url": redacted(self.engine.url),
                "revision": found, "expected_revision": head_revision(),
                "ok": found == head_revision(), "experiments": counts,
                "sessions": len(self.sessions.listing())}

    # -- the queue ---------------------------------------------------------------------------
    def validate(self, request: Mapping[str, Any] | ExperimentRequest) -> dict[str, Any]:
        """Check an experiment request as a worker will (untrusted); the scenario's summary."""
        req = parse_request(request)
        prepared = resolve(self.engine, req, req.full_scenario, self.config)
        sc = prepared.scenario
        return {"name": sc.name, "duration_s": sc.duration, "step_s": sc.step,
                "rows": sc.steps // sc.record.every + 1, "notes": prepared.notes,
                "pace": str(prepared.pace or self.config.pace)}

    def enqueue(self, request: Mapping[str, Any] | ExperimentRequest, *,
                submitted_by: str = "python") -> dict[str, Any]:
        """Validate and queue an experiment; its id, status and the validation's notes."""
        req = parse_request(request)
        summary = self.validate(req)
        new_id = queue.enqueue(self.engine, req, submitted_by=submitted_by)
        return {"id": new_id, "status": "queued", **summary}

    def experiments(self, *, status: str | None = None, limit: int = 100, offset: int = 0
                    ) -> list[dict[str, Any]]:
        """Experiments, newest first."""
        if status is not None and status not in STATUSES:
            raise Invalid(f"status: expected one of {', '.join(STATUSES)}, found "
                          f"{status[:40]!r}")
        if not 1 <= limit <= 10_000 or offset < 0:
            raise Invalid(f"limit: expected 1 to 10000 (offset >= 0), found {limit}, {offset}")
        return queue.listing(self.engine, status=status, limit=limit, offset=offset)

    def experiment(self, experiment_id: int) -> dict[str, Any]:
        """One experiment: status, progress, KPIs when done, error when failed."""
        return queue.get(self.engine, experiment_id)

    def events(self, experiment_id: int) -> list[dict[str, Any]]:
        """An experiment's audit trail (queued, claimed, resumed, released, done …)."""
        queue.get(self.engine, experiment_id)
        return queue.events(self.engine, experiment_id)

    def cancel(self, experiment_id: int) -> dict[str, Any]:
        """Cancel a queued experiment, or ask the worker of a running one to stop."""
        return {"id": experiment_id, "status": queue.cancel(self.engine, experiment_id)}

    def results(self, experiment_id: int, *, signals: str | Sequence[str] | None = None,
                since: float | None = None) -> pd.DataFrame:
        """An experiment's rows (see :func:`co2twin.service.results.read_frame`)."""
        return read_frame(self.engine, experiment_id, signals=signals, since=since,
                          limit=self.config.limits.max_result_rows)

    # -- base data ---------------------------------------------------------------------------
    def base_experiments(self) -> list[dict[str, Any]]:
        """Base experiments with their electrode's name and area."""
        b, el = base_experiments.c, electrodes.c
        query = (sa.select(base_experiments, el.name.label("electrode"), el.area_cm2)
                 .select_from(base_experiments.outerjoin(electrodes, b.electrode_id == el.id))
                 .order_by(b.id))
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def electrodes(self) -> list[dict[str, Any]]:
        """Electrodes."""
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.select(electrodes)
                                                  .order_by(electrodes.c.id)).mappings()]

    def add_electrode(self, **values: Any) -> int:
        """Add an electrode (columns of ``electrodes``); its id."""
        with self.engine.begin() as conn:
            result = conn.execute(sa.insert(electrodes).values(source="co2twin", **values))
            return int(result.inserted_primary_key[0])  # type: ignore[index]

    def add_base_experiment(self, **values: Any) -> int:
        """Add a base experiment (columns of ``base_experiments``); its id."""
        with self.engine.begin() as conn:
            result = conn.execute(sa.insert(base_experiments).values(source="co2twin", **values))
            return int(result.inserted_primary_key[0])  # type: ignore[index]

    def import_valco2t(self, *, database: str | URL | None = None,
                       electrodes_csv: str | Path | None = None,
                       experiments_csv: str | Path | None = None) -> ImportSummary:
        """Import VALCO2T's electrodes and base experiments from its database or CSV exports."""
        if database is not None:
            source = create_engine(database)
            try:
                return import_database(self.engine, source)
            finally:
                source.dispose()
        if electrodes_csv is None or experiments_csv is None:
            raise Invalid("import: give a VALCO2T database URL, or both CSV files "
                          "(electrodos and experimentos)")
        return import_csv(self.engine, electrodes_csv, experiments_csv)

    def intake(self) -> list[int]:
        """Queue VALCO2T's new experimentosDT rows now (workers also do it as they poll)."""
        return intake(self.engine)

    # -- workers -------------------------------------------------------------------------------
    def worker(self, *, name: str | None = None, pace: Pace | None = None) -> Worker:
        """A worker on this service's database and configuration (call ``run`` on it)."""
        return Worker(self.engine, self.config, name=name, pace=pace)

    def run_worker(self, *, drain: bool = True, pace: Pace | None = None) -> WorkerStats:
        """Run queued experiments in this process (``drain``: until the queue is empty)."""
        return self.worker(pace=pace).run(drain=drain)

    # -- the plant's signals ---------------------------------------------------------------------
    @staticmethod
    def signals() -> list[dict[str, Any]]:
        """Every signal of the standard plant: name, unit, bounds, description, measured."""
        from components.plant import LIMITS, STAGES

        out = []
        for cname, cls in STAGES.items():
            for direction, ports in (("output", cls.outputs), ("input", cls.inputs)):
                for p in ports:
                    name = f"{cname}.{p.name}"
                    out.append({"name": name, "direction": direction, "unit": p.unit,
                                "lower": p.lower if abs(p.lower) != float("inf") else None,
                                "upper": p.upper if abs(p.upper) != float("inf") else None,
                                "measured": bool(p.measured), "description": p.description,
                                "limits": list(LIMITS[name]) if name in LIMITS else None})
        return out

    @staticmethod
    def dumps(value: Any) -> str:
        """Strict JSON of an API value (NaN as null)."""
        from .worker import json_safe

        return json.dumps(json_safe(value))

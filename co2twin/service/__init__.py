"""The twin as a service: an experiment queue on a database, an HTTP API, a live dashboard.

* storage: SQLAlchemy Core tables and Alembic migrations (:mod:`.db`); SQLite by default,
  MariaDB/MySQL or PostgreSQL by URL;
* the queue (:mod:`.queue`) and its workers (:mod:`.worker`), experiments from a base
  experiment plus overrides or a full scenario (:mod:`.experiment`), checked as untrusted
  (:mod:`.untrusted`);
* the VALCO2T-compatible tables, views and importer (:mod:`.valco2t`);
* interactive control sessions (:mod:`.sessions`), results as JSON/CSV/Parquet (:mod:`.results`);
* :class:`Service`, the Python face of all of it; the HTTP API and dashboard (:mod:`.api`,
  FastAPI) and ``co2twin serve`` (:mod:`.server`) forward to it;
* a Grafana dashboard for the schema (:mod:`.grafana`); load and fault figures and the bench
  keys (:mod:`.loadtest`).

The API module (FastAPI) is imported only when used.
"""
from __future__ import annotations

from .config import Limits, Pace, ServiceConfig, parse_pace
from .db import create_engine, database_url, downgrade, upgrade
from .errors import Conflict, Invalid, NotFound, Refused, ServiceError, Unavailable
from .experiment import ExperimentRequest, Overrides
from .service import Service
from .sessions import Session, SessionManager
from .worker import Worker, WorkerStats

__all__ = [
    "Conflict", "ExperimentRequest", "Invalid", "Limits", "NotFound", "Overrides", "Pace",
    "Refused", "Service", "ServiceConfig", "ServiceError", "Session", "SessionManager",
    "Unavailable", "Worker", "WorkerStats", "create_engine", "database_url", "downgrade",
    "parse_pace", "upgrade",
]

"""Storage: the tables (SQLAlchemy Core), the engine, and every dialect difference in one place.

SQLite (embedded default, nothing to start), MariaDB/MySQL (PyMySQL) and PostgreSQL
(psycopg) are supported. Every statement is built with SQLAlchemy Core, so every value
is a bound parameter. Schema changes go through Alembic (``migrations/``); :func:`upgrade`
brings a database to the newest revision.

Dialect differences, all here:

* types: microsecond ``DATETIME(6)`` and ``MEDIUMTEXT`` on MySQL, ``INTEGER`` primary keys on
  SQLite (its only auto-increment type);
* the database clock (:class:`epoch_now`), which leases are measured by, so workers on
  machines whose clocks disagree still agree on who holds an experiment;
* transactions: on SQLite a writing transaction starts with ``BEGIN IMMEDIATE`` (it takes the
  write lock first, so two writers never deadlock upgrading a read lock) and the file runs in
  WAL mode (readers never wait for writers); on MySQL the isolation is READ COMMITTED (fewer
  gap locks between workers inserting rows);
* claiming: ``FOR UPDATE SKIP LOCKED`` where the server has it (PostgreSQL, MySQL 8, MariaDB
  10.6), a single ``UPDATE ... WHERE id = (SELECT ...)`` on SQLite (one statement holds the
  write lock throughout): see :mod:`co2twin.service.queue`;
* which errors are transient (a lost connection, a deadlock, a locked SQLite file) and so
  retried with backoff (:func:`transaction`);
* VALCO2T's mixed-case names (``experimentosDT``) are emitted unquoted, so the original
  dashboard's unquoted queries find them on every server (PostgreSQL folds both to lower case).

Why both ``pool_pre_ping`` and retries: the pre-ping (a ``SELECT 1`` when a connection is taken
from the pool) replaces connections the server closed while they were idle (MySQL's
``wait_timeout``, a restarted server) at no cost to the code; it cannot save a transaction
whose connection drops half-way, so every unit of work is a function run in a transaction
that :func:`transaction` retries, with exponential backoff and jitter (tenacity), until the
server is back or ``give_up_s`` has passed. The units of work are idempotent (batch writes
skip rows already stored; completion is fenced by the lease token), so a retry after a commit
whose acknowledgement was lost does no harm.
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

from .config import DB_PASSWORD_ENV, DB_URL_ENV
from .errors import Invalid, Unavailable

__all__ = [
    "metadata", "electrodes", "base_experiments", "experiments", "executions", "experiment_events",
    "experimentos_dt", "KEY_SIGNALS", "STATUSES", "VERSION_TABLE", "epoch_now", "create_engine",
    "database_url", "transaction", "is_transient", "upgrade", "downgrade",
    "current_revision", "head_revision", "require_current", "supports_skip_locked",
    "dialect_name", "Timestamp", "LongText", "BigId", "redacted",
]

log = logging.getLogger("co2twin.service")

#: Alembic's bookkeeping table (named so it cannot clash with a database shared with others)
VERSION_TABLE = "co2twin_schema_version"

#: statuses of a queued experiment
STATUSES = ("queued", "running", "done", "failed", "cancelled")

# -- types: dialect differences ---------------------------------------------------------------
#: a wall-clock timestamp (UTC, naive) with microseconds everywhere
Timestamp = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
#: text that may exceed MySQL's 64 KB TEXT (a scenario, a row's signals, error messages)
LongText = Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")
#: an auto-incrementing key: BIGINT, but INTEGER on SQLite (its only auto-increment type)
BigId = BigInteger().with_variant(Integer(), "sqlite")

# constraint names that are the same on every server (Alembic compares them)
metadata = MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

electrodes = Table(
    "electrodes", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("catalyst", String(200)),
    Column("compartments", Integer),
    Column("area_cm2", Double, comment="cathode area [cm2]"),
    Column("catholyte", String(200)),
    Column("anolyte", String(200)),
    Column("membrane", String(200)),
    Column("source", String(40), nullable=False, comment="where the row came from: co2twin, valco2t"),
    Column("source_id", Integer, comment="its id in that source"),
    UniqueConstraint("source", "source_id"),
    comment="electrodes (cells) of the plant",
)

base_experiments = Table(
    "base_experiments", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("electrode_id", Integer, ForeignKey("electrodes.id")),
    Column("name", String(200)),
    Column("catalyst_loading", Double, comment="mg/cm2"),
    Column("current_density", Double, comment="mA/cm2"),
    Column("current_a", Double, comment="A"),
    Column("co2_flow", Double, comment="gas flow into the cell, mL/min"),
    Column("co2_concentration", Double, comment="CO2 in the inlet gas, %"),
    Column("co2_humidity", Double, comment="as VALCO2T records it (gH2O/h); not applied"),
    Column("anolyte_flow", Double, comment="mL/min"),
    Column("catholyte_flow", Double, comment="mL/min"),
    Column("central_flow", Double, comment="mL/min (three-compartment cells)"),
    Column("h2_inlet", Double, comment="H2 in the inlet gas, %"),
    Column("anolyte_conc", Double, comment="mol/L"),
    Column("catholyte_conc", Double, comment="mol/L"),
    Column("source", String(40), nullable=False),
    Column("source_id", Integer),
    UniqueConstraint("source", "source_id"),
    comment="operating points an experiment starts from",
)

experiments = Table(
    "experiments", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("base_experiment_id", Integer, ForeignKey("base_experiments.id")),
    Column("request", LongText, nullable=False, comment="the request as JSON: overrides, pace"),
    Column("scenario_yaml", LongText, comment="a full scenario, instead of base + overrides"),
    Column("submitted_by", String(40), nullable=False, comment="api, cli, python, valco2t"),
    Column("valco2t_dt_id", BigInteger, unique=True, comment="the experimentosDT row it came from"),
    Column("status", String(16), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("submitted_at", Timestamp, nullable=False),
    Column("started_at", Timestamp),
    Column("finished_at", Timestamp),
    Column("origin", Timestamp, comment="wall-clock time of the run's start (rows: origin + time)"),
    Column("worker", String(200)),
    Column("lease_token", String(40), comment="changes at every claim: fences out a lost worker"),
    Column("lease_until", Double, comment="database clock, epoch s"),
    Column("heartbeat_at", Double, comment="database clock, epoch s"),
    Column("attempts", Integer, nullable=False),
    Column("cancel_requested", Boolean, nullable=False),
    Column("duration_s", Double),
    Column("progress_s", Double, nullable=False),
    Column("rows_written", BigInteger, nullable=False),
    Column("error", LongText),
    Column("kpis", LongText, comment="JSON"),
    Column("units", LongText, comment="JSON: recorded signal -> unit"),
    Column("limits", LongText, comment="JSON: signal -> [low, high]"),
    Column("notes", LongText, comment="JSON list of notes (what was not applied, and why)"),
    Index(None, "status", "priority", "id"),
    comment="the experiment queue",
)

#: wide columns of :data:`executions`: column -> (signal, unit); every recorded signal is also
#: in the row's ``signals`` JSON
KEY_SIGNALS: dict[str, tuple[str, str]] = {
    "current_a": ("power.current", "A"),
    "current_density_ma_cm2": ("reactor.current_density", "mA/cm2"),
    "cell_voltage_v": ("reactor.cell_voltage", "V"),
    "fe_formate": ("reactor.fe_formate", "1"),
    "fe_h2": ("reactor.fe_h2", "1"),
    "formate_production_g_h": ("reactor.formate_production", "g/h"),
    "formate_rate_mol_s": ("reactor.formate_rate", "mol/s"),
    "h2_rate_mol_s": ("reactor.h2_rate", "mol/s"),
    "gas_flow_ml_min": ("feed.gas_flow", "mL/min"),
    "co2_fraction_pct": ("feed.co2_fraction", "%"),
    "anolyte_flow_ml_min": ("feed.anolyte_flow", "mL/min"),
    "catholyte_flow_ml_min": ("feed.catholyte_flow", "mL/min"),
    "anolyte_conc_mol_l": ("feed.anolyte_conc", "mol/L"),
    "catholyte_conc_mol_l": ("feed.catholyte_conc", "mol/L"),
    "humidity_pct": ("feed.humidity", "%"),
    "outlet_gas_flow_ml_min": ("reactor.outlet_gas_flow", "mL/min"),
    "outlet_co2_fraction_pct": ("reactor.outlet_co2_fraction", "%"),
    "outlet_h2_fraction_pct": ("reactor.outlet_h2_fraction", "%"),
    "formate_outlet_conc_g_l": ("reactor.formate_outlet_conc", "g/L"),
    "anolyte_ph": ("reactor.anolyte_ph", "pH"),
    "cell_temperature_c": ("reactor.cell_temperature", "degC"),
    "power_w": ("reactor.power", "W"),
    "energy_kwh": ("reactor.energy", "kWh"),
    "specific_energy_kwh_kmol": ("reactor.specific_energy", "kWh/kmol"),
    "energy_kwh_kg": ("reactor.energy_per_kg", "kWh/kg"),
    "single_pass_conversion_pct": ("reactor.single_pass_conversion", "%"),
    "tank_formate_conc_mol_l": ("separation.tank_formate_conc", "mol/L"),
    "tank_formic_acid_g_l": ("separation.tank_formic_acid", "g/L"),
    "catalyst_damage": ("reactor.catalyst_damage", "1"),
}

executions = Table(
    "executions", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("experiment_id", BigInteger, ForeignKey("experiments.id"), nullable=False),
    Column("time_s", Double, nullable=False, comment="simulated time, s"),
    Column("datetime", Timestamp, nullable=False, comment="experiment origin + simulated time"),
    *(Column(name, Double, comment=f"{signal} [{unit}]")
      for name, (signal, unit) in KEY_SIGNALS.items()),
    Column("signals", LongText, nullable=False, comment="JSON: every recorded signal -> value"),
    UniqueConstraint("experiment_id", "time_s"),
    comment="one row per recorded time of an experiment",
)

experiment_events = Table(
    "experiment_events", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("experiment_id", BigInteger, ForeignKey("experiments.id"), nullable=False),
    Column("at", Timestamp, nullable=False),
    Column("event", String(20), nullable=False,
           comment="queued, claimed, resumed, released, done, failed, cancelled, abandoned"),
    Column("worker", String(200)),
    Column("attempt", Integer),
    Column("detail", LongText),
    Index(None, "experiment_id"),
    comment="what happened to each experiment, in order (the audit trail)",
)

# VALCO2T's queue table, under its own name and columns, so its dashboard's "Run DT" button
# (an INSERT into experimentosDT) works unchanged; rows are taken into `experiments`.
experimentos_dt = Table(
    "experimentosDT", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True, quote=False),
    Column("id_experimento", Integer, quote=False, comment="base experiment (experimentos.id)"),
    Column("intensidad", Double, quote=False, comment="A"),
    Column("concentracion_co2", Double, quote=False, comment="%"),
    Column("caudal_co2", Double, quote=False, comment="mL/min"),
    Column("humedad_co2", Double, quote=False, comment="gH2O/h"),
    # whole seconds: MySQL refuses DATETIME(6) DEFAULT CURRENT_TIMESTAMP (precisions differ)
    Column("fecha", DateTime, quote=False, server_default=sa.func.current_timestamp()),
    Column("id_cola", BigInteger, quote=False, unique=True, comment="experiments.id it became"),
    quote=False,
    comment="VALCO2T's DT-experiment queue (compatibility)",
)


# -- the database clock -----------------------------------------------------------------------
class epoch_now(FunctionElement[float]):  # noqa: N801 - reads as the SQL function it compiles to
    """The database server's clock in seconds since 1970 (float), for leases."""

    type = Double()
    inherit_cache = True


@compiles(epoch_now)
def _epoch_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    return "((julianday('now') - 2440587.5) * 86400.0)"


@compiles(epoch_now, "postgresql")
def _epoch_postgresql(element: Any, compiler: Any, **kw: Any) -> str:
    return "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"


@compiles(epoch_now, "mysql")
@compiles(epoch_now, "mariadb")
def _epoch_mysql(element: Any, compiler: Any, **kw: Any) -> str:
    return "CAST(UNIX_TIMESTAMP(NOW(6)) AS DOUBLE)"


# -- engines ------------------------------------------------------------------------------------
def database_url(url: str | None = None) -> URL:
    """The database URL: ``url``, else ``CO2TWIN_DB_URL``, else ``sqlite:///co2twin-service.db``.

    A URL with a user but no password takes the password from ``CO2TWIN_DB_PASSWORD``, so that
    it need not appear on a command line (where other users can see it) or in a file.
    """
    text = url or os.environ.get(DB_URL_ENV) or "sqlite:///co2twin-service.db"
    try:
        parsed = make_url(text)
    except sa.exc.ArgumentError:
        raise Invalid(f"--db: expected a database URL such as sqlite:///service.db, "
                      f"mysql+pymysql://user@host/db or postgresql+psycopg://user@host/db, "
                      f"found {redacted(text)!r}") from None
    if parsed.username and parsed.password is None and os.environ.get(DB_PASSWORD_ENV):
        parsed = parsed.set(password=os.environ[DB_PASSWORD_ENV])
    if parsed.get_backend_name() == "mysql" and "charset" not in parsed.query:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    return parsed


def redacted(url: str | URL) -> str:
    """``url`` with its password hidden, for messages and logs."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def dialect_name(bind: Engine | Connection) -> str:
    """``sqlite``, ``mysql`` (MariaDB included) or ``postgresql``."""
    return bind.dialect.name if bind.dialect.name != "mariadb" else "mysql"


def create_engine(url: str | URL | None = None, **kwargs: Any) -> Engine:
    """An engine for ``url`` (see :func:`database_url`) with this service's per-dialect settings."""
    parsed = database_url(url) if not isinstance(url, URL) else url
    backend = parsed.get_backend_name()
    options: dict[str, Any] = {"pool_pre_ping": True}
    if backend == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:"):
            # one in-memory database shared by every connection of this engine
            options.update(poolclass=sa.pool.StaticPool)
        elif not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        options["connect_args"] = {"check_same_thread": False, "timeout": 60.0}
    elif backend == "mysql":
        options.update(isolation_level="READ COMMITTED", pool_recycle=3600)
    options.update(kwargs)
    engine = sa.create_engine(parsed, **options)
    if backend == "sqlite":
        _sqlite_setup(engine)
    return engine


def _sqlite_setup(engine: Engine) -> None:
    """WAL mode, a busy timeout, foreign keys, and BEGIN IMMEDIATE for writing transactions."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, record: Any) -> None:
        # we issue BEGIN ourselves (below); pysqlite's own would be a deferred one
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in ("journal_mode=WAL", "busy_timeout=60000", "foreign_keys=ON",
                       "synchronous=NORMAL"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        write = connection.get_execution_options().get("co2twin_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def supports_skip_locked(bind: Engine | Connection) -> bool:
    """Whether the server has ``SELECT ... FOR UPDATE SKIP LOCKED``."""
    name = dialect_name(bind)
    if name == "postgresql":
        return True
    if name != "mysql":
        return False
    version = bind.dialect.server_version_info or ()
    if getattr(bind.dialect, "is_mariadb", False):
        return tuple(version[:2]) >= (10, 6)
    return tuple(version[:2]) >= (8, 0)


# -- transactions and retries -----------------------------------------------------------------
_MYSQL_TRANSIENT = {1205, 1213, 2002, 2003, 2006, 2013, 2055, 1927, 4031, 1053}


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is worth retrying: a lost connection, a deadlock, a lock timeout, a busy
    SQLite file. Constraint violations and programming errors are not."""
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    code = getattr(orig, "args", [None])[0] if orig is not None else None
    if isinstance(code, int) and code in _MYSQL_TRANSIENT:
        return True
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str) and (sqlstate in ("40001", "40P01", "55P03")
                                      or sqlstate.startswith(("08", "57P"))):
        return True
    if isinstance(exc, sa.exc.OperationalError):
        text = str(orig).lower()
        return any(s in text for s in ("database is locked", "database is busy", "server closed",
                                       "connection", "lost", "gone away", "terminat"))
    return False


T = TypeVar("T")


def transaction(engine: Engine, work: Callable[[Connection], T], *, write: bool = True,
                give_up_s: float = 300.0, on_retry: Callable[[BaseException], None] | None = None
                ) -> T:
    """Run ``work(connection)`` in one transaction; retry it whole on a transient error.

    Backoff: exponential from 0.1 s up to 5 s, with full jitter (so that workers that lost
    the server together do not return together), for ``give_up_s`` at most, then
    :class:`~co2twin.service.errors.Unavailable`. ``work`` must be safe to run again.
    """
    import tenacity

    def _log(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("database: %s; retrying in %.1f s (attempt %d)",
                    type(exc).__name__ if exc else "?",
                    state.next_action.sleep if state.next_action else 0.0, state.attempt_number)
        if on_retry is not None and exc is not None:
            on_retry(exc)

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_transient),
        wait=tenacity.wait_random_exponential(multiplier=0.1, max=5.0),  # "full jitter"
        stop=tenacity.stop_after_delay(give_up_s),
        before_sleep=_log, reraise=True)
    bound = engine.execution_options(co2twin_write=True) if write else engine
    try:
        for attempt in retrying:
            with attempt, bound.begin() as conn:
                return work(conn)
    except sa.exc.DBAPIError as exc:
        if is_transient(exc):
            raise Unavailable(f"database {redacted(engine.url)} unreachable for "
                              f"{give_up_s:g} s: {type(exc.orig).__name__}") from exc
        raise
    raise AssertionError("unreachable")  # pragma: no cover - tenacity returns or raises


# -- migrations ---------------------------------------------------------------------------------
def _alembic_config(connection: Connection | None = None) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    config.set_main_option("version_table", VERSION_TABLE)
    config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to ``revision`` (the newest by default); safe to run again."""
    from alembic import command

    with engine.execution_options(co2twin_write=True).begin() as conn:
        command.upgrade(_alembic_config(conn), revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Take the database back to ``revision`` (``base``: drop every table of the service)."""
    from alembic import command

    with engine.execution_options(co2twin_write=True).begin() as conn:
        command.downgrade(_alembic_config(conn), revision)


def head_revision() -> str:
    """The newest revision the migrations know."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None: the service's tables are not there)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(
            conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def require_current(engine: Engine) -> None:
    """Raise unless the database is at the newest revision (workers never migrate)."""
    found, head = current_revision(engine), head_revision()
    if found != head:
        raise Invalid(f"database {redacted(engine.url)}: expected schema revision {head}, found "
                      f"{found or 'no co2twin tables'}; run `co2twin service migrate --db URL`")

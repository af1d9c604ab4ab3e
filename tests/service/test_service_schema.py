"""The schema: Alembic migrations create exactly the tables db.py declares, on SQLite, MariaDB
and PostgreSQL; they go down and up again; workers refuse a database that is not migrated."""
from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from co2twin.service import db
from co2twin.service.errors import Invalid

VIEWS = {"electrodos", "experimentos", "ejecucionesdt", "ejecucionesrnd"}


def _diff(engine: sa.Engine) -> list[object]:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={
            "compare_type": True, "version_table": db.VERSION_TABLE,
            # experimentosDT is compared below: PostgreSQL folds its unquoted name to lower case
            "include_object": lambda obj, name, kind, reflected, other: kind != "table"
            or name.lower() != "experimentosdt"})
        found = list(compare_metadata(context, db.metadata))
    inspector = sa.inspect(engine)
    table = next(n for n in inspector.get_table_names() if n.lower() == "experimentosdt")
    columns = [c["name"].lower() for c in inspector.get_columns(table)]
    assert columns == [c.name.lower() for c in db.experimentos_dt.columns]
    return found


def test_migrations_create_what_db_declares(db_url):
    """After `upgrade`, Alembic's autogenerate finds no difference between the database and
    db.metadata (tables, columns, types, keys, indexes, comments), and the VALCO2T queue table and
    views exist under names its dashboard's unquoted SQL finds."""
    engine = db.create_engine(db_url)
    db.upgrade(engine)
    assert _diff(engine) == []
    inspector = sa.inspect(engine)
    assert {n.lower() for n in inspector.get_view_names()} >= VIEWS
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT id, id_experimento, intensidad, concentracion_co2, caudal_co2, "
                             "humedad_co2, fecha, id_cola FROM experimentosDT")
        conn.exec_driver_sql("SELECT datetime, id_experimento, FE, pH, consumo_energetico "
                             "FROM ejecucionesRND")
    assert db.current_revision(engine) == db.head_revision()
    engine.dispose()


def test_downgrade_then_upgrade(db_url):
    """`downgrade base` drops every table and view of the service; `upgrade` makes them again."""
    engine = db.create_engine(db_url)
    db.upgrade(engine)
    db.downgrade(engine, "base")
    inspector = sa.inspect(engine)
    left = set(inspector.get_table_names()) - {db.VERSION_TABLE}
    assert left == set()
    assert not {n.lower() for n in inspector.get_view_names()} & VIEWS
    assert db.current_revision(engine) is None
    db.upgrade(engine)
    assert _diff(engine) == []
    engine.dispose()


def test_a_worker_refuses_an_unmigrated_database(sqlite_url):
    """require_current names the revision expected and the command that migrates."""
    engine = db.create_engine(sqlite_url)
    with pytest.raises(Invalid, match="co2twin service migrate"):
        db.require_current(engine)
    db.upgrade(engine)
    db.require_current(engine)


def test_credentials_come_from_the_environment(monkeypatch):
    """A URL without a password takes CO2TWIN_DB_PASSWORD; messages never show a password."""
    monkeypatch.setenv("CO2TWIN_DB_PASSWORD", "s3cret")
    url = db.database_url("postgresql+psycopg://co2twin@localhost/valco2t")
    assert url.password == "s3cret"
    assert "s3cret" not in db.redacted(url)
    monkeypatch.setenv("CO2TWIN_DB_URL", "mysql+pymysql://u:pw@h/db")
    assert db.database_url(None).query["charset"] == "utf8mb4"
    assert "pw" not in db.redacted("mysql+pymysql://u:pw@h/db")


def test_the_database_clock_is_close_to_this_one(db_url):
    """epoch_now compiles on every dialect to the server's clock in seconds since 1970."""
    import time

    engine = db.create_engine(db_url)
    with engine.connect() as conn:
        now = conn.execute(sa.select(db.epoch_now())).scalar_one()
    assert abs(float(now) - time.time()) < 120
    engine.dispose()

"""Alembic's environment: migrate the connection :func:`co2twin.service.db.upgrade` passes in
(or, run from the ``alembic`` command, an engine for the configured ``sqlalchemy.url``)."""
from __future__ import annotations

from typing import Any

from alembic import context

from co2twin.service.db import VERSION_TABLE, create_engine, metadata


def _run(connection: Any) -> None:
    context.configure(connection=connection, target_metadata=metadata,
                      version_table=VERSION_TABLE, render_as_batch=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.begin() as conn:
        _run(conn)


_main()

"""Fixtures of the service tests: databases (a SQLite file; MariaDB and PostgreSQL servers
started once per test session, one fresh database per test), services and API clients.

The servers are real processes (``servers.py``): the MariaDB and PostgreSQL tests run in CI
(`.ci/run` installs the packages) and fail there if the binaries are missing.
"""
from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from . import servers
from co2twin.service import Service, ServiceConfig
from co2twin.service.loadtest import running_api

_names = itertools.count()

#: every database kind the service supports, as the ``db_url`` fixture's parameters
KINDS = ("sqlite", "mariadb", "postgresql")


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[servers.Server]:
    server = servers.start_mariadb()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[servers.Server]:
    server = servers.start_postgres()
    yield server
    server.stop()


def fresh_database(server: servers.Server, name: str | None = None) -> str:
    """A new empty database on ``server`` (dropped first if it exists); its URL."""
    name = name or f"t{os.getpid()}_{next(_names)}"
    admin = sa.create_engine(server.admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if server.kind == "mariadb":
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
            conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 "
                                 "COLLATE utf8mb4_unicode_ci")
            conn.exec_driver_sql(f"GRANT ALL PRIVILEGES ON `{name}`.* TO 'co2twin'@'%%'")
        else:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.exec_driver_sql(f"CREATE DATABASE {name} OWNER co2twin ENCODING 'UTF8'")
    admin.dispose()
    return str(sa.engine.make_url(server.url).set(database=name).render_as_string(
        hide_password=False))


@pytest.fixture(params=KINDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind: a SQLite file, a MariaDB and a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'service.db'}"
    server = request.getfixturevalue(
        "mariadb_server" if request.param == "mariadb" else "postgres_server")
    return fresh_database(server)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'service.db'}"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data folder with a good CSV profile and one whose header is a 'secret'."""
    folder = tmp_path / "data"
    (folder / "profiles").mkdir(parents=True)
    (folder / "profiles" / "current.csv").write_text("time_s,current\n0,4.0\n300,5.0\n100000,5.0\n")
    (folder / "secret.csv").write_text("TOPSECRET-root:x:0:0,hunter2\n1,2\n")
    return folder


@pytest.fixture
def service(sqlite_url: str, data_dir: Path) -> Iterator[Service]:
    svc = Service(sqlite_url, ServiceConfig(data_dirs=(data_dir,)))
    yield svc
    svc.close()


@pytest.fixture
def client(service: Service) -> Iterator[httpx.Client]:
    """An HTTP client of the service's API, served by uvicorn on a free loopback port."""
    with running_api(service) as base, httpx.Client(base_url=base, timeout=60.0) as http:
        yield http

"""Our Grafana dashboard: committed as built, provisioning files without a password, and every
panel's SQL run against SQLite, MariaDB and PostgreSQL after an experiment ran."""
from __future__ import annotations

import json

import pytest
import yaml

from co2twin.service import Service
from co2twin.service.grafana import (
    DASHBOARD,
    build_dashboard,
    interpolate,
    load_dashboard,
    panel_queries,
    write_provisioning,
)


def test_the_committed_dashboard_is_the_built_one():
    """grafana/co2twin.json is what build_dashboard() makes (edit the builder, then rebuild)."""
    assert load_dashboard() == json.loads(json.dumps(build_dashboard()))
    board = load_dashboard()
    assert board["id"] is None and board["uid"] == "co2twin-service"
    assert {v["name"] for v in board["templating"]["list"]} == {"datasource", "experiment"}
    assert DASHBOARD.is_file()


def test_provisioning_files_take_the_password_from_the_environment(tmp_path):
    written = write_provisioning(tmp_path, datasource="postgres", url="db:5432")
    datasource = yaml.safe_load(written[2].read_text())["datasources"][0]
    assert datasource["secureJsonData"]["password"] == "$CO2TWIN_DB_PASSWORD"
    assert datasource["type"] == "postgres" and datasource["url"] == "db:5432"
    provider = yaml.safe_load(written[1].read_text())["providers"][0]
    assert provider["options"]["path"] == str((tmp_path / "dashboards").resolve())
    board = json.loads(written[0].read_text())
    assert board["panels"][0]["datasource"]["type"] == "postgres"


@pytest.mark.parametrize("kind", ["sqlite", "mariadb", "postgresql"])
def test_every_panel_query_runs_and_finds_rows(kind, request, tmp_path):
    from .conftest import fresh_database

    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'service.db'}"
    else:
        url = fresh_database(request.getfixturevalue(
            "mariadb_server" if kind == "mariadb" else "postgres_server"))
    with Service(url) as svc:
        exp_id = svc.enqueue({"name": "grafana", "overrides": {"duration": 60}})["id"]
        svc.run_worker()
        with svc.engine.connect() as conn:
            for title, sql in panel_queries(load_dashboard()):
                rows = conn.exec_driver_sql(interpolate(sql, {"experiment": exp_id})).all()
                if title != "Workers":  # nothing runs now
                    assert rows, f"{kind}: panel {title!r} found no row"

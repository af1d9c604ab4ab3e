"""A Grafana dashboard for the service's schema, ready for file provisioning.

``grafana/co2twin.json`` (committed; :func:`build_dashboard` makes it, and a test keeps the two
equal) selects a data source through its ``datasource`` variable (MySQL/MariaDB by default;
PostgreSQL or the SQLite plugin work as well: every panel's SQL is plain SQL that all three
run, checked in the tests) and an experiment through ``experiment``. :func:`write_provisioning`
writes it with a dashboard provider and a data source whose password comes from the
environment (Grafana expands ``$CO2TWIN_DB_PASSWORD`` in provisioning files).
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

__all__ = ["DASHBOARD", "build_dashboard", "load_dashboard", "panel_queries", "interpolate",
           "write_provisioning"]

#: the committed dashboard
DASHBOARD = Path(__file__).with_name("grafana") / "co2twin.json"

_DS = {"type": "mysql", "uid": "${datasource}"}

#: (title, kind, SQL, width, height, unit, thresholds [(colour, from value)])
_PANELS: list[tuple[str, str, str, int, int, str | None, list[tuple[str, float | None]]]] = [
    ("Queue", "table",
     "SELECT id, name, status, priority, attempts, progress_s, duration_s, rows_written, "
     "submitted_at, finished_at, worker, error FROM experiments ORDER BY id DESC LIMIT 100",
     16, 9, None, []),
    ("Experiments by status", "barchart",
     "SELECT status, COUNT(*) AS experiments FROM experiments GROUP BY status ORDER BY status",
     8, 9, None, []),
    ("Cell voltage", "timeseries",
     "SELECT datetime AS time, cell_voltage_v AS cell_voltage FROM executions "
     "WHERE experiment_id = $experiment ORDER BY datetime", 8, 8, "volt",
     [("green", None), ("red", 4.5)]),
    ("Current and current density", "timeseries",
     "SELECT datetime AS time, current_a AS current_A, current_density_ma_cm2 AS "
     "current_density_mA_cm2 FROM executions WHERE experiment_id = $experiment ORDER BY datetime",
     8, 8, None, [("green", None), ("red", 300.0)]),
    ("Faradaic efficiency to formate", "timeseries",
     "SELECT datetime AS time, fe_formate AS fe_formate, fe_h2 AS fe_h2 FROM executions "
     "WHERE experiment_id = $experiment ORDER BY datetime", 8, 8, "percentunit",
     [("red", None), ("green", 0.5)]),
    ("Formate production [g/h]", "timeseries",
     "SELECT datetime AS time, formate_production_g_h AS formate_g_h FROM executions "
     "WHERE experiment_id = $experiment ORDER BY datetime", 8, 8, None, []),
    ("Anolyte pH", "timeseries",
     "SELECT datetime AS time, anolyte_ph AS anolyte_pH FROM executions "
     "WHERE experiment_id = $experiment ORDER BY datetime", 8, 8, None,
     [("red", None), ("green", 12.0)]),
    ("Cell temperature", "timeseries",
     "SELECT datetime AS time, cell_temperature_c AS cell_temperature FROM executions "
     "WHERE experiment_id = $experiment ORDER BY datetime", 8, 8, "celsius",
     [("green", None), ("red", 60.0)]),
    ("Outlet gas [%]", "timeseries",
     "SELECT datetime AS time, outlet_co2_fraction_pct AS co2_pct, outlet_h2_fraction_pct AS "
     "h2_pct FROM executions WHERE experiment_id = $experiment ORDER BY datetime", 8, 8,
     "percent", []),
    ("Specific energy [kWh/kmol]", "timeseries",
     "SELECT datetime AS time, specific_energy_kwh_kmol AS kWh_per_kmol FROM executions "
     "WHERE experiment_id = $experiment ORDER BY datetime", 8, 8, None, []),
    ("Product tank", "timeseries",
     "SELECT datetime AS time, tank_formate_conc_mol_l AS formate_mol_L, tank_formic_acid_g_l "
     "AS formic_acid_g_L FROM executions WHERE experiment_id = $experiment ORDER BY datetime",
     8, 8, None, []),
    ("Latest values", "table",
     "SELECT time_s, cell_voltage_v, current_a, fe_formate, formate_production_g_h, anolyte_ph, "
     "cell_temperature_c FROM executions WHERE experiment_id = $experiment "
     "ORDER BY time_s DESC LIMIT 1", 12, 5, None, []),
    ("Experiment and KPIs", "table",
     "SELECT id, name, status, attempts, rows_written, kpis, notes, error FROM experiments "
     "WHERE id = $experiment", 12, 5, None, []),
    ("Audit trail", "table",
     "SELECT at AS time, event, worker, attempt, detail FROM experiment_events "
     "WHERE experiment_id = $experiment ORDER BY id", 12, 8, None, []),
    ("Workers", "table",
     "SELECT worker, COUNT(*) AS running, MIN(heartbeat_at) AS oldest_heartbeat_epoch_s "
     "FROM experiments WHERE status = 'running' GROUP BY worker", 12, 8, None, []),
]


def _panel(index: int, x: int, y: int, spec: tuple[Any, ...]) -> dict[str, Any]:
    title, kind, sql, w, h, unit, steps = spec
    defaults: dict[str, Any] = {"color": {"mode": "palette-classic"}}
    if unit:
        defaults["unit"] = unit
    if steps:
        defaults["thresholds"] = {"mode": "absolute", "steps": [
            {"color": c, "value": v} for c, v in steps]}
        defaults["custom"] = {"thresholdsStyle": {"mode": "line+area"}} \
            if kind == "timeseries" else {}
    return {
        "id": index + 1, "type": kind, "title": title, "datasource": _DS,
        "gridPos": {"h": h, "w": w, "x": x, "y": y},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}}
        if kind == "timeseries" else {},
        "targets": [{"datasource": _DS, "editorMode": "code", "rawQuery": True, "rawSql": sql,
                     "format": "time_series" if kind == "timeseries" else "table",
                     "refId": "A"}],
    }


def build_dashboard() -> dict[str, Any]:
    """The dashboard as a dict (what ``grafana/co2twin.json`` holds)."""
    panels, x, y, row_h = [], 0, 0, 0
    for i, spec in enumerate(_PANELS):
        w, h = spec[3], spec[4]
        if x + w > 24:
            x, y, row_h = 0, y + row_h, 0
        panels.append(_panel(i, x, y, spec))
        x += w
        row_h = max(row_h, h)
    return {
        "id": None, "uid": "co2twin-service", "title": "co2twin service",
        "description": "The co2twin experiment queue and its executions (co2twin service schema)",
        "tags": ["co2twin"], "timezone": "utc", "schemaVersion": 39, "version": 1,
        "editable": True, "refresh": "5s", "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "label": "Data source", "type": "datasource",
             "query": "mysql", "current": {}, "hide": 0, "refresh": 1},
            {"name": "experiment", "label": "Experiment", "type": "query", "datasource": _DS,
             "definition": "SELECT id FROM experiments ORDER BY id DESC",
             "query": "SELECT id FROM experiments ORDER BY id DESC", "refresh": 2,
             "current": {}, "hide": 0, "includeAll": False, "multi": False, "sort": 0},
        ]},
        "annotations": {"list": []},
        "panels": panels,
    }


def load_dashboard(path: str | Path = DASHBOARD) -> dict[str, Any]:
    """A dashboard JSON file."""
    data: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return data


def panel_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(title, SQL) of every panel target and query variable of a dashboard."""
    out = []
    for panel in dashboard.get("panels", []):
        for target in panel.get("targets", []):
            if target.get("rawSql"):
                out.append((str(panel.get("title") or f"panel {panel.get('id')}"),
                            str(target["rawSql"])))
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "query" and isinstance(var.get("query"), str) and var["query"]:
            out.append((f"variable {var['name']}", var["query"]))
    return out


def interpolate(sql: str, variables: dict[str, Any]) -> str:
    """``$name`` and ``${name}`` replaced by values, as Grafana does before sending a query
    (tests use it to run the panels' SQL; the values are the tests' own numbers)."""
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return str(variables[name]) if name in variables else match.group(0)

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, sql)


def write_provisioning(folder: str | Path, *, datasource: str = "mysql",
                       url: str = "localhost:3306", database: str = "valco2t",
                       user: str = "co2twin") -> list[Path]:
    """Write ``dashboards/co2twin.json``, a dashboard provider and a data source (password from
    ``$CO2TWIN_DB_PASSWORD`` when Grafana starts) under ``folder``; the files written."""
    folder = Path(folder)
    dashboards = folder / "dashboards"
    provisioning = folder / "provisioning"
    for sub in (dashboards, provisioning / "dashboards", provisioning / "datasources"):
        sub.mkdir(parents=True, exist_ok=True)
    board = build_dashboard()
    board["templating"]["list"][0]["query"] = datasource
    text = json.dumps(board, indent=2, ensure_ascii=False).replace('"type": "mysql"',
                                                                   f'"type": "{datasource}"')
    written = [dashboards / "co2twin.json", provisioning / "dashboards" / "co2twin.yaml",
               provisioning / "datasources" / "co2twin.yaml"]
    written[0].write_text(text + "\n", encoding="utf-8")
    written[1].write_text(
        "apiVersion: 1\nproviders:\n  - name: co2twin\n    folder: co2twin\n    type: file\n"
        f"    options:\n      path: {dashboards.resolve()}\n", encoding="utf-8")
    written[2].write_text(
        "apiVersion: 1\ndatasources:\n  - name: co2twin\n    uid: co2twin\n"
        f"    type: {datasource}\n    url: {url}\n    user: {user}\n"
        f"    jsonData:\n      database: {database}\n"
        "    secureJsonData:\n      password: $CO2TWIN_DB_PASSWORD\n", encoding="utf-8")
    return written

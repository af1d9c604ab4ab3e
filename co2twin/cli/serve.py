"""``co2twin serve`` and ``co2twin service ...``: the twin as a service (co2twin.service).

Register with :func:`register` (``co2twin serve`` and the ``service`` sub-commands).
The database URL comes from ``--db`` or ``CO2TWIN_DB_URL``; a password from the URL or
``CO2TWIN_DB_PASSWORD``; the API token from ``CO2TWIN_API_TOKEN`` (never from an option:
command lines are visible to every user of the machine).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from .console import fail, json_safe, os_error, out
from cosim.errors import CosimError

service_app = typer.Typer(no_args_is_help=True,
                          help="The twin as a service: database, queue, workers, VALCO2T import.")

_DB_HELP = ("database URL: sqlite:///file.db, mysql+pymysql://user@host/db, "
            "postgresql+psycopg://user@host/db (default: CO2TWIN_DB_URL, else "
            "sqlite:///co2twin-service.db; password: in the URL or CO2TWIN_DB_PASSWORD)")


def _config(config: Path | None, pace: str | None = None, data: list[Path] | None = None) -> Any:
    from co2twin.service import ServiceConfig, parse_pace

    cfg = ServiceConfig.from_file(config) if config is not None else ServiceConfig()
    if pace is not None:
        cfg = cfg.replace(pace=parse_pace(pace))
    if data:
        cfg = cfg.replace(data_dirs=tuple(p.resolve() for p in data))
    return cfg


def serve_command(
    db: str | None = typer.Option(None, "--db", help=_DB_HELP),
    workers: int = typer.Option(1, "--workers", "-w", min=0, help="worker processes"),
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on (beyond "
                             "loopback only with CO2TWIN_API_TOKEN set)"),
    port: int = typer.Option(8000, "--port", min=1, max=65535),
    pace: str = typer.Option("fast", "--pace", help="realtime, fast, or Nx (N simulated seconds "
                             "per wall second)"),
    config: Path | None = typer.Option(None, "--config", help="service configuration (YAML): "
                                       "data_dirs, allow_fmus, allow_python, cases_dir, limits"),
    data: list[Path] = typer.Option([], "--data", help="a data folder untrusted scenarios may "
                                    "read (repeatable; adds to none in --config)"),
    log_level: str = typer.Option("info", "--log-level"),
) -> None:
    """Serve the HTTP API and dashboard and run workers on the experiment queue."""
    from co2twin.service.server import serve

    try:
        cfg = _config(config, pace, data)
        serve(db, cfg, workers=workers, host=host, port=port, log_level=log_level,
              announce=lambda text: out.print(text, markup=False, highlight=False, soft_wrap=True))
    except CosimError as exc:
        fail(exc)
    except OSError as exc:
        fail(os_error(exc))


@service_app.command("migrate")
def migrate_command(
    db: str | None = typer.Option(None, "--db", help=_DB_HELP),
    revision: str = typer.Option("head", "--revision", help="target revision (base: drop all)"),
) -> None:
    """Create or upgrade the service's tables (Alembic)."""
    from co2twin.service.db import create_engine, current_revision, downgrade, redacted, upgrade

    try:
        engine = create_engine(db)
        if revision == "base":
            downgrade(engine, "base")
        else:
            upgrade(engine, revision)
        out.print(f"{redacted(engine.url)}: schema revision {current_revision(engine)}",
                  markup=False, highlight=False, soft_wrap=True)
    except CosimError as exc:
        fail(exc)


@service_app.command("worker")
def worker_command(
    db: str | None = typer.Option(None, "--db", help=_DB_HELP),
    pace: str = typer.Option("fast", "--pace", help="realtime, fast or Nx"),
    config: Path | None = typer.Option(None, "--config", help="service configuration (YAML)"),
    data: list[Path] = typer.Option([], "--data", help="data folder (repeatable)"),
    drain: bool = typer.Option(False, "--drain", help="stop when the queue is empty"),
) -> None:
    """Run one worker in this process (SIGTERM: finish the batch, give the experiment back)."""
    import signal

    from co2twin.service import Worker
    from co2twin.service.db import create_engine, require_current

    try:
        engine = create_engine(db)
        require_current(engine)
        worker = Worker(engine, _config(config, pace, data))
        signal.signal(signal.SIGTERM, lambda *_: worker.stop())
        signal.signal(signal.SIGINT, lambda *_: worker.stop())
        stats = worker.run(drain=drain)
    except CosimError as exc:
        fail(exc)
    out.print(json.dumps(stats.__dict__), markup=False, highlight=False)


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


@service_app.command("enqueue")
def enqueue_command(
    db: str | None = typer.Option(None, "--db", help=_DB_HELP),
    base: int | None = typer.Option(None, "--base", help="base experiment id"),
    overrides: list[str] = typer.Option([], "--set", help="override KEY=VALUE (current=5, "
                                        "gas_flow=80, duration=600, record_every=10, ...)"),
    scenario: Path | None = typer.Option(None, "--scenario", help="a full scenario file instead"),
    name: str = typer.Option("experiment", "--name"),
    pace: str | None = typer.Option(None, "--pace", help="realtime, fast or Nx"),
    priority: int = typer.Option(0, "--priority"),
    config: Path | None = typer.Option(None, "--config", help="service configuration (YAML)"),
) -> None:
    """Queue an experiment (validated as a worker will); print its id."""
    from co2twin.service import Service

    request: dict[str, Any] = {"name": name, "priority": priority}
    if pace is not None:
        request["pace"] = pace
    try:
        if scenario is not None:
            request["scenario_yaml"] = scenario.read_text(encoding="utf-8")
        else:
            pairs = {}
            for item in overrides:
                key, sep, value = item.partition("=")
                if not sep:
                    raise CosimError(f"--set {item!r}: expected KEY=VALUE")
                pairs[key.strip()] = _value(value.strip())
            request["overrides"] = pairs
            if base is not None:
                request["base_experiment"] = base
        with Service(db, _config(config)) as svc:
            job = svc.enqueue(request, submitted_by="cli")
    except CosimError as exc:
        fail(exc)
    except OSError as exc:
        fail(os_error(exc))
    out.print(json.dumps(json_safe(job)), markup=False, highlight=False, soft_wrap=True)


@service_app.command("status")
def status_command(
    experiment: int | None = typer.Argument(None, help="one experiment (default: the queue)"),
    db: str | None = typer.Option(None, "--db", help=_DB_HELP),
    limit: int = typer.Option(20, "--limit", min=1, max=10_000),
) -> None:
    """Print the queue, or one experiment (status, progress, KPIs, error), as JSON."""
    from co2twin.service import Service

    try:
        with Service(db, migrate=False) as svc:
            value = svc.experiment(experiment) if experiment is not None \
                else svc.experiments(limit=limit)
    except CosimError as exc:
        fail(exc)
    out.print(json.dumps(json_safe(value), indent=1), markup=False, highlight=False,
              soft_wrap=True)


@service_app.command("import-valco2t")
def import_command(
    db: str | None = typer.Option(None, "--db", help=_DB_HELP),
    source: str | None = typer.Option(None, "--from", help="the VALCO2T database URL (its "
                                      "electrodos and experimentos tables)"),
    electrodes: Path | None = typer.Option(None, "--electrodes", help="CSV export of electrodos"),
    experiments: Path | None = typer.Option(None, "--experiments",
                                            help="CSV export of experimentos"),
) -> None:
    """Import VALCO2T's electrodes and base experiments (again: updates, never duplicates)."""
    from co2twin.service import Service

    try:
        with Service(db) as svc:
            summary = svc.import_valco2t(database=source, electrodes_csv=electrodes,
                                         experiments_csv=experiments)
    except CosimError as exc:
        fail(exc)
    out.print(json.dumps(summary.as_dict()), markup=False, highlight=False, soft_wrap=True)


@service_app.command("grafana")
def grafana_command(
    output: Path = typer.Option(Path("grafana"), "-o", "--output", help="folder to write"),
    datasource: str = typer.Option("mysql", "--datasource", help="mysql, postgres or "
                                   "frser-sqlite-datasource"),
    url: str = typer.Option("localhost:3306", "--url", help="database host:port for Grafana"),
    database: str = typer.Option("valco2t", "--database"),
    user: str = typer.Option("co2twin", "--user"),
) -> None:
    """Write the Grafana dashboard and provisioning files (password from CO2TWIN_DB_PASSWORD)."""
    from co2twin.service.grafana import write_provisioning

    try:
        paths = write_provisioning(output, datasource=datasource, url=url, database=database,
                                   user=user)
    except OSError as exc:
        fail(os_error(exc))
    for path in paths:
        out.print(f"wrote {path}", markup=False, highlight=False, soft_wrap=True)


@service_app.command("loadtest")
def loadtest_command(
    db: str | None = typer.Option(None, "--db", help="an empty database (default: a temporary "
                                  "SQLite file)"),
    experiments: int = typer.Option(200, "--experiments", min=1),
    workers: int = typer.Option(4, "--workers", min=1),
    clients: int = typer.Option(50, "--clients", min=1),
    requests: int = typer.Option(20, "--requests", min=1, help="requests per client"),
    kill: bool = typer.Option(True, "--kill/--no-kill", help="SIGKILL one worker mid-run"),
) -> None:
    """Measure: N experiments on W worker processes (one SIGKILLed), C API clients meanwhile."""
    import tempfile

    from co2twin.service.loadtest import run_load

    try:
        with tempfile.TemporaryDirectory(prefix="co2twin-load-") as tmp:
            figures = run_load(db or f"sqlite:///{tmp}/load.db", experiments_count=experiments,
                               workers=workers, kill=kill, clients=clients, requests=requests)
    except CosimError as exc:
        fail(exc)
    out.print(json.dumps(json_safe(figures), indent=1), markup=False, highlight=False,
              soft_wrap=True)
    if not figures["every_experiment_done_exactly_once"] or figures["rows_duplicated"] \
            or figures["rows_lost"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``serve`` and the ``service`` sub-commands to the ``co2twin`` command."""
    app.command("serve")(serve_command)
    app.add_typer(service_app, name="service")

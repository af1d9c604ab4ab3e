"""``co2twin serve``: the API and dashboard (uvicorn) in this process, workers in child processes.

Workers are separate processes (the simulation is CPU-bound; one per core is the useful
number); a supervisor thread restarts one that dies. The database URL reaches them through
``multiprocessing`` (never a command line, where other users could read its password).
Stopping (SIGINT/SIGTERM to this process): uvicorn stops serving, then every worker gets
SIGTERM, finishes its batch, gives its experiment back to the queue and exits.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from typing import Any
from collections.abc import Callable

from sqlalchemy.engine import URL

from .api import check_binding, create_app
from .config import TOKEN_ENV, ServiceConfig
from .db import database_url, redacted
from .service import Service
from .worker import worker_main

__all__ = ["Supervisor", "serve", "api_main"]

log = logging.getLogger("co2twin.service")


class Supervisor:
    """Keeps ``count`` worker processes running until :meth:`stop`."""

    def __init__(self, url: str | URL, config: ServiceConfig, count: int, *,
                 log_level: str = "INFO", restart: bool = True) -> None:
        self.url = url if isinstance(url, str) else url.render_as_string(hide_password=False)
        self.config = config
        self.count = count
        self.log_level = log_level
        self.restart = restart
        self.processes: list[Any] = []
        self.restarts = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._context = multiprocessing.get_context("spawn")

    def _spawn(self, index: int) -> Any:
        name = f"{os.uname().nodename}:w{index}:{time.time_ns() % 10**9}"
        process = self._context.Process(target=worker_main, name=f"co2twin-worker-{index}",
                                        args=(self.url, self.config, name, self.log_level))
        process.start()
        return process

    def start(self) -> None:
        """Start the workers and the thread that restarts them."""
        self.processes = [self._spawn(i) for i in range(self.count)]
        self._thread = threading.Thread(target=self._watch, name="co2twin-supervisor",
                                        daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        recent: list[float] = []
        while not self._stop.wait(1.0):
            for i, process in enumerate(self.processes):
                if process.is_alive() or self._stop.is_set() or not self.restart:
                    continue
                log.warning("worker %d exited with %s; starting another", i, process.exitcode)
                now = time.monotonic()
                recent = [t for t in recent if now - t < 60.0]
                if len(recent) >= 5 * max(1, self.count):  # crash loop: slow down
                    self._stop.wait(10.0)
                recent.append(now)
                self.processes[i] = self._spawn(i)
                self.restarts += 1

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM every worker (each finishes its batch and exits), then wait for them."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        for process in self.processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes:
            process.join(max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                log.warning("worker %s did not stop in %g s; killing it", process.pid, timeout)
                process.kill()
                process.join(5.0)


def serve(url: str | None, config: ServiceConfig, *, workers: int = 1, host: str = "127.0.0.1",
          port: int = 8000, log_level: str = "info",
          announce: Callable[[str], None] | None = None) -> None:
    """Migrate the database, start ``workers`` worker processes, and serve the API and dashboard
    until interrupted."""
    import uvicorn

    token = os.environ.get(TOKEN_ENV) or None
    check_binding(host, token)
    parsed = database_url(url)
    service = Service(parsed, config, migrate=True)
    supervisor = Supervisor(parsed, config, workers, log_level=log_level.upper())
    app = create_app(service, token=token)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level,
                                           access_log=False))
    shown = f"[{host}]" if ":" in host else host
    if announce is not None:
        announce(f"dashboard http://{shown}:{port}/ · API http://{shown}:{port}/api · OpenAPI "
                 f"/openapi.json · database {redacted(parsed)} · {workers} worker(s), pace "
                 f"{config.pace}" + (" · bearer token required" if token else ""))
    # uvicorn catches SIGINT/SIGTERM while it serves and raises the signal again once it has
    # stopped; with Python's default handlers that would end this process before the workers
    # are stopped (they would be orphaned), so the signals find these no-op handlers instead
    previous = {s: signal.signal(s, _ignore) for s in (signal.SIGINT, signal.SIGTERM)}
    supervisor.start()
    try:
        server.run()
    finally:
        supervisor.stop()
        service.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _ignore(signum: int, frame: Any) -> None:
    """A signal uvicorn already acted on (it stopped serving)."""


def api_main(url: str, config: ServiceConfig, port: int, token: str | None = None) -> None:
    """An API-only process (no workers) on 127.0.0.1:``port``; SIGTERM stops it."""
    import uvicorn

    service = Service(url, config, migrate=False)
    server = uvicorn.Server(uvicorn.Config(create_app(service, token=token), host="127.0.0.1",
                                           port=port, log_level="warning", access_log=False))
    signal.signal(signal.SIGTERM, _ignore)
    try:
        server.run()
    finally:
        service.close()

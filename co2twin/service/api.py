"""The HTTP API (FastAPI; OpenAPI at ``/openapi.json``) and the dashboard, served together.

The layer is thin: every route forwards to one :class:`~co2twin.service.service.Service`
method (or a session's), so what it does is also a Python call. Errors are JSON
``{"error": kind, "problems": [...]}`` with the status of their kind (422 invalid, 403
refused, 404 not found, 409 conflict, 413 too large, 503 unavailable).

Authentication: when a token is given (``CO2TWIN_API_TOKEN``), every ``/api`` route but
``/api/health`` requires ``Authorization: Bearer <token>``; the server refuses to listen on
anything but a loopback address without one (:func:`check_binding`).
"""
from __future__ import annotations

import hmac
import ipaddress
import logging
from pathlib import Path
from typing import Any, Literal
from collections.abc import Awaitable, Callable, MutableMapping

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from cosim.errors import CosimError

from .errors import Invalid, ServiceError
from .experiment import ExperimentRequest, error_lines
from .results import FORMATS, MEDIA_TYPES, as_csv, as_json, as_parquet
from .service import Service
from .untrusted import sanitise
from .worker import json_safe

__all__ = ["create_app", "check_binding", "is_loopback", "STATIC"]

log = logging.getLogger("co2twin.service")

#: the dashboard's files (HTML, JS, CSS; nothing fetched from elsewhere)
STATIC = Path(__file__).with_name("static")

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
                   Awaitable[None]]


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_binding(host: str, token: str | None) -> None:
    """Refuse to serve on a non-loopback address without a bearer token."""
    if not is_loopback(host) and not token:
        raise Invalid(f"--host {host}: serving beyond this machine needs a bearer token; set "
                      "CO2TWIN_API_TOKEN (clients then send 'Authorization: Bearer <token>')")


class _BodyLimit:
    """Refuse request bodies over ``limit`` bytes (declared or streamed) with 413."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._too_large(send)
            return
        seen = 0

        async def counted() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await self._too_large(send)

    async def _too_large(self, send: Callable[[Any], Awaitable[None]]) -> None:
        body = Service.dumps({"error": "too_large", "problems": [
            f"expected a request body of at most {self.limit:,} bytes"]}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


class SessionStart(BaseModel):
    """A session from a scenario (mapping or YAML) or a test case by name."""

    model_config = ConfigDict(extra="forbid")
    scenario: dict[str, Any] | None = None
    scenario_yaml: str | None = None
    testcase: str | None = None
    name: str = Field(default="", max_length=200)


class Advance(BaseModel):
    """Actuator values to hold from now on, and how far to advance (default one step)."""

    model_config = ConfigDict(extra="forbid")
    u: dict[str, float] = Field(default_factory=dict, description="actuator -> value")
    steps: int | None = Field(default=None, ge=1)
    seconds: float | None = Field(default=None, gt=0)


def _problems(exc: RequestValidationError, request: Request) -> list[str]:
    """One line per problem of a request; an unknown key's lists the keys the body takes there."""
    route = request.scope.get("route")
    body = getattr(getattr(route, "body_field", None), "field_info", None)
    model = getattr(body, "annotation", None)
    return [sanitise(p) for p in error_lines(exc.errors(), model, outer="body")]


def _respond(frame: Any, fmt: str, name: str) -> Response:
    if fmt == "csv":
        return Response(as_csv(frame), media_type=MEDIA_TYPES["csv"],
                        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
    if fmt == "parquet":
        return Response(as_parquet(frame), media_type=MEDIA_TYPES["parquet"],
                        headers={"Content-Disposition": f'attachment; filename="{name}.parquet"'})
    return JSONResponse(as_json(frame))


def _signals(text: str | None) -> str | list[str] | None:
    if text is None or text == "":
        return None
    if text == "all":
        return "all"
    return [s.strip() for s in text.split(",") if s.strip()]


def create_app(service: Service, *, token: str | None = None) -> FastAPI:
    """The API and dashboard over ``service``; ``token``: the bearer token clients must send."""
    app = FastAPI(
        title="co2twin service",
        description="The CO2-to-formate twin as a service: an experiment queue on a database, "
                    "results, and interactive control sessions (start, advance with actuator "
                    "values, forecast, KPIs, stop).",
        version="1", docs_url=None, redoc_url=None)  # the docs UIs load scripts from a CDN
    app.state.service = service
    auth = [Depends(_authoriser(token))]
    _errors(app, service)
    _reference_routes(app, service, auth)
    _experiment_routes(app, service, auth)
    _session_routes(app, service, auth)
    _dashboard(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(_BodyLimit, limit=service.config.limits.max_request_bytes)
    return app


class _Unauthorised(Exception):
    pass


def _authoriser(token: str | None) -> Callable[..., None]:
    bearer = HTTPBearer(auto_error=False)

    def authorised(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if not token:
            return
        given = credentials.credentials if credentials is not None else ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise _Unauthorised

    return authorised


def _errors(app: FastAPI, service: Service) -> None:
    """Every error as JSON ``{"error", "problems"}`` with its status; security headers."""
    @app.exception_handler(_Unauthorised)
    async def _unauthorised(request: Request, exc: _Unauthorised) -> JSONResponse:
        return JSONResponse({"error": "unauthorised", "problems": [
            "expected 'Authorization: Bearer <token>' with the service's token"]},
            status_code=401, headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return JSONResponse({"error": type(exc).__name__.lower(), "problems": exc.problems},
                            status_code=exc.status)

    @app.exception_handler(CosimError)
    async def _cosim_error(request: Request, exc: CosimError) -> JSONResponse:
        problems = getattr(exc, "problems", None) or [str(exc)]
        return JSONResponse({"error": "invalid", "problems": [
            sanitise(p, service.config) for p in problems]}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": "invalid", "problems": _problems(exc, request)}, status_code=422)

    @app.exception_handler(sa.exc.OperationalError)
    async def _database(request: Request, exc: sa.exc.OperationalError) -> JSONResponse:
        log.warning("database error: %s", type(exc.orig).__name__)
        return JSONResponse({"error": "unavailable", "problems": [
            "the database is unreachable; try again"]}, status_code=503)

    @app.middleware("http")
    async def _headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]
                       ) -> Response:
        response = await call_next(request)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "connect-src 'self'; frame-ancestors 'none'")
        response.headers["Referrer-Policy"] = "no-referrer"
        return response


def _reference_routes(app: FastAPI, service: Service, auth: list[Any]) -> None:
    # -- health and reference data --------------------------------------------------------------
    @app.get("/api/health", tags=["service"])
    def health() -> dict[str, Any]:
        """Database reachable and migrated; experiments by status. No token needed."""
        return json_safe(service.health())

    @app.get("/api/signals", tags=["service"], dependencies=auth)
    def signals() -> list[dict[str, Any]]:
        """Every signal of the plant: unit, bounds, description, operating limits."""
        return json_safe(service.signals())

    @app.get("/api/base-experiments", tags=["experiments"], dependencies=auth)
    def base_experiments() -> list[dict[str, Any]]:
        """Base experiments (operating points) an experiment can start from."""
        return json_safe(service.base_experiments())

    @app.get("/api/electrodes", tags=["experiments"], dependencies=auth)
    def electrodes() -> list[dict[str, Any]]:
        """Electrodes."""
        return json_safe(service.electrodes())


def _experiment_routes(app: FastAPI, service: Service, auth: list[Any]) -> None:
    # -- experiments ------------------------------------------------------------------------------
    @app.get("/api/experiments", tags=["experiments"], dependencies=auth)
    def list_experiments(
        status: Literal["queued", "running", "done", "failed", "cancelled"] | None = None,
        limit: int = Query(100, ge=1, le=10_000), offset: int = Query(0, ge=0),
    ) -> list[dict[str, Any]]:
        """Experiments, newest first, with status and progress."""
        return json_safe(service.experiments(status=status, limit=limit, offset=offset))

    @app.post("/api/experiments", tags=["experiments"], dependencies=auth, status_code=201)
    def enqueue(request: ExperimentRequest) -> dict[str, Any]:
        """Validate (as untrusted) and queue an experiment: a base experiment plus overrides,
        or a full scenario. 422 lists every problem; 403 names what is not allowed."""
        return json_safe(service.enqueue(request, submitted_by="api"))

    @app.post("/api/experiments/validate", tags=["experiments"], dependencies=auth)
    def validate(request: ExperimentRequest) -> dict[str, Any]:
        """Check an experiment request without queueing it."""
        return json_safe(service.validate(request))

    @app.get("/api/experiments/{experiment_id}", tags=["experiments"], dependencies=auth)
    def experiment(experiment_id: int) -> dict[str, Any]:
        """Status, progress (0-1), KPIs when done, error when failed, units and limits."""
        return json_safe(service.experiment(experiment_id))

    @app.get("/api/experiments/{experiment_id}/events", tags=["experiments"], dependencies=auth)
    def events(experiment_id: int) -> list[dict[str, Any]]:
        """What happened to the experiment: queued, claimed, resumed, released, done."""
        return json_safe(service.events(experiment_id))

    @app.post("/api/experiments/{experiment_id}/cancel", tags=["experiments"], dependencies=auth)
    def cancel(experiment_id: int) -> dict[str, Any]:
        """Cancel a queued experiment, or stop a running one at its next batch."""
        return service.cancel(experiment_id)

    @app.get("/api/experiments/{experiment_id}/results", tags=["experiments"], dependencies=auth,
             response_model=None)
    def results(experiment_id: int, format: Literal["json", "csv", "parquet"] = "json",  # noqa: A002
                signals: str | None = Query(None, description="all, or names separated by "
                                            "commas (default: the key signals)"),
                since: float | None = Query(None, description="only rows after this time, s"),
                ) -> Response:
        """The experiment's executions as JSON (columns), CSV or Parquet (units in metadata)."""
        assert format in FORMATS
        frame = service.results(experiment_id, signals=_signals(signals), since=since)
        return _respond(frame, format, f"experiment-{experiment_id}")


def _session_routes(app: FastAPI, service: Service, auth: list[Any]) -> None:
    # -- control sessions ---------------------------------------------------------------------------
    @app.post("/api/sessions", tags=["sessions"], dependencies=auth, status_code=201)
    def start_session(body: SessionStart) -> dict[str, Any]:
        """Start a session from a scenario or a test case; its actuators and measurements."""
        given = [k for k in ("scenario", "scenario_yaml", "testcase") if getattr(body, k)]
        if len(given) != 1:
            raise Invalid("give one of scenario, scenario_yaml, testcase")
        source = body.scenario if body.scenario is not None else body.scenario_yaml
        session = service.sessions.start(source, testcase=body.testcase, name=body.name)
        with session.lock:
            info = session.info()
            info.update(session.measurements())
        return json_safe(info)

    @app.get("/api/sessions", tags=["sessions"], dependencies=auth)
    def list_sessions() -> list[dict[str, Any]]:
        """Open sessions."""
        return json_safe(service.sessions.listing())

    @app.get("/api/sessions/{sid}", tags=["sessions"], dependencies=auth)
    def session_info(sid: str) -> dict[str, Any]:
        """Time, step, end, actuators (unit, bounds, value), measurements."""
        return json_safe(service.sessions.run(sid, lambda s: s.info()))

    @app.post("/api/sessions/{sid}/advance", tags=["sessions"], dependencies=auth)
    def advance(sid: str, body: Advance) -> dict[str, Any]:
        """Hold the actuator values ``u`` from now on, advance, return the measurements."""
        limit = service.config.limits.max_advance_steps
        return json_safe(service.sessions.run(
            sid, lambda s: s.advance(body.u, steps=body.steps, seconds=body.seconds, limit=limit)))

    @app.get("/api/sessions/{sid}/measurements", tags=["sessions"], dependencies=auth)
    def measurements(sid: str, signals: str | None = None) -> dict[str, Any]:
        """Present values of the measurements (or of the signals named)."""
        names = _signals(signals)
        listed = names if isinstance(names, list) else None
        return json_safe(service.sessions.run(sid, lambda s: s.measurements(listed)))

    @app.get("/api/sessions/{sid}/forecast", tags=["sessions"], dependencies=auth)
    def forecast(sid: str, horizon: float = Query(3600.0, gt=0), interval: float | None = None,
                 signals: str | None = None) -> dict[str, Any]:
        """The scenario's inputs (or the signals named) over the horizon, actuators held."""
        names = _signals(signals)
        listed = names if isinstance(names, list) else None
        limit = service.config.limits.max_forecast_steps
        return json_safe(service.sessions.run(
            sid, lambda s: s.forecast(horizon, interval, listed, limit=limit)))

    @app.get("/api/sessions/{sid}/kpis", tags=["sessions"], dependencies=auth)
    def session_kpis(sid: str) -> dict[str, Any]:
        """The run's KPIs so far."""
        return json_safe(service.sessions.run(sid, lambda s: {"time": float(s.sim.time),
                                                              "kpis": s.kpis()}))

    @app.get("/api/sessions/{sid}/results", tags=["sessions"], dependencies=auth,
             response_model=None)
    def session_results(sid: str, format: Literal["json", "csv", "parquet"] = "json",  # noqa: A002
                        ) -> Response:
        """The session's recorded rows so far."""
        frame = service.sessions.run(sid, lambda s: s.results())
        frame.attrs["experiment"] = {"session": sid}
        return _respond(frame, format, f"session-{sid[:12]}")

    @app.delete("/api/sessions/{sid}", tags=["sessions"], dependencies=auth)
    def stop_session(sid: str) -> dict[str, Any]:
        """Stop a session; its final KPIs."""
        return json_safe(service.sessions.stop(sid))


def _dashboard(app: FastAPI) -> None:
    # -- the dashboard ----------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")


"""Interactive control sessions (BOPTEST's pattern): start a run, then advance it step by step
with actuator values and get measurements back, read forecasts and KPIs, stop.

A session lives in the memory of the process that serves it (a simulation cannot live in a
database); sessions idle longer than ``Limits.session_idle_s`` are closed. Everything the HTTP
API does with a session is a method here, so a Python caller gets the same behaviour.

**Test cases.** A session starts from a scenario (untrusted, checked as any request) or from
a control test case by name. Cases come from a *case loader*: by default a scenario file
``<cases_dir>/<name>.yaml`` (the operator's, trusted) with its ``case:`` section; pass
``case_loader=co2twin.control.load_case`` (a path -> an object with ``scenario``,
``actuators``, ``spec.measurements`` and ``profile(name)``) to use co2twin.control's cases,
whose known futures (price, planned set points) then appear in the forecasts.
"""
from __future__ import annotations

import math
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Callable, Mapping, Sequence

from co2twin.kpi import kpis as run_kpis
from co2twin.scenario import Scenario, build, load_scenario, operating_limits
from components.plant import INPUTS, resolve_input
from cosim.errors import CosimError

from .config import ServiceConfig
from .errors import Conflict, Invalid, NotFound, Refused, Unavailable
from .untrusted import check_caps, load_untrusted, sanitise

__all__ = ["Session", "SessionManager", "ScenarioCase", "CaseLoader"]

_CASE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


@dataclass
class ScenarioCase:
    """A test case as a plain scenario file: its ``case:`` section (if any) says which inputs a
    controller may drive and which signals it may read."""

    scenario: Scenario

    @property
    def actuators(self) -> list[str]:
        case = getattr(self.scenario, "case", None)
        return [resolve_input(a) for a in case.actuators] if case is not None else []

    @property
    def measurements(self) -> list[str]:
        case = getattr(self.scenario, "case", None)
        return list(case.measurements) if case is not None else []


#: a test case name (or path) -> an object with ``scenario`` (and optionally ``actuators``,
#: ``spec.measurements`` or ``measurements``, ``profile(name)``)
CaseLoader = Callable[[Path], Any]


@dataclass
class Session:
    """One running simulation driven from outside."""

    id: str
    scenario: Scenario
    sim: Any
    case: Any = None
    name: str = ""
    created: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)
    closed: bool = False
    actuators: dict[str, str] = field(default_factory=dict)
    measured: list[str] = field(default_factory=list)

    # -- what it exposes ------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """Id, time, step, end, the actuators (unit, bounds, value) and the measurements."""
        sim = self.sim
        inputs = []
        for name, signal in self.actuators.items():
            port = sim.port(signal)
            inputs.append({"name": name, "signal": signal, "unit": port.unit,
                           "lower": _finite(port.lower), "upper": _finite(port.upper),
                           "value": _finite(sim.get(signal)), "description": port.description})
        return {"id": self.id, "name": self.name, "scenario": self.scenario.name,
                "testcase": getattr(self.case, "name", None) if self.case is not None else None,
                "time": float(sim.time), "start": self.scenario.start, "end": self.scenario.end,
                "step": self.scenario.step, "closed": self.closed, "inputs": inputs,
                "measurements": {s: sim.unit(s) for s in self.measured}}

    def measurements(self, signals: Sequence[str] | None = None) -> dict[str, Any]:
        """Present values (as the sensors read them) of the measurements or of ``signals``."""
        names = list(signals) if signals else self.measured
        unknown = [s for s in names if s not in self.sim.signals]
        if unknown:
            raise Invalid(f"signals: unknown {', '.join(map(repr, unknown[:5]))}; see the "
                          "session's measurements")
        return {"time": float(self.sim.time), "y": {s: _finite(self.sim.get(s)) for s in names}}

    def advance(self, u: Mapping[str, float] | None = None, *, steps: int | None = None,
                seconds: float | None = None, limit: int = 100_000) -> dict[str, Any]:
        """Hold the actuator values ``u`` (scenario input names or ``component.port``) from now
        on, advance ``steps`` steps (or ``seconds``; default one step), return measurements."""
        sc, sim = self.scenario, self.sim
        n = self._steps(steps, seconds, limit)
        if sim.time + n * sc.step > sc.end + 1e-9 * max(1.0, abs(sc.end)):
            raise Conflict(f"session {self.id}: at {sim.time:g} s, {n} step(s) of {sc.step:g} s "
                           f"would pass the end of the run ({sc.end:g} s)")
        problems = []
        targets = {}
        for name, value in (u or {}).items():
            signal = self.actuators.get(name) or (name if name in self.actuators.values() else None)
            if signal is None:
                problems.append(f"u.{name}: expected an actuator ({', '.join(self.actuators)}), "
                                f"found {name[:60]!r}")
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value):
                problems.append(f"u.{name}: expected a finite number, found {str(value)[:40]!r}")
                continue
            port = sim.port(signal)
            if not port.contains(float(value)):
                problems.append(f"u.{name}: expected a value in {port.bounds_text()}, found "
                                f"{value!r}")
                continue
            targets[signal] = float(value)
        if problems:
            raise Invalid(problems)
        try:
            for signal, value in targets.items():
                sim.set(signal, value)
            sim.advance_to(sc.start + (round((sim.time - sc.start) / sc.step) + n) * sc.step)
        except CosimError as exc:
            raise Conflict(f"session {self.id}: {sanitise(str(exc))}") from None
        out = self.measurements()
        out["done"] = bool(sim.time >= sc.end - 1e-9 * max(1.0, abs(sc.end)))
        return out

    def _steps(self, steps: int | None, seconds: float | None, limit: int) -> int:
        step = self.scenario.step
        if steps is not None and seconds is not None:
            raise Invalid("give steps or seconds, not both")
        if seconds is not None:
            if not math.isfinite(seconds) or seconds <= 0:
                raise Invalid(f"seconds: expected a positive number, found {seconds!r}")
            n = round(seconds / step)
            if abs(n * step - seconds) > 1e-9 * max(1.0, seconds) or n < 1:
                raise Invalid(f"seconds: expected a multiple of the step ({step:g} s), found "
                              f"{seconds:g}")
        else:
            n = 1 if steps is None else int(steps)
        if n < 1:
            raise Invalid(f"steps: expected at least 1, found {n}")
        if n > limit:
            raise Refused(f"steps: expected at most {limit:,} per call, found {n:,}")
        return n

    def forecast(self, horizon: float, interval: float | None = None,
                 signals: Sequence[str] | None = None, limit: int = 100_000) -> dict[str, Any]:
        """What the run will see over the next ``horizon`` seconds if the actuators are held:
        the scenario's inputs as scheduled (profiles and events) by default, any signal if
        named; plus the test case's known futures (price, planned set points).

        Computed by running ahead from a checkpoint and rolling back, so it is exact for the
        scenario's disturbances and leaves the session where it was. Values are as the run
        records them: an input at time t is the value held over the step ending at t.
        """
        sc, sim = self.scenario, self.sim
        interval = interval or sc.step
        if not (math.isfinite(horizon) and horizon > 0):
            raise Invalid(f"horizon: expected a positive number of seconds, found {horizon!r}")
        every = round(interval / sc.step)
        if every < 1 or abs(every * sc.step - interval) > 1e-9 * max(1.0, interval):
            raise Invalid(f"interval: expected a multiple of the step ({sc.step:g} s), found "
                          f"{interval:g}")
        end = min(sc.end, sim.time + horizon)
        k0 = round((sim.time - sc.start) / sc.step)
        k_end = round((end - sc.start) / sc.step)
        if k_end - k0 > limit:
            raise Refused(f"horizon: expected at most {limit:,} steps ahead, found "
                          f"{k_end - k0:,}")
        names = list(signals) if signals else [s for s in sim.external_inputs]
        unknown = [s for s in names if s not in sim.signals]
        if unknown:
            raise Invalid(f"signals: unknown {', '.join(map(repr, unknown[:5]))}")
        known = self._known_futures()
        out: dict[str, Any] = {"time": []}
        out.update({s: [] for s in names})
        out.update({k: [] for k in known})
        state = sim.get_state()
        try:
            for k in range(k0, k_end + 1, every):
                if k > k0:
                    sim.advance_to(sc.start + k * sc.step)
                t = float(sim.time)
                out["time"].append(t)
                for s in names:
                    out[s].append(_finite(sim.get(s)))
                for key, profile in known.items():
                    out[key].append(_finite(profile.value(t)))
        except CosimError as exc:
            raise Conflict(f"session {self.id}: forecast: {sanitise(str(exc))}") from None
        finally:
            sim.set_state(state)
        return out

    def _known_futures(self) -> dict[str, Any]:
        case = self.case
        if case is None or not callable(getattr(case, "profile", None)):
            return {}
        spec = getattr(case, "spec", None)
        keys = (["price"] if getattr(spec, "price", None) is not None else []) + \
            [f"{s}.setpoint" for s in getattr(spec, "setpoints", {})]
        out = {}
        for key in keys:
            try:
                out[key] = case.profile(key)
            except (KeyError, CosimError):
                continue
        return out

    def kpis(self) -> dict[str, Any]:
        """The run's KPIs so far (co2twin.kpi), with the scenario's operating limits."""
        frame = self.sim.results()
        if len(frame) < 2:
            return {}
        return dict(run_kpis(frame, operating_limits(self.scenario)))

    def results(self) -> Any:
        """The recorded rows so far (pandas DataFrame, units in ``attrs``)."""
        return self.sim.results()

    def close(self) -> None:
        """Free what the simulation holds outside Python (FMU instances)."""
        if self.closed:
            return
        self.closed = True
        for comp in self.sim.components.values():
            close = getattr(comp, "close", None)
            if callable(close):
                close()


def _finite(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


class SessionManager:
    """The open sessions of one process, with caps on their number and idle time."""

    def __init__(self, config: ServiceConfig, *, case_loader: CaseLoader | None = None) -> None:
        self.config = config
        self.case_loader = case_loader or (lambda path: ScenarioCase(load_scenario(path)))
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def start(self, scenario: str | Mapping[str, Any] | None = None, *,
              testcase: str | None = None, name: str = "") -> Session:
        """Open a session on an untrusted scenario (YAML text or mapping) or a test case."""
        self.expire()
        if (scenario is None) == (testcase is None):
            raise Invalid("give a scenario or a testcase (one of them)")
        case = None
        if testcase is not None:
            case = self._case(testcase)
            sc = case.scenario
            check_caps(sc, self.config, source=f"testcase {testcase}")
        else:
            assert scenario is not None
            sc = load_untrusted(scenario, self.config, source="session").scenario
        with self._lock:
            if len(self._sessions) >= self.config.limits.max_sessions:
                raise Unavailable(f"expected at most {self.config.limits.max_sessions} open "
                                  "sessions, found that many: stop one first")
            sid = uuid.uuid4().hex
            self._sessions[sid] = placeholder = Session(sid, sc, None, case=case, name=name[:200])
        try:
            sim = build(sc)
            sim.initialize()
        except CosimError as exc:
            with self._lock:
                self._sessions.pop(sid, None)
            raise Invalid(f"session: {sanitise(str(exc), self.config)}") from None
        placeholder.sim = sim
        placeholder.actuators = _actuators(sim, case)
        placeholder.measured = _measured(sim, case)
        return placeholder

    def _case(self, name: str) -> Any:
        if not _CASE_NAME.match(name) or ".." in name:
            raise Invalid(f"testcase: expected a test case name (letters, digits, _ - .), found "
                          f"{name[:60]!r}")
        folder = self.config.cases_dir
        if folder is None:
            raise NotFound("testcase: this service has no test cases (cases_dir is not set)")
        path = Path(folder) / f"{name}.yaml"
        if not path.is_file():
            known = sorted(p.stem for p in Path(folder).glob("*.yaml"))
            raise NotFound(f"testcase: no test case {name!r}; known: {', '.join(known) or 'none'}")
        try:
            return self.case_loader(path)
        except CosimError as exc:
            raise Invalid(f"testcase {name}: {sanitise(str(exc), self.config)}") from None

    def get(self, sid: str) -> Session:
        """The open session ``sid`` (its idle time restarts)."""
        self.expire()
        with self._lock:
            session = self._sessions.get(sid)
        if session is None or session.sim is None:
            raise NotFound(f"session {sid[:40]}: no such session (stopped, or idle for more than "
                           f"{self.config.limits.session_idle_s:g} s)")
        session.last_used = time.monotonic()
        return session

    def run(self, sid: str, action: Callable[[Session], Any]) -> Any:
        """Call ``action(session)`` holding the session's lock (one call at a time per session)."""
        session = self.get(sid)
        with session.lock:
            if session.closed:
                raise NotFound(f"session {sid[:40]}: stopped")
            return action(session)

    def listing(self) -> list[dict[str, Any]]:
        """The open sessions."""
        self.expire()
        with self._lock:
            sessions = [s for s in self._sessions.values() if s.sim is not None]
        return [{"id": s.id, "name": s.name, "scenario": s.scenario.name,
                 "time": float(s.sim.time), "end": s.scenario.end} for s in sessions]

    def stop(self, sid: str) -> dict[str, Any]:
        """Close a session; its final KPIs."""
        session = self.get(sid)
        with session.lock:
            figures = session.kpis()
            session.close()
        with self._lock:
            self._sessions.pop(sid, None)
        return {"id": sid, "time": float(session.sim.time), "kpis": figures}

    def expire(self) -> None:
        """Close the sessions idle for longer than the limit."""
        cutoff = time.monotonic() - self.config.limits.session_idle_s
        with self._lock:
            stale = [s for s in self._sessions.values()
                     if s.sim is not None and s.last_used < cutoff]
            for s in stale:
                self._sessions.pop(s.id, None)
        for s in stale:
            with s.lock:
                s.close()

    def close_all(self) -> None:
        with self._lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
        for s in sessions:
            if s.sim is not None:
                s.close()


def _actuators(sim: Any, case: Any) -> dict[str, str]:
    """Actuator name -> input: the case's actuators, else every input the scenario leaves
    settable (by its scenario name where it has one)."""
    allowed = list(getattr(case, "actuators", []) or []) if case is not None else []
    short = {v: k for k, v in INPUTS.items()}
    inputs = allowed or list(sim.external_inputs)
    return {short.get(s, s): s for s in inputs if s in sim.external_inputs}


def _measured(sim: Any, case: Any) -> list[str]:
    """What a controller reads: the case's measurements, else every measured output."""
    if case is not None:
        spec = getattr(case, "spec", None)
        listed = list(getattr(spec, "measurements", None) or getattr(case, "measurements", None)
                      or [])
        if listed:
            return [s for s in listed if s in sim.signals]
    out = []
    for cname, comp in sim.components.items():
        out += [f"{cname}.{p.name}" for p in comp.outputs if p.measured]
    return [s for s in out if s in sim.signals]


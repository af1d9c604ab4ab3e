"""The service's configuration: data folders, allowlists, caps per request, queue timing.

No credentials here: the database URL comes from ``--db`` or ``CO2TWIN_DB_URL`` and its
password may come from ``CO2TWIN_DB_PASSWORD`` (:func:`co2twin.service.db.database_url`);
the API token from ``CO2TWIN_API_TOKEN``. A configuration file (YAML) holds only what is safe
to commit: folders, allowlists, limits.
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Mapping

from .errors import Invalid

__all__ = ["Limits", "ServiceConfig", "Pace", "parse_pace", "TOKEN_ENV", "DB_URL_ENV",
           "DB_PASSWORD_ENV"]

#: environment variable holding the API's bearer token
TOKEN_ENV = "CO2TWIN_API_TOKEN"
#: environment variable holding the database URL when ``--db`` is not given
DB_URL_ENV = "CO2TWIN_DB_URL"
#: environment variable holding the database password when the URL has none
DB_PASSWORD_ENV = "CO2TWIN_DB_PASSWORD"


@dataclass(frozen=True)
class Limits:
    """Caps on what one untrusted request may ask for."""

    max_request_bytes: int = 1_000_000       #: HTTP request body
    max_scenario_bytes: int = 256_000        #: a scenario's YAML or JSON text
    max_nodes: int = 20_000                  #: values in a scenario, aliases expanded
    max_duration_s: float = 7 * 86400.0      #: simulated time of one experiment or session
    max_steps: int = 2_000_000               #: simulation steps of one experiment or session
    max_rows: int = 200_000                  #: execution rows one experiment may write
    max_realtime_s: float = 24 * 3600.0      #: wall time of a run paced in real time
    max_sessions: int = 16                   #: control sessions open at once
    max_advance_steps: int = 100_000         #: steps of one ``advance`` call
    max_forecast_steps: int = 100_000        #: steps a forecast looks ahead
    session_idle_s: float = 1800.0           #: a session idle this long is closed
    max_result_rows: int = 1_000_000         #: rows in one results response


@dataclass(frozen=True)
class Pace:
    """How fast a worker runs an experiment: ``speed`` simulated seconds per wall second, or as
    fast as possible (``speed`` None)."""

    speed: float | None = None

    @property
    def realtime(self) -> bool:
        return self.speed is not None

    def __str__(self) -> str:
        if self.speed is None:
            return "fast"
        return "realtime" if self.speed == 1.0 else f"{self.speed:g}x"


_PACE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*x\s*$")


def parse_pace(text: str | None) -> Pace:
    """``realtime`` (1 simulated second per second, as the VALCO2T service paced its iterations),
    ``fast`` (no waiting), or ``<N>x`` (N simulated seconds per wall second)."""
    if text is None or text.strip().lower() == "fast":
        return Pace(None)
    if text.strip().lower() == "realtime":
        return Pace(1.0)
    match = _PACE.match(text)
    if match and math.isfinite(float(match.group(1))) and float(match.group(1)) > 0:
        return Pace(float(match.group(1)))
    raise Invalid(f"pace: expected realtime, fast or a speed such as 10x, found {text!r}")


@dataclass(frozen=True)
class ServiceConfig:
    """What a service process (API and workers) is allowed to do and how it paces its work.

    ``data_dirs``: the only folders whose files an untrusted scenario may name (CSV profiles,
    trained models), by paths relative to one of them. ``allow_fmus``: SHA-256 digests of the
    FMUs an untrusted scenario may load; ``allow_python``: module names of the Python
    controllers it may load. ``cases_dir``: the folder of control test cases that sessions
    may start from (trusted: the operator's files).
    """

    data_dirs: tuple[Path, ...] = ()
    allow_fmus: frozenset[str] = frozenset()
    allow_python: frozenset[str] = frozenset()
    cases_dir: Path | None = None
    limits: Limits = field(default_factory=Limits)
    pace: Pace = field(default_factory=Pace)
    #: a claimed experiment whose worker has not written for this long is taken over
    lease_s: float = 30.0
    #: rows per write (fast runs) and the longest wait between writes (paced runs)
    batch_rows: int = 500
    flush_s: float = 1.0
    #: wait between polls of an empty queue
    poll_s: float = 1.0
    #: claims of one experiment before it is marked failed (workers died running it)
    max_attempts: int = 3
    #: how long a worker retries a lost database connection before it gives up
    db_outage_s: float = 300.0

    def replace(self, **changes: Any) -> ServiceConfig:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "<config>",
                     base_dir: Path = Path(".")) -> ServiceConfig:
        """The configuration a YAML file describes (folders relative to the file)."""
        problems: list[str] = []
        known = {f.name for f in dataclasses.fields(cls)}
        for key in data:
            if key not in known:
                hint = " (credentials never go in a file: use CO2TWIN_DB_URL / " \
                    "CO2TWIN_DB_PASSWORD / CO2TWIN_API_TOKEN)" if re.search(
                        r"pass|token|secret|url|db", str(key), re.I) else ""
                problems.append(f"{source}: {key}: unknown key; expected one of "
                                f"{', '.join(sorted(known))}{hint}")
        kwargs: dict[str, Any] = {}
        if "data_dirs" in data:
            kwargs["data_dirs"] = tuple((base_dir / str(p)).resolve() for p in data["data_dirs"])
        if data.get("cases_dir") is not None:
            kwargs["cases_dir"] = (base_dir / str(data["cases_dir"])).resolve()
        for key in ("allow_fmus", "allow_python"):
            if key in data:
                kwargs[key] = frozenset(str(v).lower() if key == "allow_fmus" else str(v)
                                        for v in data[key])
        if "limits" in data:
            limit_fields = {f.name for f in dataclasses.fields(Limits)}
            bad = sorted(set(data["limits"]) - limit_fields)
            problems += [f"{source}: limits.{k}: unknown key; expected one of "
                         f"{', '.join(sorted(limit_fields))}" for k in bad]
            kwargs["limits"] = Limits(**{k: v for k, v in data["limits"].items()
                                         if k in limit_fields})
        if "pace" in data:
            kwargs["pace"] = parse_pace(str(data["pace"]))
        for key in ("lease_s", "flush_s", "poll_s", "db_outage_s"):
            if key in data:
                kwargs[key] = float(data[key])
        for key in ("batch_rows", "max_attempts"):
            if key in data:
                kwargs[key] = int(data[key])
        if problems:
            raise Invalid(problems)
        return cls(**kwargs)

    @classmethod
    def from_file(cls, path: str | Path) -> ServiceConfig:
        """Read a YAML configuration file (safe loader)."""
        import yaml

        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise Invalid(f"{path}: cannot read the configuration ({exc.strerror or exc})") from None
        except yaml.YAMLError as exc:
            raise Invalid(f"{path}: invalid YAML: {exc}") from None
        if not isinstance(data, Mapping):
            raise Invalid(f"{path}: expected a mapping at the top level")
        return cls.from_mapping(data, source=str(path), base_dir=path.parent)

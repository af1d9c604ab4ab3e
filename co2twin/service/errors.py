"""The service's exceptions: one tree under :class:`cosim.errors.CosimError`, each subclassing the
builtin whose meaning matches, so the HTTP layer maps them to status codes in one place."""
from __future__ import annotations

from collections.abc import Sequence

from cosim.errors import CosimError

__all__ = ["ServiceError", "NotFound", "Invalid", "Refused", "Conflict", "Unavailable"]


class ServiceError(CosimError):
    """Anything the service refuses or cannot do; ``problems`` lists every reason, one line each."""

    status = 400

    def __init__(self, problems: str | Sequence[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems) if len(self.problems) < 2
                         else f"{len(self.problems)} problems:\n" + "\n".join(
                             f"  - {p}" for p in self.problems))


class NotFound(ServiceError, LookupError):
    """No experiment, base experiment, session or test case by that id."""

    status = 404


class Invalid(ServiceError, ValueError):
    """A request or scenario that fails validation (every problem listed)."""

    status = 422


class Refused(ServiceError, PermissionError):
    """An untrusted request asked for something the service does not allow (a path outside
    the data folders, an FMU or Python controller not allowlisted, a size over the caps)."""

    status = 403


class Conflict(ServiceError, RuntimeError):
    """The request does not fit the object's state (advancing a stopped session)."""

    status = 409


class Unavailable(ServiceError, RuntimeError):
    """The service is at capacity (too many sessions) or the database is unreachable."""

    status = 503

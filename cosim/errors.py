"""One exception tree for co2twin.

Every message names what was wrong (file, component, port, value), what was
expected, and where possible how to fix it. Exceptions subclass the builtin
whose meaning they share so callers can catch either.
"""
from __future__ import annotations

__all__ = [
    "CosimError",
    "ScenarioError",
    "WiringError",
    "SimulationError",
    "ModelError",
    "FMUError",
]


class CosimError(Exception):
    """Base class of every error co2twin raises on purpose."""


class ScenarioError(CosimError, ValueError):
    """A scenario file or scenario object is invalid.

    ``problems`` holds one line per problem; ``str()`` joins them, prefixed with
    the file name, so a user sees every problem at once.
    """

    def __init__(self, problems: list[str] | str, source: str | None = None) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.source = source
        prefix = f"{source}: " if source else ""
        if len(self.problems) == 1:
            text = prefix + self.problems[0]
        else:
            text = prefix + f"{len(self.problems)} problems\n" + "\n".join(
                f"  - {p}" for p in self.problems
            )
        super().__init__(text)


class WiringError(CosimError, ValueError):
    """Components cannot be connected as asked (unknown port, unit mismatch, cycle)."""


class SimulationError(CosimError, RuntimeError):
    """A simulation could not proceed (bad call order, non-finite output, balance broken)."""


class ModelError(CosimError, ValueError):
    """A surrogate or physics model is unusable or was asked outside its domain."""


class FMUError(CosimError, RuntimeError):
    """An FMU could not be built, loaded or stepped."""

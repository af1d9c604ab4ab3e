"""Ctrl-C and SIGTERM during ``co2twin run``: stop at the end of the current step, keep the
results so far, exit 128 + the signal's number (130 for SIGINT, 143 for SIGTERM).

A second signal aborts at once: nothing is written (the temporary files are removed on
the way out) and the exit code is the same.
"""
from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

from co2twin.streaming import StopRequest

__all__ = ["StopOnSignals", "exit_code"]

_SIGNALS = tuple(s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None))
                 if s is not None)


def exit_code(reason: str | None) -> int:
    """The shell's code for a process ended by the signal named ``reason`` (128 + number)."""
    number = getattr(signal, reason or "", None)
    return 128 + int(number) if number is not None else 1


class Aborted(SystemExit):
    """A second signal: leave now, removing what was half written on the way out."""


class StopOnSignals:
    """While active, SIGINT and SIGTERM make a :class:`StopRequest` instead of killing.

    Handlers can only be installed from the main thread; elsewhere (the CLI called from a
    thread) this does nothing and the signals keep their usual effect.
    """

    def __init__(self) -> None:
        self.stop = StopRequest()
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for number in _SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self.stop

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()

    def _handle(self, number: int, frame: FrameType | None) -> None:
        name = signal.Signals(number).name
        if self.stop.reason is not None:
            raise Aborted(128 + number)
        self.stop.request(name)

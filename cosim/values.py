"""The signal values of a simulation: one flat list of slots, and what reads, writes and
checks them.

Every signal has a slot in a plain list (floats in a single run, arrays of one value per
variant in an ensemble); a component's inputs and outputs are slots too. These helpers are
built once per component when the run starts, so the per-step loop in
:mod:`cosim.simulation` does no name lookups: a slice or an ``itemgetter`` per component.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

import numpy as np

from .errors import SimulationError

__all__ = ["bad_text", "checked_array", "finite", "getter", "picker", "writer"]


def checked_array(signal: str, port: Any, value: np.ndarray, t: float) -> np.ndarray:
    """An input's values, one per variant: numbers, finite and within the port's bounds."""
    try:
        number = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise SimulationError(f"{signal}: expected numbers, found {value!r}") from None
    bad = ~(np.isfinite(number) & (number >= port.lower) & (number <= port.upper))
    if bad.any():
        rows = np.flatnonzero(bad)
        raise SimulationError(
            f"{signal} at t={t:g} s: expected finite values in {port.bounds_text()}, found "
            f"{float(number[rows[0]])!r} in variant {rows[0]}"
            + (f" (and {len(rows) - 1} more variant(s))" if len(rows) > 1 else "")
        )
    return number


def bad_text(name: str, value: Any) -> str:
    """``name = value`` for a non-finite signal; for an array, which variants and a value."""
    if not isinstance(value, np.ndarray) or value.ndim == 0:
        return f"{name} = {value!r}"
    try:
        rows = np.flatnonzero(~np.isfinite(value))
    except TypeError:
        return f"{name} = {value!r}"
    shown = ", ".join(str(r) for r in rows[:10]) + (", ..." if len(rows) > 10 else "")
    return f"{name} = {float(value[rows[0]])!r} in variant(s) {shown} (of {value.size})"


def writer(values: list[Any], scatter: list[tuple[str, int]]) -> Callable[[Any], None]:
    """What puts a component's outputs (a mapping) into their slots: one slice assignment
    when the slots run consecutively, as a component's outputs are laid out."""
    slots = [i for _, i in scatter]
    if len(slots) >= 2 and slots == list(range(slots[0], slots[0] + len(slots))):
        first, end = slots[0], slots[0] + len(slots)
        get = itemgetter(*(n for n, _ in scatter))

        def put(out: Any) -> None:
            values[first:end] = get(out)
        return put

    def put_each(out: Any) -> None:
        for n, i in scatter:
            values[i] = out[n]
    return put_each


def getter(slots: Sequence[Any]) -> Callable[[Any], tuple[Any, ...]]:
    """What takes the items at ``slots`` (indices of the values, or keys of a mapping) out
    as a tuple, for any number of them (``itemgetter`` gives a bare value for one: that case
    is wrapped)."""
    if len(slots) >= 2:
        return itemgetter(*slots)
    if len(slots) == 1:
        only = slots[0]
        return lambda values: (values[only],)
    return lambda values: ()


def picker(indices: list[int]) -> Callable[[list[Any]], list[Any]]:
    """What takes a recorded row out of the values: a slice when the columns are the
    first slots in order (every signal recorded), else the slots picked one by one."""
    n = len(indices)
    if indices == list(range(n)):
        return lambda values: values[:n]
    get = itemgetter(*indices) if n >= 2 else None
    if get is None:
        return lambda values: [values[i] for i in indices]
    return lambda values: list(get(values))


def finite(value: Any) -> bool:
    try:
        return math.isfinite(value)
    except TypeError:
        return bool(np.all(np.isfinite(value)))

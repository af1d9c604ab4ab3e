"""How long a scenario will run here and how large its results will be, before it runs.

Measured, not guessed: the scenario's own simulation is built and run for a short
calibration (a few hundred steps, at least :data:`CALIBRATION_S` of wall time, at most
:data:`CALIBRATION_STEPS` steps or the run itself), on this machine, with this scenario's
models, FMUs and rates. Its recorded rows are then encoded as the results file would be,
to measure the bytes per row and the writing time. Nothing is cached or written: a
measurement kept between runs would go stale when the machine is busy or the models
change, and would be a file the user did not ask for; the calibration costs a fraction
of a second.

The wall time is ``steps x (seconds per step) + rows x (seconds per row written)``; the
first steps of a run are taken as typical, so a run whose speed changes later (an FMU
that slows down, events) may differ. The results are ``rows x columns x 8`` bytes of
float64 (what :func:`co2twin.run` holds in memory; a streamed run holds one chunk of it),
the file ``rows x (bytes per row)`` measured on the calibration rows.
"""
from __future__ import annotations

import io
import time
import warnings
from dataclasses import dataclass

from .scenario import add_derived_columns, build, run_attrs
from .scenario_schema import Scenario

__all__ = ["Estimate", "estimate", "duration_text", "size_text", "CALIBRATION_S",
           "CALIBRATION_STEPS"]

#: wall time the calibration runs at least (unless the run is shorter)
CALIBRATION_S = 0.2
#: steps the calibration runs at most
CALIBRATION_STEPS = 20_000
_WARM_UP = 10  # first steps, not timed: caches and lazy set-up


@dataclass(frozen=True)
class Estimate:
    """What a run of a scenario will take: wall time here, rows, columns, bytes."""

    steps: int
    rows: int
    columns: int  # time included
    wall_s: float
    file_bytes: int
    fmt: str
    steps_per_s: float
    calibration_steps: int

    @property
    def results_bytes(self) -> int:
        """``rows x columns x 8``: the results as float64 arrays."""
        return self.rows * self.columns * 8

    def text(self) -> str:
        """One line: ``~12 min for 2,000,000 steps (2,800 steps/s here); results ...``."""
        return (f"~{duration_text(self.wall_s)} for {self.steps:,} steps "
                f"({self.steps_per_s:,.0f} steps/s measured here); results {self.rows:,} rows "
                f"x {self.columns} columns = {size_text(self.results_bytes)} as float64, "
                f"file ~{size_text(self.file_bytes)} ({self.fmt})")


def estimate(scenario: Scenario, fmt: str = "parquet") -> Estimate:
    """Measure a short calibration run of ``scenario`` and scale it to the whole run.

    Raises what building or running the scenario raises (a :class:`CosimError`).
    """
    with warnings.catch_warnings():
        # a measurement, not the run: the run itself warns about what it meets
        warnings.simplefilter("ignore")
        return _estimate(scenario, fmt)


def _estimate(scenario: Scenario, fmt: str) -> Estimate:
    sim = build(scenario)
    try:
        # every step recorded, so the bytes per row are measured on enough rows
        sim.record(None if scenario.record.signals == "all" else scenario.record.signals)
        sim.initialize()
        steps = scenario.steps

        def at(k: int) -> float:
            return scenario.start + k * scenario.step

        k = _WARM_UP if steps > 2 * _WARM_UP else 0  # a short run is timed whole
        if k:
            sim.advance_to(at(k))
        timed, batch, begun = 0, 50, time.perf_counter()
        elapsed = 0.0
        while k < steps and timed < CALIBRATION_STEPS and (elapsed < CALIBRATION_S or timed < 200):
            n = min(batch, steps - k, CALIBRATION_STEPS - timed)
            sim.advance_to(at(k + n))
            k, timed, batch = k + n, timed + n, batch * 2
            elapsed = time.perf_counter() - begun
        per_step = elapsed / max(timed, 1)
        frame = sim.results()
        frame.attrs["scenario"] = run_attrs(scenario, sim)
        add_derived_columns(frame, scenario)
    finally:
        _close(sim)
    rows = steps // scenario.record.every + 1
    file_bytes, per_row_s = _file_cost(frame, fmt, rows)
    return Estimate(steps=steps, rows=rows, columns=frame.shape[1] + 1,
                    wall_s=steps * per_step + rows * per_row_s, file_bytes=file_bytes, fmt=fmt,
                    steps_per_s=1.0 / per_step if per_step > 0 else float("inf"),
                    calibration_steps=timed)


def _file_cost(frame: object, fmt: str, rows: int) -> tuple[int, float]:
    """Bytes and seconds to write ``rows`` rows like ``frame``'s, from encoding half of its
    rows and all of them (the difference is free of the file's fixed overhead)."""
    import pandas as pd

    assert isinstance(frame, pd.DataFrame)
    n = len(frame)
    half = max(1, n // 2)
    begun = time.perf_counter()
    size_all = _encoded(frame, fmt)
    per_row_s = (time.perf_counter() - begun) / max(n, 1)
    if n < 4:
        return int(size_all * rows / max(n, 1)), per_row_s
    size_half = _encoded(frame.iloc[:half], fmt)
    per_row = max((size_all - size_half) / (n - half), 1.0)
    return int(max(size_all, size_half + per_row * (rows - half))), per_row_s


def _encoded(frame: object, fmt: str) -> int:
    import pandas as pd

    assert isinstance(frame, pd.DataFrame)
    if fmt == "csv":
        return len(frame.to_csv(float_format="%.17g").encode())
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=True)
    return len(buffer.getvalue())


def _close(sim: object) -> None:
    for comp in getattr(sim, "components", {}).values():
        close = getattr(comp, "close", None)
        if callable(close):
            close()


def duration_text(seconds: float) -> str:
    """``0.4 s``, ``12 s``, ``14 min``, ``3.2 h``, ``41 h``, ``5.1 days``."""
    if seconds < 10:
        return f"{seconds:.1g} s" if seconds < 1 else f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        hours = seconds / 3600
        return f"{hours:.1f} h" if hours < 10 else f"{hours:.0f} h"
    return f"{seconds / 86400:.1f} days"


def size_text(n: float) -> str:
    """``512 B``, ``12 kB``, ``95 MB``, ``4.3 GB`` (powers of 1000)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            value = n / scale
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{n:.0f} B"

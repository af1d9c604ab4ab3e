"""A stand-in chunk runner for the sweep machinery's tests: fast, deterministic, instrumented.

Workers import it by name (``sweep_kit.fake_runner``), so a worker process needs this folder on
its ``PYTHONPATH`` (a LocalCluster's spawned workers get the parent's ``sys.path``). It reads
its instructions from the environment, which workers inherit:

- ``SWEEP_KIT_LOG``: a folder where each chunk attempt leaves ``start-<first value>-<pid>-<ns>``;
- ``SWEEP_KIT_SLEEP``: seconds each chunk takes (a window to kill a worker in);
- ``SWEEP_KIT_FAIL_ONCE``: the first value of a chunk whose first attempt raises.

The KPIs are functions of the variant's values, so a test can tell every variant's row apart
and check it: ``mean_current_A`` = ``inputs.current``, ``energy_kWh`` = 2 * current + fe_max; the balances'
``charge`` residual is 1e-15 * current.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd


class FakeResult:
    """What :func:`co2twin.ensemble.run_ensemble` returns, as far as the sweep uses it."""

    def __init__(self, variants: Sequence[Mapping[str, Any]], keep: Sequence[str] | None,
                 every: int | None) -> None:
        self.variants = list(variants)
        self.keep = list(keep or [])
        self.every = every or 1

    def kpis(self) -> pd.DataFrame:
        current = np.array([v.get("inputs.current", 5.0) for v in self.variants], dtype=float)
        fe = np.array([v.get("plant.reactor.fe_max", 0.9) for v in self.variants], dtype=float)
        frame = pd.DataFrame({"mean_current_A": current, "energy_kWh": 2.0 * current + fe})
        frame.index.name = "variant"
        return frame

    def balances(self) -> pd.DataFrame:
        current = [float(v.get("inputs.current", 5.0)) for v in self.variants]
        return pd.DataFrame({"variant": range(len(self.variants)), "charge": [1e-15 * c for c in current]})

    def frame_long(self) -> pd.DataFrame:
        times = np.arange(0.0, 10.0, float(self.every))
        rows = []
        for i, v in enumerate(self.variants):
            current = float(v.get("inputs.current", 5.0))
            part = pd.DataFrame({"variant": i, "time": times})
            for name in self.keep:
                part[name] = current * (1.0 + times / 10.0)
            rows.append(part)
        return pd.concat(rows, ignore_index=True)


def fake_runner(scenario: Any, variants: Sequence[Mapping[str, Any]], *,
                keep: Sequence[str] | None, every: int | None) -> FakeResult:
    """Log the attempt, wait, maybe fail once, and return KPIs computed from the variants."""
    first = f"{float(variants[0].get('inputs.current', 5.0)):.4f}"
    log = os.environ.get("SWEEP_KIT_LOG")
    if log:
        Path(log, f"start-{first}-{os.getpid()}-{time.time_ns()}").touch()
    time.sleep(float(os.environ.get("SWEEP_KIT_SLEEP", "0")))
    if log and os.environ.get("SWEEP_KIT_FAIL_ONCE") == first:
        try:
            fd = os.open(Path(log, f"failed-{first}"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pass
        else:
            os.close(fd)
            raise RuntimeError(f"planned failure of the chunk starting at {first}")
    return FakeResult(variants, keep, every)


def attempts(log: Path) -> list[tuple[str, int]]:
    """(first value, pid) of every chunk attempt logged in ``log``."""
    out = []
    for path in log.glob("start-*"):
        _, first, pid, _ = path.name.split("-")
        out.append((first, int(pid)))
    return out

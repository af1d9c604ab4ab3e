"""Variants of a scenario an ensemble cannot take, run one at a time with the same results.

An ensemble (:mod:`co2twin.ensemble`) steps every component on arrays of variants; a Python
controller and FMU components step one run at a time, and the solar supply's components take
their parameters as numbers, so such variants cannot be one (:func:`one_at_a_time` says why).
Sizing the supply is still a sweep (PV peak power x battery capacity, over the same days):
:func:`run_variants` runs each variant as the scenario it is
(:func:`co2twin.variant_paths.apply_variant`, which also takes ``supply.<section>.<parameter>``
here) through :func:`co2twin.scenario.run`, the single run itself, and gives the tables an
ensemble's result gives (:class:`VariantRuns`: ``kpis()``, ``balances()``, ``flags()``,
``frame_long()``), so ``co2twin sweep`` writes, merges and summarises them alike. Each
variant's KPIs, balances and flags are taken from its frame as soon as it has run and only
the kept signals stay, so a chunk holds one run's rows at a time.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from components.plant import KEY_SIGNALS
from cosim.errors import ScenarioError
from cosim.graph import match_signals

from .ensemble import record_every, scalar_components
from .ensemble_result import EnsembleResult
from .scenario import run
from .variant_paths import apply_variant
from .scenario_schema import Scenario

__all__ = ["VariantRuns", "one_at_a_time", "run_variants"]


class VariantRuns:
    """What :func:`run_variants` gives: per variant its KPIs, balances and flags, and the kept
    signals in long format, in the layout of :class:`co2twin.ensemble_result.EnsembleResult`."""

    #: how the variants ran (``co2twin sweep`` records it per chunk)
    mode = "one run per variant"

    def __init__(self, kpis: pd.DataFrame, balances: pd.DataFrame, flags: pd.DataFrame,
                 long: pd.DataFrame) -> None:
        self._kpis, self._balances, self._flags, self._long = kpis, balances, flags, long

    def kpis(self) -> pd.DataFrame:
        """One row per variant (column ``variant``): the KPIs of its run
        (:func:`co2twin.kpi.kpis`), a per-signal KPI as ``key[signal]``."""
        return self._kpis

    def balances(self) -> pd.DataFrame:
        """One row per variant: the worst relative residual of each balance of its run."""
        return self._balances

    def flags(self) -> pd.DataFrame:
        """Every flag a variant's run raised, one row each (as ``EnsembleResult.flags``)."""
        return self._flags

    def frame_long(self) -> pd.DataFrame:
        """The kept signals in long format: columns ``variant``, ``time``, then one per signal."""
        return self._long


def run_variants(scenario: Scenario, variants: Sequence[Mapping[str, Any]], *,
                 keep: Sequence[str] | None = None, every: int | None = None,
                 first_variant: int = 0) -> VariantRuns:
    """Run each variant of ``scenario`` on its own; see the module's docstring.

    ``variants``, ``keep`` (signal names or glob patterns; default the plant's key signals),
    ``every`` (record every that many steps; default the scenario's ``record.every``: the KPIs
    are those of a run recorded at that rate) and ``first_variant`` as for
    :func:`co2twin.ensemble.run_ensemble`. A variant's bad path or value raises
    :class:`ScenarioError` naming the variant before anything runs.
    """
    every = record_every(scenario, every)
    if not variants:
        raise ScenarioError("expected at least one variant, found none", scenario.source)
    scenarios = [_variant_scenario(scenario, v, every, i) for i, v in enumerate(variants)]
    numbers = np.arange(len(variants)) + first_variant
    kpi_tables, balance_tables, flag_tables, longs = [], [], [], []
    kept: list[str] | None = None
    for number, s in zip(numbers, scenarios, strict=True):
        frame = run(s, progress=False)
        if kept is None:
            kept = _kept(list(frame.columns), keep, scenario.source)
        # the run's rows as an ensemble of one: its KPIs, balances and flags from the code an
        # ensemble's come from, without pandas' copy of the metadata at each column it reads
        one = EnsembleResult(frame.index.to_numpy(), list(frame.columns),
                             [frame.attrs["units"].get(c, "") for c in frame.columns],
                             frame.to_numpy(dtype=float)[:, :, None], kept=kept,
                             meta=frame.attrs["scenario"], events=[], first_variant=int(number))
        kpi_tables.append(one.kpis())
        balance_tables.append(one.balances())
        flag_tables.append(one.flags())
        longs.append(one.frame_long())
    return VariantRuns(*(pd.concat(t, ignore_index=True) for t in (
        kpi_tables, balance_tables, flag_tables, longs)))


def one_at_a_time(scenario: Scenario, paths: Sequence[str]) -> str | None:
    """Why variants of ``scenario`` setting ``paths`` cannot be one ensemble, or None if they
    can: components that step one run at a time (a Python controller, FMUs), or ``supply.*``
    paths (the solar supply's parameters, which its components take as numbers)."""
    names = [c.split(" (")[0] for c in scalar_components(scenario)]
    if names:
        return f"{', '.join(names)} step one run at a time"
    supply = [p for p in dict.fromkeys(paths) if p.startswith("supply.")]
    if supply:
        return f"{', '.join(supply)} vary the solar supply's parameters"
    return None


def _variant_scenario(scenario: Scenario, variant: Mapping[str, Any], every: int,
                      index: int) -> Scenario:
    """The variant's scenario, recording every signal every ``every`` steps (the KPIs read
    the columns the scenario records), validated as a file would be."""
    try:
        return apply_variant(scenario, variant, record={"signals": "all", "every": every})
    except ScenarioError as exc:
        raise ScenarioError([f"variant {index}: {p}" for p in exc.problems], scenario.source) from None


def _kept(columns: list[str], patterns: Sequence[str] | None, source: str) -> list[str]:
    """The recorded signals ``patterns`` name or match (default the plant's key signals)."""
    if patterns is None:
        return [c for c, _ in KEY_SIGNALS if c in columns]
    return match_signals(columns, [patterns] if isinstance(patterns, str) else patterns,
                         lambda pattern: ScenarioError(f"keep: {pattern!r} matches no signal; known: "
                                                       f"{', '.join(columns)}", source))

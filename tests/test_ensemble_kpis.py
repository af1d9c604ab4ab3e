"""An ensemble's KPIs and balances in one pass: co2twin.kpi on every variant's columns at once.

::

    EnsembleResult.kpis()  ──▶ co2twin.kpi.kpis(rows x variants)  ──▶ one figure per variant
                                 (the same functions a single run's KPIs come from)
    == for each variant: co2twin.kpi.kpis(its own frame), every key; NaN where it has none
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import co2twin.ensemble_result as ensemble_module
from co2twin.ensemble import EnsembleResult, run_ensemble
from co2twin.kpi import balances, kpis
from co2twin.scenario import parse_scenario
from models.surrogate import EnvelopeWarning
from test_ensemble import BASE, VARIANTS

#: variants beyond test_ensemble's that make KPIs and flags present for some variants only:
#: no current (no cell voltage, FE not evaluated), far outside the surrogates' envelope
#: (envelope flags, limits exceeded)
EXTRA: list[dict[str, Any]] = [
    {"inputs.current": 0.0, "events[4].to": 0.0},
    {"inputs.current": 40.0, "events[4].to": 40.0},
]


def _ensemble(every: int) -> EnsembleResult:
    with pytest.warns(EnvelopeWarning):
        return run_ensemble(parse_scenario(BASE), [*VARIANTS, *EXTRA], every=every)


@pytest.fixture(scope="module", params=[1, 7], ids=["every-step", "decimated"])
def result(request: Any) -> EnsembleResult:
    return _ensemble(request.param)


def _flat(figures: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in figures.items():
        if isinstance(value, dict):
            out.update({f"{key}[{k}]": v for k, v in value.items()})
        else:
            out[key] = value
    return out


def _same(got: float, expected: float) -> bool:
    if math.isinf(expected):
        return got == expected
    return got == pytest.approx(expected, rel=1e-12, abs=1e-300)


def test_vectorised_kpis_equal_each_variants_own(result):
    """Every KPI key of co2twin.kpi.kpis on each variant's own frame, and no other, with its
    value; NaN in the table exactly where the variant's KPIs have no such key."""
    table = result.kpis()
    limits = result.meta["limits"]
    seen: set[str] = set()
    for i in range(result.n):
        expected = _flat(kpis(result.frame(i), limits))
        row = table.iloc[i]
        present = {k for k in table.columns if k != "variant" and not np.isnan(row[k])}
        assert present == set(expected), (i, present ^ set(expected))
        for key, value in expected.items():
            assert _same(row[key], value), (i, key, row[key], value)
        seen |= set(expected)
    assert set(table.columns) == {"variant", *seen}
    # the variants really differ in which KPIs they have
    assert table["mean_cell_voltage_V"].isna().sum() == 1  # the one with no current
    assert any(c.startswith("flagged[") for c in table.columns)
    assert any(c.startswith("limits_not_evaluated[") for c in table.columns)


def test_vectorised_balances_equal_each_variants_own(result):
    """Every balance of co2twin.kpi.balances on each variant's own frame, with its residual."""
    table = result.balances()
    for i in range(result.n):
        expected = balances(result.frame(i))
        assert set(table.columns) == {"variant", *expected}
        for key, value in expected.items():
            assert _same(table.loc[i, key], value), (i, key, table.loc[i, key], value)


def test_kpis_are_computed_once_for_all_variants(monkeypatch):
    """kpis() and balances() call co2twin.kpi once, on rows x variants, not once per variant."""
    result = _ensemble(1)
    calls: list[tuple[int, ...]] = []

    def spy(function: Any) -> Any:
        def wrapped(frame: Any, *args: Any) -> Any:
            calls.append(np.shape(frame["power.current"].to_numpy()))
            return function(frame, *args)
        return wrapped

    monkeypatch.setattr(ensemble_module, "kpis", spy(kpis))
    monkeypatch.setattr(ensemble_module, "balances", spy(balances))
    result.kpis()
    result.balances()
    assert calls == [(len(result.times), result.n)] * 2


def test_a_single_runs_figures_stay_floats(result):
    """A single run's KPIs and balances are plain floats (and dicts of them), as before."""
    frame = result.frame(0)
    for value in [*_flat(kpis(frame, result.meta["limits"])).values(), *balances(frame).values()]:
        assert type(value) is float

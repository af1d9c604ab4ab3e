"""Load and faults (smaller numbers than `python -m co2twin.service.loadtest`, same checks):
4 worker processes share a queue, one is SIGKILLed in the middle of an experiment, 50 API
clients read and drive sessions meanwhile; every experiment completes exactly once with every
row stored once, the resumed one identical to an uninterrupted run; injection-string names are
stored verbatim. Latencies are printed, not asserted (they belong to the bench)."""
from __future__ import annotations

import pytest

from co2twin.service.loadtest import run_load


@pytest.mark.parametrize("kind", ["sqlite", "mariadb", "postgresql"])
def test_a_killed_worker_loses_and_duplicates_nothing(kind, request, tmp_path):
    from .conftest import fresh_database

    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'load.db'}"
    else:
        url = fresh_database(request.getfixturevalue(
            "mariadb_server" if kind == "mariadb" else "postgres_server"))
    figures = run_load(url, experiments_count=8, workers=4, clients=50, requests=4,
                       duration_s=100.0, batch_rows=20, lease_s=2.0, timeout_s=240.0, pace=100.0)
    print(kind, figures)
    killed = figures["killed"]
    assert killed and 0 < killed["rows_at_kill"] < 101, figures
    assert figures["resumed"] >= 1
    assert figures["every_experiment_done_exactly_once"], figures
    assert figures["rows_stored"] == figures["rows_expected"] == 8 * 101
    assert (figures["rows_lost"], figures["rows_duplicated"]) == (0, 0)
    assert figures["resumed_rows_identical_to_an_uninterrupted_run"] is True
    assert figures["injection_names_verbatim"] and figures["tables_intact"]
    api = figures["api"]
    assert api["requests"] == 50 * 4 and api["errors"] == 0, api

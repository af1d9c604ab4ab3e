"""Control-strategy testing: test cases, the KPIs every controller is scored by, comparison.

>>> from co2twin.control import load_case, run_case, compare
>>> case = load_case("scenarios/control/tank_concentration.yaml")    # doctest: +SKIP
>>> result = run_case(case, "baseline")                               # doctest: +SKIP
>>> result.passed, result.kpis["tracking_iae"]                        # doctest: +SKIP

A test case is a scenario with a ``case:`` section (:class:`ControlCase`);
``run_case(case, controller)`` runs it with one controller and scores it; ``compare``
runs several on the same disturbances and seed; :func:`plot_comparison` overlays them.
:class:`MPC` (``run_case(case, "mpc")``) is the oracle MPC on the twin's own checkpoints.
"""
from __future__ import annotations

from .case import CONTROLLER_NAME, ControlCase, load_case
from .kpis import SETTLING_BAND, Verdict, control_kpis, score
from .mpc import MPC, MPC_NAME
from .plot import plot_comparison
from .report import as_json, csv_text, kpi_table, write_csv
from .runner import ControlResult, compare, run_case

__all__ = [
    "CONTROLLER_NAME", "ControlCase", "ControlResult", "MPC", "MPC_NAME", "SETTLING_BAND", "Verdict",
    "as_json", "compare", "control_kpis", "csv_text", "kpi_table", "load_case", "plot_comparison", "run_case",
    "score", "write_csv",
]

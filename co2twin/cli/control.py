"""``co2twin control run|compare|show``: control test cases, scored the same way for every
controller (co2twin.control; ``run_case`` is the Python call these commands wrap).

Register with ``app.add_typer(control_app, name="control")`` in :mod:`co2twin.cli`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table as RichTable

from .console import err, fail, os_error, out
from cosim.errors import CosimError

if TYPE_CHECKING:
    from co2twin.control import ControlResult

control_app = typer.Typer(
    no_args_is_help=True,
    help="Control test cases: run a controller on a case, compare controllers, by the same KPIs.")

_CONTROLLER_HELP = ("a controller shipped with the case (its name), a YAML file with one "
                    "controller spec, module:Class (a Python controller), or mpc (the oracle MPC "
                    "on the twin's own checkpoints)")


@control_app.command("run")
def run_command(
    case: Path = typer.Argument(..., help="test case file (a scenario with a case: section)"),
    controller: str = typer.Option(..., "--controller", "-c", help=_CONTROLLER_HELP),
    as_json: bool = typer.Option(False, "--json", help="print the KPIs and verdicts as JSON"),
    csv: Path | None = typer.Option(None, "--csv", help="write the KPI table as CSV"),
    plot: Path | None = typer.Option(None, "--plot", help="save a PNG of the key signals"),
    strict: bool = typer.Option(False, "--strict", help="exit 2 when the controller fails the case"),
) -> None:
    """Run a test case with one controller and score it by the case's KPIs."""
    _run(case, [controller], as_json=as_json, csv=csv, plot=plot, strict=strict)


@control_app.command("compare")
def compare_command(
    case: Path = typer.Argument(..., help="test case file (a scenario with a case: section)"),
    controllers: list[str] | None = typer.Option(
        None, "--controller", "-c", help=_CONTROLLER_HELP + "; repeat it (default: every "
        "controller shipped with the case)"),
    as_json: bool = typer.Option(False, "--json", help="print the KPIs and verdicts as JSON"),
    csv: Path | None = typer.Option(None, "--csv", help="write the KPI table as CSV"),
    plot: Path | None = typer.Option(None, "--plot", help="save a PNG overlaying the key signals"),
    strict: bool = typer.Option(False, "--strict", help="exit 2 when any controller fails the case"),
) -> None:
    """Run a test case with several controllers (same disturbances and seed) side by side."""
    _run(case, list(controllers or []), as_json=as_json, csv=csv, plot=plot, strict=strict)


@control_app.command("show")
def show_command(
    case: Path = typer.Argument(..., help="test case file (a scenario with a case: section)"),
) -> None:
    """What a test case asks: objective, set points, constraints, signals, thresholds, controllers."""
    from co2twin.control import load_case
    from co2twin.control.kpis import bound_text, case_thresholds

    try:
        loaded = load_case(case)
        units = loaded.units()
        limits = loaded.constraints
        thresholds = case_thresholds(loaded)
    except CosimError as exc:
        fail(exc)
    spec = loaded.spec
    goal = f"minimise {spec.objective.minimise}" if spec.objective.minimise \
        else f"maximise {spec.objective.maximise}"
    lines = [f"{loaded.name}: {spec.objective.description} ({goal})",
             f"  horizon {loaded.scenario.duration / 3600:g} h at {loaded.scenario.step:g} s steps, "
             f"seed {loaded.scenario.seed}",
             f"  measurements: {', '.join(spec.measurements)}",
             f"  actuators: {', '.join(spec.actuators)}"]
    lines += [f"  set point: {s}" for s in spec.setpoints]
    for signal, (low, high) in limits.items():
        # in the signal's unit (a unit: given in the case is converted), as the run checks it
        span = f"in [{low:g}, {high:g}]" if low is not None and high is not None \
            else bound_text(low, high)
        lines.append(f"  constraint: {signal} {span}{_unit(units.get(signal, ''))}")
    lines += [f"  disturbance {n}: {d.description}" for n, d in spec.disturbances.items()]
    if spec.price is not None:
        lines.append("  price: known a day ahead (energy_cost)")
    lines += [f"  threshold: {kpi} {bound}{_unit(unit)}" + (f" ({signal})" if signal else "")
              for kpi, signal, bound, unit in thresholds]
    lines += [f"  controller {n} ({c.type})" + (f": expected to {spec.expected[n]}"
                                                 if n in spec.expected else "")
              for n, c in spec.controllers.items()]
    for line in lines:
        out.print(line, markup=False, highlight=False, soft_wrap=True)


def _unit(unit: str) -> str:
    """`` unit`` after a number; nothing for a dimensionless one ("1")."""
    return "" if unit in ("", "1") else f" {unit}"


def _run(case: Path, controllers: list[str], *, as_json: bool, csv: Path | None, plot: Path | None,
         strict: bool) -> None:
    from co2twin.control import as_json as results_json
    from co2twin.control import compare, load_case, plot_comparison, write_csv

    try:
        if plot is not None and plot.suffix.lower() != ".png":
            raise CosimError(f"{plot}: expected a .png file for --plot")
        loaded = load_case(case)
        results = compare(loaded, controllers or list(loaded.spec.controllers))
        if plot is not None:
            plot_comparison(results, plot)
        if csv is not None:
            write_csv(results, csv)
    except CosimError as exc:
        fail(exc)
    except OSError as exc:
        fail(os_error(exc))
    if as_json:
        print(json.dumps(results_json(results), indent=1, allow_nan=False))
    else:
        _print(results, plot, csv)
    if strict and not all(r.passed for r in results):
        raise typer.Exit(2)


def _print(results: list[ControlResult], plot: Path | None, csv: Path | None) -> None:
    """The KPI table: a column per controller, the threshold and the verdicts."""
    from co2twin.control import kpi_table

    names, rows = kpi_table(results)
    case = results[0].case
    table = RichTable(title=escape(f"{case.name}: {case.spec.objective.description}"))
    table.add_column("KPI", overflow="fold", min_width=14)
    table.add_column("unit", overflow="fold")
    table.add_column("threshold", overflow="fold")
    for name in names:
        table.add_column(escape(name), justify="right", overflow="fold")
    for row in rows:
        cells = []
        for name in names:
            value = row["values"].get(name)
            ok = row["ok"].get(name)
            text = "-" if value is None else f"{value:.4g}"
            if ok is not None:
                text = f"[green]{text} ok[/]" if ok else f"[red]{text} FAIL[/]"
            cells.append(text)
        # a per-signal KPI wraps before its signal: kpi [signal]
        table.add_row(escape(row["kpi"].replace("[", " [")), escape(row["unit"]),
                      escape(row["threshold"]), *cells)
    table.add_row("verdict", "", "", *[("[green]pass[/]" if r.passed else "[bold red]FAIL[/]")
                                       for r in results])
    out.print(table)
    for r in results:
        if r.solver:  # an optimising controller (the MPC): what its optimiser did
            s = r.solver
            out.print(f"{r.controller}: {s['moves']:.0f} moves of {s['move_s']:g} s over a "
                      f"{s['horizon_s']:g} s horizon, {s['solves']:.0f} solves "
                      f"({s['fallbacks']:.0f} on the penalty form), {s['model_runs']:.0f} model runs, "
                      f"{s['median_move_ms']:.0f} ms per move (median; max {s['max_move_ms']:.0f})",
                      markup=False, highlight=False, soft_wrap=True)
            for actuator, span in s.get("ranges", {}).items():  # what it moved in, and why
                out.print(f"{r.controller}: {actuator} in [{span['low']:.4g}, {span['high']:.4g}] "
                          f"{span['unit']} (low: {span['low_from']}; high: {span['high_from']})",
                          markup=False, highlight=False, soft_wrap=True)
    for r in results:
        for warning in r.warnings:
            err.print(f"[yellow]warning ({escape(r.controller)}):[/] {escape(warning)}",
                      soft_wrap=True, highlight=False)
    written = [f"plot: {plot}"] if plot else []
    written += [f"csv: {csv}"] if csv else []
    if written:
        out.print("   ".join(written), markup=False, highlight=False, soft_wrap=True)

"""The ``co2twin`` command line: run, validate, schema, signals, bench (models: cli_models)."""
from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any
from collections.abc import Mapping, Sequence

import typer
from rich.markup import escape
from rich.table import Table as RichTable

from .console import err, fail, json_safe, os_error, out
from cosim.errors import CosimError
from cosim.graph import match_signals

if TYPE_CHECKING:
    from co2twin.outputs import ResultsTarget
    from co2twin.scenario_schema import Scenario
    from co2twin.streaming import RunSummary, StopRequest, StreamedRun

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="co2twin: digital twin of a CO2-to-formic-acid electroreduction pilot plant.",
)


@app.command("run")
def run_command(
    scenario: Path = typer.Argument(..., help="scenario YAML file"),
    output: Path | None = typer.Option(
        None, "-o", "--output", help="results file (.parquet or .csv), anywhere; default: the "
        "scenario's output.file, else results/<safe name>.parquet"),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="replace an existing results file co2twin did not write"),
    plot: Path | None = typer.Option(
        None, "--plot", help="save a PNG of the key signals, and an interactive HTML plot beside it "
        "(same name, .html)"),
    signals: list[str] | None = typer.Option(
        None, "--signals", help="what --plot draws: signal names or glob patterns ('reactor.*'), "
        "comma-separated or repeated; default: the key signals"),
    as_json: bool = typer.Option(False, "--json", help="print KPIs, flags and balances as JSON"),
    progress: bool | None = typer.Option(
        None, "--progress/--no-progress", help="progress bar (default: on a terminal only)"),
) -> None:
    """Run a scenario, write its results, print KPIs (and optionally plot).

    The results stream to the file in row groups (memory stays bounded however long the
    run); Ctrl-C or SIGTERM stops at the end of the current step, writes the results so far
    marked partial, and exits 130 or 143.
    """
    from co2twin.outputs import results_target
    from co2twin.scenario import load_scenario

    from .interrupt import Aborted, StopOnSignals, exit_code

    try:
        sc = load_scenario(scenario)
        target = results_target(sc, output, overwrite=overwrite)
        output = target.path
        _check_plot_file(plot)
        chosen = _plot_choice(sc, plot, signals)
        with StopOnSignals() as stop:
            _print_estimate(sc, target.fmt)
            streamed = _run_with_warnings(sc, progress, target, stop)
            _write_run(streamed, plot, title=sc.name, signals=chosen, overwrite=overwrite)
    except CosimError as exc:
        fail(exc)
    except OSError as exc:
        fail(os_error(exc))
    except Aborted:
        err.print("aborted: a second interrupt; nothing written", markup=False, highlight=False)
        raise
    from co2twin.kpi import not_evaluated

    summary = streamed.summary
    partial = _partial(streamed)
    if as_json:
        print(json.dumps(json_safe({"scenario": sc.name, "output": str(output),
                                     "partial": partial, "kpis": summary.figures,
                                     "flags": summary.flags,
                                     "limits_not_evaluated": not_evaluated(summary.figures),
                                     "balances": summary.residuals, "checks": summary.checks,
                                     "skipped_checks": summary.skipped_checks,
                                     "models": _envelope_lines(summary)}),
                         indent=1, allow_nan=False))
    else:
        _print_run(sc, summary, output, plot)
        if partial is not None:
            out.print(f"partial results: stopped by {partial['stopped_by']} at t = "
                      f"{partial['time_reached_s']:g} s of {partial['end_s']:g} s "
                      f"({summary.rows:,} rows)", markup=False, highlight=False, soft_wrap=True)
    if partial is not None:
        err.print(f"stopped by {partial['stopped_by']} at t = {partial['time_reached_s']:g} s of "
                  f"{partial['end_s']:g} s: the results so far are in {output}, marked partial",
                  markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(exit_code(partial["stopped_by"]))
    if stop.reason is not None:  # in the last step, or while writing: nothing left to stop
        err.print(f"{stop.reason} received once the run had reached its end: the results in "
                  f"{output} are complete", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(exit_code(stop.reason))


def _envelope_lines(summary: RunSummary) -> list[str]:
    """:func:`envelope_summary` of the run, also of one summarised chunk by chunk (from the
    rows each flag was at 1: the same lines, without holding every row)."""
    from .models import envelope_summary

    if summary.frame is not None:
        return envelope_summary(summary.frame)
    lines = []
    for column, rows in summary.flag_rows.items():
        if column.endswith("_outside_envelope") and rows:
            variable = column.split(".", 1)[-1].removesuffix("_outside_envelope")
            lines.append(f"{variable} model outside its training envelope in {rows} of "
                         f"{summary.rows} rows")
    if summary.flag_rows.get("reactor.estimate_bounded"):
        lines.append(f"surrogate estimates bounded to keep the balances in "
                     f"{summary.flag_rows['reactor.estimate_bounded']} rows (reactor.estimate_bounded)")
    return lines


def _print_estimate(sc: Scenario, fmt: str) -> None:
    """The estimated wall time and output size, measured on a short calibration run."""
    from co2twin.estimate import estimate

    try:
        text = estimate(sc, fmt).text()
    except CosimError as exc:  # the run itself will say what is wrong
        text = f"not available ({exc})"
    err.print(f"estimated run: {text}; Ctrl-C stops at the end of the current step and keeps "
              "the results so far", markup=False, highlight=False, soft_wrap=True)


def _partial(streamed: StreamedRun) -> dict[str, Any] | None:
    """How far a stopped run got, or None when it ran to its end."""
    if not streamed.partial:
        return None
    return {"stopped_by": streamed.stopped_by, "time_reached_s": streamed.time_reached_s,
            "end_s": streamed.end_s}


def _check_plot_file(plot: Path | None) -> None:
    """``--plot`` names a .png file (checked before the run, which may take long)."""
    if plot is not None and plot.suffix.lower() != ".png":
        raise CosimError(f"{plot}: expected a .png file for --plot")
    if plot is not None and plot.is_dir():
        raise CosimError(f"{plot}: expected a .png file name for --plot, found a directory")


def _plot_choice(sc: Scenario, plot: Path | None,
                 signals: list[str] | None) -> list[tuple[str, str]] | None:
    """The ``(column, label)`` pairs ``--signals`` chooses (None: the key signals), checked
    against what the scenario records before the run, which may take long."""
    from co2twin.scenario_checks import recorded_signals

    if not signals:
        return None
    if plot is None:
        raise CosimError("--signals chooses what --plot draws; give --plot FILE.png too")
    patterns = [p.strip() for item in signals for p in item.split(",") if p.strip()]
    chosen = match_signals(recorded_signals(sc), patterns, lambda pattern: CosimError(
        f"--signals: {pattern!r} matches no signal the scenario records; see `co2twin signals` "
        "(and the scenario's record.signals)"))
    return [(name, name) for name in chosen]


def _run_with_warnings(sc: Scenario, progress: bool | None, target: ResultsTarget,
                       stop: StopRequest) -> StreamedRun:
    """Run ``sc``; envelope warnings are printed as one line each (paths inside co2twin's
    installation or the working directory relative to it), others passed on."""
    from co2twin.scenario import shorten_paths
    from co2twin.streaming import run_streamed
    from models.surrogate import EnvelopeWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", EnvelopeWarning)
        streamed = run_streamed(sc, target, progress=progress, stop=stop)
    for w in caught:
        if issubclass(w.category, EnvelopeWarning):
            err.print(f"[yellow]warning:[/] {escape(shorten_paths(str(w.message)))}",
                      soft_wrap=True, highlight=False)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return streamed


def _write_run(streamed: StreamedRun, plot: Path | None, *, title: str,
               signals: list[tuple[str, str]] | None = None, overwrite: bool = False) -> None:
    """The plots (if asked for: PNG and HTML) and the results file, all or none.

    The rows are already written under a temporary name; the file takes its name last.
    """
    from co2twin.plot import plot_signals
    from components.plant import KEY_SIGNALS

    # the plot first: if it cannot be drawn, no results file is left behind either
    try:
        if plot is not None:
            plot_signals(streamed.summary.preview, signals or KEY_SIGNALS, plot, title=title,
                         html=True)
        streamed.commit(overwrite=overwrite)
    except BaseException:
        streamed.discard()
        if plot is not None:
            plot.unlink(missing_ok=True)
            plot.with_suffix(".html").unlink(missing_ok=True)
        raise


def _print_run(sc: Scenario, summary: RunSummary, output: Path, plot: Path | None) -> None:
    """The KPI table, every flag raised (saturation, bounds, envelopes, limits), the
    balances and how they were checked, and the files written."""
    from co2twin.kpi import KPI_UNITS, LOOP_KPI_UNITS, describe_flag, not_evaluated

    figures, residuals = summary.figures, summary.residuals

    table = RichTable(title=escape(f"{sc.name}: {sc.duration / 3600:g} h at {sc.step:g} s steps"))
    table.add_column("KPI")
    table.add_column("value", justify="right")
    table.add_column("unit")
    for key, value in figures.items():
        if key in LOOP_KPI_UNITS:  # per controller: one row each, in its signals' units
            units = summary.preview.attrs.get("units", {})
            for name, figure in value.items():
                unit = {"loop_iae": f"{units.get(f'{name}.error', '1')} s",
                        "loop_travel": units.get(f"{name}.output", LOOP_KPI_UNITS[key]),
                        }.get(key, LOOP_KPI_UNITS[key])
                table.add_row(escape(f"{key}[{name}]"), f"{figure:.6g}", unit)
            continue
        if isinstance(value, dict):
            continue
        table.add_row(key, f"{value:.6g}", KPI_UNITS.get(key, ""))
    out.print(table)
    raised = summary.flags
    if raised:
        out.print(f"not as asked ({len(raised)}):", markup=False, highlight=False)
    for entry in raised:
        out.print(f"  - {describe_flag(entry)}", markup=False, highlight=False, soft_wrap=True)
    for entry in not_evaluated(figures):  # undefined rows: neither inside nor outside a limit
        out.print(f"limit not evaluated: {entry['signal']} for {entry['seconds']:g} s, {entry['why']} "
                  f"(judged where {entry['evaluated_where']})", markup=False, highlight=False,
                  soft_wrap=True)
    worst = max(residuals.values(), default=0.0)
    how = summary.checks
    out.print(f"balances closed to {worst:.1e} (relative; {', '.join(residuals) or 'none checked'})",
              markup=False, highlight=False, soft_wrap=True)
    partial = {k: v for k, v in how.items() if not v.startswith("every step")}
    for name, text in partial.items():
        out.print(f"  - {name}: {text}", markup=False, highlight=False, soft_wrap=True)
    # paths are not wrapped, so they can be copied whole
    out.print(f"results: {output}" + (f"   plot: {plot}" if plot else ""), markup=False,
              highlight=False, soft_wrap=True)
    if plot is not None:
        out.print(f"interactive plot: {plot.with_suffix('.html')}", markup=False, highlight=False,
                  soft_wrap=True)


@app.command("validate")
def validate_command(
    scenarios: list[Path] = typer.Argument(..., help="scenario YAML file(s)"),
    with_estimate: bool = typer.Option(
        True, "--estimate/--no-estimate", help="estimate each run's wall time and output size "
        "from a short calibration run here (a fraction of a second each)"),
) -> None:
    """Check scenario files without running them (but for a short calibration that estimates
    the run's wall time and output size); exit 1 if any is invalid."""
    from co2twin.estimate import estimate
    from co2twin.scenario import load_scenario

    failed = False
    for path in scenarios:
        try:
            sc = load_scenario(path)
        except CosimError as exc:
            err.print(f"[red]invalid[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            failed = True
            continue
        out.print("[green]ok[/] " + escape(f"{path}: {sc.name!r}, {sc.steps:,} steps of "
                   f"{sc.step:g} s, {len(sc.events)} event(s)"), highlight=False, soft_wrap=True)
        if not with_estimate:
            continue
        fmt = (sc.output.format or Path(sc.output.file).suffix.lstrip(".").lower()
               if sc.output else "parquet")
        try:
            out.print(f"   estimated run: {estimate(sc, fmt).text()}", markup=False,
                      highlight=False, soft_wrap=True)
        except CosimError as exc:
            err.print(f"[yellow]warning:[/] {escape(f'{path}: no estimate, the first steps failed: {exc}')}",
                      highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(1)


@app.command("schema")
def schema_command(
    output: Path | None = typer.Option(None, "-o", "--output", help="write to a file"),
) -> None:
    """Print the JSON Schema of scenario files (for editor completion)."""
    from co2twin.scenario import json_schema

    text = json.dumps(json_schema(), indent=2)
    if output is None:
        print(text)
        return
    try:
        output.write_text(text + "\n")
    except OSError as exc:
        fail(os_error(exc))


@app.command("signals")
def signals_command() -> None:
    """List the plant's signals (unit, bounds), its parameters (default, unit, bounds, tunable)
    and the scenario input names. Nothing is cut: piped, one line per item."""
    from components.plant import INPUTS, STAGES

    _print_rows("plant signals (component.port; scenario inputs drive the unconnected inputs)",
                ("signal", "direction", "bounds", "description"), _signal_rows(STAGES), out)
    parameters = [(f"{cname}.{p.name}", f"{p.default:g}", p.unit, p.bounds_text(),
                   "yes" if p.tunable else "no", p.description)
                  for cname, cls in STAGES.items() for p in cls.parameters]
    _print_rows("plant parameters (plant: {component: {parameter: value}}; tunable ones may change "
                "during a run: events of type parameter)",
                ("parameter", "default", "unit", "bounds", "tunable", "description"), parameters, out)
    _print_rows("scenario input names", ("input", "drives"), list(INPUTS.items()), out)
    from co2twin.supply_schema import CLASSES as SUPPLY  # the components a supply: section adds

    _print_rows("supply signals (a scenario with a supply: section; README, \"Running on solar power\")",
                ("signal", "direction", "bounds", "description"), _signal_rows(SUPPLY), out)


def _signal_rows(classes: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """Per component class (by name), each output then input: signal, direction, bounds, description."""
    return [(f"{cname}.{p.name}", direction + (", measured" if p.measured else ""),
             p.bounds_text(), p.description)
            for cname, cls in classes.items()
            for direction, ports in (("out", cls.outputs), ("in", cls.inputs)) for p in ports]


def _print_rows(title: str, header: tuple[str, ...], rows: Sequence[tuple[str, ...]],
                console: Any) -> None:
    """A table that never cuts a cell: a rich table on a terminal wide enough for every
    column but the last, else aligned plain lines (one per row, the last column whole)."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    if console.is_terminal and sum(widths[:-1]) + 3 * len(widths) + 24 <= console.width:
        table = RichTable(title=escape(title), title_justify="left", show_lines=False)
        for i, name in enumerate(header):
            last = i == len(header) - 1
            table.add_column(name, no_wrap=not last, overflow="fold", min_width=20 if last else None,
                             ratio=1 if last else None)
        for row in rows:
            table.add_row(*(escape(str(cell)) for cell in row))
        console.print(table)
        return
    console.print(title, markup=False, highlight=False, soft_wrap=True)
    for row in [header, *rows]:
        cells = [str(c).ljust(w) for c, w in zip(row[:-1], widths[:-1], strict=True)] + [str(row[-1])]
        console.print("  " + "  ".join(cells).rstrip(), markup=False, highlight=False,
                      soft_wrap=True)
    console.print()


@app.command("bench")
def bench_command(
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    steps: int = typer.Option(20_000, help="steps per timed run", min=100),
) -> None:
    """Measure engine and plant speed side by side, and the 24 h scenario's wall time."""
    from co2twin.bench import measure

    figures = measure(steps=steps)
    if as_json:
        print(json.dumps(figures))
        return
    table = RichTable(title="co2twin bench")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in figures.items():
        table.add_row(key, f"{value:,}" if isinstance(value, (int, float)) else str(value))
    out.print(table)


def _register_model_commands() -> None:
    from .control import control_app
    from .fmu import fmu_app
    from .models import data_app, models_app, train_command

    app.add_typer(control_app, name="control")
    app.add_typer(fmu_app, name="fmu")
    from .battery import battery_app  # co2twin battery generate|train|report|kpis

    app.add_typer(battery_app, name="battery")
    app.add_typer(data_app, name="data")
    app.add_typer(models_app, name="models")
    app.command("train")(train_command)
    from .serve import register as register_service  # co2twin serve, co2twin service ...
    register_service(app)
    from .sweep import register as register_sweep  # co2twin sweep SPEC.yaml -o FOLDER
    register_sweep(app)


_register_model_commands()


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the ``co2twin`` console script."""
    try:
        return app(args=argv, prog_name="co2twin", standalone_mode=True)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


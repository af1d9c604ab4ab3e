"""The ``co2twin`` command line: run, validate, schema, signals, bench (models: cli_models)."""
from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table as RichTable

from .console import err, fail, json_safe, os_error, out
from cosim.errors import CosimError

if TYPE_CHECKING:
    import pandas as pd

    from co2twin.scenario_schema import Scenario

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="co2twin: digital twin of a CO2-to-formic-acid electroreduction pilot plant.",
)


@app.command("run")
def run_command(
    scenario: Path = typer.Argument(..., help="scenario YAML file"),
    output: Path | None = typer.Option(
        None, "-o", "--output", help="results file (.parquet or .csv); default: the scenario's "
        "output.file, else results/<name>.parquet"),
    plot: Path | None = typer.Option(None, "--plot", help="save a PNG of the key signals"),
    as_json: bool = typer.Option(False, "--json", help="print KPIs and balances as JSON"),
    progress: bool | None = typer.Option(
        None, "--progress/--no-progress", help="progress bar (default: on a terminal only)"),
) -> None:
    """Run a scenario, write its results, print KPIs (and optionally plot)."""
    from co2twin.kpi import balances, kpis
    from co2twin.scenario import load_scenario, operating_limits

    from .models import envelope_summary

    try:
        sc = load_scenario(scenario)
        output, fmt = _results_file(sc, output)
        _check_plot_file(plot)
        frame = _run_with_warnings(sc, progress)
        figures = kpis(frame, operating_limits(sc))
        residuals = balances(frame)
        _write_run(frame, output, fmt, plot, title=sc.name)
    except CosimError as exc:
        fail(exc)
    except OSError as exc:
        fail(os_error(exc))
    if as_json:
        print(json.dumps(json_safe({"scenario": sc.name, "output": str(output), "kpis": figures,
                                     "balances": residuals, "models": envelope_summary(frame)}),
                         indent=1, allow_nan=False))
        return
    _print_run(sc, frame, figures, residuals, output, plot)


def _results_file(sc: Scenario, output: Path | None) -> tuple[Path, str | None]:
    """The results file (``-o``, else the scenario's, else ``results/<name>.parquet``) and the
    format the scenario names for it, after checking that the file can be one."""
    if output is None:
        output = Path(sc.output.file) if sc.output else Path("results") / f"{sc.name}.parquet"
    fmt = sc.output.format if (sc.output and output == Path(sc.output.file)) else None
    suffix = (fmt or output.suffix.lstrip(".")).lower()
    if suffix not in ("parquet", "csv"):
        raise CosimError(f"{output}: expected a .parquet or .csv results file")
    if output.is_dir():
        raise CosimError(f"{output}: expected a results file name, found a directory")
    return output, fmt


def _check_plot_file(plot: Path | None) -> None:
    """``--plot`` names a .png file (checked before the run, which may take long)."""
    if plot is not None and plot.suffix.lower() != ".png":
        raise CosimError(f"{plot}: expected a .png file for --plot")
    if plot is not None and plot.is_dir():
        raise CosimError(f"{plot}: expected a .png file name for --plot, found a directory")


def _run_with_warnings(sc: Scenario, progress: bool | None) -> pd.DataFrame:
    """Run ``sc``; envelope warnings are printed as one line each, others passed on."""
    from co2twin.scenario import run as run_scenario
    from models.surrogate import EnvelopeWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", EnvelopeWarning)
        frame = run_scenario(sc, progress=progress)
    for w in caught:
        if issubclass(w.category, EnvelopeWarning):
            err.print(f"[yellow]warning:[/] {escape(str(w.message))}", soft_wrap=True,
                      highlight=False)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return frame


def _write_run(frame: pd.DataFrame, output: Path, fmt: str | None, plot: Path | None, *,
               title: str) -> None:
    """The plot (if asked for) and the results file, both or neither."""
    from co2twin.plot import plot_signals
    from components.plant import KEY_SIGNALS
    from cosim.recorder import write_results

    # the plot first: if it cannot be drawn, no results file is left behind either
    if plot is not None:
        plot_signals(frame, KEY_SIGNALS, plot, title=title)
    try:
        write_results(frame, output, fmt)
    except BaseException:
        if plot is not None:
            plot.unlink(missing_ok=True)
        raise


def _print_run(sc: Scenario, frame: pd.DataFrame, figures: dict[str, Any],
               residuals: dict[str, float], output: Path, plot: Path | None) -> None:
    """The KPI table, time outside limits, model envelopes, balances and the files written."""
    from co2twin.kpi import KPI_UNITS

    from .models import envelope_summary

    table = RichTable(title=escape(f"{sc.name}: {sc.duration / 3600:g} h at {sc.step:g} s steps"))
    table.add_column("KPI")
    table.add_column("value", justify="right")
    table.add_column("unit")
    for key, value in figures.items():
        if key == "outside_limits":
            continue
        table.add_row(key, f"{value:.6g}", KPI_UNITS.get(key, ""))
    out.print(table)
    for name, seconds in figures.get("outside_limits", {}).items():
        if seconds:
            out.print(f"  outside limits: {name} for {seconds:g} s", markup=False, soft_wrap=True)
    for line in envelope_summary(frame):
        out.print(f"  models: {line}", markup=False, soft_wrap=True)
    worst = max(residuals.values(), default=0.0)
    out.print(f"balances closed to {worst:.1e} (relative; {', '.join(residuals)})",
               soft_wrap=True)
    # paths are not wrapped, so they can be copied whole
    out.print(f"results: {output}" + (f"   plot: {plot}" if plot else ""), markup=False,
               highlight=False, soft_wrap=True)


@app.command("validate")
def validate_command(
    scenarios: list[Path] = typer.Argument(..., help="scenario YAML file(s)"),
) -> None:
    """Check scenario files without running them; exit 1 if any is invalid."""
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
    """List the plant's signals with units and bounds, and the scenario input names."""
    from components.plant import INPUTS, STAGES

    table = RichTable(title="plant signals")
    for col in ("signal", "direction", "unit", "bounds", "description"):
        table.add_column(col)
    for cname, cls in STAGES.items():
        for direction, ports in (("out", cls.outputs), ("in", cls.inputs)):
            for p in ports:
                table.add_row(f"{cname}.{p.name}", direction + (" (measured)" if p.measured else ""),
                              p.unit, p.bounds_text(), p.description)
    out.print(table)
    out.print("scenario input names: " + ", ".join(f"{k} -> {v}" for k, v in INPUTS.items()))


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
    from .fmu import fmu_app
    from .models import data_app, models_app, train_command

    app.add_typer(fmu_app, name="fmu")
    app.add_typer(data_app, name="data")
    app.add_typer(models_app, name="models")
    app.command("train")(train_command)


_register_model_commands()


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the ``co2twin`` console script."""
    try:
        return app(args=argv, prog_name="co2twin", standalone_mode=True)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


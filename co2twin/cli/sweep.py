"""``co2twin sweep SPEC.yaml -o FOLDER``: a sweep or Monte Carlo spec's variants on dask.distributed.

Register with :func:`register`. The application side is :mod:`co2twin.sweep` (chunks, resume,
merge) and :mod:`co2twin.uncertainty` (KPI intervals, bands, sensitivity indices).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table as RichTable

from .console import err, fail, json_safe, os_error, out
from cosim.errors import CosimError


def sweep_command(
    spec: Path = typer.Argument(..., help="sweep spec (YAML with a sweep: section)"),
    output: Path = typer.Option(..., "-o", "--out", help="folder for the results (new, empty, or "
                                "an earlier run of this same sweep, which is then resumed); "
                                "nothing is written elsewhere"),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="address of a running dask scheduler, e.g. tcp://host:8786 "
        "(the workers must see --out at the same path); default: a local cluster"),
    workers: int | None = typer.Option(None, "--workers", min=1, help="local cluster: worker "
                                       "processes (default: one per core)"),
    retries: int | None = typer.Option(None, "--retries", min=0, help="reruns of a failed chunk "
                                       "(default: the spec's retries, else 2)"),
    restart: bool = typer.Option(False, "--restart", help="delete this folder's earlier sweep "
                                 "chunks and start over instead of resuming"),
    progress: bool | None = typer.Option(None, "--progress/--no-progress",
                                         help="progress bar (default: on a terminal only)"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Run a sweep's variants in chunks (each an ensemble, or one run per variant where an ensemble
    cannot take the scenario: the solar supply) on Dask; resume an interrupted one.

    Each chunk writes its KPIs, balances and kept signals (Parquet) under FOLDER/kpis,
    FOLDER/balances and FOLDER/signals as it finishes; at the end the KPIs are merged into
    FOLDER/kpis.parquet, and FOLDER/summary.json gets the KPI intervals (p5/p50/p95), the worst
    balances, and the sensitivity indices and percentile-band plot the spec asks for.
    """
    from co2twin.sweep import check_output, run_sweep
    from co2twin.sweep_spec import load_sweep_spec

    show = out.is_terminal if progress is None else progress
    bar = Progress(TextColumn("chunks"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   console=err, disable=not show, transient=True)
    try:
        sweep = load_sweep_spec(spec)
        # a folder that cannot take the results is refused before the banner says they go there
        check_output(sweep, output, restart=restart)
        each = "each one ensemble" if sweep.mode == "ensemble" else f"each {sweep.mode}"
        err.print(f"{sweep.name}: {sweep.n_variants:,} variants in chunks of {sweep.chunk_size:,} "
                  f"({each}); results in {output}", markup=False, highlight=False, soft_wrap=True)
        task: list[Any] = []

        def planned(total: int, done: int) -> None:
            if done:
                err.print(f"resuming: {done} of {total} chunks already written", markup=False,
                          highlight=False)
            task.append(bar.add_task("chunks", total=total, completed=done))

        def finished(record: dict[str, Any]) -> None:
            bar.advance(task[0])

        with bar:
            run = run_sweep(sweep, output, scheduler=scheduler, workers=workers, retries=retries,
                            restart=restart, on_plan=planned, on_chunk=finished)
    except CosimError as exc:
        fail(exc)
    except OSError as exc:
        fail(os_error(exc))
    except KeyboardInterrupt:
        err.print(f"interrupted: the chunks written so far are kept in {output}; run the same "
                  "command again to run only the missing ones", markup=False, highlight=False,
                  soft_wrap=True)
        raise typer.Exit(130) from None
    summary = run.summary
    if as_json:
        print(json.dumps(json_safe({"output": str(output), **summary}), indent=1, allow_nan=False))
        return
    _print_summary(summary, output)


def _print_summary(summary: dict[str, Any], output: Path) -> None:
    """KPI intervals, sensitivity indices (when asked), and the files."""
    intervals, units = summary["kpi_intervals"], summary.get("kpi_units", {})
    labels = [k for k in next(iter(intervals.values()), {}) if k.startswith("p")]
    table = RichTable(title=escape(f"{summary['name']}: {summary['variants']:,} variants"))
    table.add_column("KPI", overflow="fold")
    for label in labels:
        table.add_column(label, justify="right")
    table.add_column("unit")
    for kpi, row in intervals.items():
        table.add_row(escape(kpi), *(f"{row[label]:.6g}" for label in labels),
                      units.get(kpi, ""))
    out.print(table)
    sens = summary.get("sensitivity")
    if sens:
        _print_indices(sens)
    worst = summary.get("balances") or {}
    if worst:
        text = ", ".join(f"{name} {w['worst']:.1e} (variant {w['variant']})" for name, w in worst.items())
        out.print(f"balances closed to (worst variant): {text}", markup=False, highlight=False,
                  soft_wrap=True)
    raised = summary.get("flags") or {}
    if raised:
        text = "; ".join(f"{name} in {f['variants']:,} of {summary['variants']:,} variants (up to "
                         f"{f['max_s']:g} s; first variant {f['first_variant']})"
                         for name, f in raised.items())
        out.print(f"flags: {text}", markup=False, highlight=False, soft_wrap=True)
    else:
        out.print("flags: none in any variant (limits, saturation of actuators and controllers, "
                  "bounds, envelopes, supply)",
                  markup=False, highlight=False, soft_wrap=True)
    out.print(f"{summary['chunks']} chunks ({summary['chunks_run']} run now, "
              f"{summary['chunks_resumed']} resumed) in {summary['seconds']:g} s; peak memory per "
              f"worker {summary['peak_rss_mb_per_worker']} MB", markup=False, highlight=False,
              soft_wrap=True)
    files = ["kpis.parquet", "summary.json", "kpis/", "balances/", "signals/"]
    if "bands" in summary:
        files += ["bands.png", "bands.parquet"]
    if sens:
        files.append("sensitivity.csv")
    out.print(f"results: {output} ({', '.join(files)})", markup=False, highlight=False, soft_wrap=True)


def _print_indices(sens: dict[str, Any]) -> None:
    rows = sens["indices"]
    columns = (["S1", "S1_conf", "ST", "ST_conf"] if sens["method"] == "sobol"
               else ["mu_star", "mu_star_conf", "sigma"])
    table = RichTable(title=f"sensitivity ({sens['method']})")
    for name in ("group", "kpi", "parameter", *columns):
        table.add_column(name, justify="right" if name in columns else "left", overflow="fold")
    for row in rows:
        cells = [f"{row[c]:.3g}" if isinstance(row.get(c), float) else row.get("note") or "-"
                 for c in columns]
        table.add_row(str(row["group"]), escape(row["kpi"]), escape(row["parameter"]), *cells)
    out.print(table)


def register(app: typer.Typer) -> None:
    """Add ``co2twin sweep`` to ``app``."""
    app.command("sweep")(sweep_command)

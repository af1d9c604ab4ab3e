"""``co2twin battery generate|train|report|kpis``: the battery ageing twin and the supply's figures.

Only ``train`` imports TensorFlow (through :mod:`models.battery_train`); the others run
on the NumPy runtime. Register with ``app.add_typer(battery_app, name="battery")``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table as RichTable

from .console import default_write_folder, err, fail, import_trainer, json_safe, os_error, out
from cosim.errors import CosimError

battery_app = typer.Typer(no_args_is_help=True,
                          help="Battery ageing twin (physics, nn, hybrid) and the solar supply's figures.")

#: what the default bench is called in model cards and reports
BENCH_SOURCE = "reference battery bench (seed {seed})"


def _bench(seed: int) -> Any:
    """The default reference-battery bench's log, generated in memory."""
    from models.reference_battery import generate

    frame = generate(seed=seed)
    frame.attrs["source"] = BENCH_SOURCE.format(seed=seed)
    return frame


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"


@battery_app.command("generate")
def generate_command(
    output: Path = typer.Option(Path("data/battery_log.parquet"), "-o", "--output",
                                help="cycling log file (.parquet or .csv), NASA battery data set columns"),
    seed: int = typer.Option(0, help="seed of the cells' spread, rests and sensor noise"),
    cycles: int = typer.Option(200, min=2, help="most discharge cycles per cell"),
) -> None:
    """Cycle the reference battery's cells and write their log in NASA's column layout."""
    from models.battery_log import write_log
    from models.reference_battery import default_cells, generate

    if output.suffix.lower() not in (".parquet", ".csv"):
        fail(f"{output}: expected a .parquet or .csv battery log")
    try:
        frame = generate(default_cells(cycles), seed=seed)
        path = write_log(frame, output)
    except CosimError as exc:
        fail(exc)
    except OSError as exc:
        fail(os_error(exc))
    n_cycles = frame.groupby("Battery")["id_cycle"].nunique()
    out.print(f"battery log: {path} ({len(frame):,} rows, {len(n_cycles)} cells, "
              f"{int(n_cycles.sum()):,} discharge cycles)", markup=False, soft_wrap=True)


@battery_app.command("train")
def train_command(
    data: Path | None = typer.Option(None, "--data", help="battery log to train on (CSV/Parquet, NASA "
                                        "columns); default: the reference bench"),
    kinds: list[str] | None = typer.Option(None, "--kind", help="nn and/or hybrid (default: both)"),
    out_dir: Path | None = typer.Option(None, "--out", help="folder for the models and cards "
                                        "(default: the committed models/trained/battery, in a "
                                        "source checkout only)"),
    hidden: str | None = typer.Option(None, help="hidden layer widths, e.g. 64,64 (default: the "
                                      "pipeline's)"),
    activation: str | None = typer.Option(None, help="hidden activation, e.g. relu (default: the "
                                          "pipeline's)"),
    epochs: int | None = typer.Option(None, min=1, help="most epochs (early stopping ends sooner)"),
    seed: int = typer.Option(0, help="seed of the splits, initial weights and shuffling"),
) -> None:
    """Train the nn and hybrid battery ageing networks with Keras; save them with their cards."""
    from models.battery_card import KINDS
    from models.battery_models import TRAINED_DIR

    chosen = [k for item in (kinds or list(KINDS)) for k in item.split(",") if k]
    bad = [k for k in chosen if k not in KINDS]
    if bad:
        fail(f"unknown kind(s) {', '.join(bad)}; expected {', '.join(KINDS)}")
    try:
        widths = tuple(int(w) for w in hidden.split(",")) if hidden else None
    except ValueError:
        fail(f"--hidden: expected widths like 64,64, found {hidden!r}")
    folder = out_dir or default_write_folder(TRAINED_DIR, "--out")
    trainer = import_trainer("models.battery_train", "co2twin battery train")
    try:
        settings: dict[str, Any] = {"epochs": epochs or trainer.DEFAULTS["epochs"]}
        if widths:
            settings["hidden"] = widths
        if activation:
            settings["activation"] = activation
        log = _bench(seed) if data is None else data
        with err.status("training", spinner="dots") if err.is_terminal else _Quiet():
            cards = trainer.train(log, out_dir=folder, kinds=chosen, seed=seed, **settings)
    except CosimError as exc:
        fail(exc)
    except OSError as exc:
        fail(os_error(exc))
    table = RichTable(title=escape(f"trained into {folder}"))
    for col in ("model", "epochs", "time s", "test MAE Ah", "extrap. MAE Ah"):
        table.add_column(col, justify="right" if col != "model" else "left")
    for card in cards:
        def mae(split: str, card: Any = card) -> Any:
            refs = card.metrics.get(split, {})
            return (refs.get("truth") or refs.get("measured") or {}).get("mae")
        table.add_row(f"battery_capacity.{card.kind}", str(card.training.get("epochs_run", "?")),
                      f"{card.training.get('time_s', float('nan')):.1f}", _fmt(mae("test")),
                      _fmt(mae("extrapolation")))
    out.print(table)


class _Quiet:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


@battery_app.command("report")
def report_command(
    data: Path | None = typer.Option(None, "--data", help="battery log to score on (default: the "
                                        "reference bench the committed models were trained on)"),
    models_dir: Path | None = typer.Option(None, "--dir", help="models folder (default: "
                                           "models/trained/battery)"),
    as_json: bool = typer.Option(False, "--json", help="print {reference: {split: {kind: metrics}}}"),
) -> None:
    """Capacity MAE, RMSE and R² of physics vs nn vs hybrid on held-out cells and late cycles."""
    from models.battery_models import TRAINED_DIR
    from models.battery_report import compare, targets

    folder = models_dir or TRAINED_DIR
    try:
        log = _report_log(data, folder)
        truth = compare(log, folder, reference="truth")
        measured = compare(log, folder, reference="measured")
    except CosimError as exc:
        fail(exc)
    except OSError as exc:
        fail(os_error(exc))
    checks = targets(truth)
    if as_json:
        print(json.dumps(json_safe({"truth": truth, "measured": measured, "targets": checks}),
                         allow_nan=False))
        return
    titles = {"test": "held-out cells (test)", "extrapolation": "late cycles (extrapolation)"}
    for split, kinds in truth.items():
        table = RichTable(title=f"battery capacity, {titles.get(split, split)}: against the noise-free "
                                "capacity (measured in brackets) [Ah]")
        table.add_column("kind")
        for col in ("MAE", "RMSE", "R²"):
            table.add_column(col, justify="right")
        for kind, m in kinds.items():
            meas = measured.get(split, {}).get(kind, {})
            table.add_row(kind, *(f"{_fmt(m.get(k))} ({_fmt(meas.get(k))})" for k in ("mae", "rmse", "r2")))
        out.print(table)
    for check in checks:
        mark = "[green]pass[/]" if check["passed"] else "[red]FAIL[/]"
        out.print(f"{mark} " + escape(f"{check['split']}: {check['target']} ({_fmt(check['value'])} vs "
                                      f"{_fmt(check['limit'])} Ah)"), soft_wrap=True)


def _report_log(data: Path | None, folder: Path) -> Any:
    """The log to score on: the given one, or the bench of the seed the cards record."""
    from models.battery_card import KINDS, card_file, read_card

    if data is not None:
        return data
    seeds = [read_card(card_file(folder, k)).training.get("seed", 0) for k in KINDS
             if card_file(folder, k).exists()]
    return _bench(int(seeds[0]) if seeds else 0)


@battery_app.command("kpis")
def kpis_command(
    results: Path = typer.Argument(..., help="results file of a run with a supply (.parquet or .csv)"),
    as_json: bool = typer.Option(False, "--json", help="print KPIs and balances as JSON"),
) -> None:
    """The solar supply's KPIs and energy balances from a run's results."""
    from co2twin.supply import SUPPLY_KPI_UNITS, supply_balances, supply_kpis
    from cosim import read_results

    try:
        frame = read_results(results)
    except CosimError as exc:
        fail(exc)
    except OSError as exc:
        fail(os_error(exc))
    figures = supply_kpis(frame)
    if not figures:
        fail(f"{results}: no supply in this run (expected bus.* and battery.* columns)")
    residuals = supply_balances(frame)
    if as_json:
        print(json.dumps(json_safe({"kpis": figures, "balances": residuals}), allow_nan=False))
        return
    table = RichTable(title=escape(f"supply KPIs: {results}"))
    for col in ("KPI", "value", "unit"):
        table.add_column(col, justify="right" if col == "value" else "left")
    for key, value in figures.items():
        if key != "nights":
            table.add_row(key, _fmt(value), SUPPLY_KPI_UNITS.get(key, ""))
    out.print(table)
    for night in figures.get("nights", []):
        out.print(f"sunset at {night['sunset_h']:.2f} h: ran {night['minutes']:.0f} min"
                  + (" (the whole night)" if night["through"] else ""), markup=False)
    out.print("balances (largest relative residual): "
              + ", ".join(f"{k} {v:.1e}" for k, v in residuals.items()), markup=False)

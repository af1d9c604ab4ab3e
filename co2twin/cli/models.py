"""``co2twin data generate``, ``co2twin train`` and ``co2twin models report|check|show``.

Only ``train`` imports TensorFlow (through :mod:`models.train`); the others run
on the NumPy runtime.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table as RichTable

from .console import (
    SOURCE_ROOT,
    default_write_folder,
    err,
    fail,
    import_trainer,
    json_safe,
    os_error,
    out,
)
from cosim.errors import CosimError

data_app = typer.Typer(no_args_is_help=True, help="Plant logs: generate a test campaign.")
models_app = typer.Typer(no_args_is_help=True, help="Surrogate models: fidelity report, checks.")

#: what the default campaign is called in model cards and reports
CAMPAIGN_SOURCE = "reference plant campaign (seed {seed})"


def _campaign(seed: int) -> Any:
    """The default test campaign on the reference plant, generated in memory."""
    from models.campaign import generate

    frame = generate(seed=seed)
    frame.attrs["source"] = CAMPAIGN_SOURCE.format(seed=seed)
    return frame


@data_app.command("generate")
def generate_command(
    output: Path = typer.Option(Path("data/plant_log.parquet"), "-o", "--output",
                                help="plant log file (.parquet or .csv)"),
    seed: int = typer.Option(0, help="seed of the design of experiments and the sensor noise"),
    points: int | None = typer.Option(None, "--points", min=2,
                                         help="design-of-experiments points (default: the full campaign)"),
    spanish: bool = typer.Option(False, "--spanish", help="write the VALCO2T twin's Spanish column names"),
) -> None:
    """Run a test campaign on the reference plant and write its plant log."""
    from models.campaign import generate
    from models.plantlog import write_log

    if output.suffix.lower() not in (".parquet", ".csv"):
        fail(f"{output}: expected a .parquet or .csv plant log")
    try:
        frame = generate(seed=seed) if points is None else generate(seed=seed, n_points=points)
        path = write_log(frame, output, spanish=spanish)
    except CosimError as exc:
        fail(exc)
    except OSError as exc:
        fail(os_error(exc))
    experiments = frame["experiment"].nunique() if "experiment" in frame else 1
    out.print(f"plant log: {path} ({len(frame):,} rows, {experiments} experiments, "
              f"{frame['time'].iloc[-1] / 3600:.1f} h of plant time)", markup=False, soft_wrap=True)


def train_command(
    data: Path | None = typer.Option(None, "--data", help="plant log to train on (CSV/Parquet, "
                                        "English or Spanish columns); default: the reference campaign"),
    variables: list[str] | None = typer.Option(None, "--variables", "--variable",
                                                  help="variable(s) to train (default: all)"),
    kinds: list[str] | None = typer.Option(None, "--kind", help="nn and/or hybrid (default: both)"),
    out_dir: Path | None = typer.Option(None, "--out", help="folder for the models and cards "
                                        "(default: the committed models/trained, in a source "
                                        "checkout only)"),
    epochs: int | None = typer.Option(None, min=1, help="most epochs per model (early stopping ends sooner)"),
    seed: int = typer.Option(0, help="seed of splits, initial weights and shuffling"),
) -> None:
    """Train nn and hybrid surrogates with Keras and save them with their model cards."""
    from models.surrogate import TRAINED_DIR
    from models.variables import FILE_KINDS, VARIABLES

    variables = [v for item in (variables or list(VARIABLES)) for v in item.split(",") if v]
    kinds = [k for item in (kinds or list(FILE_KINDS)) for k in item.split(",") if k]
    bad = [v for v in variables if v not in VARIABLES] + [k for k in kinds if k not in FILE_KINDS]
    if bad:
        fail(f"unknown {', '.join(bad)}; variables: {', '.join(VARIABLES)}; kinds: {', '.join(FILE_KINDS)}")
    out_dir = out_dir or default_write_folder(TRAINED_DIR, "--out")
    trainer = import_trainer("models.train", "co2twin train")
    try:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        log = _campaign(seed) if data is None else data
        most_epochs: int = epochs or trainer.DEFAULTS["epochs"]
        total = len(variables) * len(kinds)
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
                      TimeElapsedColumn(), console=err, transient=True,
                      disable=not err.is_terminal) as bar:
            task = bar.add_task("training", total=total * most_epochs, info="")

            def progress(event: Any) -> None:
                bar.update(task, description=f"{event.variable}.{event.kind}", info=str(event))
                if not event.done:
                    bar.advance(task)

            cards = trainer.train(log, out_dir=out_dir, variables=variables, kinds=kinds, seed=seed,
                                  epochs=most_epochs, progress=progress)
    except CosimError as exc:
        fail(exc)
    except OSError as exc:
        fail(os_error(exc))
    table = RichTable(title=escape(f"trained into {out_dir}"))
    for col in ("model", "epochs", "time s", "test R²", "test MAE", "extrap. MAE"):
        table.add_column(col, justify="right" if col != "model" else "left")
    for card in cards:
        test = card.metrics.get("test", {}).get("truth") or card.metrics.get("test", {}).get("measured", {})
        extra = card.metrics.get("extrapolation", {}).get("truth") or {}
        table.add_row(f"{card.variable}.{card.kind}", str(card.training.get("epochs_run", "?")),
                      f"{card.training.get('time_s', float('nan')):.1f}",
                      _fmt(test.get("r2")), _fmt(test.get("mae")), _fmt(extra.get("mae")))
    out.print(table)


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"


#: what ``models report --json --section`` prints
REPORT_SECTIONS = ("metrics", "targets", "joint", "scenarios", "literature", "all")


@models_app.command("report")
def report_command(
    data: Path | None = typer.Option(None, "--data", help="plant log to score on (default: the "
                                        "reference campaign the committed models were trained on)"),
    models_dir: Path | None = typer.Option(None, "--dir", help="models folder (default: models/trained)"),
    plots: Path | None = typer.Option(None, "--plots",
                                         help="write the parity plots (PNG) into this folder "
                                              "(default: no plots)"),
    # plots are opt-in now; the flag stays so that scripts written for the old default still run
    no_plots: bool = typer.Option(False, "--no-plots", hidden=True,
                                  help="skip the parity plots, even with --plots"),
    scenarios: Path | None = typer.Option(None, "--scenarios",
                                             help="folder of scenarios whose rows are checked for "
                                                  "bounds, each on its own models (default: the "
                                                  "shipped scenarios/ of a source checkout, else "
                                                  "./scenarios of the working directory, when --dir "
                                                  "is the committed models they use)"),
    no_scenarios: bool = typer.Option(False, "--no-scenarios",
                                      help="skip running the scenarios for the joint fidelity"),
    as_json: bool = typer.Option(False, "--json", help="print JSON: the section --section names"),
    section: str = typer.Option("metrics", "--section",
                                help="with --json: metrics ({variable: {split: {kind: metrics}}}), "
                                     "targets, joint, scenarios ({folder, runs, skipped}), "
                                     "literature or all"),
) -> None:
    """Physics vs nn vs hybrid: per-variable fidelity (MAE, RMSE, R²) on the test and
    extrapolation splits, joint fidelity (bounds acting, balances from the unbounded
    estimates) on those rows and on each scenario's rows, and published figures of merit.

    Parity plots are written only when --plots DIR names a folder for them.
    """
    from models.report import compare, joint, parity_plots, targets
    from models.surrogate import TRAINED_DIR

    if section not in REPORT_SECTIONS:
        fail(f"--section {section!r}: expected one of {', '.join(REPORT_SECTIONS)}")
    wanted = {section} if as_json and section != "all" else set(REPORT_SECTIONS)
    committed = models_dir is None or Path(models_dir).resolve() == TRAINED_DIR.resolve()
    models_dir = models_dir or TRAINED_DIR
    folder, why = _scenarios_folder(scenarios, skip=no_scenarios, committed=committed)
    try:
        log, note = _report_log(data, models_dir)
        truth = compare(log, models_dir, reference="truth")
        if not truth:
            raise CosimError(f"{models_dir}: no model cards found (run `co2twin train`)")
        measured = compare(log, models_dir, reference="measured") if not as_json else {}
        checks = targets(truth)
        together = joint(log, models_dir) if wanted & {"joint", "all"} or not as_json else {}
        runs = ([] if folder is None or not (wanted & {"scenarios", "all"})
                else _scenario_bounds(folder))
        published = _literature(models_dir) if wanted & {"literature", "all"} else []
        written = [] if no_plots or plots is None else parity_plots(log, models_dir, plots)
    except CosimError as exc:
        fail(exc)
    except OSError as exc:
        fail(os_error(exc))
    if folder is not None and not runs and wanted & {"scenarios", "all"}:
        folder, why = None, f"no scenario files (*.yaml) in {folder}"
    ran = {"folder": None if folder is None else str(folder), "runs": runs,
           "skipped": None if folder is not None else why}
    if as_json:
        everything = {"metrics": truth, "targets": checks, "joint": together, "scenarios": ran,
                      "literature": published}
        print(json.dumps(json_safe(everything if section == "all" else everything[section]),
                         allow_nan=False))
        return
    if note:
        err.print(f"note: {note}", markup=False, soft_wrap=True)
    _print_metrics(truth, measured)
    for check in checks:
        mark = "[green]pass[/]" if check["passed"] else "[red]FAIL[/]"
        out.print(f"{mark} " + escape(f"{check['variable']}: {check['target']} "
                                      f"({_fmt(check['value'])} vs {_fmt(check['limit'])})"),
                  soft_wrap=True)
    _print_joint(together, runs, folder)
    if folder is None:
        out.print(f"scenarios: skipped: {why}", markup=False, highlight=False, soft_wrap=True)
    elif why:
        err.print(f"note: {why}", markup=False, highlight=False, soft_wrap=True)
    _print_literature(published)
    for path in written:
        out.print(f"parity plot: {path}", markup=False, soft_wrap=True)


#: the scenarios shipped with co2twin, beside the package in a source checkout (``pip install .``
#: does not install them: the report then looks for ``./scenarios`` in the working directory)
SHIPPED_SCENARIOS = SOURCE_ROOT / "scenarios"


def _scenarios_folder(given: Path | None, *, skip: bool, committed: bool) -> tuple[Path | None, str]:
    """The folder of scenarios the report runs, and a note on where it came from; or ``None``
    and why no scenario is run (the report says so: a skipped check is never silent)."""
    if skip:
        return None, "--no-scenarios given"
    if given is not None:
        if not given.is_dir():
            found = "a file" if given.exists() else "nothing there"
            fail(f"--scenarios {given}: expected a folder of scenario files (*.yaml), found {found}")
        return given, ""
    if not committed:
        # the shipped scenarios run on the committed models: beside other models they would
        # say nothing about those
        return None, ("the shipped scenarios run on the committed models, not on the --dir "
                      "ones; give scenarios for these with --scenarios DIR")
    if SHIPPED_SCENARIOS.is_dir():
        return SHIPPED_SCENARIOS, ""
    here = Path.cwd() / "scenarios"
    if here.is_dir():
        return here, (f"scenarios from the working directory ({here}): none installed with the "
                      f"package ({SHIPPED_SCENARIOS})")
    return None, (f"no scenarios folder: none installed with the package ({SHIPPED_SCENARIOS}) and "
                  f"none in the working directory ({here}); give one with --scenarios DIR")


def _print_metrics(truth: dict[str, Any], measured: dict[str, Any]) -> None:
    for split in ("test", "extrapolation"):
        table = RichTable(title=f"{split} split: against the reference plant's noise-free values "
                                "(measured in brackets)")
        table.add_column("variable")
        table.add_column("kind")
        for col in ("MAE", "RMSE", "R²"):
            table.add_column(col, justify="right")
        for variable, splits in truth.items():
            for kind, m in splits[split].items():
                meas = measured.get(variable, {}).get(split, {}).get(kind, {})
                table.add_row(variable, kind, *(
                    f"{_fmt(m.get(key))} ({_fmt(meas.get(key))})" for key in ("mae", "rmse", "r2")))
        out.print(table)


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{100.0 * share:.3g} %"


def _print_joint(together: dict[str, Any], runs: list[dict[str, Any]], folder: Path | None) -> None:
    """The joint fidelity tables: bounds on the test/extrapolation rows, balances from the
    unbounded estimates, and bounds on each scenario's rows."""
    from models.variables import VARIABLES

    short = {"cell_voltage": "V", "fe_formate": "FE", "outlet_co2_fraction": "CO2 out",
             "anolyte_ph": "pH"}
    table = RichTable(title="joint fidelity: rows where a bound acted on the estimates, largest "
                            "correction, balances from the unbounded estimates (largest violation)")
    for col in ("kind", "split", "rows", "bounded", *(f"corr. {short[v]}" for v in VARIABLES),
                "charge", "carbon (formate)", "carbon (outlet)"):
        table.add_column(col, justify="left" if col in ("kind", "split") else "right")
    for kind, splits in together.items():
        for split, j in splits.items():
            table.add_row(kind, split, str(j["rows"]), _percent(j["bounded_share"]["any"]),
                          *(_fmt(j["largest_correction"][v]) for v in VARIABLES),
                          *(_fmt(j["balances"][b]) for b in ("charge", "carbon_formate", "carbon_outlet")))
    if together:
        out.print(table)
    if runs:
        table = RichTable(title=escape(f"scenarios in {folder}, each on its own models: rows where a "
                                       "bound acted, rows outside a model's training envelope"))
        for col in ("scenario", "models", "rows", "bounded", *(f"bounded {short[v]}" for v in VARIABLES),
                    "outside envelope", "warnings"):
            table.add_column(col, justify="left" if col in ("scenario", "models") else "right")
        for r in runs:
            if "error" in r:
                table.add_row(escape(r["scenario"]), "-", "-", escape(r["error"]), *([""] * 6))
                continue
            table.add_row(escape(r["scenario"]), escape(r["models"]), str(r["rows"]),
                          _percent(r["bounded_share"]["any"]),
                          *(_percent(r["bounded_share"][v]) for v in VARIABLES),
                          _percent(r["outside_share"]), str(r["envelope_warnings"]))
        out.print(table)


def _scenario_bounds(folder: Path) -> list[dict[str, Any]]:
    """Run every scenario of ``folder`` (in memory, nothing written) and count, per scenario,
    the rows where a bound acted on an estimate and the rows outside a training envelope."""
    import warnings

    from co2twin.scenario import load_scenario, run
    from models.surrogate import EnvelopeWarning
    from models.variables import VARIABLES

    found: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.yaml")):
        try:
            scenario = load_scenario(path)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", EnvelopeWarning)
                frame = run(scenario, progress=False)
        except CosimError as exc:
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            found.append({"scenario": path.stem, "error": " ".join(lines[:2])})
            continue
        rows = len(frame)

        def share(column: str, frame: Any = frame, rows: int = rows) -> float:
            return float((frame[column] > 0).sum()) / rows if column in frame and rows else 0.0

        outside = [c for c in (f"reactor.{v}_outside_envelope" for v in VARIABLES) if c in frame]
        found.append({
            "scenario": path.stem, "models": scenario.models.default, "rows": rows,
            "bounded_share": {**{v: share(f"reactor.{v}_bounded") for v in VARIABLES},
                              "any": share("reactor.estimate_bounded")},
            "outside_share": (float((frame[outside] > 0).any(axis=1).sum()) / rows
                              if outside and rows else 0.0),
            "envelope_warnings": sum(issubclass(w.category, EnvelopeWarning) for w in caught),
        })
    return found


def _literature(models_dir: Path) -> list[dict[str, Any]]:
    from models.literature import compare as literature

    return literature(models_dir)


def _print_literature(published: list[dict[str, Any]]) -> None:
    if not published:
        return
    fixed = ("source", "current_density", "variable", "published", "note", "reference")
    kinds = list(dict.fromkeys(k for e in published for k in e if k not in fixed))
    table = RichTable(title="published figures of merit (shared/process.md) beside the twin, at the "
                            "nominal point (fresh 25 cm2 cathode, pure CO2 at 100 mL/min, 1 M, 25 °C "
                            "ambient), settled")
    for col in ("source", "mA/cm²", "variable", "published", "reference plant", *kinds):
        table.add_column(col, justify="left" if col in ("source", "variable") else "right")
    for e in published:
        j = "best" if e["current_density"] is None else f"{e['current_density']:g}"

        def cell(value: float | None, e: dict[str, Any] = e) -> str:
            if value is None:  # no model of this kind for the variable
                return "-"
            return f"{value:.3g} ({100.0 * (value / e['published'] - 1.0):+.1f} %)"

        table.add_row(escape(e["source"]), j, e["variable"], f"{e['published']:.3g}",
                      cell(e["reference"]), *(cell(e.get(k)) for k in kinds))
    out.print(table)


def _report_log(data: Path | None, models_dir: Path) -> tuple[Any, str]:
    """The log to score on, and a note when it is not the data the models were trained on."""
    from models.cards import ModelCard
    from models.plantlog import data_hash, read_log

    cards = [ModelCard.read(p) for p in sorted(Path(models_dir).glob("*.card.json"))]
    if data is not None:
        log = read_log(data)
        log.attrs["source"] = str(data)
    else:
        seed = next((c.training.get("seed", 0) for c in cards), 0)
        log = _campaign(seed)
    digest = data_hash(log)
    hashes = {c.data.get("hash") for c in cards}
    others = sorted(h for h in hashes if h is not None and h != digest)
    note = ""
    if others:
        note = ("the models were trained on other data (hash " + ", ".join(h[:12] for h in others)
                + f") than this log ({digest[:12]}); the splits still follow their cards")
    return log, note


@models_app.command("check")
def check_command(
    paths: list[Path] = typer.Argument(..., help=".keras model file(s)"),
) -> None:
    """Load models with the NumPy runtime and flag problems (e.g. a model fed its own output)."""
    from models.check import check_model

    failed = False
    for path in paths:
        findings = check_model(path)
        out.print(escape(str(path)), style="bold", highlight=False, soft_wrap=True)
        for f in findings:
            style = {"error": "red", "warning": "yellow"}.get(f.level, "")
            out.print(f"  [{style or 'default'}]{f.level}[/]: " + escape(f.message), soft_wrap=True,
                      highlight=False)
            failed |= f.level == "error"
    if failed:
        raise typer.Exit(1)


@models_app.command("show")
def show_command(
    scenario: Path = typer.Argument(..., help="scenario YAML file"),
) -> None:
    """Which model estimates each variable in a scenario, with its inputs and envelope."""
    from co2twin.scenario import load_scenario
    from co2twin.surrogates import load_models

    try:
        sc = load_scenario(scenario)
        models = load_models(sc)
    except CosimError as exc:
        fail(exc)
    table = RichTable(title=escape(f"{sc.name}: models (envelope policy: {models.policy})"))
    for col in ("variable", "model", "inputs [envelope]"):
        table.add_column(col)
    for variable, text in models.describe().items():
        s = models.surrogates.get(variable)
        if s is None:
            table.add_row(variable, "physics", "-")
            continue
        if s.lower is not None and s.upper is not None:
            bounds = zip(s.inputs, s.lower, s.upper, strict=True)
            ranges = [f"{n} [{lo:.4g}, {hi:.4g}]" for n, lo, hi in bounds]
        else:
            ranges = list(s.inputs)
        table.add_row(variable, escape(text), escape("\n".join(ranges)))
    out.print(table)


def envelope_summary(frame: Any) -> list[str]:
    """Lines saying how long each variable's model ran outside its envelope in a run."""
    lines = []
    for column in frame.columns:
        if column.endswith("_outside_envelope") and frame[column].any():
            variable = column.split(".", 1)[-1].removesuffix("_outside_envelope")
            rows = int((frame[column] > 0).sum())
            lines.append(f"{variable} model outside its training envelope in {rows} of {len(frame)} rows")
    if "reactor.estimate_bounded" in frame and frame["reactor.estimate_bounded"].any():
        rows = int((frame["reactor.estimate_bounded"] > 0).sum())
        lines.append(f"surrogate estimates bounded to keep the balances in {rows} rows "
                     "(reactor.estimate_bounded)")
    return lines

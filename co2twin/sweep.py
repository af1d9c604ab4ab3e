"""Distributed sweeps: a sweep spec's variants in chunks, each chunk one ensemble, on dask.distributed.

A scenario an ensemble cannot take (the solar supply, a Python controller, FMU components) runs
each chunk's variants one at a time (:mod:`co2twin.variant_runs`) into the same tables.

Layout of the output folder (nothing is written elsewhere; workers write their own chunks, so on a
cluster the folder must be on a file system every worker sees)::

    manifest.json                        the spec's hash, variant and chunk counts (resume checks it)
    kpis/chunk=000012/part.parquet       chunk 12's KPI table: variant, group, ``set:<path>`` (the
                                         varied values), then the KPIs (:func:`co2twin.kpi.kpis`)
    balances/chunk=000012/part.parquet   chunk 12's worst balance residuals, one row per variant
    signals/chunk=000012/part.parquet    chunk 12's kept signals, long format: variant, time, signals
    done/chunk=000012.json               written last: the chunk is complete (what a resume skips)
    kpis.parquet                         every chunk's KPI table merged, one row per variant
    summary.json                         counts, KPI intervals, worst balances, sensitivity, memory
    bands.png, bands.parquet, sensitivity.csv   when the spec asks for them

The three tables are partitioned datasets in the layout of
:meth:`co2twin.ensemble.EnsembleResult.to_parquet`: ``pandas.read_parquet(folder / "signals")``
reads every chunk.

Every file is written atomically (:mod:`cosim.atomic`): a chunk killed mid-write leaves nothing
under its names, so a chunk either counts as done whole or runs again; a chunk run twice (its
worker lost after writing) rewrites the same files, so nothing is duplicated.
"""
from __future__ import annotations

import json
import os
import re
import resource
import shutil
import time
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from collections.abc import Callable, Mapping, Sequence

from cosim.atomic import atomic_path
from cosim.errors import ScenarioError, SimulationError

from .strict_json import json_safe
from .sweep_spec import SweepSpec, set_path

if TYPE_CHECKING:
    import pandas as pd

    from .scenario_schema import Scenario

__all__ = ["ChunkTask", "ChunkRunner", "SweepRun", "run_sweep", "run_chunk", "ensemble_chunk",
           "plan_chunks", "check_output", "MANIFEST"]

MANIFEST = "manifest.json"
_CHUNK = re.compile(r"^chunk=(\d{6})\.json$")
_TABLES = ("kpis", "balances", "signals")
#: a temporary of :func:`cosim.atomic.temp_beside`: ``.<name>.<16 hex>.tmp<suffix>``
_TEMPORARY = re.compile(r"^\..+\.[0-9a-f]{16}\.tmp(\.[A-Za-z]+)?$")


class _Result(Protocol):
    def kpis(self) -> pd.DataFrame: ...
    def frame_long(self) -> pd.DataFrame: ...
    def balances(self) -> pd.DataFrame: ...


#: runs one chunk: (scenario, variants, keep, every) -> an ensemble result (``kpis()``, ``frame_long()``)
ChunkRunner = Callable[..., _Result]


def ensemble_chunk(scenario: Scenario, variants: Sequence[Mapping[str, Any]], *,
                   keep: Sequence[str] | None, every: int | None) -> _Result:
    """The chunk runner of ``co2twin sweep``: the variants as one ensemble
    (:mod:`co2twin.ensemble`), or, where they cannot be one (a Python controller, FMU
    components, the solar supply's parameters: :func:`co2twin.variant_runs.one_at_a_time`, as
    the spec's ``mode`` says), one run per variant (:mod:`co2twin.variant_runs`), which gives
    the same tables."""
    from .ensemble import run_ensemble
    from .variant_runs import one_at_a_time, run_variants

    if one_at_a_time(scenario, [p for v in variants for p in v]):
        return run_variants(scenario, variants, keep=keep, every=every)
    return run_ensemble(scenario, variants, keep=keep, every=every)


@dataclass(frozen=True)
class ChunkTask:
    """What a worker needs to run chunk ``index`` (variants ``start`` to ``stop - 1``) and write it."""

    index: int
    start: int
    variants: list[dict[str, Any]]
    groups: list[int]
    scenario_data: dict[str, Any]
    base_dir: str
    source: str
    signals: list[str]
    every: int
    kpis: list[str] | None
    out: str
    digest: str
    #: every value the sweep sets, ``models.`` paths included (the KPI table's ``set:`` columns)
    values: list[dict[str, Any]] = field(default_factory=list)

    @property
    def stop(self) -> int:
        return self.start + len(self.variants)


def plan_chunks(spec: SweepSpec, out: Path) -> list[ChunkTask]:
    """The sweep's variants cut into chunks of ``spec.chunk_size``, in sweep order; with
    ``models.`` paths (:data:`~co2twin.sweep_spec.PER_SCENARIO`), cut where they change too, each
    chunk's scenario carrying its variants' models."""
    variants = spec.variants()
    per_group = spec.n_per_group
    digest = spec.digest()
    structural = spec.per_scenario
    # where a chunk must start: where the models change, and every chunk_size variants after that
    key = [tuple(str(v[p]) for p in structural) for v in variants]
    runs = [i for i in range(len(variants)) if i == 0 or key[i] != key[i - 1]] + [len(variants)]
    starts = [s for a, b in pairwise(runs) for s in range(a, b, spec.chunk_size)]
    tasks = []
    for index, start in enumerate(starts):
        stop = starts[index + 1] if index + 1 < len(starts) else len(variants)
        part = variants[start:stop]
        data = spec.scenario_data
        for path in structural:
            data = set_path(data, path, part[0][path])
        tasks.append(ChunkTask(
            index=index, start=start, variants=[{k: v for k, v in x.items() if k not in structural}
                                                for x in part],
            groups=[(start + i) // per_group for i in range(len(part))],
            # absolute: a worker elsewhere runs in another working directory
            scenario_data=data, base_dir=str(Path(spec.base_dir).absolute()), source=spec.source,
            signals=list(spec.signals), every=spec.every, kpis=spec.kpis, out=str(Path(out).absolute()),
            digest=digest, values=part))
    return tasks


def _paths(out: Path, index: int) -> dict[str, Path]:
    paths = {name: out / name / f"chunk={index:06d}" / "part.parquet" for name in _TABLES}
    paths["done"] = out / "done" / f"chunk={index:06d}.json"
    return paths


def run_chunk(task: ChunkTask, runner: ChunkRunner = ensemble_chunk) -> dict[str, Any]:
    """Run one chunk and write its files (on the worker); return a small record of it."""
    from .scenario import parse_scenario

    t0 = time.perf_counter()
    scenario = parse_scenario(task.scenario_data, source=task.source, base_dir=task.base_dir)
    result = runner(scenario, task.variants, keep=task.signals or None, every=task.every)
    kpis = _chunk_kpis(task, result.kpis())
    files = _paths(Path(task.out), task.index)
    rows = 0
    if task.signals:
        long = result.frame_long()
        long = long.reset_index() if "variant" not in long.columns else long
        keep = [c for c in ("variant", "time", *task.signals) if c in long.columns]
        long = long[keep].copy()
        long["variant"] = long["variant"].to_numpy() + task.start
        rows = len(long)
        _write_parquet(long, files["signals"])
    _write_parquet(_with_variants(task, result.balances()), files["balances"])
    _write_parquet(kpis, files["kpis"])
    record = {"chunk": task.index, "start": task.start, "stop": task.stop, "digest": task.digest,
              "variants": len(task.variants), "signal_rows": rows,
              "seconds": round(time.perf_counter() - t0, 3), "pid": os.getpid(),
              "mode": getattr(result, "mode", "ensemble"),
              # the worker process's peak resident memory so far (Linux: kB)
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    with atomic_path(files["done"]) as tmp:
        tmp.write_text(json.dumps(record))
    return record


def _in_order(task: ChunkTask, frame: pd.DataFrame, what: str) -> pd.DataFrame:
    """The runner's per-variant table (column or index ``variant``, numbered from 0), checked to
    hold each of the chunk's variants once, in order."""
    frame = frame.reset_index(drop="variant" in frame.columns)
    if "variant" not in frame.columns:
        frame = frame.rename(columns={frame.columns[0]: "variant"})
    frame = frame.sort_values("variant").reset_index(drop=True)
    if list(frame["variant"]) != list(range(len(task.variants))):
        raise SimulationError(f"chunk {task.index}: expected the {what} of variants 0.."
                              f"{len(task.variants) - 1} from the ensemble, found "
                              f"{list(frame['variant'])[:10]}")
    return frame.drop(columns="variant")


def _with_variants(task: ChunkTask, frame: pd.DataFrame) -> pd.DataFrame:
    """A per-variant table with the sweep's variant numbers in front."""
    frame = _in_order(task, frame, "balances")
    frame.insert(0, "variant", range(task.start, task.stop))
    return frame


def _chunk_kpis(task: ChunkTask, frame: pd.DataFrame) -> pd.DataFrame:
    """The runner's KPI table with the sweep's variant number, group and varied values in front."""
    import pandas as pd

    from .kpi import FLAG_TIME_KPIS

    frame = _in_order(task, frame, "KPIs")
    # the flag times (and each controller's time at a limit) stay whatever the spec keeps: a
    # sweep must not hide that variants left a model's envelope, saturated or broke a limit
    asked = None if task.kpis is None else {*task.kpis, *FLAG_TIME_KPIS, "loop_saturated_s"}
    scalar = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])
              and (asked is None or c in asked or c.split("[")[0] in asked)]
    front = pd.DataFrame({"variant": range(task.start, task.stop), "group": task.groups})
    values = pd.DataFrame(task.values or task.variants).add_prefix("set:")
    for column in values.columns:
        # Parquet wants one type a column: a model file given as a mapping, or values of mixed
        # kinds, are kept as their JSON text
        kinds = {type(v) for v in values[column]}
        if len(kinds) > 1 and not kinds <= {int, float} or kinds & {dict, list}:
            values[column] = [v if isinstance(v, str) else json.dumps(v) for v in values[column]]
    return pd.concat([front, values, frame[scalar]], axis=1)


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


# -- the client side ------------------------------------------------------------------------
@dataclass
class SweepRun:
    """What :func:`run_sweep` did: counts, the chunk records and where the results are."""

    out: Path
    n_variants: int
    n_chunks: int
    ran: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    kpis: pd.DataFrame | None = None
    summary: dict[str, Any] = field(default_factory=dict)


def run_sweep(spec: SweepSpec, out: str | Path, *, scheduler: str | None = None,
              workers: int | None = None, runner: ChunkRunner = ensemble_chunk,
              retries: int | None = None, restart: bool = False,
              on_chunk: Callable[[dict[str, Any]], None] | None = None,
              on_plan: Callable[[int, int], None] | None = None) -> SweepRun:
    """Run ``spec`` on dask.distributed into the folder ``out``; resume from the chunks there.

    ``scheduler``: address of a running scheduler (``tcp://host:port``); else a LocalCluster of
    ``workers`` processes (default: one per core, one thread each). ``retries``: reruns of a
    failed chunk (default: the spec's). ``restart``: delete this sweep's earlier chunks and
    start over (only files this module writes). ``on_plan(total, done)`` is called once before
    running, ``on_chunk(record)`` once per chunk finished, both on the caller's thread.
    """
    out = Path(out)
    t0 = time.perf_counter()
    tasks = plan_chunks(spec, out)
    _claim(out, spec, len(tasks), restart=restart)
    done = {i for i in _done_chunks(out, spec.digest()) if i < len(tasks)}
    todo = [t for t in tasks if t.index not in done]
    run = SweepRun(out=out, n_variants=spec.n_variants, n_chunks=len(tasks),
                   skipped=sorted(done))
    if on_plan is not None:
        on_plan(len(tasks), len(done))
    if todo:
        failures = _run_on_dask(todo, runner, out, scheduler=scheduler, workers=workers,
                                retries=spec.retries if retries is None else retries,
                                run=run, on_chunk=on_chunk)
        if failures:
            lines = [f"chunk {i}: {text}" for i, text in sorted(failures.items())]
            raise SimulationError(
                f"{out}: {len(failures)} of {len(tasks)} chunks failed after their retries; the "
                "others are written: run the same command again to rerun only the missing chunks\n"
                + "\n".join(lines))
    run.seconds = time.perf_counter() - t0
    run.kpis = _merge(out, tasks)
    from .uncertainty import summarise

    run.summary = summarise(spec, run.kpis, out, records=_records(out, len(tasks)))
    run.summary["seconds"] = round(run.seconds, 3)
    run.summary["chunks_run"] = len(run.ran)
    run.summary["chunks_resumed"] = len(run.skipped)
    run.summary["chunk_mode"] = spec.mode
    run.summary = json_safe(run.summary)  # strict JSON: NaN (a KPI a variant lacks) as null
    with atomic_path(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(run.summary, indent=1, allow_nan=False))
    return run


def check_output(spec: SweepSpec, out: str | Path, *, restart: bool = False) -> None:
    """Raise :class:`ScenarioError` unless ``out`` can take ``spec``'s results: a new or empty
    folder, or one of an earlier run of this same sweep (any sweep's, with ``restart``).
    Reads only: :func:`run_sweep` checks the same before it writes anything."""
    out = Path(out)
    manifest = out / MANIFEST
    if manifest.is_file():
        try:
            old = json.loads(manifest.read_text())
        except (OSError, ValueError) as exc:
            raise ScenarioError(f"expected a sweep manifest, found an unreadable file ({exc})",
                                str(manifest)) from None
        digest = spec.digest()
        if not restart and old.get("digest") != digest:
            raise ScenarioError(
                f"the folder holds another sweep's chunks (spec hash {str(old.get('digest'))[:12]}, "
                f"this spec {digest[:12]}): name another output folder, or pass --restart to "
                "delete them and start over", str(out))
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ScenarioError("expected a new or empty folder for the sweep's results (or one of an "
                            "earlier run of this sweep, to resume), found other files there", str(out))


def _claim(out: Path, spec: SweepSpec, n_chunks: int, *, restart: bool) -> None:
    """Write the manifest, or check that the folder holds this same sweep's chunks."""
    check_output(spec, out, restart=restart)
    manifest = out / MANIFEST
    digest = spec.digest()
    if manifest.is_file():
        if restart:
            _remove_sweep(out)
        _remove_leftovers(out)
    record = {"digest": digest, "name": spec.name, "spec": spec.source, "variants": spec.n_variants,
              "chunk_size": spec.chunk_size, "chunks": n_chunks}
    with atomic_path(manifest) as tmp:
        tmp.write_text(json.dumps(record, indent=1))


def _remove_sweep(out: Path) -> None:
    """Delete what this module wrote in ``out`` (never anything else)."""
    for folder in (*_TABLES, "done"):
        if not (out / folder).is_dir():
            continue
        for path in (out / folder).iterdir():
            if path.is_dir() and re.match(r"^chunk=\d{6}$", path.name):
                (path / "part.parquet").unlink(missing_ok=True)
                _remove_temporaries(path)
                if not any(path.iterdir()):
                    path.rmdir()
            elif _CHUNK.match(path.name):
                path.unlink()
    for name in ("kpis.parquet", "summary.json", "bands.png", "bands.parquet", "sensitivity.csv",
                 MANIFEST):
        (out / name).unlink(missing_ok=True)


def _remove_leftovers(out: Path) -> None:
    """What an interrupted run of this sweep left half-made: temporaries of files being written
    (:func:`cosim.atomic.temp_beside` names) and the local cluster's scratch space."""
    _remove_temporaries(out)
    _remove_temporaries(out / "done")
    for table in _TABLES:
        for folder in (out / table).glob("chunk=*"):
            _remove_temporaries(folder)
    shutil.rmtree(out / ".dask-scratch", ignore_errors=True)


def _remove_temporaries(folder: Path) -> None:
    if folder.is_dir():
        for path in folder.iterdir():
            if _TEMPORARY.match(path.name) and path.is_file():
                path.unlink()


def _done_chunks(out: Path, digest: str) -> list[int]:
    """The chunks whose done marker is there, for this spec, with their KPI file beside it."""
    folder = out / "done"
    if not folder.is_dir():
        return []
    done = []
    for path in folder.iterdir():
        match = _CHUNK.match(path.name)
        if not match:
            continue
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # not complete: run again
        index = int(match.group(1))
        if record.get("digest") == digest and _paths(out, index)["kpis"].is_file():
            done.append(index)
    return done


def _records(out: Path, n_chunks: int) -> list[dict[str, Any]]:
    return [json.loads(_paths(out, i)["done"].read_text()) for i in range(n_chunks)]


def _run_on_dask(todo: list[ChunkTask], runner: ChunkRunner, out: Path, *, scheduler: str | None,
                 workers: int | None, retries: int, run: SweepRun,
                 on_chunk: Callable[[dict[str, Any]], None] | None) -> dict[int, str]:
    """Submit every chunk, gather as they finish; return the chunks that failed and why."""
    import dask

    scratch = out / ".dask-scratch"
    # dask's lock files and spill space go to its temporary directory (else the system's)
    with dask.config.set({"temporary-directory": str(scratch)}):
        return _submit_all(todo, runner, scheduler=scheduler, workers=workers, retries=retries,
                           run=run, on_chunk=on_chunk, scratch=scratch)


def _submit_all(todo: list[ChunkTask], runner: ChunkRunner, *, scheduler: str | None,
                workers: int | None, retries: int, run: SweepRun,
                on_chunk: Callable[[dict[str, Any]], None] | None, scratch: Path) -> dict[int, str]:
    """Start or join the cluster, submit every chunk and gather them as they finish."""
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    try:
        if scheduler is None:
            # worker scratch space inside the output folder: nothing written anywhere else
            cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1,
                                   # the scheduler's HTTP routes on a free loopback port
                                   processes=True, dashboard_address="127.0.0.1:0",
                                   local_directory=str(scratch))
            client = Client(cluster)
        else:
            try:
                client = Client(scheduler, timeout="30s")
            except (OSError, ValueError) as exc:
                raise SimulationError(f"--scheduler {scheduler}: expected the address of a running "
                                      f"dask scheduler (tcp://host:port), found none there: {exc}") \
                    from None
        failures: dict[int, str] = {}
        try:
            # keys carry the spec's hash: a rerun on the same cluster never meets old results
            futures = {client.submit(run_chunk, task, runner, retries=retries, pure=False,
                                     key=f"co2twin-sweep-{task.digest[:12]}-{task.index}"): task
                       for task in todo}
            for future in as_completed(futures):
                task = futures[future]
                if future.status != "finished":
                    failures[task.index] = _failure(future)
                    continue
                record = future.result()
                run.ran.append(task.index)
                run.records.append(record)
                if on_chunk is not None:
                    on_chunk(record)
        finally:
            client.close()
    finally:
        if cluster is not None:
            cluster.close()
        shutil.rmtree(scratch, ignore_errors=True)
    return failures


def _failure(future: Any) -> str:
    try:
        exc = future.exception()
    except Exception as error:  # noqa: BLE001 (a cancelled future raises instead)
        return f"{type(error).__name__}: {error}"
    return f"{type(exc).__name__}: {exc}"


def _merge(out: Path, tasks: list[ChunkTask]) -> pd.DataFrame:
    """Every chunk's KPI table in one, checked: each variant exactly once; written to kpis.parquet."""
    import numpy as np
    import pandas as pd

    frames = []
    for task in tasks:
        path = _paths(out, task.index)["kpis"]
        if not path.is_file():
            raise SimulationError(f"{path}: chunk {task.index} is missing; run the sweep again "
                                  "to run it")
        frames.append(pd.read_parquet(path))
    merged = pd.concat(frames, ignore_index=True)
    n = tasks[-1].stop if tasks else 0
    ids = merged["variant"].to_numpy()
    if len(ids) != n or (ids != np.arange(n)).any():
        raise SimulationError(f"{out}: expected each of the {n:,} variants once in the chunks' KPI "
                              f"tables, found {len(ids):,} rows ({len(set(ids.tolist())):,} distinct)")
    _write_parquet(merged, out / "kpis.parquet")
    return merged

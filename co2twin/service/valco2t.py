"""The VALCO2T-compatible layer: its queue table, its views, and an importer for its data.

VALCO2T's operators use a Grafana dashboard (``shared/valco2t/grafana_dashboard.json``) whose
queries name its tables and Spanish columns. The migration creates them here:

* ``experimentosDT`` — a table, as in VALCO2T: the dashboard's "Run DT" button inserts
  ``(id_experimento, intensidad, concentracion_co2, caudal_co2, humedad_co2)``; :func:`intake`
  turns each new row into a queued experiment (base experiment + overrides, VALCO2T's 60
  iterations one second apart) and writes the experiment's id back in ``id_cola``;
* ``electrodos`` and ``experimentos`` — views of ``electrodes`` and ``base_experiments``;
* ``ejecucionesDT`` — a view of ``executions`` with VALCO2T's columns (``intensidad``,
  ``potencial_celda``, ``produccion_hcoo_gmin``, ``FE`` in %, ``consumo_energetico`` …), and
  ``ejecucionesRND``, the name the dashboard's panels actually query, as a view of it.

Column names the VALCO2T documentation gives are used as given; the few it does not
(``nombre``, ``catalizador``, ``temperatura_celda``, ``caudal_co2_out``, ``tiempo_s`` …) are
named in the same style. The dashboard's queries run unchanged on MariaDB/MySQL with the
database named ``valco2t`` (its queries qualify names with ``valco2t.``).
"""
from __future__ import annotations

import csv
import functools
import math
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .db import base_experiments, electrodes, experiment_events, experimentos_dt, experiments, transaction
from .errors import Invalid
from .experiment import VALCO2T_DEFAULTS, ExperimentRequest, Overrides
from .queue import enqueue_in, utcnow

__all__ = ["ImportSummary", "import_rows", "import_database", "import_csv", "intake",
           "ELECTRODE_COLUMNS", "EXPERIMENT_COLUMNS"]

#: our electrodes column -> the VALCO2T column names it may have (first found is used)
ELECTRODE_COLUMNS: dict[str, tuple[str, ...]] = {
    "source_id": ("id", "id_electrodo"),
    "name": ("nombre", "name", "electrodo", "descripcion"),
    "catalyst": ("catalizador", "catalyst"),
    "compartments": ("compartimentos", "n_compartimentos", "compartments"),
    "area_cm2": ("area", "area_cm2", "superficie", "area_electrodo"),
    "catholyte": ("catolito", "catholyte"),
    "anolyte": ("anolito", "anolyte"),
    "membrane": ("membrana", "membrane"),
}
#: our base_experiments column -> the VALCO2T column names it may have
EXPERIMENT_COLUMNS: dict[str, tuple[str, ...]] = {
    "source_id": ("id", "id_experimento"),
    "electrode_id": ("id_electrodo", "electrodo"),
    "name": ("nombre", "name", "descripcion"),
    "catalyst_loading": ("carga_catalizador", "carga", "catalyst_loading"),
    "current_density": ("densidad_corriente", "current_density"),
    "current_a": ("intensidad", "corriente", "current"),
    "co2_flow": ("caudal_co2", "co2_flow"),
    "co2_concentration": ("concentracion_co2", "co2_concentration"),
    "co2_humidity": ("humedad_co2", "humedad", "co2_humidity"),
    "anolyte_flow": ("caudal_anolito", "anolyte_flow"),
    "catholyte_flow": ("caudal_catolito", "catholyte_flow"),
    "central_flow": ("caudal_central", "central_flow"),
    "h2_inlet": ("concentracion_h2_in", "concentracion_h2", "h2_in", "h2_inlet"),
    "anolyte_conc": ("concentracion_anolito", "anolyte_conc"),
    "catholyte_conc": ("concentracion_catolito", "catholyte_conc"),
}
_TEXT = {"name", "catalyst", "catholyte", "anolyte", "membrane"}
_INTEGER = {"source_id", "electrode_id", "compartments"}


@dataclass
class ImportSummary:
    """What an import did."""

    electrodes_added: int = 0
    electrodes_updated: int = 0
    experiments_added: int = 0
    experiments_updated: int = 0
    ignored_columns: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _key(name: str) -> str:
    """A column name compared without case and accents (``Área`` = ``area``)."""
    text = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode()
    return text.strip().lower().replace(" ", "_")


def _convert(table: str, line: str, column: str, value: Any) -> Any:
    if value is None or (isinstance(value, str) and value.strip() in ("", "NULL", "\\N")):
        return None
    if column in _TEXT:
        return str(value)[:200]
    try:
        number = float(str(value).strip().replace(",", ".")) if isinstance(value, str) \
            else float(value)
    except (TypeError, ValueError):
        shown = repr(value)[:40]
        raise Invalid(f"{table}{line}: {column}: expected a number, found {shown}") from None
    if not math.isfinite(number):
        raise Invalid(f"{table}{line}: {column}: expected a finite number, found {value!r}")
    if column in _INTEGER:
        if number != int(number):
            raise Invalid(f"{table}{line}: {column}: expected a whole number, found {value!r}")
        return int(number)
    return number


def _mapped(rows: Iterable[Mapping[str, Any]], columns: Mapping[str, tuple[str, ...]], table: str,
            summary: ImportSummary, *, first_line: int | None) -> list[dict[str, Any]]:
    out = []
    for n, row in enumerate(rows):
        keys = {_key(k): k for k in row}
        used = set()
        item: dict[str, Any] = {}
        line = f" line {first_line + n}" if first_line is not None else f" row {n + 1}"
        for ours, names in columns.items():
            hit = next((keys[_key(c)] for c in names if _key(c) in keys), None)
            if hit is not None:
                used.add(hit)
                item[ours] = _convert(table, line, ours, row[hit])
        if item.get("source_id") is None:
            raise Invalid(f"{table}{line}: id: required (the VALCO2T id), found none")
        for k in row:
            if k not in used and f"{table}.{k}" not in summary.ignored_columns:
                summary.ignored_columns.append(f"{table}.{k}")
        out.append(item)
    return out


def _upsert(conn: Connection, table: sa.Table, item: Mapping[str, Any]) -> tuple[int, bool]:
    """Insert or update the row imported from VALCO2T with this id; (our id, added)."""
    found = conn.execute(sa.select(table.c.id).where(
        table.c.source == "valco2t", table.c.source_id == item["source_id"])).first()
    values = {**item, "source": "valco2t"}
    if found is not None:
        conn.execute(sa.update(table).where(table.c.id == found[0]).values(**values))
        return int(found[0]), False
    result = conn.execute(sa.insert(table).values(**values))
    return int(_key_of(result)), True


def import_rows(engine: Engine, electrode_rows: Sequence[Mapping[str, Any]],
                experiment_rows: Sequence[Mapping[str, Any]], *, first_line: int | None = None,
                sources: tuple[str, str] = ("electrodos", "experimentos")) -> ImportSummary:
    """Import VALCO2T electrodes and base experiments (rows keyed by its column names).

    Rows are matched by their VALCO2T id, so importing again updates rather than duplicates.
    Everything is validated first; nothing is written when any row is wrong.
    """
    summary = ImportSummary()
    elec = _mapped(electrode_rows, ELECTRODE_COLUMNS, sources[0], summary, first_line=first_line)
    exps = _mapped(experiment_rows, EXPERIMENT_COLUMNS, sources[1], summary,
                   first_line=first_line)
    for item in elec:
        if not item.get("name"):
            item["name"] = f"VALCO2T electrode {item['source_id']}"

    def work(conn: Connection) -> ImportSummary:
        done = ImportSummary(ignored_columns=list(summary.ignored_columns))
        ours: dict[int, int] = {}
        for item in elec:
            new_id, added = _upsert(conn, electrodes, item)
            ours[item["source_id"]] = new_id
            done.electrodes_added += added
            done.electrodes_updated += not added
        for row in exps:
            item = dict(row)
            source_electrode = item.get("electrode_id")
            if source_electrode is not None:
                if source_electrode not in ours:
                    found = conn.execute(sa.select(electrodes.c.id).where(
                        electrodes.c.source == "valco2t",
                        electrodes.c.source_id == source_electrode)).first()
                    if found is None:
                        raise Invalid(f"{sources[1]}: experiment {item['source_id']}: "
                                      f"id_electrodo: expected an imported electrode, found "
                                      f"{source_electrode} (not in electrodos)")
                    ours[source_electrode] = int(found[0])
                item["electrode_id"] = ours[source_electrode]
            _, added = _upsert(conn, base_experiments, item)
            done.experiments_added += added
            done.experiments_updated += not added
        return done

    return transaction(engine, work)


def import_database(engine: Engine, source: Engine) -> ImportSummary:
    """Import from a VALCO2T database (its ``electrodos`` and ``experimentos`` tables)."""
    tables = {}
    with source.connect() as conn:
        for name in ("electrodos", "experimentos"):
            table = sa.Table(name, sa.MetaData(), autoload_with=conn)
            tables[name] = [dict(r) for r in conn.execute(sa.select(table)).mappings()]
    return import_rows(engine, tables["electrodos"], tables["experimentos"])


def import_csv(engine: Engine, electrodes_csv: str | Path, experiments_csv: str | Path
               ) -> ImportSummary:
    """Import from CSV exports of ``electrodos`` and ``experimentos`` (a header row of column
    names; ``,`` or ``;`` delimited)."""
    loaded = []
    for path in (Path(electrodes_csv), Path(experiments_csv)):
        try:
            text = path.read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise Invalid(f"{path}: cannot read the file ({exc.strerror or exc})") from None
        except UnicodeDecodeError as exc:
            raise Invalid(f"{path}: expected UTF-8 text, found byte {exc.object[exc.start]:#04x} "
                          f"at offset {exc.start}") from None
        first = text.splitlines()[0] if text else ""
        delimiter = ";" if first.count(";") > first.count(",") else ","
        loaded.append(list(csv.DictReader(text.splitlines(), delimiter=delimiter)))
    return import_rows(engine, loaded[0], loaded[1], first_line=2,
                       sources=(str(electrodes_csv), str(experiments_csv)))


def _key_of(result: Any) -> int:
    """The primary key an INSERT made."""
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


class _Taken(Exception):
    """Another worker took this experimentosDT row first."""


def intake(engine: Engine, *, limit: int = 100, give_up_s: float = 300.0) -> list[int]:
    """Queue each new ``experimentosDT`` row as an experiment; the ids queued.

    Several workers may run this at once: each row becomes one experiment (the row's
    ``id_cola`` is set in the same transaction, only where it is still empty, and
    ``experiments.valco2t_dt_id`` is unique).
    """
    dt = experimentos_dt.c
    pending = transaction(engine, lambda conn: conn.execute(
        sa.select(experimentos_dt).where(dt.id_cola.is_(None)).order_by(dt.id).limit(limit)
    ).mappings().all(), write=False, give_up_s=give_up_s)
    queued = []
    for row in pending:
        try:
            queued.append(transaction(engine, functools.partial(_take_dt, row=dict(row)),
                                      give_up_s=give_up_s))
        except (_Taken, sa.exc.IntegrityError):
            continue
    return queued


def _take_dt(conn: Connection, *, row: Mapping[str, Any]) -> int:
    base_id = row["id_experimento"]
    known = base_id is None or conn.execute(sa.select(base_experiments.c.id).where(
        base_experiments.c.id == base_id)).first() is not None
    problem = None
    try:
        overrides = Overrides.model_validate({
            "current": row["intensidad"], "gas_flow": row["caudal_co2"],
            "co2_fraction": row["concentracion_co2"], **VALCO2T_DEFAULTS})
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        overrides, problem = Overrides.model_validate(VALCO2T_DEFAULTS), str(exc).splitlines()[0]
    request = ExperimentRequest(name=f"VALCO2T DT {row['id']}",
                                base_experiment=base_id if known else None, overrides=overrides)
    new_id = enqueue_in(conn, request, submitted_by="valco2t", valco2t_dt_id=int(row["id"]))
    if not known:
        problem = (f"experimentosDT {row['id']}: id_experimento: expected the id of a base "
                   f"experiment (experimentos.id), found {base_id} (no such base experiment)")
    if problem is not None:
        conn.execute(sa.update(experiments).where(experiments.c.id == new_id).values(
            status="failed", error=problem, finished_at=utcnow()))
        conn.execute(sa.insert(experiment_events).values(
            experiment_id=new_id, at=utcnow(), event="failed", detail=problem))
    if row["humedad_co2"] is not None:
        conn.execute(sa.insert(experiment_events).values(
            experiment_id=new_id, at=utcnow(), event="note",
            detail=f"humedad_co2 = {row['humedad_co2']:g} gH2O/h not applied: it has no "
                   "counterpart in the feed's relative humidity"))
    taken = conn.execute(sa.update(experimentos_dt).where(
        experimentos_dt.c.id == row["id"], experimentos_dt.c.id_cola.is_(None)).values(
        id_cola=new_id))
    if taken.rowcount != 1:
        raise _Taken
    return new_id

"""The VALCO2T-compatible layer: its electrodes and base experiments imported (from its database
or CSV exports), its "Run DT" INSERT turned into exactly one experiment, and every query of its
Grafana dashboard run against our schema — unchanged on MariaDB (database ``valco2t``, as its
queries name it), and with the ``valco2t.`` qualifier dropped on SQLite and PostgreSQL.

    Grafana "Run DT" ─INSERT─▶ experimentosDT ─intake─▶ experiments ─worker─▶ executions
                                                                          │
    Grafana panels ◀──────── ejecucionesRND ◀── ejecucionesDT (view) ◀────┘
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from co2twin.service import Service, ServiceConfig, db
from co2twin.service.errors import Invalid
from co2twin.service.grafana import interpolate, panel_queries
from co2twin.service.valco2t import intake

REPO = Path(__file__).resolve().parents[2]


def _valco2t_file(name: str) -> Path:
    """A file of ../shared/valco2t (or beside CO2TWIN_VALCO2T_DIR's models)."""
    candidates = [Path(os.environ["CO2TWIN_VALCO2T_DIR"]).parent] \
        if os.environ.get("CO2TWIN_VALCO2T_DIR") else []
    candidates += [p / "shared" / "valco2t" for p in (REPO, *REPO.parents)]
    for folder in candidates:
        if (folder / name).is_file():
            return folder / name
    raise AssertionError(f"{name} not found in ../shared/valco2t (or CO2TWIN_VALCO2T_DIR/..)")


ELECTRODES = "id;Nombre;Catalizador;Compartimentos;Área;Catolito;Anolito;Membrana\n" \
             "7;Bi-GDE 10;Bi;2;10;KHCO3 0.5M;KOH 1M;Nafion 117\n" \
             "9;Sn-GDE 25;Sn;3;25;KHCO3 1M;KOH 2M;Sustainion\n"
EXPERIMENTS = "id,id_electrodo,carga_catalizador,densidad_corriente,intensidad,caudal_co2," \
              "concentracion_co2,humedad_co2,caudal_anolito,caudal_catolito,caudal_central," \
              "concentracion_h2_in,concentracion_anolito,concentracion_catolito,observaciones\n" \
              "21,7,0.75,200,2,100,100,4.5,5.57,5.57,,0,1,0.5,first\n" \
              "22,9,1.5,,4.0,90,80,,6,6,3,0,2,1,second\n"


def _import(svc: Service, tmp_path: Path) -> dict[str, int]:
    (tmp_path / "electrodos.csv").write_text(ELECTRODES, encoding="utf-8")
    (tmp_path / "experimentos.csv").write_text(EXPERIMENTS, encoding="utf-8")
    summary = svc.import_valco2t(electrodes_csv=tmp_path / "electrodos.csv",
                                 experiments_csv=tmp_path / "experimentos.csv")
    assert summary.experiments_added + summary.experiments_updated == 2
    return {b["source_id"]: b["id"] for b in svc.base_experiments()}


def test_import_from_csv_maps_columns_and_does_not_duplicate(service, tmp_path):
    """Spanish (accented) column names map to ours; importing again updates, never duplicates;
    a column we do not know is reported; electrodes link by VALCO2T's ids."""
    ids = _import(service, tmp_path)
    summary = service.import_valco2t(electrodes_csv=tmp_path / "electrodos.csv",
                                     experiments_csv=tmp_path / "experimentos.csv")
    assert (summary.electrodes_added, summary.electrodes_updated) == (0, 2)
    assert (summary.experiments_added, summary.experiments_updated) == (0, 2)
    assert "experimentos.csv.observaciones" in " ".join(summary.ignored_columns).replace(
        str(tmp_path / "experimentos.csv"), "experimentos.csv")
    assert len(service.electrodes()) == 2 and len(service.base_experiments()) == 2
    with service.engine.connect() as conn:
        row = conn.exec_driver_sql(
            "SELECT e.area, x.intensidad, x.caudal_central FROM experimentos x JOIN electrodos e "
            f"ON e.id = x.id_electrodo WHERE x.id = {ids[22]}").one()
    assert tuple(row) == (25.0, 4.0, 3.0)


def test_import_from_a_valco2t_database(service, tmp_path):
    """The importer reads VALCO2T's own tables through a database URL."""
    source = sa.create_engine(f"sqlite:///{tmp_path / 'valco2t.db'}")
    with source.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE electrodos (id INTEGER PRIMARY KEY, nombre TEXT, "
                             "area REAL)")
        conn.exec_driver_sql("CREATE TABLE experimentos (id INTEGER PRIMARY KEY, id_electrodo "
                             "INTEGER, intensidad REAL, caudal_co2 REAL)")
        conn.exec_driver_sql("INSERT INTO electrodos VALUES (3, 'x''); DROP TABLE electrodes;--', 12)")
        conn.exec_driver_sql("INSERT INTO experimentos VALUES (5, 3, 2.4, 95)")
    source.dispose()
    summary = service.import_valco2t(database=f"sqlite:///{tmp_path / 'valco2t.db'}")
    assert (summary.electrodes_added, summary.experiments_added) == (1, 1)
    (electrode,) = service.electrodes()
    assert electrode["name"] == "x'); DROP TABLE electrodes;--" and electrode["area_cm2"] == 12.0


def test_a_bad_import_names_the_place_and_writes_nothing(service, tmp_path):
    """A value that is not a number: the file, the line and the column are named; no row stays."""
    (tmp_path / "e.csv").write_text("id,nombre,area\n1,a,10\n2,b,ten\n", encoding="utf-8")
    (tmp_path / "x.csv").write_text("id,id_electrodo\n", encoding="utf-8")
    with pytest.raises(Invalid, match=r"e\.csv line 3: area_cm2: expected a number, found 'ten'"):
        service.import_valco2t(electrodes_csv=tmp_path / "e.csv", experiments_csv=tmp_path / "x.csv")
    assert service.electrodes() == []


def test_each_run_dt_row_becomes_one_experiment(service, tmp_path):
    """Four workers taking in 12 experimentosDT rows at once queue 12 experiments, one each;
    a row naming no base experiment is failed with that message."""
    ids = _import(service, tmp_path)
    with service.engine.begin() as conn:
        for i in range(12):
            conn.execute(sa.insert(db.experimentos_dt).values(
                id_experimento=ids[21] if i else 999, intensidad=2.0 + 0.1 * i,
                concentracion_co2=90.0, caudal_co2=100.0))
    threads = [threading.Thread(target=intake, args=(service.engine,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    experiments = service.experiments(limit=100)
    assert len(experiments) == 12
    with service.engine.connect() as conn:
        taken = conn.execute(sa.select(db.experimentos_dt.c.id_cola)).scalars().all()
    assert sorted(taken) == sorted(e["id"] for e in experiments)
    failed = [e for e in experiments if e["status"] == "failed"]
    assert len(failed) == 1 and "id_experimento" in failed[0]["error"] and "999" in failed[0]["error"]


@pytest.mark.parametrize("kind", ["sqlite", "mariadb", "postgresql"])
def test_the_valco2t_dashboard_queries_run_on_our_schema(kind, request, tmp_path, data_dir):
    """The dashboard's "Run DT" INSERT queues a run; after it, every panel query returns rows
    and the stat/gauge values are our executions in VALCO2T's units (FE in %, g/min, mol/min)."""
    from .conftest import fresh_database

    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'service.db'}"
    else:
        server = request.getfixturevalue("mariadb_server" if kind == "mariadb" else "postgres_server")
        url = fresh_database(server, "valco2t")
    dashboard = json.loads(_valco2t_file("grafana_dashboard.json").read_text(encoding="utf-8"))
    queries = panel_queries(dashboard)
    insert = [q for _, q in queries if q.lstrip().upper().startswith("INSERT")]
    assert len(queries) >= 13 and len(insert) == 1
    with Service(url, ServiceConfig(data_dirs=(data_dir,))) as svc:
        base = _import(svc, tmp_path)[21]
        variables = {"Experiment_ID": base, "Intensidad": 2.2, "ConcentracionCO2": 95,
                     "CaudalCO2": 100, "HumedadCO2": 4.5}

        def sql(text: str) -> str:
            text = interpolate(text, variables)
            return text if kind == "mariadb" else text.replace("valco2t.", "")

        with svc.engine.begin() as conn:
            conn.exec_driver_sql(sql(insert[0]))
        stats = svc.run_worker()
        assert stats.done == 1
        (job,) = svc.experiments()
        assert job["submitted_by"] == "valco2t" and job["rows_written"] == 61
        with svc.engine.connect() as conn:
            for title, text in queries:
                if text.lstrip().upper().startswith("INSERT"):
                    continue
                rows = conn.exec_driver_sql(sql(text)).all()
                assert rows, f"panel {title!r} returned no row"
            fe, gmin, molmin, current = conn.exec_driver_sql(sql(
                "SELECT FE, produccion_hcoo_gmin, produccion_hcoo_molmin, intensidad "
                "FROM valco2t.ejecucionesRND WHERE id_experimento=$Experiment_ID "
                "ORDER BY datetime DESC LIMIT 1")).one()
        last = svc.results(job["id"]).iloc[-1]
        assert current == pytest.approx(2.2)
        assert fe == pytest.approx(100.0 * last["reactor.fe_formate"])
        assert gmin == pytest.approx(last["reactor.formate_production"] / 60.0)
        assert molmin == pytest.approx(last["reactor.formate_rate"] * 60.0)
        assert any("humedad_co2" in str(e["detail"]) for e in svc.events(job["id"]))

"""The service's first schema: electrodes, base experiments, the experiment queue, executions,
the audit trail, and the VALCO2T-compatible layer (``experimentosDT`` table; ``electrodos``,
``experimentos``, ``ejecucionesDT`` and ``ejecucionesRND`` views).

Revision ID: 0001
Revises:
Create Date: 2026-11-20
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from co2twin.service.db import KEY_SIGNALS, BigId, LongText, Timestamp

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# The views are written once, in plain SQL that SQLite, MariaDB/MySQL and PostgreSQL all read.
# Names are unquoted, as the VALCO2T dashboard writes them (PostgreSQL folds them to lower case,
# and so folds the dashboard's unquoted queries). FE is in % (the dashboard's thresholds, 25 and
# 28, are percentages); datetime is the run's origin plus simulated time.
VIEWS = {
    "electrodos": """
        SELECT id, name AS nombre, catalyst AS catalizador, compartments AS compartimentos,
               area_cm2 AS area, catholyte AS catolito, anolyte AS anolito, membrane AS membrana
        FROM electrodes""",
    "experimentos": """
        SELECT id, electrode_id AS id_electrodo, name AS nombre,
               catalyst_loading AS carga_catalizador, current_density AS densidad_corriente,
               current_a AS intensidad, co2_flow AS caudal_co2,
               co2_concentration AS concentracion_co2, co2_humidity AS humedad_co2,
               anolyte_flow AS caudal_anolito, catholyte_flow AS caudal_catolito,
               central_flow AS caudal_central, h2_inlet AS concentracion_h2_in,
               anolyte_conc AS concentracion_anolito, catholyte_conc AS concentracion_catolito
        FROM base_experiments""",
    "ejecucionesDT": """
        SELECT x.datetime AS datetime, e.base_experiment_id AS id_experimento,
               x.experiment_id AS id_experimento_dt, x.time_s AS tiempo_s,
               x.current_a AS intensidad, x.current_density_ma_cm2 AS densidad_corriente,
               x.gas_flow_ml_min AS caudal_co2, x.co2_fraction_pct AS concentracion_co2,
               x.anolyte_flow_ml_min AS caudal_anolito, x.catholyte_flow_ml_min AS caudal_catolito,
               x.anolyte_conc_mol_l AS concentracion_anolito,
               x.catholyte_conc_mol_l AS concentracion_catolito,
               x.formate_outlet_conc_g_l AS concentracion_hcoo,
               x.cell_voltage_v AS potencial_celda,
               x.formate_production_g_h / 60.0 AS produccion_hcoo_gmin,
               x.formate_rate_mol_s * 60.0 AS produccion_hcoo_molmin,
               x.fe_formate * 100.0 AS FE,
               x.specific_energy_kwh_kmol AS consumo_energetico,
               x.power_w AS potencia,
               x.outlet_gas_flow_ml_min * x.outlet_co2_fraction_pct / 100.0 AS caudal_co2_out,
               x.outlet_co2_fraction_pct AS concentracion_co2_out,
               x.outlet_h2_fraction_pct AS concentracion_h2_out,
               x.cell_temperature_c AS temperatura_celda,
               x.anolyte_ph AS pH
        FROM executions x JOIN experiments e ON e.id = x.experiment_id""",
    # the name the VALCO2T dashboard's panels query (its service wrote ejecucionesDT)
    "ejecucionesRND": "SELECT * FROM ejecucionesDT",
}


def upgrade() -> None:
    op.create_table(
        "electrodes",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("catalyst", sa.String(200)),
        sa.Column("compartments", sa.Integer()),
        sa.Column("area_cm2", sa.Double(), comment="cathode area [cm2]"),
        sa.Column("catholyte", sa.String(200)),
        sa.Column("anolyte", sa.String(200)),
        sa.Column("membrane", sa.String(200)),
        sa.Column("source", sa.String(40), nullable=False,
                  comment="where the row came from: co2twin, valco2t"),
        sa.Column("source_id", sa.Integer(), comment="its id in that source"),
        sa.PrimaryKeyConstraint("id", name="pk_electrodes"),
        sa.UniqueConstraint("source", "source_id", name="uq_electrodes_source_source_id"),
        comment="electrodes (cells) of the plant",
    )
    op.create_table(
        "base_experiments",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("electrode_id", sa.Integer()),
        sa.Column("name", sa.String(200)),
        sa.Column("catalyst_loading", sa.Double(), comment="mg/cm2"),
        sa.Column("current_density", sa.Double(), comment="mA/cm2"),
        sa.Column("current_a", sa.Double(), comment="A"),
        sa.Column("co2_flow", sa.Double(), comment="gas flow into the cell, mL/min"),
        sa.Column("co2_concentration", sa.Double(), comment="CO2 in the inlet gas, %"),
        sa.Column("co2_humidity", sa.Double(), comment="as VALCO2T records it (gH2O/h); not applied"),
        sa.Column("anolyte_flow", sa.Double(), comment="mL/min"),
        sa.Column("catholyte_flow", sa.Double(), comment="mL/min"),
        sa.Column("central_flow", sa.Double(), comment="mL/min (three-compartment cells)"),
        sa.Column("h2_inlet", sa.Double(), comment="H2 in the inlet gas, %"),
        sa.Column("anolyte_conc", sa.Double(), comment="mol/L"),
        sa.Column("catholyte_conc", sa.Double(), comment="mol/L"),
        sa.Column("source", sa.String(40), nullable=False),
        sa.Column("source_id", sa.Integer()),
        sa.PrimaryKeyConstraint("id", name="pk_base_experiments"),
        sa.ForeignKeyConstraint(["electrode_id"], ["electrodes.id"],
                                name="fk_base_experiments_electrode_id_electrodes"),
        sa.UniqueConstraint("source", "source_id", name="uq_base_experiments_source_source_id"),
        comment="operating points an experiment starts from",
    )
    op.create_table(
        "experiments",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("base_experiment_id", sa.Integer()),
        sa.Column("request", LongText, nullable=False,
                  comment="the request as JSON: overrides, pace"),
        sa.Column("scenario_yaml", LongText,
                  comment="a full scenario, instead of base + overrides"),
        sa.Column("submitted_by", sa.String(40), nullable=False,
                  comment="api, cli, python, valco2t"),
        sa.Column("valco2t_dt_id", sa.BigInteger(), comment="the experimentosDT row it came from"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("submitted_at", Timestamp, nullable=False),
        sa.Column("started_at", Timestamp),
        sa.Column("finished_at", Timestamp),
        sa.Column("origin", Timestamp,
                  comment="wall-clock time of the run's start (rows: origin + time)"),
        sa.Column("worker", sa.String(200)),
        sa.Column("lease_token", sa.String(40),
                  comment="changes at every claim: fences out a lost worker"),
        sa.Column("lease_until", sa.Double(), comment="database clock, epoch s"),
        sa.Column("heartbeat_at", sa.Double(), comment="database clock, epoch s"),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("duration_s", sa.Double()),
        sa.Column("progress_s", sa.Double(), nullable=False),
        sa.Column("rows_written", sa.BigInteger(), nullable=False),
        sa.Column("error", LongText),
        sa.Column("kpis", LongText, comment="JSON"),
        sa.Column("units", LongText, comment="JSON: recorded signal -> unit"),
        sa.Column("limits", LongText, comment="JSON: signal -> [low, high]"),
        sa.Column("notes", LongText, comment="JSON list of notes (what was not applied, and why)"),
        sa.PrimaryKeyConstraint("id", name="pk_experiments"),
        sa.ForeignKeyConstraint(["base_experiment_id"], ["base_experiments.id"],
                                name="fk_experiments_base_experiment_id_base_experiments"),
        sa.UniqueConstraint("valco2t_dt_id", name="uq_experiments_valco2t_dt_id"),
        comment="the experiment queue",
    )
    op.create_index("ix_experiments_status_priority_id", "experiments",
                    ["status", "priority", "id"])
    op.create_table(
        "executions",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("experiment_id", sa.BigInteger(), nullable=False),
        sa.Column("time_s", sa.Double(), nullable=False, comment="simulated time, s"),
        sa.Column("datetime", Timestamp, nullable=False,
                  comment="experiment origin + simulated time"),
        *(sa.Column(name, sa.Double(), comment=f"{signal} [{unit}]")
          for name, (signal, unit) in KEY_SIGNALS.items()),
        sa.Column("signals", LongText, nullable=False,
                  comment="JSON: every recorded signal -> value"),
        sa.PrimaryKeyConstraint("id", name="pk_executions"),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiments.id"],
                                name="fk_executions_experiment_id_experiments"),
        sa.UniqueConstraint("experiment_id", "time_s", name="uq_executions_experiment_id_time_s"),
        comment="one row per recorded time of an experiment",
    )
    op.create_table(
        "experiment_events",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("experiment_id", sa.BigInteger(), nullable=False),
        sa.Column("at", Timestamp, nullable=False),
        sa.Column("event", sa.String(20), nullable=False,
                  comment="queued, claimed, resumed, released, done, failed, cancelled, abandoned"),
        sa.Column("worker", sa.String(200)),
        sa.Column("attempt", sa.Integer()),
        sa.Column("detail", LongText),
        sa.PrimaryKeyConstraint("id", name="pk_experiment_events"),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiments.id"],
                                name="fk_experiment_events_experiment_id_experiments"),
        comment="what happened to each experiment, in order (the audit trail)",
    )
    op.create_index("ix_experiment_events_experiment_id", "experiment_events", ["experiment_id"])
    op.create_table(
        "experimentosDT",
        sa.Column("id", BigId, primary_key=True, autoincrement=True, quote=False),
        sa.Column("id_experimento", sa.Integer(), quote=False,
                  comment="base experiment (experimentos.id)"),
        sa.Column("intensidad", sa.Double(), quote=False, comment="A"),
        sa.Column("concentracion_co2", sa.Double(), quote=False, comment="%"),
        sa.Column("caudal_co2", sa.Double(), quote=False, comment="mL/min"),
        sa.Column("humedad_co2", sa.Double(), quote=False, comment="gH2O/h"),
        sa.Column("fecha", sa.DateTime(), quote=False,
                  server_default=sa.func.current_timestamp()),
        sa.Column("id_cola", sa.BigInteger(), quote=False, comment="experiments.id it became"),
        sa.PrimaryKeyConstraint("id", name="pk_experimentosDT"),
        sa.UniqueConstraint("id_cola", name="uq_experimentosDT_id_cola"),
        quote=False,
        comment="VALCO2T's DT-experiment queue (compatibility)",
    )
    for name, body in VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {body.strip()}")


def downgrade() -> None:
    for name in reversed(VIEWS):
        op.execute(f"DROP VIEW {name}")
    op.execute("DROP TABLE experimentosDT")  # unquoted, as it was created
    for table in ("experiment_events", "executions", "experiments", "base_experiments",
                  "electrodes"):
        op.drop_table(table)

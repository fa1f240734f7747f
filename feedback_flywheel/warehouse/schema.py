"""The one schema of every table Python owns: ``raw`` (what users load) and ``ml`` (what the
Python stage writes).

dbt owns ``staging``, ``intermediate`` and ``marts``. Every other table is declared once: the raw
tables by the input contract (:mod:`.contract`), the ml tables in :mod:`.ml_tables` (columns with
their types and meaning, primary key, whether the serving copy publishes it). From these
declarations come the DDL (:func:`init_warehouse`, idempotent, so
``flywheel init`` can run any number of times), the dbt source YAML of the ``ml`` tables
(:func:`ml_sources_yaml`, kept in step with ``models/staging/ml/_ml__sources.yml`` by a test),
and the list of tables the serving copy publishes (:data:`PUBLISHED_ML_TABLES`).
"""

from __future__ import annotations

import duckdb
import pandas as pd

from feedback_flywheel.warehouse.contract import BOOKKEEPING_COLUMNS, RAW_TABLES, RawTable
from feedback_flywheel.warehouse.ml_tables import (
    AUDIT_LOG,
    BATCH_RUNS,
    DRIFT_RESULTS,
    DRIFT_TIMELINE,
    ML_SCHEMA,
    ML_TABLES,
    PERFORMANCE_CHECKS,
    PERFORMANCE_TIMELINE,
    RETRAINING_DECISIONS,
    REWARD_LEADERBOARD,
    REWARD_MODELS,
    REWARD_SCORES,
    TRAINING_RUNS,
    MlColumn,
    MlTable,
)

RAW_SCHEMA = "raw"

__all__ = [
    "AUDIT_LOG",
    "BATCH_RUNS",
    "DRIFT_RESULTS",
    "DRIFT_TIMELINE",
    "ML_SCHEMA",
    "ML_TABLES",
    "PERFORMANCE_CHECKS",
    "PERFORMANCE_TIMELINE",
    "PUBLISHED_ML_TABLES",
    "RAW_SCHEMA",
    "RETRAINING_DECISIONS",
    "REWARD_LEADERBOARD",
    "REWARD_MODELS",
    "REWARD_SCORES",
    "TRAINING_RUNS",
    "MlColumn",
    "MlTable",
    "init_warehouse",
    "insert_frame",
    "ml_sources_yaml",
    "raw_table_ddl",
]


#: the ml tables the serving copy publishes
PUBLISHED_ML_TABLES: tuple[str, ...] = tuple(
    table.qualified for table in ML_TABLES.values() if table.published
)

LOAD_LEDGER_DDL = f"""
create table if not exists {RAW_SCHEMA}.load_ledger (
    load_id varchar primary key,
    table_name varchar not null,
    file_path varchar not null,
    file_name varchar not null,
    file_format varchar not null,
    content_sha256 varchar not null,
    row_count bigint not null,
    loaded_at timestamp not null
)
"""


def raw_table_ddl(table: RawTable) -> str:
    """``create table if not exists`` for one raw table: contract plus bookkeeping columns."""
    columns = [*table.columns, *BOOKKEEPING_COLUMNS]
    body = ",\n    ".join(f"{column.name} {column.type}" for column in columns)
    return f"create table if not exists {RAW_SCHEMA}.{table.name} (\n    {body}\n)"


def init_warehouse(con: duckdb.DuckDBPyConnection) -> None:
    """Create the ``raw`` and ``ml`` schemas and every table declared here, if missing. Safe to
    repeat."""
    con.execute(f"create schema if not exists {RAW_SCHEMA}")
    con.execute(f"create schema if not exists {ML_SCHEMA}")
    for table in RAW_TABLES.values():
        con.execute(raw_table_ddl(table))
    con.execute(LOAD_LEDGER_DDL)
    for table in ML_TABLES.values():
        con.execute(table.ddl())
        _add_missing_columns(con, table)


def _add_missing_columns(con: duckdb.DuckDBPyConnection, table: MlTable) -> None:
    """Bring an ml table created by an earlier version up to date: declared nullable columns it
    lacks are added (empty for the old rows). A missing required column cannot be added to rows
    that exist, so that is an error naming the table and the column."""
    present = {
        name
        for (name,) in con.execute(
            "select column_name from information_schema.columns "
            "where table_schema = ? and table_name = ?",
            [ML_SCHEMA, table.name],
        ).fetchall()
    }
    for column in table.columns:
        if column.name in present:
            continue
        if not column.nullable:
            raise RuntimeError(
                f"{table.qualified} was created by another version and lacks the required column "
                f"{column.name}: migrate it by hand or start a new warehouse"
            )
        con.execute(f'alter table {table.qualified} add column "{column.name}" {column.type}')


def ml_sources_yaml() -> str:
    """``models/staging/ml/_ml__sources.yml``, rendered from :data:`ML_TABLES`: every ml table is
    a dbt source under the one source name ``ml``. Regenerate with ``flywheel contract --format
    ml-sources``; a test fails when the file and these declarations disagree."""
    import yaml

    tables = []
    for table in ML_TABLES.values():
        entry: dict = {"name": table.name, "description": table.description}
        if table.loaded_at_field:
            entry["config"] = {"loaded_at_field": table.loaded_at_field}
        entry["columns"] = [
            {"name": column.name, "description": column.description, "data_type": column.type}
            for column in table.columns
        ]
        tables.append(entry)
    document = {
        "version": 2,
        "sources": [
            {
                "name": "ml",
                "schema": ML_SCHEMA,
                "description": (
                    "What the Python stage of the batch cycle writes (declared once in "
                    "feedback_flywheel/warehouse/schema.py): monitoring results, decisions, "
                    "training runs, reward models and the audit trail, one set of rows per "
                    "batch. Created by `flywheel init` and by every batch before dbt runs."
                ),
                "config": {
                    "freshness": {
                        "warn_after": {"count": 2, "period": "day"},
                        "error_after": {"count": 7, "period": "day"},
                    }
                },
                "tables": tables,
            }
        ],
    }
    header = (
        "# Generated from feedback_flywheel/warehouse/schema.py; do not edit by hand. Regenerate:\n"
        "#   flywheel contract --format ml-sources > models/staging/ml/_ml__sources.yml\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False, width=100, allow_unicode=True)


def insert_frame(con: duckdb.DuckDBPyConnection, table: MlTable, frame: pd.DataFrame) -> None:
    """Append ``frame`` to the ml table in its declared column order (a column the frame lacks
    is written null; a column the table lacks is dropped)."""
    columns = list(table.column_names)
    con.register("incoming_ml_rows", frame.reindex(columns=columns))
    try:
        names = ", ".join(columns)
        con.execute(f"insert into {table.qualified} ({names}) select {names} from incoming_ml_rows")
    finally:
        con.unregister("incoming_ml_rows")

"""The DuckDB file: connecting to it and creating the tables that dbt does not own.

dbt owns ``staging``, ``intermediate`` and ``marts``. The ``raw`` tables (append-only, what users
load) and the ``ml`` tables (what the Python stage writes: batch runs, later drift results and
decisions) are created here, idempotently, so that ``flywheel init`` can be run any number of times.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from feedback_flywheel import paths
from feedback_flywheel.contract import BOOKKEEPING_COLUMNS, RAW_TABLES, RawTable

RAW_SCHEMA = "raw"
ML_SCHEMA = "ml"

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

BATCH_RUNS_DDL = f"""
create table if not exists {ML_SCHEMA}.batch_runs (
    batch_id varchar not null,
    attempt integer not null,
    window_start timestamp not null,
    window_end timestamp not null,
    status varchar not null,
    feedback_in bigint,
    feedback_accepted bigint,
    feedback_quarantined bigint,
    feedback_held bigint,
    quarantined_by_reason varchar,
    inferences_in bigint,
    training_examples_added bigint,
    dataset_version varchar,
    error_message varchar,
    dbt_seconds double,
    started_at timestamp not null,
    finished_at timestamp,
    primary key (batch_id, attempt)
)
"""


TRAINING_RUNS_DDL = f"""
create table if not exists {ML_SCHEMA}.training_runs (
    training_run_id varchar not null,
    attempt integer not null,
    decision_id varchar,
    model_name varchar not null,
    dataset_version varchar not null,
    status varchar not null,
    candidate_version varchar,
    baseline_model_version varchar,
    baseline_scope varchar,
    parameters_json varchar,
    error_message varchar,
    n_train bigint,
    n_holdout bigint,
    n_baseline bigint,
    holdout_accuracy double,
    holdout_macro_f1 double,
    holdout_log_loss double,
    baseline_accuracy double,
    baseline_macro_f1 double,
    accuracy_gain double,
    accuracy_gain_p_value double,
    train_seconds double,
    beats_current boolean,
    started_at timestamp not null,
    finished_at timestamp,
    primary key (training_run_id, attempt)
)
"""


def raw_table_ddl(table: RawTable) -> str:
    """``create table if not exists`` for one raw table: contract plus bookkeeping columns."""
    columns = [*table.columns, *BOOKKEEPING_COLUMNS]
    body = ",\n    ".join(f"{column.name} {column.type}" for column in columns)
    return f"create table if not exists {RAW_SCHEMA}.{table.name} (\n    {body}\n)"


def init_warehouse(con: duckdb.DuckDBPyConnection) -> None:
    """Create the ``raw`` and ``ml`` schemas and tables if they are missing. Safe to repeat."""
    con.execute(f"create schema if not exists {RAW_SCHEMA}")
    con.execute(f"create schema if not exists {ML_SCHEMA}")
    for table in RAW_TABLES.values():
        con.execute(raw_table_ddl(table))
    con.execute(LOAD_LEDGER_DDL)
    con.execute(BATCH_RUNS_DDL)
    con.execute(TRAINING_RUNS_DDL)
    # The tables the monitoring stage and the decision write (dbt reads some of them as sources).
    from feedback_flywheel import decision, monitoring

    monitoring.ensure_tables(con)
    con.execute(decision.DECISIONS_DDL)
    from feedback_flywheel import audit

    audit.ensure_table(con)


class WarehouseUnavailable(RuntimeError):
    """The warehouse cannot be opened as asked (locked by another process, or missing); the
    message says what to do. The CLI prints it without a traceback."""


class WarehouseMissing(FileNotFoundError, WarehouseUnavailable):
    """There is no warehouse file to read."""


@contextmanager
def connect(
    db_path: Path | None = None, *, read_only: bool = False
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse (creating its folder when writing) and close it on exit.

    DuckDB allows one writer process at a time; a lock error is turned into a message that says
    what to do instead of a bare ``IOException``.
    """
    db_path = Path(db_path) if db_path else paths.database_path()
    if not read_only:
        db_path.parent.mkdir(parents=True, exist_ok=True)
    elif not db_path.exists():
        raise WarehouseMissing(
            f"no warehouse at {db_path}: run `flywheel init` (or `make run`) first, "
            "or point FLYWHEEL_DUCKDB at an existing file"
        )
    try:
        con = duckdb.connect(str(db_path), read_only=read_only)
    except duckdb.IOException as error:
        if "lock" in str(error).lower():
            raise WarehouseUnavailable(
                f"{db_path} is open in another process (DuckDB allows one writer). Wait for the "
                "running build to finish, or read the published copy "
                f"{paths.published_path(db_path)} instead."
            ) from error
        raise
    try:
        yield con
    finally:
        con.close()

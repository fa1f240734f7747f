"""What ingest, the only writer of ``raw``, reads back from it.

The rest of the package reads dbt's marts, never ``raw``. Three questions can only be answered
from the raw tables themselves, because they come before (or right after) a build: where the data
starts (to plan the first batch), which registry rows a load just appended (for their audit row),
and whether a training run was already deployed (so a retried deployment appends nothing).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb

from feedback_flywheel.warehouse.schema import RAW_SCHEMA


def _placement(event_at: str) -> str:
    """The SQL of macro placement_time (macros/staging/staging.sql) over a raw table: the row's
    own timestamp when plausible (finite, not before the floor ``$1``, not after its load time
    plus the skew ``$2`` seconds), never later than its load time; else its load time."""
    return (
        f"case when {event_at} is not null and isfinite({event_at}) and {event_at} >= $1 "
        f"and {event_at} <= _loaded_at + to_seconds($2) "
        f"then least({event_at}, _loaded_at) else _loaded_at end"
    )


def earliest_event_at(
    con: duckdb.DuckDBPyConnection, *, floor: datetime, clock_skew_seconds: int
) -> datetime | None:
    """The earliest time a raw inference, feedback event or preference is placed at (the rule
    the staging models place rows by, so the first batch starts where the first row will be
    decided), never before ``floor``; None when raw is empty. A 1900 or infinite timestamp is
    placed by its load time and so cannot pull the first batch back."""
    row = con.execute(
        f"""
        select least(
            (select min({_placement("logged_at")}) from {RAW_SCHEMA}.inference_log),
            (select min({_placement("received_at")}) from {RAW_SCHEMA}.feedback_events),
            (select min({_placement("received_at")}) from {RAW_SCHEMA}.preference_events)
        )
        """,
        [floor, clock_skew_seconds],
    ).fetchone()
    found = row[0] if row else None
    return None if found is None else max(found, floor)


def registry_rows_of_load(con: duckdb.DuckDBPyConnection, load_id: str) -> list[dict[str, Any]]:
    """The ``model_deployments`` rows one load appended, each with the file it came from."""
    frame = con.execute(
        f"""
        select
            deployments.model_name,
            deployments.model_version,
            deployments.deployed_at,
            deployments.retired_at,
            deployments.training_run_id,
            deployments._file_row as file_row,
            ledger.load_id,
            ledger.file_name,
            ledger.file_path,
            ledger.content_sha256
        from {RAW_SCHEMA}.model_deployments as deployments
        inner join {RAW_SCHEMA}.load_ledger as ledger on deployments._load_id = ledger.load_id
        where deployments._load_id = ?
        order by deployments._file_row
        """,
        [load_id],
    ).df()
    return frame.to_dict(orient="records")


def registry_load_of_training_run(
    con: duckdb.DuckDBPyConnection, training_run_id: str
) -> str | None:
    """The load that appended a deployment of ``training_run_id``, or None if none did."""
    rows = con.execute(
        f"select _load_id from {RAW_SCHEMA}.model_deployments where training_run_id = ? limit 1",
        [training_run_id],
    ).fetchall()
    return str(rows[0][0]) if rows else None

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


def earliest_event_at(con: duckdb.DuckDBPyConnection) -> datetime | None:
    """The earliest ``logged_at`` of an inference or arrival of a feedback event in raw, or None
    when raw is empty."""
    row = con.execute(
        f"""
        select least(
            (select min(logged_at) from {RAW_SCHEMA}.inference_log),
            (select min(coalesce(received_at, _loaded_at)) from {RAW_SCHEMA}.feedback_events)
        )
        """
    ).fetchall()
    return row[0][0] if row else None


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

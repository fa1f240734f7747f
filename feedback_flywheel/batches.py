"""Batches: the windows a cycle processes, and their bookkeeping in ``ml.batch_runs``.

A batch is a window ``[window_start, window_end)`` over ``received_at``; ``window_end`` is the
watermark. Its id is derived from the watermark (``b20260301T000000``), so ids sort in time order
and the same window always has the same id. Each attempt at a batch is a row in ``ml.batch_runs``
(status running, then success or failed), so a failed batch can be retried and its history stays.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import duckdb

from feedback_flywheel.warehouse import ML_SCHEMA


class BatchError(RuntimeError):
    """A batch cannot be planned or re-run as asked; the message says why and what to do."""


@dataclass(frozen=True)
class BatchWindow:
    """One batch: its id and window over received_at."""

    batch_id: str
    window_start: datetime
    window_end: datetime

    @property
    def dataset_version(self) -> str:
        return f"ds-{self.batch_id}"

    def dbt_vars(self) -> dict[str, str]:
        return {
            "batch_id": self.batch_id,
            "batch_start": self.window_start.strftime("%Y-%m-%d %H:%M:%S"),
            "batch_end": self.window_end.strftime("%Y-%m-%d %H:%M:%S"),
        }

    def dbt_env(self) -> dict[str, str]:
        """The batch as the environment variables the models read (macros/flywheel/batch.sql).

        Environment variables rather than ``--vars``: dbt re-parses the whole project whenever
        ``--vars`` change, but only the files that read an environment variable when it changes.
        """
        return {f"FLYWHEEL_{name.upper()}": value for name, value in self.dbt_vars().items()}


def batch_id_for(window_end: datetime) -> str:
    """The id of the batch whose watermark is ``window_end``."""
    return "b" + window_end.strftime("%Y%m%dT%H%M%S")


def window(window_start: datetime, window_end: datetime) -> BatchWindow:
    if window_end <= window_start:
        raise BatchError(f"empty batch window: {window_start} .. {window_end}")
    return BatchWindow(batch_id_for(window_end), window_start, window_end)


def utc_now() -> datetime:
    """Now in UTC, as a naive timestamp to the second (the warehouse stores naive UTC)."""
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def latest_successful(con: duckdb.DuckDBPyConnection) -> BatchWindow | None:
    """The successful batch with the latest watermark, or None before the first one."""
    row = con.execute(
        f"""
        select batch_id, window_start, window_end from {ML_SCHEMA}.batch_runs
        where status = 'success' order by window_end desc limit 1
        """
    ).fetchone()
    return BatchWindow(*row) if row else None


def first_data_time(con: duckdb.DuckDBPyConnection) -> datetime | None:
    """Midnight (UTC) of the earliest inference or feedback in raw, or None when raw is empty."""
    row = con.execute(
        """
        select least(
            (select min(logged_at) from raw.inference_log),
            (select min(coalesce(received_at, _loaded_at)) from raw.feedback_events)
        )
        """
    ).fetchone()
    if not row or row[0] is None:
        return None
    earliest: datetime = row[0]
    return earliest.replace(hour=0, minute=0, second=0, microsecond=0)


def plan_windows(
    con: duckdb.DuckDBPyConnection, until: datetime, *, daily: bool = False
) -> list[BatchWindow]:
    """The batches that bring the warehouse up to the watermark ``until``.

    They start where the last successful batch ended (or at the first data when there is none).
    ``daily`` splits the span at UTC midnights into one batch per day; otherwise it is one batch.
    An empty list means the warehouse is already at (or past) ``until``.
    """
    latest = latest_successful(con)
    start = latest.window_end if latest else first_data_time(con)
    if start is None:
        raise BatchError(
            "raw is empty: load data first (`flywheel ingest TABLE FILE...`, or `flywheel demo`)"
        )
    if until <= start:
        return []
    if not daily:
        return [window(start, until)]
    windows = []
    cursor = start
    while cursor < until:
        next_midnight = (cursor + timedelta(days=1)).replace(hour=0, minute=0, second=0)
        end = min(next_midnight, until)
        windows.append(window(cursor, end))
        cursor = end
    return windows


def rerun_window(con: duckdb.DuckDBPyConnection, batch_id: str) -> BatchWindow:
    """The window of an earlier batch, to run it again. Only the latest batch can be re-run.

    Re-running the latest batch reproduces it exactly. An older batch would be rebuilt on top of
    state that later batches already changed, so it is refused with the way out.
    """
    row = con.execute(
        f"""
        select batch_id, window_start, window_end from {ML_SCHEMA}.batch_runs
        where batch_id = ? order by attempt desc limit 1
        """,
        [batch_id],
    ).fetchone()
    if row is None:
        raise BatchError(f"no batch {batch_id!r} in ml.batch_runs; see `flywheel batches`")
    latest = latest_successful(con)
    if latest and latest.window_end > row[2]:
        raise BatchError(
            f"batch {batch_id} is older than the latest batch {latest.batch_id}; only the latest "
            "batch can be re-run in place. To rebuild history, rebuild from raw (it is never "
            "changed): ingest the same files into a new database (`flywheel ingest --db NEW`) "
            "and run `flywheel run --daily --db NEW` up to the watermark you need."
        )
    return BatchWindow(*row)


def open_batch(con: duckdb.DuckDBPyConnection, batch: BatchWindow) -> int:
    """Record a new attempt at ``batch`` as running; returns the attempt number."""
    attempt = con.execute(
        f"select coalesce(max(attempt), 0) + 1 from {ML_SCHEMA}.batch_runs where batch_id = ?",
        [batch.batch_id],
    ).fetchone()[0]
    con.execute(
        f"""
        insert into {ML_SCHEMA}.batch_runs
            (batch_id, attempt, window_start, window_end, status, started_at)
        values (?, ?, ?, ?, 'running', ?)
        """,
        [batch.batch_id, attempt, batch.window_start, batch.window_end, utc_now()],
    )
    return attempt


def batch_counts(con: duckdb.DuckDBPyConnection, batch: BatchWindow) -> dict[str, object]:
    """What the batch did, read from the marts the build just wrote (small aggregate queries)."""
    params = [batch.window_start, batch.window_end]
    feedback_in = con.execute(
        """
        select count(*) from raw.feedback_events
        where coalesce(received_at, _loaded_at) >= ? and coalesce(received_at, _loaded_at) < ?
        """,
        params,
    ).fetchone()[0]
    inferences_in = con.execute(
        "select count(*) from raw.inference_log where logged_at >= ? and logged_at < ?", params
    ).fetchone()[0]
    statuses = dict(
        con.execute(
            """
            select status, count(*) from intermediate.int_feedback_events_classified
            where batch_id = ? group by status
            """,
            [batch.batch_id],
        ).fetchall()
    )
    held = con.execute(
        "select count(*) from intermediate.int_feedback_events_classified where status = 'held'"
    ).fetchone()[0]
    reasons = dict(
        con.execute(
            """
            select reason_code, count(*) from marts.fct_feedback_quarantine
            where batch_id = ? group by reason_code order by reason_code
            """,
            [batch.batch_id],
        ).fetchall()
    )
    examples_added = con.execute(
        "select count(*) from marts.fct_training_examples where batch_id = ?", [batch.batch_id]
    ).fetchone()[0]
    return {
        "feedback_in": feedback_in,
        "feedback_accepted": statuses.get("accepted", 0),
        "feedback_quarantined": statuses.get("quarantined", 0),
        "feedback_held": held,
        "quarantined_by_reason": reasons,
        "inferences_in": inferences_in,
        "training_examples_added": examples_added,
        "dataset_version": batch.dataset_version,
    }


def close_batch(
    con: duckdb.DuckDBPyConnection,
    batch: BatchWindow,
    attempt: int,
    *,
    status: str,
    counts: dict[str, object] | None = None,
    error_message: str | None = None,
    dbt_seconds: float | None = None,
) -> None:
    """Mark an attempt success or failed, with its counts or its error."""
    counts = counts or {}
    con.execute(
        f"""
        update {ML_SCHEMA}.batch_runs set
            status = ?, feedback_in = ?, feedback_accepted = ?, feedback_quarantined = ?,
            feedback_held = ?, quarantined_by_reason = ?, inferences_in = ?,
            training_examples_added = ?, dataset_version = ?, error_message = ?,
            dbt_seconds = ?, finished_at = ?
        where batch_id = ? and attempt = ?
        """,
        [
            status,
            counts.get("feedback_in"),
            counts.get("feedback_accepted"),
            counts.get("feedback_quarantined"),
            counts.get("feedback_held"),
            json.dumps(counts.get("quarantined_by_reason", {}), sort_keys=True) if counts else None,
            counts.get("inferences_in"),
            counts.get("training_examples_added"),
            counts.get("dataset_version"),
            error_message,
            dbt_seconds,
            utc_now(),
            batch.batch_id,
            attempt,
        ],
    )

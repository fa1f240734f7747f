"""Batch bookkeeping: each attempt at a batch is a row in ``ml.batch_runs`` (status running,
then success or failed), so a failed batch can be retried and its history stays.

A run that died (killed, the machine stopped) leaves its attempt ``running``; the next run — which
holds the run lock, so no other run can be using it — marks it ``abandoned`` before it opens its
own. A successful batch records the audit chain's head when it closes and, once its serving copy
is out, when it was published; a batch without ``published_at`` is published again by the next
run.
"""

from __future__ import annotations

import json
from datetime import datetime

import duckdb

from feedback_flywheel.batches.windows import BatchWindow, utc_now
from feedback_flywheel.warehouse.catalogue import (
    BATCH_RUNS,
    FCT_FEEDBACK_QUARANTINE,
    RPT_BATCH_RECONCILIATION,
)

ABANDONED_MESSAGE = (
    "abandoned: the run of this attempt ended without closing it (killed, or the machine "
    "stopped); a later run took the batch over"
)


def abandon_running(con: duckdb.DuckDBPyConnection) -> list[tuple[str, int]]:
    """Mark every attempt still ``running`` as ``abandoned``; returns (batch_id, attempt) of each.
    Call it only while holding the run lock (then no live run owns a running attempt)."""
    return [
        (str(batch_id), int(attempt))
        for batch_id, attempt in con.execute(
            f"""
            update {BATCH_RUNS}
            set status = 'abandoned', error_message = ?, finished_at = ?
            where status = 'running'
            returning batch_id, attempt
            """,
            [ABANDONED_MESSAGE, utc_now()],
        ).fetchall()
    ]


def mark_published(con: duckdb.DuckDBPyConnection, batch_id: str, published_at: datetime) -> None:
    """Record that the successful attempt of ``batch_id`` has its serving copy out."""
    con.execute(
        f"update {BATCH_RUNS} set published_at = ? where batch_id = ? and status = 'success'",
        [published_at, batch_id],
    )


def unpublished_batch(con: duckdb.DuckDBPyConnection) -> str | None:
    """The latest successful batch when its serving copy was never published (the run died
    between closing the batch and publishing), else None."""
    row = con.execute(
        f"""
        select batch_id, published_at from {BATCH_RUNS}
        where status = 'success' order by window_end desc, attempt desc limit 1
        """
    ).fetchone()
    return str(row[0]) if row and row[1] is None else None


def open_batch(con: duckdb.DuckDBPyConnection, batch: BatchWindow) -> int:
    """Record a new attempt at ``batch`` as running; returns the attempt number."""
    attempt = con.execute(
        f"select coalesce(max(attempt), 0) + 1 from {BATCH_RUNS} where batch_id = ?",
        [batch.batch_id],
    ).fetchone()[0]
    con.execute(
        f"""
        insert into {BATCH_RUNS}
            (batch_id, attempt, window_start, window_end, status, started_at)
        values (?, ?, ?, ?, 'running', ?)
        """,
        [batch.batch_id, attempt, batch.window_start, batch.window_end, utc_now()],
    )
    return attempt


def batch_counts(con: duckdb.DuckDBPyConnection, batch: BatchWindow) -> dict[str, object]:
    """What the batch did, read from the report the build just wrote
    (``rpt_batch_reconciliation``) and the batch's quarantine reasons."""
    rows = con.execute(
        f"""
        select feedback_in, feedback_accepted, feedback_quarantined, feedback_held,
            inferences_in, training_examples_added
        from {RPT_BATCH_RECONCILIATION} where batch_id = ?
        """,
        [batch.batch_id],
    ).fetchall()
    if not rows:
        raise LookupError(
            f"{RPT_BATCH_RECONCILIATION} has no row for batch {batch.batch_id}: the build did not "
            "reach it (see the dbt log)"
        )
    fin, accepted, quarantined, held, inferences_in, examples_added = rows[0]
    reasons = dict(
        con.execute(
            f"""
            select reason_code, count(*) from {FCT_FEEDBACK_QUARANTINE}
            where batch_id = ? group by reason_code order by reason_code
            """,
            [batch.batch_id],
        ).fetchall()
    )
    return {
        "feedback_in": fin,
        "feedback_accepted": accepted,
        "feedback_quarantined": quarantined,
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
    warnings: list[str] | None = None,
    audit_head: tuple[int, str] | None = None,
) -> None:
    """Mark an attempt success or failed, with its counts (and warnings) or its error, and the
    audit chain's head (seq, hash) at that moment."""
    counts = counts or {}
    con.execute(
        f"""
        update {BATCH_RUNS} set
            status = ?, feedback_in = ?, feedback_accepted = ?, feedback_quarantined = ?,
            feedback_held = ?, quarantined_by_reason = ?, inferences_in = ?,
            training_examples_added = ?, dataset_version = ?, error_message = ?,
            warnings = ?, dbt_seconds = ?, audit_head_seq = ?, audit_head_hash = ?,
            finished_at = ?
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
            None if warnings is None else json.dumps(warnings),
            dbt_seconds,
            audit_head[0] if audit_head else None,
            audit_head[1] if audit_head else None,
            utc_now(),
            batch.batch_id,
            attempt,
        ],
    )

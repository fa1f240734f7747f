"""Batch windows: what a cycle processes, and how the next ones are planned.

A batch is a window ``[window_start, window_end)`` over ``received_at``; ``window_end`` is the
watermark. Its id is derived from the watermark (``b20260301T000000``), so ids sort in time order
and the same window always has the same id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import duckdb

from feedback_flywheel.ingest.registry import earliest_event_at
from feedback_flywheel.warehouse.catalogue import BATCH_RUNS

DEFAULT_FLOOR = datetime(2000, 1, 1)
DEFAULT_SKEW_SECONDS = 300
#: a --daily run planning more batches than this is refused with the way out
MAX_DAILY_BATCHES = 3660


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
        select batch_id, window_start, window_end from {BATCH_RUNS}
        where status = 'success' order by window_end desc limit 1
        """
    ).fetchone()
    return BatchWindow(*row) if row else None


def has_inference_history(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether a successful batch has built inferences (so the warehouse has a configuration in
    use, even without a configuration file)."""
    (found,) = con.execute(
        f"select count(*) from {BATCH_RUNS} where status = 'success' and inferences_in > 0"
    ).fetchone()
    return bool(found)


def first_data_time(
    con: duckdb.DuckDBPyConnection,
    *,
    floor: datetime = DEFAULT_FLOOR,
    clock_skew_seconds: int = DEFAULT_SKEW_SECONDS,
) -> datetime | None:
    """Midnight (UTC) of the earliest time a raw row is placed at (never before ``floor``, var
    timestamp_floor), or None when raw is empty."""
    earliest = earliest_event_at(con, floor=floor, clock_skew_seconds=clock_skew_seconds)
    if earliest is None:
        return None
    return earliest.replace(hour=0, minute=0, second=0, microsecond=0)


def plan_windows(
    con: duckdb.DuckDBPyConnection,
    until: datetime,
    *,
    daily: bool = False,
    floor: datetime = DEFAULT_FLOOR,
    clock_skew_seconds: int = DEFAULT_SKEW_SECONDS,
) -> list[BatchWindow]:
    """The batches that bring the warehouse up to the watermark ``until``.

    They start where the last successful batch ended (or at the first data when there is none,
    never before ``floor``). ``daily`` splits the span at UTC midnights into one batch per day;
    otherwise it is one batch. An empty list means the warehouse is already at (or past)
    ``until``. More than :data:`MAX_DAILY_BATCHES` daily batches are refused: that many days of
    history is one batch (``--until`` without ``--daily``) and then daily batches.
    """
    latest = latest_successful(con)
    start = (
        latest.window_end
        if latest
        else first_data_time(con, floor=floor, clock_skew_seconds=clock_skew_seconds)
    )
    if start is None:
        raise BatchError(
            "raw is empty: load data first (`flywheel ingest TABLE FILE...`, or `flywheel demo`)"
        )
    if until <= start:
        return []
    if not daily:
        return [window(start, until)]
    days = (until - start).days + 1
    if days > MAX_DAILY_BATCHES:
        raise BatchError(
            f"--daily from {start:%Y-%m-%d} to {until:%Y-%m-%d} would plan {days:,} daily "
            f"batches (at most {MAX_DAILY_BATCHES:,}): build the history as one batch first "
            "(`flywheel run --until DAY`), then run --daily from there; or raise "
            "timestamp_floor if the early rows are not real"
        )
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
        select batch_id, window_start, window_end from {BATCH_RUNS}
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

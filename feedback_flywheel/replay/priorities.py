"""The write-back interface: a trainer reports the TD errors it computed on sampled transitions,
and their priorities become |TD error| + epsilon (prioritized replay's p_i = |delta_i| + eps).

The report is a table (``transition_id``, ``td_error``) under a training run id, kept in
``ml.replay_td_errors``. Reporting the same run again replaces its rows (idempotent per run); a
transition's priority follows the latest report that holds it. Validated before anything is
written: every id must be a transition the buffer holds or once held (an id it evicted since is
counted and skipped, an id it never saw is an error), every error a finite number, every id once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from feedback_flywheel.audit import chain
from feedback_flywheel.warehouse.catalogue import REPLAY_BUFFER, REPLAY_EVICTIONS, REPLAY_TD_ERRORS

RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
REQUIRED_COLUMNS = ("transition_id", "td_error")


class TdErrorReportError(ValueError):
    """The report cannot be taken; the message names the row or column and what to do."""


@dataclass(frozen=True)
class TdErrorReport:
    """What a report changed."""

    training_run_id: str
    updated: int
    evicted_since: int
    replaced_earlier_report: bool

    def summary(self) -> str:
        again = " (replacing its earlier report)" if self.replaced_earlier_report else ""
        skipped = (
            f"; {self.evicted_since:,} no longer in the buffer (skipped)"
            if self.evicted_since
            else ""
        )
        return (
            f"run {self.training_run_id}{again}: {self.updated:,} priorities set from TD errors"
            + skipped
        )


def read_report_file(path: Path) -> pd.DataFrame:
    """A report file: CSV or Parquet with columns transition_id and td_error."""
    path = Path(path)
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path, dtype={"transition_id": "string"})
    except (OSError, ValueError) as problem:
        raise TdErrorReportError(f"cannot read {path}: {problem}") from None


def _validated(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    missing = [name for name in REQUIRED_COLUMNS if name not in frame.columns]
    if missing:
        raise TdErrorReportError(
            f"{source}: missing column(s) {', '.join(missing)}; a report has the columns "
            f"{', '.join(REQUIRED_COLUMNS)}"
        )
    if frame.empty:
        raise TdErrorReportError(f"{source}: no rows; report at least one TD error")
    ids = frame["transition_id"]
    errors = pd.to_numeric(frame["td_error"], errors="coerce").astype(float)
    empty = ~ids.map(lambda value: isinstance(value, str) and bool(value)).to_numpy(bool)
    if empty.any():
        raise TdErrorReportError(
            f"{source} row {int(np.argmax(empty)) + 1}: transition_id is empty or not text"
        )
    bad = ~np.isfinite(errors.to_numpy())
    if bad.any():
        row = int(np.argmax(bad))
        raise TdErrorReportError(
            f"{source} row {row + 1} ({ids.iloc[row]}): td_error "
            f"{frame['td_error'].iloc[row]!r} is not a finite number"
        )
    duplicated = ids[ids.duplicated()]
    if not duplicated.empty:
        raise TdErrorReportError(
            f"{source}: transition_id {duplicated.iloc[0]} appears more than once; report each "
            "transition once per training run"
        )
    return pd.DataFrame({"transition_id": ids.astype(str), "td_error": errors.astype(float)})


def report_td_errors(
    con: duckdb.DuckDBPyConnection,
    *,
    training_run_id: str,
    errors: pd.DataFrame,
    epsilon: float,
    now: datetime,
    source: str = "the report",
) -> TdErrorReport:
    """Record ``errors`` (transition_id, td_error) under ``training_run_id`` and set the
    priorities of the transitions still in the buffer (see the module doc)."""
    if not isinstance(training_run_id, str) or not re.match(RUN_ID_PATTERN, training_run_id):
        raise TdErrorReportError(
            f"training run id {training_run_id!r}: use 1-128 letters, digits, '.', '_', ':' or '-'"
        )
    report = _validated(errors, source)
    con.register("replay_report", report)
    try:
        unknown = con.execute(
            f"""
            select transition_id from replay_report as r
            where
                not exists (select 1 from {REPLAY_BUFFER} as b
                            where b.transition_id = r.transition_id)
                and not exists (select 1 from {REPLAY_EVICTIONS} as e
                                where e.transition_id = r.transition_id)
            limit 3
            """
        ).fetchall()
        if unknown:
            raise TdErrorReportError(
                f"{source}: transition_id {', '.join(row[0] for row in unknown)} is not a "
                "transition of the replay buffer (it never held it): report the ids a sample "
                "returned"
            )
        with chain.atomic(con):
            return _apply(con, training_run_id, epsilon, now)
    finally:
        con.unregister("replay_report")


def _apply(
    con: duckdb.DuckDBPyConnection, training_run_id: str, epsilon: float, now: datetime
) -> TdErrorReport:
    earlier = con.execute(
        f"select min(report_seq) from {REPLAY_TD_ERRORS} where training_run_id = ?",
        [training_run_id],
    ).fetchall()[0][0]
    if earlier is None:
        (seq,) = con.execute(
            f"select coalesce(max(report_seq), 0) + 1 from {REPLAY_TD_ERRORS}"
        ).fetchall()[0]
    else:
        seq = earlier
    touched = con.execute(
        f"select transition_id from {REPLAY_TD_ERRORS} where training_run_id = ?",
        [training_run_id],
    ).df()
    con.execute(f"delete from {REPLAY_TD_ERRORS} where training_run_id = ?", [training_run_id])
    con.execute(
        f"""
        insert into {REPLAY_TD_ERRORS}
            (training_run_id, transition_id, td_error, report_seq, reported_at)
        select ?, transition_id, td_error, ?, ? from replay_report
        """,
        [training_run_id, int(seq), now],
    )
    con.register("replay_touched", touched)
    try:
        con.execute(
            f"""
            update {REPLAY_BUFFER} as b
            set
                priority = abs(latest.td_error) + ?,
                priority_source = 'td_error',
                td_error = latest.td_error,
                td_training_run_id = latest.training_run_id
            from (
                select transition_id, td_error, training_run_id
                from {REPLAY_TD_ERRORS}
                where transition_id in (
                    select transition_id from replay_report
                    union select transition_id from replay_touched
                )
                qualify row_number() over (
                    partition by transition_id order by report_seq desc
                ) = 1
            ) as latest
            where b.transition_id = latest.transition_id
            """,
            [epsilon],
        )
    finally:
        con.unregister("replay_touched")
    (in_buffer,) = con.execute(
        f"select count(*) from replay_report as r inner join {REPLAY_BUFFER} as b "
        "on r.transition_id = b.transition_id"
    ).fetchall()[0]
    (reported,) = con.execute("select count(*) from replay_report").fetchall()[0]
    return TdErrorReport(
        training_run_id=training_run_id,
        updated=int(in_buffer),
        evicted_since=int(reported) - int(in_buffer),
        replaced_earlier_report=earlier is not None,
    )

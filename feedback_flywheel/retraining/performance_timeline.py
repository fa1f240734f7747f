"""The performance timeline: labelled accuracy day by day, with a fast window.

The performance check of a batch (:mod:`.performance`) compares a week of matured labels with
the four weeks before it, at the watermark: a sharp collapse crosses its threshold only days
later, and a backfill sees only its last week. The timeline evaluates every day of the batch's
window (and, since labels keep maturing, the ``performance_current_days`` days before it again):
for day *e*, the last ``performance_fast_days`` served days ending at *e* (the fast window)
against the ``performance_reference_days`` before them, per model version, overall and per
segment value, from the daily counts ``marts.fct_performance_daily``. The tests are the
performance checks' own: a two-proportion test of the accuracy change, flagged by the policy's
``performance_drop`` (overall) and ``concept_drift`` (per segment value, Benjamini-Hochberg across
the day's segments) floors. On the first day of a run of flags the row also says where the drop
started: the binomial change point of the day-by-day accuracy over the fast and reference windows
(:func:`.change_points.share_shift` on correct / wrong counts). Results: ``ml.performance_timeline``
(a later batch evaluates a day again as its labels mature; the newest batch's row is the current
view).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from feedback_flywheel.config.policies import Policy
from feedback_flywheel.retraining import change_points
from feedback_flywheel.retraining.performance import _flag_drops, _overall_row, _segment_row
from feedback_flywheel.warehouse.catalogue import FCT_PERFORMANCE_DAILY, PERFORMANCE_TIMELINE
from feedback_flywheel.warehouse.schema import PERFORMANCE_TIMELINE as PERFORMANCE_TIMELINE_TABLE

#: the columns of ml.performance_timeline the stage computes (computed_at is added when written)
PERFORMANCE_TIMELINE_COLUMNS = tuple(
    c for c in PERFORMANCE_TIMELINE_TABLE.column_names if c != "computed_at"
)
_KEYS = ["model_name", "model_version", "segment_attribute", "segment_value"]


def evaluation_days(
    window_start: datetime, window_end: datetime, timeline_days: int, lookback_days: int
) -> list[date]:
    """The days a batch evaluates: from its window's first day (at most ``timeline_days`` before
    the watermark), ``lookback_days`` earlier for the labels that matured since, to the day of
    the watermark's last instant."""
    last = (window_end - timedelta(microseconds=1)).date()
    first = max(window_start.date(), last - timedelta(days=timeline_days)) - timedelta(
        days=lookback_days
    )
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


def _daily(con: duckdb.DuckDBPyConnection, first: date, last: date) -> pd.DataFrame:
    frame = con.execute(
        f"""
        select model_name, model_version, served_date, segment_attribute, segment_value,
            labelled_count, correct_count
        from {FCT_PERFORMANCE_DAILY} where served_date between ? and ?
        """,
        [first, last],
    ).df()
    frame["served_date"] = pd.to_datetime(frame.served_date).dt.date
    return frame


def _window_counts(daily: pd.DataFrame, day: date, fast: int, reference: int) -> pd.DataFrame:
    """Labelled and correct counts per key in the fast window ending at ``day`` and in the
    reference before it, side by side, as :mod:`.performance` has them for a batch."""
    current_start = day - timedelta(days=fast - 1)
    reference_start = current_start - timedelta(days=reference)
    rows = daily[(daily.served_date >= reference_start) & (daily.served_date <= day)]
    side = np.where(rows.served_date >= current_start, "current", "reference")
    counts = rows.assign(side=side).pivot_table(
        index=_KEYS,
        columns="side",
        values=["labelled_count", "correct_count"],
        aggfunc="sum",
        fill_value=0,
    )
    counts.columns = [f"{value}_{side}" for value, side in counts.columns]
    for value in ("labelled_count", "correct_count"):
        for window in ("reference", "current"):
            if f"{value}_{window}" not in counts:
                counts[f"{value}_{window}"] = 0
    return counts.reset_index()


def _day_rows(counts: pd.DataFrame, policy: Policy) -> list[dict[str, Any]]:
    """The checks of one day: per version the overall change and every segment's change."""
    concept = policy.signals.concept_drift
    rows: list[dict[str, Any]] = []
    for (model, version), group in counts.groupby(["model_name", "model_version"]):
        base = {"model_name": model, "model_version": version}
        overall = group[group.segment_attribute == "__all__"]
        if overall.empty or int(overall.labelled_count_current.iloc[0]) == 0:
            continue
        rows.append(_overall_row(base, overall.iloc[0], policy))
        segments = [
            _segment_row(base, record)
            for record in group[group.segment_attribute != "__all__"].itertuples(index=False)
            if record.labelled_count_current > 0
        ]
        _flag_drops(
            segments, "accuracy_change", concept.min_labelled, concept.min_drop, policy.drift.alpha
        )
        rows += segments
    return rows


def timeline_checks(
    con: duckdb.DuckDBPyConnection,
    batch_id: str,
    days: list[date],
    policy: Policy,
    *,
    fast_days: int,
    reference_days: int,
) -> pd.DataFrame:
    """One row per (version, day, check, segment) of the days given."""
    if not days:
        return pd.DataFrame(columns=list(PERFORMANCE_TIMELINE_COLUMNS))
    span = fast_days + reference_days
    daily = _daily(con, days[0] - timedelta(days=span), days[-1])
    rows: list[dict[str, Any]] = []
    for day in days:
        counts = _window_counts(daily, day, fast_days, reference_days)
        rows += [row | {"evaluation_date": day} for row in _day_rows(counts, policy)]
    if not rows:
        return pd.DataFrame(columns=list(PERFORMANCE_TIMELINE_COLUMNS))
    checks = pd.DataFrame(rows)
    checks["batch_id"] = batch_id
    checks["policy_version"] = policy.policy_version
    checks = checks.sort_values([*_KEYS, "check_name", "evaluation_date"])
    checks["change_point_date"] = _change_points(con, batch_id, checks, daily, span)
    return checks.loc[:, list(PERFORMANCE_TIMELINE_COLUMNS)].reset_index(drop=True)


def _change_points(
    con: duckdb.DuckDBPyConnection,
    batch_id: str,
    checks: pd.DataFrame,
    daily: pd.DataFrame,
    span: int,
) -> pd.Series:
    """The start of the drop on the first row of each run of flagged days; null elsewhere."""
    located = pd.Series([None] * len(checks), index=checks.index, dtype=object)
    flagged = checks[checks.is_flagged]
    if flagged.empty:
        return located
    earlier = {
        tuple(row)
        for row in con.execute(
            f"""
            select model_name, model_version, segment_attribute, segment_value, evaluation_date
            from {PERFORMANCE_TIMELINE} where batch_id < ? and is_flagged
            """,
            [batch_id],
        ).fetchall()
    }
    here = {tuple(row) for row in flagged[[*_KEYS, "evaluation_date"]].itertuples(index=False)}
    by_key = dict(tuple(daily.groupby(_KEYS)))
    for index, row in flagged.iterrows():
        key = tuple(row[_KEYS])
        before = (*key, row.evaluation_date - timedelta(days=1))
        if before in here or before in earlier:
            continue
        series = by_key.get(key, daily.iloc[0:0])
        series = series[
            (series.served_date > row.evaluation_date - timedelta(days=span))
            & (series.served_date <= row.evaluation_date)
        ].sort_values("served_date")
        counts = np.column_stack(
            [series.correct_count, series.labelled_count - series.correct_count]
        )
        located[index] = change_points.share_shift(list(series.served_date), counts)
    return located


def drop_starts(
    con: duckdb.DuckDBPyConnection, batch_id: str, model_name: str
) -> dict[tuple[str, str, str], str]:
    """Per (model version, segment attribute, segment value): the estimated start (ISO day) of
    its newest flagged drop on the timeline up to this batch."""
    rows = con.execute(
        f"""
        select model_version, segment_attribute, segment_value, max(change_point_date)
        from {PERFORMANCE_TIMELINE}
        where model_name = ? and batch_id <= ? and is_flagged and change_point_date is not null
        group by all
        """,
        [model_name, batch_id],
    ).fetchall()
    return {(version, attribute, value): day.isoformat() for version, attribute, value, day in rows}


def recent_days(con: duckdb.DuckDBPyConnection, batch_id: str, since: date) -> pd.DataFrame:
    """The batch's timeline rows evaluated on or after ``since`` (the fast signal's input)."""
    return con.execute(
        f"select * from {PERFORMANCE_TIMELINE} where batch_id = ? and evaluation_date >= ?",
        [batch_id, since],
    ).df()

"""The drift timeline: the drift tests of every day of a batch's window, not only its last.

A backfill (or a catch-up batch over several days) is evaluated at its watermark like every batch
(:mod:`.drift`, ``ml.drift_results``: what the decision reads). Its past days are evaluated too:
the warehouse computes, for each of them, the same statistics over that day's windows
(``marts.fct_drift_timeline_numeric`` / ``fct_drift_timeline_categorical``: the day's last
``drift_current_days`` days against the ``drift_reference_days`` before them, from the per-day
summaries), and this module turns them into p-values, Benjamini-Hochberg adjusted across the tests
of one model and day, gated as the decision's tests are (significance, effect floor, sample size).
``ml.drift_timeline`` then holds one row per (model, day, feature, test): the past days and, as
the last day, the watermark's own results, so a change shows on the day it happened. Only the
watermark's row can trigger a retraining; past days are history. Persistence (k of m batches)
is the decision's and does not apply to the timeline. On the first day of every run of flagged
days (the day before was not flagged, in this batch or the one before) the row also says where
the change started (``change_point_date``, :mod:`.change_points`), searched over the days that
day's two windows cover.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import pandas as pd

from feedback_flywheel.config.policies import Policy
from feedback_flywheel.retraining import change_points
from feedback_flywheel.retraining.drift import test_rows
from feedback_flywheel.warehouse.catalogue import (
    DRIFT_TIMELINE,
    FCT_DRIFT_DAILY_PROFILE,
    FCT_DRIFT_TIMELINE_CATEGORICAL,
    FCT_DRIFT_TIMELINE_NUMERIC,
)
from feedback_flywheel.warehouse.schema import DRIFT_TIMELINE as DRIFT_TIMELINE_TABLE

#: the columns of ml.drift_timeline the stage computes (computed_at is added when written)
TIMELINE_COLUMNS = tuple(c for c in DRIFT_TIMELINE_TABLE.column_names if c != "computed_at")
#: the buckets of a contingency table that are not a value seen in the reference
_MISSING, _UNSEEN = "__missing__", "__unseen__"


def _timeline_summaries(
    con: duckdb.DuckDBPyConnection, batch_id: str
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The batch's timeline: numeric summaries, categorical summaries and contingency tables,
    each keyed by (model, evaluation day, feature)."""
    numeric = con.execute(
        f"""
        select model_name, evaluation_date, feature_name, feature_kind, n_ref, n_cur,
            missing_ref, missing_cur, ks_d, wasserstein, wasserstein_norm
        from {FCT_DRIFT_TIMELINE_NUMERIC} where batch_id = ?
        """,
        [batch_id],
    ).df()
    buckets = con.execute(
        f"""
        select model_name, evaluation_date, feature_name, feature_kind, category, n_ref, n_cur
        from {FCT_DRIFT_TIMELINE_CATEGORICAL} where batch_id = ?
        order by model_name, evaluation_date, feature_name, category
        """,
        [batch_id],
    ).df()
    return numeric, _categorical_summary(buckets), buckets[buckets.category != _MISSING]


def _categorical_summary(buckets: pd.DataFrame) -> pd.DataFrame:
    """Per (model, day, feature): window sizes, missing counts, the L-infinity distance between
    the shares of the non-missing buckets and the current share never seen in the reference, as
    ``fct_drift_categorical_summary`` has them for the watermark."""
    keys = ["model_name", "evaluation_date", "feature_name", "feature_kind"]
    columns = [*keys, "n_ref", "n_cur", "missing_ref", "missing_cur", "linf", "unseen_share_cur"]
    if buckets.empty:
        return pd.DataFrame(columns=columns)
    present = buckets[buckets.category != _MISSING]
    totals = present.groupby(keys)[["n_ref", "n_cur"]].sum()
    missing = buckets[buckets.category == _MISSING].groupby(keys)[["n_ref", "n_cur"]].sum()
    index = totals.index.union(missing.index)
    totals = totals.reindex(index, fill_value=0)
    missing = missing.reindex(index, fill_value=0)
    shares = present.merge(
        totals.reset_index(), on=keys, how="left", suffixes=("", "_total"), validate="m:1"
    )
    gap = (
        shares.n_ref / shares.n_ref_total.where(shares.n_ref_total > 0)
        - shares.n_cur / shares.n_cur_total.where(shares.n_cur_total > 0)
    ).abs()
    unseen = present[present.category == _UNSEEN].groupby(keys)["n_cur"].sum()
    summary = pd.DataFrame(
        {
            "n_ref": totals.n_ref,
            "n_cur": totals.n_cur,
            "missing_ref": missing.n_ref,
            "missing_cur": missing.n_cur,
            # shares (so the distance) are undefined unless both windows have values
            "linf": gap.groupby([shares[key] for key in keys]).max().reindex(index),
            "unseen_share_cur": unseen.reindex(index, fill_value=0)
            / totals.n_cur.where(totals.n_cur > 0),
        },
        index=index,
    ).reset_index()
    return summary.loc[:, columns]


def _watermark_day(watermark_at: datetime) -> datetime:
    """The day the watermark's evaluation belongs to: the day of its last instant."""
    return (watermark_at - timedelta(microseconds=1)).date()


def timeline_rows(
    con: duckdb.DuckDBPyConnection,
    batch_id: str,
    watermark_at: datetime,
    watermark_results: pd.DataFrame,
    policy: Policy,
    span_days: int,
) -> pd.DataFrame:
    """The batch's drift timeline: one row per (model, day, feature, test), the past days from
    the timeline marts and the watermark's day from ``watermark_results`` (the batch's
    ``ml.drift_results`` rows, as :func:`.drift.drift_tests` returned them). ``span_days``: the
    days a day's two drift windows cover (drift_current_days + drift_reference_days), where its
    change point is searched."""
    numeric, summary, tables = _timeline_summaries(con, batch_id)
    past = test_rows(numeric, summary, tables, policy, ["model_name", "evaluation_date"])
    if not past.empty:
        past["is_watermark"] = False
        past["evaluation_date"] = pd.to_datetime(past.evaluation_date).dt.date
    last = watermark_results.copy()
    if not last.empty:
        last = last[last.kind != "label"] if "kind" in last else last
        last["evaluation_date"] = _watermark_day(watermark_at)
        last["is_watermark"] = True
    frames = [frame for frame in (past, last) if not frame.empty]
    if not frames:
        return pd.DataFrame(columns=list(TIMELINE_COLUMNS))
    rows = pd.concat(frames, ignore_index=True)
    rows["is_drift"] = rows.is_drift_now.astype(bool)
    rows["batch_id"] = batch_id
    rows["policy_version"] = policy.policy_version
    rows = rows.sort_values(["model_name", "feature_name", "test", "evaluation_date"])
    rows["change_point_date"] = _change_points(con, batch_id, rows, span_days)
    return rows.sort_values(["model_name", "evaluation_date", "feature_name", "test"]).loc[
        :, list(TIMELINE_COLUMNS)
    ]


def _earlier_flags(con: duckdb.DuckDBPyConnection, batch_id: str) -> set[tuple]:
    """(model, feature, test, day) of every drift flag earlier batches put on the timeline."""
    return {
        tuple(row)
        for row in con.execute(
            f"""
            select model_name, feature_name, test, evaluation_date from {DRIFT_TIMELINE}
            where batch_id < ? and is_drift
            """,
            [batch_id],
        ).fetchall()
    }


def _change_points(
    con: duckdb.DuckDBPyConnection, batch_id: str, rows: pd.DataFrame, span_days: int
) -> pd.Series:
    """The change day on the first row of each run of flagged days (rows sorted by model,
    feature, test and day); null elsewhere."""
    located = pd.Series([None] * len(rows), index=rows.index, dtype=object)
    flagged = rows[rows.is_drift]
    if flagged.empty:
        return located
    profile = con.execute(
        f"""
        select model_name, feature_name, logged_date, category, value_count, value_sum
        from {FCT_DRIFT_DAILY_PROFILE}
        """
    ).df()
    profile["logged_date"] = pd.to_datetime(profile.logged_date).dt.date
    earlier = _earlier_flags(con, batch_id)
    here = set(
        zip(
            flagged.model_name,
            flagged.feature_name,
            flagged.test,
            flagged.evaluation_date,
            strict=True,
        )
    )
    span = timedelta(days=span_days)
    by_feature = dict(tuple(profile.groupby(["model_name", "feature_name"])))
    for index, row in flagged.iterrows():
        day = row.evaluation_date
        before = (row.model_name, row.feature_name, row.test, day - timedelta(days=1))
        if before in here or before in earlier:
            continue
        series = by_feature.get((row.model_name, row.feature_name), profile.iloc[0:0])
        window = series[(series.logged_date > day - span) & (series.logged_date <= day)]
        located[index] = change_points.locate(window, row.test)
    return located


def first_drift_days(
    timeline: pd.DataFrame, kind: str = "covariate"
) -> dict[tuple[str, str], object]:
    """Per (model, feature) of ``kind``: the first day a distribution test (KS, chi-square)
    flagged drift on the timeline."""
    flagged = timeline[
        timeline.is_drift & timeline.test.isin(("ks", "chi2")) & (timeline.kind == kind)
    ]
    first = flagged.groupby(["model_name", "feature_name"]).evaluation_date.min()
    return {key: value for key, value in first.items()}


def current_change_points(
    con: duckdb.DuckDBPyConnection, batch_id: str, model_name: str
) -> dict[str, str]:
    """Per feature flagged at the batch's watermark: the estimated start (ISO day) of the change
    it belongs to, the latest change point of its flags up to this batch."""
    rows = con.execute(
        f"""
        with flagged as (
            select distinct feature_name from {DRIFT_TIMELINE}
            where batch_id = ? and model_name = ? and is_watermark and is_drift
        )
        select timeline.feature_name, max(timeline.change_point_date)
        from {DRIFT_TIMELINE} as timeline
        inner join flagged on timeline.feature_name = flagged.feature_name
        where timeline.model_name = ? and timeline.batch_id <= ? and timeline.is_drift
            and timeline.change_point_date is not null
        group by timeline.feature_name
        """,
        [batch_id, model_name, model_name, batch_id],
    ).fetchall()
    return {feature: day.isoformat() for feature, day in rows}

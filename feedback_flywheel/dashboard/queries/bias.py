"""Segment bias: per-group rates with intervals, over time, flags, the Fairlearn-style summary
and the feedback skew."""

from __future__ import annotations

import duckdb
import pandas as pd

from feedback_flywheel.dashboard.queries.common import has_table
from feedback_flywheel.warehouse.catalogue import (
    RPT_FEEDBACK_SKEW,
    RPT_SEGMENT_BIAS,
    RPT_SEGMENT_BIAS_SUMMARY,
)

BIAS_CLASS_METRICS = ("selection_rate", "tpr", "fpr")


def bias_choices(con: duckdb.DuckDBPyConnection, model_name: str) -> pd.DataFrame:
    """The versions, segment attributes, metrics and classes ``rpt_segment_bias`` holds for a
    model (empty until the analytics marts are published)."""
    if not has_table(con, RPT_SEGMENT_BIAS):
        return pd.DataFrame()
    return con.execute(
        f"""
        select distinct model_version, segment_attribute, metric, class_label
        from {RPT_SEGMENT_BIAS}
        where model_name = ? and time_bucket = 'all' and segment_attribute <> '__overall__'
        order by all
        """,
        [model_name],
    ).df()


def bias_groups(
    con: duckdb.DuckDBPyConnection,
    model_name: str,
    model_version: str,
    segment_attribute: str,
    metric: str,
    class_label: str | None = None,
) -> pd.DataFrame:
    """One metric per group of one attribute over the whole period, with its 95% interval and
    its comparison with the reference group."""
    return con.execute(
        f"""
        select segment_value, reference_group, metric_value, metric_lower, metric_upper,
            reference_metric_value, difference, difference_lower, difference_upper,
            disparity_ratio, p_value_adjusted, trials, inference_count, is_reference,
            is_suppressed, is_flagged,
            case
                when is_reference then 'reference'
                when is_suppressed then 'suppressed (too few)'
                when is_flagged then 'flagged'
                else 'not flagged'
            end as status
        from {RPT_SEGMENT_BIAS}
        where model_name = ? and model_version = ? and segment_attribute = ? and metric = ?
            and class_label is not distinct from ? and time_bucket = 'all'
        order by segment_value
        """,
        [model_name, model_version, segment_attribute, metric, class_label],
    ).df()


def bias_over_time(
    con: duckdb.DuckDBPyConnection,
    model_name: str,
    segment_attribute: str,
    metric: str,
    class_label: str | None = None,
) -> pd.DataFrame:
    """The disparity series: per model version, week and group, the difference against the
    reference group with its interval (suppressed and reference rows left out)."""
    return con.execute(
        f"""
        select model_version, bucket_start_date, segment_value, reference_group, difference,
            difference_lower, difference_upper, disparity_ratio, is_flagged, trials
        from {RPT_SEGMENT_BIAS}
        where model_name = ? and segment_attribute = ? and metric = ?
            and class_label is not distinct from ? and time_bucket <> 'all'
            and not is_reference and not is_suppressed and difference is not null
        order by model_version, bucket_start_date, segment_value
        """,
        [model_name, segment_attribute, metric, class_label],
    ).df()


def bias_flags(con: duckdb.DuckDBPyConnection, model_name: str) -> pd.DataFrame:
    """Every flagged comparison over the whole period (significant after Benjamini-Hochberg and
    outside the fairness band), worst first."""
    if not has_table(con, RPT_SEGMENT_BIAS):
        return pd.DataFrame()
    return con.execute(
        f"""
        select model_version, segment_attribute, segment_value, reference_group, metric,
            class_label, metric_value, reference_metric_value, difference, difference_lower,
            difference_upper, disparity_ratio, p_value_adjusted
        from {RPT_SEGMENT_BIAS}
        where model_name = ? and time_bucket = 'all' and is_flagged
        order by p_value_adjusted, abs(difference) desc
        """,
        [model_name],
    ).df()


def bias_summary(con: duckdb.DuckDBPyConnection, model_name: str) -> pd.DataFrame:
    """Fairlearn-style summary measures per attribute and version over the whole period."""
    if not has_table(con, RPT_SEGMENT_BIAS_SUMMARY):
        return pd.DataFrame()
    return con.execute(
        f"""
        select model_version, segment_attribute, class_label, group_count,
            demographic_parity_difference, demographic_parity_ratio,
            equalized_odds_difference, equalized_odds_ratio, accuracy_difference,
            class_flagged_count, group_flagged_count
        from {RPT_SEGMENT_BIAS_SUMMARY}
        where model_name = ? and time_bucket = 'all'
        order by model_version, segment_attribute, class_label
        """,
        [model_name],
    ).df()


def feedback_skew(con: duckdb.DuckDBPyConnection, model_name: str) -> pd.DataFrame:
    """Who gives feedback: label and explicit feedback rates per group beside its accuracy gap
    (``rpt_feedback_skew``, whole period)."""
    if not has_table(con, RPT_FEEDBACK_SKEW):
        return pd.DataFrame()
    return con.execute(
        f"""
        select model_version, segment_attribute, segment_value, reference_group,
            inference_count, label_feedback_rate, label_feedback_rate_ratio,
            explicit_feedback_rate, explicit_feedback_rate_ratio, accuracy,
            accuracy_difference, is_label_feedback_skewed, is_explicit_feedback_skewed,
            is_accuracy_gap_flagged
        from {RPT_FEEDBACK_SKEW}
        where model_name = ? and time_bucket = 'all'
        order by model_version, segment_attribute, segment_value
        """,
        [model_name],
    ).df()

"""What the dashboard reads: pure functions of a (read-only) connection to the serving snapshot.

Each function lets SQL do the reducing and returns a small frame the page only draws. They take
the connection as their first argument so that tests can call them on any published copy, and
they are the only place the dashboard names tables and columns. Optional marts (built by later
stages, e.g. ``rpt_segment_bias``) are looked up first: a function returns an empty frame, never
an error, when its table is not in the snapshot.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import duckdb
import pandas as pd

from feedback_flywheel.publish.serving import META_TABLE
from feedback_flywheel.warehouse.catalogue import (
    BATCH_RUNS,
    DIM_MODEL_VERSIONS,
    DRIFT_RESULTS,
    FCT_DATASET_VERSIONS,
    FCT_FEEDBACK_QUARANTINE,
    RETRAINING_DECISIONS,
    RPT_DEPLOYMENT_IMPACT,
    RPT_FEEDBACK_SKEW,
    RPT_KPI_DAILY,
    RPT_KPI_TRENDS_DAILY,
    RPT_KPI_WEEKDAY_PROFILE,
    RPT_SEGMENT_BIAS,
    RPT_SEGMENT_BIAS_SUMMARY,
    TRAINING_RUNS,
    Relation,
)


@dataclass(frozen=True)
class KpiMetric:
    """One KPI of ``rpt_kpi_daily``: its column, interval columns and the count behind it."""

    label: str
    column: str
    lower: str | None
    upper: str | None
    count: str
    is_rate: bool = True


KPI_METRICS: dict[str, KpiMetric] = {
    "accuracy": KpiMetric(
        "Accuracy (matured labels)",
        "accuracy",
        "accuracy_lower",
        "accuracy_upper",
        "labelled_count",
    ),
    "f1_macro": KpiMetric("Macro F1 (matured labels)", "f1_macro", None, None, "labelled_count"),
    "labelled_share": KpiMetric(
        "Labelled share",
        "labelled_share",
        "labelled_share_lower",
        "labelled_share_upper",
        "inference_count",
    ),
    "rating_mean": KpiMetric(
        "Mean rating (1-5)",
        "rating_mean",
        "rating_mean_lower",
        "rating_mean_upper",
        "rating_count",
        is_rate=False,
    ),
    "thumbs_up_rate": KpiMetric(
        "Thumbs-up rate",
        "thumbs_up_rate",
        "thumbs_up_rate_lower",
        "thumbs_up_rate_upper",
        "thumbs_count",
    ),
    "click_rate": KpiMetric(
        "Click rate", "click_rate", "click_rate_lower", "click_rate_upper", "click_signal_count"
    ),
    "conversion_rate": KpiMetric(
        "Conversion rate",
        "conversion_rate",
        "conversion_rate_lower",
        "conversion_rate_upper",
        "conversion_signal_count",
    ),
    "reward_mean": KpiMetric(
        "Mean reward (-1..1)",
        "reward_mean",
        "reward_mean_lower",
        "reward_mean_upper",
        "reward_count",
        is_rate=False,
    ),
}


def has_table(con: duckdb.DuckDBPyConnection, relation: Relation) -> bool:
    """Whether the snapshot holds ``relation``."""
    return bool(
        con.execute(
            "select count(*) from duckdb_tables() where schema_name = ? and table_name = ?",
            [relation.schema, relation.name],
        ).fetchone()[0]
    )


def snapshot_info(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """``meta.snapshot``: one row per published table with its row count and provenance."""
    return con.execute(
        f"""
        select snapshot_id, batch_id, source_db, table_schema, table_name, row_count,
            published_at
        from {META_TABLE} order by table_schema, table_name
        """
    ).df()


def batch_runs(con: duckdb.DuckDBPyConnection, limit: int = 50) -> pd.DataFrame:
    """The latest batch runs (every attempt) with their windows, status and counts."""
    if not has_table(con, BATCH_RUNS):
        return pd.DataFrame()
    return con.execute(
        f"""
        select batch_id, attempt, status, window_start, window_end, feedback_in,
            feedback_accepted, feedback_quarantined, feedback_held, inferences_in,
            training_examples_added, dataset_version, round(dbt_seconds, 1) as dbt_seconds,
            error_message, finished_at
        from {BATCH_RUNS} order by window_end desc, attempt desc limit ?
        """,
        [limit],
    ).df()


def model_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Models with daily KPIs, alphabetically."""
    return [
        name
        for (name,) in con.execute(
            f"select distinct model_name from {RPT_KPI_DAILY} order by 1"
        ).fetchall()
    ]


def kpi_daily(
    con: duckdb.DuckDBPyConnection, metric: str, model_name: str | None = None
) -> pd.DataFrame:
    """One KPI per model version and day: value, 95% interval and the count it is over.

    Days where the KPI is undefined (nothing labelled, no ratings) are left out.
    """
    spec = KPI_METRICS[metric]
    lower = spec.lower or spec.column
    upper = spec.upper or spec.column
    return con.execute(
        f"""
        select model_name, model_version, kpi_date,
            {spec.column} as value, {lower} as lower, {upper} as upper, {spec.count} as n
        from {RPT_KPI_DAILY}
        where {spec.column} is not null and (? is null or model_name = ?)
        order by model_name, kpi_date, model_version
        """,
        [model_name, model_name],
    ).df()


def kpi_latest(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Per model: the latest day with matured labels, its accuracy (with interval), volume and
    the accuracy of the day before, for headline numbers."""
    return con.execute(
        f"""
        with labelled as (
            select model_name, model_version, kpi_date, inference_count, labelled_count,
                accuracy, accuracy_lower, accuracy_upper,
                row_number() over (partition by model_name order by kpi_date desc,
                    labelled_count desc) as recency
            from {RPT_KPI_DAILY}
            where accuracy is not null
        )
        select latest.model_name, latest.model_version, latest.kpi_date,
            latest.inference_count, latest.labelled_count, latest.accuracy,
            latest.accuracy_lower, latest.accuracy_upper,
            previous.accuracy as previous_accuracy
        from labelled as latest
        left join labelled as previous
            on latest.model_name = previous.model_name and previous.recency = 2
        where latest.recency = 1
        order by latest.model_name
        """
    ).df()


def kpi_rolling(con: duckdb.DuckDBPyConnection, model_name: str) -> pd.DataFrame:
    """Accuracy over all versions of a model per day, and pooled over the 7 and 28 days before,
    each with its Wilson interval (``rpt_kpi_trends_daily``; empty when not published)."""
    if not has_table(con, RPT_KPI_TRENDS_DAILY):
        return pd.DataFrame()
    return con.execute(
        f"""
        with series as (
            select * from {RPT_KPI_TRENDS_DAILY}
            where model_name = ? and model_version = '__all__'
        )
        select kpi_date, 'day' as window_name, accuracy as value, accuracy_lower as lower,
            accuracy_upper as upper, labelled_count as n
        from series where accuracy is not null
        union all
        select kpi_date, '7 days', accuracy_7d, accuracy_7d_lower, accuracy_7d_upper,
            labelled_count_7d
        from series where accuracy_7d is not null
        union all
        select kpi_date, '28 days', accuracy_28d, accuracy_28d_lower, accuracy_28d_upper,
            labelled_count_28d
        from series where accuracy_28d is not null
        order by window_name, kpi_date
        """,
        [model_name],
    ).df()


def weekday_profile(con: duckdb.DuckDBPyConnection, model_name: str) -> pd.DataFrame:
    """The day-of-week profile over all versions of a model (``rpt_kpi_weekday_profile``)."""
    if not has_table(con, RPT_KPI_WEEKDAY_PROFILE):
        return pd.DataFrame()
    return con.execute(
        f"""
        select iso_weekday,
            ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'][iso_weekday] as weekday,
            day_count, inference_count, mean_inference_count, volume_index, labelled_count,
            accuracy, accuracy_lower, accuracy_upper, series_accuracy, accuracy_index
        from {RPT_KPI_WEEKDAY_PROFILE}
        where model_name = ? and model_version = '__all__'
        order by iso_weekday
        """,
        [model_name],
    ).df()


def deployment_impact(con: duckdb.DuckDBPyConnection, model_name: str) -> pd.DataFrame:
    """Per deployment and KPI (overall, not per segment): before, after, the difference with
    its 95% interval and whether it is significant (``rpt_deployment_impact``)."""
    if not has_table(con, RPT_DEPLOYMENT_IMPACT):
        return pd.DataFrame()
    return con.execute(
        f"""
        select model_version, deployed_at, metric, before_value, after_value, difference,
            difference_lower, difference_upper, p_value, is_significant, before_trials,
            after_trials, before_first_date, after_last_date,
            model_version || ' on ' || strftime(deployed_at, '%Y-%m-%d') as deployment
        from {RPT_DEPLOYMENT_IMPACT}
        where model_name = ? and segment_attribute = '__overall__'
        order by deployed_at, metric
        """,
        [model_name],
    ).df()


def deployments(con: duckdb.DuckDBPyConnection, model_name: str | None = None) -> pd.DataFrame:
    """Deployment markers: when each model version started (and stopped) serving."""
    if not has_table(con, DIM_MODEL_VERSIONS):
        return pd.DataFrame(columns=["model_name", "model_version", "deployed_at", "retired_at"])
    return con.execute(
        f"""
        select model_name, model_version, deployed_at, retired_at, training_run_id
        from {DIM_MODEL_VERSIONS}
        where ? is null or model_name = ?
        order by model_name, deployed_at
        """,
        [model_name, model_name],
    ).df()


def drift_overview(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Per batch, model and feature: the strongest effect of its tests relative to its floor,
    the smallest BH-adjusted p-value, and whether any test called drift."""
    if not has_table(con, DRIFT_RESULTS):
        return pd.DataFrame()
    return con.execute(
        f"""
        select batch_id, model_name, feature_name, any_value(kind) as kind,
            count(*) as tests,
            max(effect_size / nullif(threshold, 0)) as effect_ratio,
            min(p_adjusted) as p_adjusted_min,
            bool_or(is_drift) as is_drift,
            string_agg(case when is_drift then test end, ', ' order by test) as drifted_tests,
            max(n_cur) as n_cur
        from {DRIFT_RESULTS}
        group by batch_id, model_name, feature_name
        order by batch_id, model_name, feature_name
        """
    ).df()


def drift_tests(
    con: duckdb.DuckDBPyConnection, batch_id: str | None = None, model_name: str | None = None
) -> pd.DataFrame:
    """Every drift test of a batch (default: all batches): statistic, p-values, effect, verdict."""
    if not has_table(con, DRIFT_RESULTS):
        return pd.DataFrame()
    return con.execute(
        f"""
        select batch_id, model_name, feature_name, kind, test, statistic, p_value, p_adjusted,
            effect_metric, effect_size, threshold, n_ref, n_cur, is_significant, is_drift
        from {DRIFT_RESULTS}
        where (? is null or batch_id = ?) and (? is null or model_name = ?)
        order by batch_id desc, model_name, is_drift desc, p_adjusted, feature_name, test
        """,
        [batch_id, batch_id, model_name, model_name],
    ).df()


def decisions(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Retraining decisions, newest first, with their reasons and what they triggered."""
    if not has_table(con, RETRAINING_DECISIONS):
        return pd.DataFrame()
    return con.execute(
        f"""
        select decision_id, batch_id, model_name, decision, reason, fired_signals,
            trigger_status, triggered_run_id, is_dry_run, dataset_version, policy_version,
            watermark_at, decided_at
        from {RETRAINING_DECISIONS}
        order by watermark_at desc, model_name
        """
    ).df()


def decision_signals(con: duckdb.DuckDBPyConnection, decision_id: str) -> pd.DataFrame:
    """The signals one decision weighed: value against threshold, enabled, fired."""
    row = con.execute(
        f"select signals_json from {RETRAINING_DECISIONS} where decision_id = ? limit 1",
        [decision_id],
    ).fetchone()
    if row is None:
        return pd.DataFrame()
    records = []
    for name, signal in json.loads(row[0]).items():
        details = {
            key: value
            for key, value in signal.items()
            if key not in {"enabled", "has_data", "fired", "value", "threshold"}
        }
        records.append(
            {
                "signal": name,
                "enabled": bool(signal.get("enabled")),
                "has_data": bool(signal.get("has_data")),
                "fired": bool(signal.get("fired")),
                "value": signal.get("value"),
                "threshold": signal.get("threshold"),
                "details": json.dumps(details, default=str) if details else "",
            }
        )
    return pd.DataFrame.from_records(records)


def quarantine_daily(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Quarantined feedback per day received and reason code."""
    return con.execute(
        f"""
        select cast(received_at as date) as received_date, reason_code, count(*) as quarantined_rows
        from {FCT_FEEDBACK_QUARANTINE}
        group by all
        order by received_date, reason_code
        """
    ).df()


def quarantine_reasons(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Per reason code: how many rows, what it means, and one example file and row to look at."""
    return con.execute(
        f"""
        select reason_code, any_value(reason_description) as reason_description,
            count(*) as quarantined_rows,
            min(received_at) as first_received_at, max(received_at) as last_received_at,
            arg_min(file_name || ':' || file_row, received_at) as example_file_row
        from {FCT_FEEDBACK_QUARANTINE}
        group by reason_code
        order by quarantined_rows desc, reason_code
        """
    ).df()


def dataset_versions(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Dataset versions in order: size, what each added and superseded, the sample drawn."""
    return con.execute(
        f"""
        select dataset_version, batch_id, example_count, examples_added, examples_superseded,
            sample_count, stratified_count, uncertainty_count, stratify_by,
            uncertainty_method, sampling_seed, example_fingerprint, sample_fingerprint, as_of_at
        from {FCT_DATASET_VERSIONS}
        order by as_of_at, dataset_version
        """
    ).df()


def training_runs(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Retraining runs with the dataset version they trained on and how they scored."""
    if not has_table(con, TRAINING_RUNS):
        return pd.DataFrame()
    return con.execute(
        f"""
        select training_run_id, attempt, decision_id, model_name, dataset_version, status,
            candidate_version, holdout_accuracy, baseline_accuracy, accuracy_gain,
            accuracy_gain_p_value, beats_current, started_at
        from {TRAINING_RUNS} order by started_at desc
        """
    ).df()


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

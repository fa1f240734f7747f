"""KPI trends: daily KPIs with intervals, rolling windows, the weekday profile, deployments and
what they changed."""

from __future__ import annotations

import duckdb
import pandas as pd

from feedback_flywheel.dashboard.queries.common import KPI_METRICS, has_table
from feedback_flywheel.warehouse.catalogue import (
    DIM_MODEL_VERSIONS,
    RPT_DEPLOYMENT_IMPACT,
    RPT_KPI_DAILY,
    RPT_KPI_TRENDS_DAILY,
    RPT_KPI_WEEKDAY_PROFILE,
)


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

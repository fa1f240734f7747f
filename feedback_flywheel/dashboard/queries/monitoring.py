"""Drift and retraining decisions, from the Python stage's tables."""

from __future__ import annotations

import json

import duckdb
import pandas as pd

from feedback_flywheel.dashboard.queries.common import has_table
from feedback_flywheel.warehouse.catalogue import (
    DRIFT_RESULTS,
    DRIFT_TIMELINE,
    RETRAINING_DECISIONS,
)


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


def drift_timeline(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Per day, model and feature of the drift timeline (the newest batch's evaluation of a day
    wins): the strongest effect relative to its floor, whether a test called drift, and the
    estimated start of a change first flagged that day."""
    if not has_table(con, DRIFT_TIMELINE):
        return pd.DataFrame()
    return con.execute(
        f"""
        with latest as (
            select * from {DRIFT_TIMELINE}
            qualify batch_id = max(batch_id) over (partition by model_name, evaluation_date)
        )
        select evaluation_date, model_name, feature_name, any_value(kind) as kind,
            max(effect_size / nullif(threshold, 0)) as effect_ratio,
            min(p_adjusted) as p_adjusted_min,
            bool_or(is_drift) as is_drift,
            string_agg(case when is_drift then test end, ', ' order by test) as drifted_tests,
            min(change_point_date) as change_point_date,
            max(n_cur) as n_cur
        from latest
        group by evaluation_date, model_name, feature_name
        order by evaluation_date, model_name, feature_name
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

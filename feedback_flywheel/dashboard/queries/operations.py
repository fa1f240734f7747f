"""Batches, quarantine, dataset versions and training runs."""

from __future__ import annotations

import json

import duckdb
import pandas as pd

from feedback_flywheel.dashboard.queries.common import has_table
from feedback_flywheel.warehouse.catalogue import (
    BATCH_RUNS,
    FCT_DATASET_VERSIONS,
    FCT_FEEDBACK_QUARANTINE,
    TRAINING_RUNS,
)


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


def latest_warnings(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The warnings of the latest successful batch, one row each (``ml.batch_runs.warnings``)."""
    if not has_table(con, BATCH_RUNS):
        return pd.DataFrame(columns=["batch_id", "warning"])
    columns = {row[0] for row in con.execute(f"describe {BATCH_RUNS}").fetchall()}
    if "warnings" not in columns:
        return pd.DataFrame(columns=["batch_id", "warning"])
    found = con.execute(
        f"""
        select batch_id, warnings from {BATCH_RUNS}
        where status = 'success' order by window_end desc, attempt desc limit 1
        """
    ).fetchall()
    if not found:
        return pd.DataFrame(columns=["batch_id", "warning"])
    batch_id, recorded = found[0]
    warnings = json.loads(recorded) if recorded else []
    return pd.DataFrame({"batch_id": [batch_id] * len(warnings), "warning": warnings})


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

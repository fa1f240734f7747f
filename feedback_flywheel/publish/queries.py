"""The read model: every query behind the CLI's reports, the batch artifact and the end-of-run
summary, in one place.

Each function reads small aggregates from public marts, reports and ``ml`` tables (through the
relation catalogue) and returns rows; rendering them is :mod:`.summary`'s and
:mod:`.artifacts`' business, and the CLI's. Nothing here pulls row-level data into Python.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb

from feedback_flywheel.warehouse.catalogue import (
    BATCH_RUNS,
    DRIFT_RESULTS,
    FCT_DATASET_VERSIONS,
    FCT_FEEDBACK_QUARANTINE,
    FCT_SAMPLING_POLICY_SCORES,
    PERFORMANCE_CHECKS,
    RETRAINING_DECISIONS,
    REWARD_MODELS,
    RPT_KPI_DAILY,
    RPT_PREFERENCE_QUALITY,
    RPT_RAW_RECONCILIATION,
    RPT_SEGMENT_BIAS,
    Relation,
)


def rows(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[tuple]:
    return con.execute(sql, params or []).fetchall()


def relation_exists(con: duckdb.DuckDBPyConnection, relation: Relation) -> bool:
    return bool(
        rows(
            con,
            "select count(*) from information_schema.tables "
            "where table_schema = ? and table_name = ?",
            [relation.schema, relation.name],
        )[0][0]
    )


def batch_span(con: duckdb.DuckDBPyConnection) -> tuple[int, Any, Any, str | None]:
    """(successful batches, first window start, last watermark, latest batch id)."""
    return rows(
        con,
        f"""
        select count(distinct batch_id), min(window_start), max(window_end), max(batch_id)
        from {BATCH_RUNS} where status = 'success'
        """,
    )[0]


def raw_reconciliation(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, int]]:
    """Raw rows per table and status (accepted, quarantined, held, ..., unclassified)."""
    totals: dict[str, dict[str, int]] = {}
    for table, status, count in rows(
        con,
        f"""
        select raw_table, status, sum(row_count) from {RPT_RAW_RECONCILIATION}
        group by 1, 2 order by 1, 2
        """,
    ):
        totals.setdefault(table, {})[status] = int(count)
    return totals


def quarantine_reasons(
    con: duckdb.DuckDBPyConnection, batch_id: str | None = None
) -> list[tuple[str, int]]:
    """Quarantined feedback rows per reason code, most first (of one batch, or of all)."""
    where, params = ("where batch_id = ?", [batch_id]) if batch_id else ("", [])
    return rows(
        con,
        f"select reason_code, count(*) from {FCT_FEEDBACK_QUARANTINE} {where} "
        "group by 1 order by 2 desc, 1",
        params,
    )


def dataset_version_of_batch(con: duckdb.DuckDBPyConnection, batch_id: str) -> list[tuple]:
    """(version, examples, added, sample, stratified, uncertainty, by policy, weak labels) of the
    batch's version."""
    return rows(
        con,
        f"""
        select dataset_version, example_count, examples_added, sample_count, stratified_count,
            uncertainty_count, policy_count, weak_label_count
        from {FCT_DATASET_VERSIONS} where batch_id = ?
        """,
        [batch_id],
    )


def dataset_versions(con: duckdb.DuckDBPyConnection, limit: int) -> list[tuple]:
    """The latest dataset versions with their size, sample and fingerprint."""
    return rows(
        con,
        f"""
        select dataset_version, example_count, examples_added, examples_superseded,
            sample_count, example_fingerprint
        from {FCT_DATASET_VERSIONS} order by dataset_version desc limit ?
        """,
        [limit],
    )


def kpi_days(con: duckdb.DuckDBPyConnection, batch_id: str, days: int) -> list[tuple]:
    """Daily KPIs per model version for the last ``days`` served days before the batch's
    watermark that have matured labels."""
    return rows(
        con,
        f"""
        with watermark as (
            select cast(window_end as date) as end_date from {BATCH_RUNS}
            where batch_id = ? and status = 'success' order by attempt desc limit 1
        ),
        labelled_days as (
            select distinct kpi_date from {RPT_KPI_DAILY}
            where labelled_count > 0 and kpi_date < (select end_date from watermark)
            order by kpi_date desc limit ?
        )
        select model_name, model_version, kpi_date, inference_count, labelled_share,
            accuracy, accuracy_lower, accuracy_upper, f1_macro, rating_mean
        from {RPT_KPI_DAILY}
        where kpi_date in (select kpi_date from labelled_days)
        order by kpi_date desc, model_name, model_version
        """,
        [batch_id, days],
    )


def flagged_accuracy_gaps(con: duckdb.DuckDBPyConnection, most: int) -> list[tuple]:
    """The worst flagged accuracy gaps over all time, all versions pooled."""
    return rows(
        con,
        f"""
        select segment_attribute, segment_value, reference_group, difference, difference_lower,
            difference_upper
        from {RPT_SEGMENT_BIAS}
        where is_flagged and time_bucket = 'all' and model_version = '__all__'
            and metric = 'accuracy'
        order by difference, segment_attribute, segment_value
        limit {int(most)}
        """,
    )


def latest_reward_model(con: duckdb.DuckDBPyConnection) -> tuple | None:
    """(batch, status, current version, reason, its held-out accuracy and pairs) of the latest
    reward-model batch, or None."""
    latest = rows(
        con,
        f"""
        select batch_id, status, current_version, reason
        from {REWARD_MODELS} order by batch_id desc limit 1
        """,
    )
    if not latest:
        return None
    batch_id, status, current, reason = latest[0]
    promoted = rows(
        con,
        f"""
        select heldout_accuracy, heldout_pairs from {REWARD_MODELS}
        where is_promoted and reward_model_version = ?
        """,
        [current],
    )
    accuracy, pairs = promoted[0] if promoted else (None, None)
    return batch_id, status, current, reason, accuracy, pairs


def batch_run(con: duckdb.DuckDBPyConnection, batch_id: str) -> tuple:
    """A batch's successful attempt (else its latest): window, status, counts, dataset version,
    dbt seconds."""
    return rows(
        con,
        f"""
        select window_start, window_end, status, feedback_in, feedback_accepted,
            feedback_quarantined, feedback_held, inferences_in, training_examples_added,
            dataset_version, dbt_seconds
        from {BATCH_RUNS} where batch_id = ?
        order by status = 'success' desc, attempt desc limit 1
        """,
        [batch_id],
    )[0]


def recorded_warnings(con: duckdb.DuckDBPyConnection, batch_id: str) -> list[str]:
    """The warnings the batch's successful attempt recorded (ml.batch_runs.warnings)."""
    found = rows(
        con,
        f"""
        select warnings from {BATCH_RUNS}
        where batch_id = ? and status = 'success' order by attempt desc limit 1
        """,
        [batch_id],
    )
    return json.loads(found[0][0]) if found and found[0][0] else []


def batch_runs(con: duckdb.DuckDBPyConnection, limit: int) -> list[tuple]:
    """The latest batch attempts (``flywheel batches``)."""
    return rows(
        con,
        f"""
        select batch_id, attempt, status, window_start, window_end, feedback_in,
            feedback_accepted, feedback_quarantined, feedback_held, round(dbt_seconds, 1)
        from {BATCH_RUNS} order by window_end desc, attempt desc limit ?
        """,
        [limit],
    )


def decisions(
    con: duckdb.DuckDBPyConnection, *, batch_id: str | None = None, limit: int = 20
) -> list[tuple]:
    """Retraining decisions (of one batch, or the latest): batch, model, decision, trigger
    status, triggered run, reason, policy version."""
    where, params = ("where batch_id = ?", [batch_id]) if batch_id else ("", [])
    return rows(
        con,
        f"""
        select batch_id, model_name, decision, trigger_status, triggered_run_id, reason,
            policy_version
        from {RETRAINING_DECISIONS} {where}
        order by watermark_at desc, model_name limit ?
        """,
        [*params, limit],
    )


def latest_drift_batch(con: duckdb.DuckDBPyConnection) -> str | None:
    return rows(con, f"select max(batch_id) from {DRIFT_RESULTS}")[0][0]


def drift_batch_exists(con: duckdb.DuckDBPyConnection, batch_id: str) -> bool:
    """Whether ``batch_id`` has drift results."""
    return bool(
        rows(con, f"select count(*) from {DRIFT_RESULTS} where batch_id = ?", [batch_id])[0][0]
    )


def batch_audit_head(con: duckdb.DuckDBPyConnection, batch_id: str) -> tuple[int, str] | None:
    """(seq, hash) of the audit chain's head that the batch's successful attempt recorded."""
    found = rows(
        con,
        f"""
        select audit_head_seq, audit_head_hash from {BATCH_RUNS}
        where batch_id = ? and status = 'success' and audit_head_seq is not null
        order by attempt desc limit 1
        """,
        [batch_id],
    )
    return (int(found[0][0]), str(found[0][1])) if found else None


def drift_rows(
    con: duckdb.DuckDBPyConnection, batch_id: str, *, drifted_only: bool = False
) -> list[tuple]:
    """A batch's drift tests, drifted first: model, feature, kind, test, statistic, adjusted
    p-value, effect metric, effect size, floor, n_ref, n_cur, is_drift."""
    return rows(
        con,
        f"""
        select model_name, feature_name, kind, test, statistic, p_adjusted, effect_metric,
            effect_size, threshold, n_ref, n_cur, is_drift
        from {DRIFT_RESULTS} where batch_id = ? and (is_drift or not ?)
        order by is_drift desc, kind, feature_name, test
        """,
        [batch_id, drifted_only],
    )


def performance_checks(con: duckdb.DuckDBPyConnection, batch_id: str) -> list[tuple]:
    """The batch's overall accuracy checks and every flagged check."""
    return rows(
        con,
        f"""
        select model_name, model_version, check_name, segment_attribute, segment_value, n_ref,
            n_cur, accuracy_ref, accuracy_cur, accuracy_change, concept_part, p_adjusted
        from {PERFORMANCE_CHECKS}
        where batch_id = ? and (check_name = 'accuracy_change' or is_flagged)
        order by model_name, model_version, check_name
        """,
        [batch_id],
    )


def preference_quality(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """The preference data quality report, one row per pair source and ``all`` last."""
    return rows(
        con,
        f"""
        select pair_source, judgements, contexts, tie_share, first_shown_win_rate,
            first_shown_win_rate_lower, first_shown_win_rate_upper,
            annotator_agreement_rate, cycle_rate, quarantined_rows, held_rows
        from {RPT_PREFERENCE_QUALITY} order by pair_source = 'all', pair_source
        """,
    )


def sampling_policies_in_force(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """Per model, the query policy chosen from the latest evaluation the marts hold (one before
    the latest batch: the policy the latest batch's sample used under var sampling_policy:
    auto): (model, evaluation batch, policy, budget, why)."""
    if not relation_exists(con, FCT_SAMPLING_POLICY_SCORES):
        return []
    return rows(
        con,
        f"""
        select model_name, batch_id, policy, chosen_budget, choice_reason
        from {FCT_SAMPLING_POLICY_SCORES} as scores
        where is_chosen and batch_id = (
            select max(batch_id) from {FCT_SAMPLING_POLICY_SCORES} as latest
            where latest.model_name = scores.model_name
        )
        order by model_name
        """,
    )

"""The feedback loop's calibration: how far each signal agrees with the rating and with ground
truth (``rpt_feedback_fidelity``), overall and week by week; label coverage by age
(``fct_label_coverage``) and the label maturation window (``fct_label_maturation``); the
sampling policy chosen for the next training sample and its evidence
(``fct_sampling_policy_scores``, ``fct_sampling_policy_curves``); the loop's latency per stage
(``fct_feedback_latency``); the weak labels implicit signals give where a label is missing
(``rpt_weak_labels``)."""

from __future__ import annotations

import duckdb
import pandas as pd

from feedback_flywheel.dashboard.queries.common import has_table
from feedback_flywheel.warehouse.catalogue import (
    FCT_DATASET_VERSIONS,
    FCT_FEEDBACK_LATENCY,
    FCT_LABEL_COVERAGE,
    FCT_LABEL_MATURATION,
    FCT_SAMPLING_POLICY_CURVES,
    FCT_SAMPLING_POLICY_SCORES,
    RPT_FEEDBACK_FIDELITY,
    RPT_WEAK_LABELS,
)

#: the columns a page shows of a fidelity row
FIDELITY_COLUMNS = (
    "signal_name, reference_name, breakdown, breakdown_value, week_start_date, overlap_count, "
    "is_suppressed, agreement_rate, agreement_rate_lower, agreement_rate_upper, cohen_kappa, "
    "cohen_kappa_lower, cohen_kappa_upper, precision_rate, precision_rate_lower, "
    "precision_rate_upper, recall_rate, recall_rate_lower, recall_rate_upper, "
    "false_positive_rate, false_positive_rate_lower, false_positive_rate_upper, "
    "rank_correlation, rank_correlation_lower, rank_correlation_upper"
)


def fidelity_overall(con: duckdb.DuckDBPyConnection, model_name: str) -> pd.DataFrame:
    """One row per (signal, reference) over all time, the model's."""
    if not has_table(con, RPT_FEEDBACK_FIDELITY):
        return pd.DataFrame()
    return con.execute(
        f"select {FIDELITY_COLUMNS} from {RPT_FEEDBACK_FIDELITY} "
        "where model_name = ? and breakdown = '__overall__' "
        "order by reference_name, signal_name",
        [model_name],
    ).df()


def fidelity_weekly(
    con: duckdb.DuckDBPyConnection, model_name: str, reference_name: str
) -> pd.DataFrame:
    """Week by week against one reference (rating or correctness), suppressed weeks left out."""
    if not has_table(con, RPT_FEEDBACK_FIDELITY):
        return pd.DataFrame()
    return con.execute(
        f"select {FIDELITY_COLUMNS} from {RPT_FEEDBACK_FIDELITY} "
        "where model_name = ? and reference_name = ? and breakdown = 'week' "
        "and not is_suppressed order by signal_name, week_start_date",
        [model_name, reference_name],
    ).df()


def fidelity_breakdowns(
    con: duckdb.DuckDBPyConnection, model_name: str, signal_name: str, reference_name: str
) -> pd.DataFrame:
    """One signal pair by model version and by segment group."""
    if not has_table(con, RPT_FEEDBACK_FIDELITY):
        return pd.DataFrame()
    return con.execute(
        f"select {FIDELITY_COLUMNS} from {RPT_FEEDBACK_FIDELITY} "
        "where model_name = ? and signal_name = ? and reference_name = ? "
        "and breakdown not in ('__overall__', 'week') order by breakdown, breakdown_value",
        [model_name, signal_name, reference_name],
    ).df()


#: the weekly coverage curves shown: the weeks served of the last this many
COVERAGE_WEEKS_SHOWN = 12


def label_coverage(con: duckdb.DuckDBPyConnection, model_name: str) -> pd.DataFrame:
    """The model's coverage curves of the latest batch: overall and per week served (the weeks
    of the last COVERAGE_WEEKS_SHOWN), ages with too few predictions left out."""
    if not has_table(con, FCT_LABEL_COVERAGE):
        return pd.DataFrame()
    return con.execute(
        "select breakdown, served_week_start_date, age_days, eligible_count, labelled_count, "
        f"coverage, coverage_lower, coverage_upper from {FCT_LABEL_COVERAGE} "
        "where model_name = ? and not is_suppressed and (breakdown = 'overall' "
        "or served_week_start_date >= (select max(served_week_start_date) - "
        f"{7 * (COVERAGE_WEEKS_SHOWN - 1)} "
        f"from {FCT_LABEL_COVERAGE} where model_name = ?)) "
        "order by breakdown, served_week_start_date, age_days",
        [model_name, model_name],
    ).df()


def label_maturation(con: duckdb.DuckDBPyConnection, model_name: str) -> pd.DataFrame:
    """The model's label maturation window, batch by batch (the latest last)."""
    if not has_table(con, FCT_LABEL_MATURATION):
        return pd.DataFrame()
    return con.execute(
        "select batch_id, watermark_at, maturation_setting, maturation_share, plateau_age_days, "
        "plateau_eligible_count, plateau_coverage, derived_maturation_days, maturation_days, "
        f"maturation_source from {FCT_LABEL_MATURATION} where model_name = ? "
        "order by watermark_at, batch_id",
        [model_name],
    ).df()


def sampling_policy_scores(con: duckdb.DuckDBPyConnection, model_name: str) -> pd.DataFrame:
    """The model's latest evaluation of the query policies: one row per policy (the chosen one
    first), with its AULC, gain over random, budget, its Exp3 bandit probability and draw, and
    why it was or was not chosen (by the rule or the bandit: ``chooser``); and the
    sampling mode of the latest dataset version (``sampling_policy``)."""
    if not has_table(con, FCT_SAMPLING_POLICY_SCORES):
        return pd.DataFrame()
    mode = "fixed"
    if has_table(con, FCT_DATASET_VERSIONS):
        row = con.execute(
            f"select sampling_policy from {FCT_DATASET_VERSIONS} order by batch_id desc limit 1"
        ).fetchone()
        mode = row[0] if row else mode
    return con.execute(
        "select batch_id, policy, is_chosen, aulc_mean, aulc_lower, aulc_upper, gain_mean, "
        "gain_lower, gain_upper, chosen_budget, beats_random, choice_reason, "
        "first_train_batch_id, last_test_batch_id, pairs, seeds, exp3_probability, "
        "is_exp3_draw, chooser, ? as sampling_policy "
        f"from {FCT_SAMPLING_POLICY_SCORES} where model_name = ? and batch_id = "
        f"(select max(batch_id) from {FCT_SAMPLING_POLICY_SCORES} where model_name = ?) "
        "order by is_chosen desc, aulc_mean desc, policy",
        [mode, model_name, model_name],
    ).df()


def sampling_policy_curves(con: duckdb.DuckDBPyConnection, model_name: str) -> pd.DataFrame:
    """The label-efficiency curves of the model's latest evaluation (policy x budget)."""
    if not has_table(con, FCT_SAMPLING_POLICY_CURVES):
        return pd.DataFrame()
    return con.execute(
        "select policy, budget, accuracy_mean, accuracy_lower, accuracy_upper, picked_rows "
        f"from {FCT_SAMPLING_POLICY_CURVES} where model_name = ? and batch_id = "
        f"(select max(batch_id) from {FCT_SAMPLING_POLICY_CURVES} where model_name = ?) "
        "order by policy, budget",
        [model_name, model_name],
    ).df()


def feedback_latency(con: duckdb.DuckDBPyConnection, model_name: str) -> pd.DataFrame:
    """The model's loop latency of the latest batch, overall: one row per stage and event type
    (``__labels__`` first), in hours."""
    if not has_table(con, FCT_FEEDBACK_LATENCY):
        return pd.DataFrame()
    return con.execute(
        "select stage_order, stage, event_type, clock, completed_count, pending_count, "
        "pending_share, p50_seconds / 3600 as p50_hours, p90_seconds / 3600 as p90_hours, "
        f"p99_seconds / 3600 as p99_hours, is_bottleneck from {FCT_FEEDBACK_LATENCY} "
        "where model_name = ? and breakdown = 'overall' "
        "order by event_type <> '__labels__', event_type, stage_order",
        [model_name],
    ).df()


def weak_labels(con: duckdb.DuckDBPyConnection, model_name: str) -> pd.DataFrame:
    """The model's weak-label fidelity of the latest batch: one row per implicit signal and
    polarity, with whether it is usable (and why not) and the weak labels it holds and formed."""
    if not has_table(con, RPT_WEAK_LABELS):
        return pd.DataFrame()
    return con.execute(
        "select signal_name, signal_polarity, weak_label_rule, overlap_count, fidelity_rate, "
        "fidelity_rate_lower, fidelity_rate_upper, usability, is_usable, current_weak_labels, "
        f"weak_labels_formed, batch_id from {RPT_WEAK_LABELS} where model_name = ? "
        "order by signal_name, signal_polarity desc",
        [model_name],
    ).df()

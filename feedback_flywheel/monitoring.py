"""The Python stage of monitoring: p-values, corrections, the drift gate and the performance checks.

The warehouse computes the statistics (``marts.fct_drift_*``, ``fct_performance_windows``,
``fct_calibration_bins``: exact KS D, Wasserstein, PSI, JS, contingency tables, per-segment
counts); this module only reads those summaries (a few hundred rows) and turns them into
p-values with scipy, Benjamini-Hochberg adjusted across every test of a batch, and into the
gated, persistent drift flags and performance checks the decision reads. Results are written to
``ml.drift_results``, ``ml.performance_checks`` and ``ml.performance_estimates`` (append-only,
one set of rows per batch; re-running a batch replaces its own rows only).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import duckdb
import numpy as np
import pandas as pd
from scipy import stats

from feedback_flywheel.policy import Policy

Z95 = 1.959963984540054
KS_EXACT_MAX_N = 10_000  # scipy.stats.ks_2samp's MAX_AUTO_N: exact below, asymptotic above

ML_TABLES_DDL = (
    """
    create table if not exists ml.drift_results (
        batch_id varchar not null,
        model_name varchar not null,
        feature_name varchar not null,
        kind varchar not null,
        test varchar not null,
        statistic double,
        p_value double,
        p_adjusted double,
        effect_metric varchar not null,
        effect_size double,
        threshold double not null,
        alpha double not null,
        n_ref bigint,
        n_cur bigint,
        is_significant boolean not null,
        is_drift_now boolean not null,
        is_drift boolean not null,
        details varchar,
        policy_version varchar not null,
        computed_at timestamp not null
    )
    """,
    """
    create table if not exists ml.performance_checks (
        batch_id varchar not null,
        model_name varchar not null,
        model_version varchar not null,
        check_name varchar not null,
        segment_attribute varchar not null,
        segment_value varchar not null,
        n_ref bigint,
        n_cur bigint,
        accuracy_ref double,
        accuracy_cur double,
        accuracy_change double,
        covariate_part double,
        concept_part double,
        concept_lower double,
        concept_upper double,
        p_value double,
        p_adjusted double,
        is_flagged boolean not null,
        computed_at timestamp not null
    )
    """,
    """
    create table if not exists ml.performance_estimates (
        batch_id varchar not null,
        model_name varchar not null,
        model_version varchar not null,
        window_start_at timestamp not null,
        window_end_at timestamp not null,
        predictions bigint not null,
        estimated_accuracy double,
        uncalibrated_estimate double,
        reference_accuracy double,
        reference_labelled bigint,
        method varchar not null,
        computed_at timestamp not null
    )
    """,
)


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the ml tables this module writes, if missing."""
    con.execute("create schema if not exists ml")
    for ddl in ML_TABLES_DDL:
        con.execute(ddl)


# --- statistics -------------------------------------------------------------------------------


def ks_pvalue(d: float, n_ref: int, n_cur: int) -> float:
    """Two-sided p-value of the two-sample KS statistic ``d``, as ``scipy.stats.ks_2samp`` computes
    it with ``method='auto'``: the exact distribution when both samples have at most 10,000 values,
    Smirnov's asymptotic distribution (``kstwo`` at the effective n) otherwise.

    Only D, n and m are needed, which is why the warehouse can compute D and hand over three
    numbers instead of millions of values.
    """
    if n_ref <= 0 or n_cur <= 0:
        return float("nan")
    if max(n_ref, n_cur) <= KS_EXACT_MAX_N:
        from scipy.stats._stats_py import _attempt_exact_2kssamp  # the function ks_2samp uses

        g = math.gcd(n_ref, n_cur)
        if n_ref // g < np.iinfo(np.int32).max / (n_cur // g):
            success, _, prob = _attempt_exact_2kssamp(n_ref, n_cur, g, d, "two-sided")
            if success:
                return float(np.clip(prob, 0, 1))
    m, n = sorted([float(n_ref), float(n_cur)], reverse=True)
    effective_n = m * n / (m + n)
    return float(np.clip(stats.distributions.kstwo.sf(d, np.round(effective_n)), 0, 1))


def chi2_homogeneity(n_ref: Sequence[int], n_cur: Sequence[int]) -> tuple[float, float, int]:
    """Chi-square homogeneity test of a 2 x k contingency table (buckets with no counts in either
    window dropped), as ``scipy.stats.chi2_contingency`` (no continuity correction for k > 1)."""
    table = np.array([n_ref, n_cur], dtype=float)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0, 0
    result = stats.chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue), int(result.dof)


def two_proportion_test(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    """z statistic and two-sided p-value for p2 - p1 with the pooled standard error."""
    if n1 <= 0 or n2 <= 0:
        return float("nan"), float("nan")
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0, 1.0
    z = (x2 / n2 - x1 / n1) / se
    return z, float(2 * stats.norm.sf(abs(z)))


def bh_adjust(p_values: Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (NaN stays NaN and does not count as a test)."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full_like(p, np.nan)
    valid = ~np.isnan(p)
    if valid.any():
        adjusted[valid] = stats.false_discovery_control(p[valid], method="bh")
    return adjusted


# --- drift ------------------------------------------------------------------------------------

KIND_BY_FEATURE_KIND = {"input": "covariate", "prediction": "prediction", "label": "label"}


def _kind(feature_kind: str) -> str:
    return KIND_BY_FEATURE_KIND.get(feature_kind, feature_kind)


def drift_tests(con: duckdb.DuckDBPyConnection, batch_id: str, policy: Policy) -> pd.DataFrame:
    """One row per (model, feature, test) of the batch: statistic, p-value, BH-adjusted p-value,
    effect size against its floor, and the gated, persistent drift flag."""
    numeric = con.execute(
        """
        select model_name, feature_name, feature_kind, n_ref, n_cur, missing_ref, missing_cur,
            ks_d, wasserstein, wasserstein_norm, psi, js_distance
        from marts.fct_drift_numeric where batch_id = ?
        """,
        [batch_id],
    ).df()
    summary = con.execute(
        """
        select model_name, feature_name, feature_kind, n_ref, n_cur, missing_ref, missing_cur,
            linf, js_distance, unseen_share_cur
        from marts.fct_drift_categorical_summary where batch_id = ?
        """,
        [batch_id],
    ).df()
    tables = con.execute(
        """
        select model_name, feature_name, category, n_ref, n_cur
        from marts.fct_drift_categorical where batch_id = ? and category <> '__missing__'
        order by model_name, feature_name, category
        """,
        [batch_id],
    ).df()
    floors = policy.drift.effect_size_floors
    rows: list[dict[str, Any]] = []

    def missing_row(record: Any) -> dict[str, Any]:
        total_ref = int(record.n_ref) + int(record.missing_ref)
        total_cur = int(record.n_cur) + int(record.missing_cur)
        z, p = two_proportion_test(
            int(record.missing_ref), total_ref, int(record.missing_cur), total_cur
        )
        rate_ref = record.missing_ref / total_ref if total_ref else float("nan")
        rate_cur = record.missing_cur / total_cur if total_cur else float("nan")
        return {
            "model_name": record.model_name,
            "feature_name": record.feature_name,
            "kind": _kind(record.feature_kind),
            "test": "missing_rate",
            "statistic": z,
            "p_value": p,
            "effect_metric": "abs_missing_rate_change",
            "effect_size": abs(rate_cur - rate_ref),
            "threshold": floors.missing_rate,
            "n_ref": total_ref,
            "n_cur": total_cur,
            "details": {"missing_rate_ref": rate_ref, "missing_rate_cur": rate_cur},
        }

    for record in numeric.itertuples(index=False):
        n_ref, n_cur = int(record.n_ref), int(record.n_cur)
        rows.append(
            {
                "model_name": record.model_name,
                "feature_name": record.feature_name,
                "kind": _kind(record.feature_kind),
                "test": "ks",
                "statistic": record.ks_d,
                "p_value": ks_pvalue(float(record.ks_d or 0.0), n_ref, n_cur),
                "effect_metric": "wasserstein_norm",
                "effect_size": record.wasserstein_norm,
                "threshold": floors.ks,
                "n_ref": n_ref,
                "n_cur": n_cur,
                "details": {
                    "wasserstein": record.wasserstein,
                    "psi": record.psi,
                    "js_distance": record.js_distance,
                },
            }
        )
        rows.append(missing_row(record))
    for record in summary.itertuples(index=False):
        table = tables[
            (tables.model_name == record.model_name) & (tables.feature_name == record.feature_name)
        ]
        statistic, p_value, dof = chi2_homogeneity(
            table.n_ref.astype(int).tolist(), table.n_cur.astype(int).tolist()
        )
        if int(record.n_ref) == 0 or int(record.n_cur) == 0:
            p_value = float("nan")
        common = {
            "model_name": record.model_name,
            "feature_name": record.feature_name,
            "kind": _kind(record.feature_kind),
            "n_ref": int(record.n_ref),
            "n_cur": int(record.n_cur),
        }
        rows.append(
            common
            | {
                "test": "chi2",
                "statistic": statistic,
                "p_value": p_value,
                "effect_metric": "linf",
                "effect_size": record.linf,
                "threshold": floors.chi2,
                "details": {"js_distance": record.js_distance, "dof": dof},
            }
        )
        rows.append(
            common
            | {
                "test": "unseen_share",
                "statistic": record.unseen_share_cur,
                "p_value": float("nan"),
                "effect_metric": "unseen_share",
                "effect_size": record.unseen_share_cur,
                "threshold": floors.unseen_share,
                "details": {},
            }
        )
        rows.append(missing_row(record))
    results = pd.DataFrame(rows)
    if results.empty:
        return results
    results["p_adjusted"] = np.nan
    for _, index in results.groupby("model_name").groups.items():
        results.loc[index, "p_adjusted"] = bh_adjust(results.loc[index, "p_value"].to_numpy())
    alpha = policy.drift.alpha
    enough = (results.n_ref >= policy.drift.min_samples) & (
        results.n_cur >= policy.drift.min_samples
    )
    large = results.effect_size.fillna(0) >= results.threshold
    significant = np.where(
        results.p_value.isna(), large, results.p_adjusted.fillna(1.0) < alpha
    ).astype(bool)
    results["alpha"] = alpha
    results["is_significant"] = significant
    results["is_drift_now"] = significant & large & enough
    results["is_drift"] = _persistent(con, batch_id, results, policy)
    results["batch_id"] = batch_id
    results["details"] = results.details.map(lambda d: json.dumps(d, default=float))
    results["policy_version"] = policy.policy_version
    return results


def _persistent(
    con: duckdb.DuckDBPyConnection, batch_id: str, results: pd.DataFrame, policy: Policy
) -> pd.Series:
    """Drift counts only when it held in at least k of the last m batches (this one included)."""
    k, m = policy.drift.persistence.k, policy.drift.persistence.m
    if m == 1:
        return results.is_drift_now.copy()
    history = con.execute(
        """
        with recent as (
            select distinct batch_id from ml.drift_results where batch_id < ?
            order by batch_id desc limit ?
        )
        select model_name, feature_name, test, sum(case when is_drift_now then 1 else 0 end)
        from ml.drift_results where batch_id in (select batch_id from recent)
        group by 1, 2, 3
        """,
        [batch_id, m - 1],
    ).fetchall()
    earlier = {(model, feature, test): int(count) for model, feature, test, count in history}
    counts = [
        earlier.get((row.model_name, row.feature_name, row.test), 0) + int(row.is_drift_now)
        for row in results.itertuples(index=False)
    ]
    return pd.Series(counts, index=results.index) >= k


DRIFT_COLUMNS = (
    "batch_id",
    "model_name",
    "feature_name",
    "kind",
    "test",
    "statistic",
    "p_value",
    "p_adjusted",
    "effect_metric",
    "effect_size",
    "threshold",
    "alpha",
    "n_ref",
    "n_cur",
    "is_significant",
    "is_drift_now",
    "is_drift",
    "details",
    "policy_version",
)


def write_batch_rows(
    con: duckdb.DuckDBPyConnection,
    table: str,
    batch_id: str,
    frame: pd.DataFrame,
    columns: Sequence[str],
    computed_at: Any,
) -> None:
    """Replace the batch's rows of an ml table with ``frame`` (a re-run replaces only its own)."""
    con.execute(f"delete from {table} where batch_id = ?", [batch_id])
    if frame.empty:
        return
    data = frame.loc[:, list(columns)].copy()
    data["computed_at"] = computed_at
    con.register("incoming_rows", data)
    try:
        names = ", ".join([*columns, "computed_at"])
        con.execute(f"insert into {table} ({names}) select {names} from incoming_rows")
    finally:
        con.unregister("incoming_rows")


# --- performance ------------------------------------------------------------------------------


def _rate(correct: float, total: float) -> float:
    return correct / total if total else float("nan")


def performance_checks(
    con: duckdb.DuckDBPyConnection, batch_id: str, policy: Policy
) -> pd.DataFrame:
    """Accuracy change per model version, its split into covariate and concept parts per segment
    attribute, and the within-segment change per segment value (BH-adjusted)."""
    windows = con.execute(
        """
        select model_name, model_version, segment_attribute, segment_value, window_side,
            labelled_count, correct_count
        from marts.fct_performance_windows where batch_id = ?
        """,
        [batch_id],
    ).df()
    if windows.empty:
        return pd.DataFrame()
    pivot = windows.pivot_table(
        index=["model_name", "model_version", "segment_attribute", "segment_value"],
        columns="window_side",
        values=["labelled_count", "correct_count"],
        aggfunc="sum",
        fill_value=0,
    )
    pivot.columns = [f"{value}_{side}" for value, side in pivot.columns]
    for column in (
        "labelled_count_reference",
        "labelled_count_current",
        "correct_count_reference",
        "correct_count_current",
    ):
        if column not in pivot:
            pivot[column] = 0
    pivot = pivot.reset_index()
    drop = policy.signals.performance_drop
    concept = policy.signals.concept_drift
    alpha = policy.drift.alpha
    rows: list[dict[str, Any]] = []
    for (model, version), group in pivot.groupby(["model_name", "model_version"]):
        overall = group[group.segment_attribute == "__all__"].iloc[0]
        n_ref, n_cur = int(overall.labelled_count_reference), int(overall.labelled_count_current)
        x_ref, x_cur = int(overall.correct_count_reference), int(overall.correct_count_current)
        acc_ref, acc_cur = _rate(x_ref, n_ref), _rate(x_cur, n_cur)
        _, p = two_proportion_test(x_ref, n_ref, x_cur, n_cur)
        base = {"model_name": model, "model_version": version}
        rows.append(
            base
            | {
                "check_name": "accuracy_change",
                "segment_attribute": "__all__",
                "segment_value": "__all__",
                "n_ref": n_ref,
                "n_cur": n_cur,
                "accuracy_ref": acc_ref,
                "accuracy_cur": acc_cur,
                "accuracy_change": acc_cur - acc_ref,
                "p_value": p,
                "p_adjusted": p,
                "is_flagged": bool(
                    min(n_ref, n_cur) >= drop.min_labelled
                    and p < alpha
                    and acc_cur - acc_ref <= -drop.min_drop
                ),
            }
        )
        segments = group[group.segment_attribute != "__all__"]
        decomposition_rows: list[dict[str, Any]] = []
        for attribute, by_value in segments.groupby("segment_attribute"):
            weights = by_value.labelled_count_current / max(n_cur, 1)
            acc_ref_s = np.where(
                by_value.labelled_count_reference > 0,
                by_value.correct_count_reference / by_value.labelled_count_reference.clip(lower=1),
                acc_ref,
            )
            expected = float((weights * acc_ref_s).sum()) if n_cur else float("nan")
            variance = (acc_cur * (1 - acc_cur) / n_cur if n_cur else float("nan")) + float(
                (
                    weights**2
                    * acc_ref_s
                    * (1 - acc_ref_s)
                    / by_value.labelled_count_reference.clip(lower=1)
                ).sum()
            )
            concept_part = acc_cur - expected
            se = math.sqrt(variance) if variance == variance else float("nan")
            half = Z95 * se
            p_concept = float(2 * stats.norm.sf(abs(concept_part) / se)) if se > 0 else float("nan")
            decomposition_rows.append(
                base
                | {
                    "check_name": "concept_decomposition",
                    "segment_attribute": attribute,
                    "segment_value": "__all__",
                    "n_ref": n_ref,
                    "n_cur": n_cur,
                    "accuracy_ref": acc_ref,
                    "accuracy_cur": acc_cur,
                    "accuracy_change": acc_cur - acc_ref,
                    "covariate_part": expected - acc_ref,
                    "concept_part": concept_part,
                    "concept_lower": concept_part - half,
                    "concept_upper": concept_part + half,
                    "p_value": p_concept,
                }
            )
        # one decomposition per segment attribute: correct for testing several of them
        _flag_drops(
            decomposition_rows, "concept_part", concept.min_labelled, concept.min_drop, alpha
        )
        rows += decomposition_rows
        segment_rows = []
        for record in segments.itertuples(index=False):
            s_ref, s_cur = int(record.labelled_count_reference), int(record.labelled_count_current)
            y_ref, y_cur = int(record.correct_count_reference), int(record.correct_count_current)
            a_ref, a_cur = _rate(y_ref, s_ref), _rate(y_cur, s_cur)
            _, p = two_proportion_test(y_ref, s_ref, y_cur, s_cur)
            se = (
                math.sqrt(a_ref * (1 - a_ref) / s_ref + a_cur * (1 - a_cur) / s_cur)
                if s_ref and s_cur
                else float("nan")
            )
            segment_rows.append(
                base
                | {
                    "check_name": "segment_concept",
                    "segment_attribute": record.segment_attribute,
                    "segment_value": record.segment_value,
                    "n_ref": s_ref,
                    "n_cur": s_cur,
                    "accuracy_ref": a_ref,
                    "accuracy_cur": a_cur,
                    "accuracy_change": a_cur - a_ref,
                    "concept_part": a_cur - a_ref,
                    "concept_lower": a_cur - a_ref - Z95 * se,
                    "concept_upper": a_cur - a_ref + Z95 * se,
                    "p_value": p,
                }
            )
        _flag_drops(segment_rows, "accuracy_change", concept.min_labelled, concept.min_drop, alpha)
        rows += segment_rows
    checks = pd.DataFrame(rows)
    checks["batch_id"] = batch_id
    return checks


def _flag_drops(
    rows: list[dict[str, Any]], drop_key: str, min_labelled: int, min_drop: float, alpha: float
) -> None:
    """BH-adjust the rows' p-values together and flag the significant drops of at least
    ``min_drop`` in ``drop_key`` where both windows have ``min_labelled`` labels."""
    adjusted = bh_adjust([row["p_value"] for row in rows])
    for row, p_adj in zip(rows, adjusted, strict=True):
        row["p_adjusted"] = p_adj
        row["is_flagged"] = bool(
            min(row["n_ref"], row["n_cur"]) >= min_labelled
            and p_adj < alpha
            and row[drop_key] <= -min_drop
        )


PERFORMANCE_COLUMNS = (
    "batch_id",
    "model_name",
    "model_version",
    "check_name",
    "segment_attribute",
    "segment_value",
    "n_ref",
    "n_cur",
    "accuracy_ref",
    "accuracy_cur",
    "accuracy_change",
    "covariate_part",
    "concept_part",
    "concept_lower",
    "concept_upper",
    "p_value",
    "p_adjusted",
    "is_flagged",
)


def performance_estimates(con: duckdb.DuckDBPyConnection, batch_id: str) -> pd.DataFrame:
    """Confidence-based estimated accuracy of the current drift window per model version: each
    prediction counts with the accuracy its score bin had on the reference window's labels (the
    bin's mean score where the reference has no labels in that bin)."""
    bins = con.execute(
        """
        select model_name, model_version, reference_labelled, reference_correct,
            current_predictions, current_score_sum, current_start_at, current_end_at
        from marts.fct_calibration_bins where batch_id = ?
        """,
        [batch_id],
    ).df()
    rows = []
    for (model, version), group in bins.groupby(["model_name", "model_version"]):
        predictions = int(group.current_predictions.sum())
        if predictions == 0:
            continue
        labelled = group.reference_labelled.to_numpy(dtype=float)
        bin_accuracy = np.where(
            labelled > 0,
            group.reference_correct.to_numpy(dtype=float) / np.maximum(labelled, 1),
            group.current_score_sum.to_numpy(dtype=float)
            / np.maximum(group.current_predictions.to_numpy(dtype=float), 1),
        )
        estimate = float((group.current_predictions.to_numpy() * bin_accuracy).sum() / predictions)
        reference_labelled = int(labelled.sum())
        rows.append(
            {
                "batch_id": batch_id,
                "model_name": model,
                "model_version": version,
                "window_start_at": group.current_start_at.iloc[0],
                "window_end_at": group.current_end_at.iloc[0],
                "predictions": predictions,
                "estimated_accuracy": estimate if reference_labelled else float("nan"),
                "uncalibrated_estimate": float(group.current_score_sum.sum() / predictions),
                "reference_accuracy": _rate(
                    float(group.reference_correct.sum()), reference_labelled
                ),
                "reference_labelled": reference_labelled,
                "method": "score_bin_calibration",
            }
        )
    return pd.DataFrame(rows)


ESTIMATE_COLUMNS = (
    "batch_id",
    "model_name",
    "model_version",
    "window_start_at",
    "window_end_at",
    "predictions",
    "estimated_accuracy",
    "uncalibrated_estimate",
    "reference_accuracy",
    "reference_labelled",
    "method",
)

"""Drift tests: p-values, the Benjamini-Hochberg correction and the drift gate, over the
warehouse's drift summaries.

The warehouse computes the statistics (``marts.fct_drift_*``: exact KS D, Wasserstein, PSI, JS,
contingency tables, missing counts); this module only reads those summaries (a few hundred rows)
and turns them into p-values with scipy, Benjamini-Hochberg adjusted across every test of a model
in the batch, and into the gated, persistent drift flags the decision reads. Results go to
``ml.drift_results`` (one set of rows per batch; re-running a batch replaces its own rows only).
"""

from __future__ import annotations

import json
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from feedback_flywheel.config.policies import EffectFloors, Policy
from feedback_flywheel.retraining.stats import (
    bh_adjust,
    chi2_homogeneity,
    ks_pvalue,
    two_proportion_test,
)
from feedback_flywheel.warehouse.catalogue import (
    DRIFT_RESULTS,
    FCT_DRIFT_CATEGORICAL,
    FCT_DRIFT_CATEGORICAL_SUMMARY,
    FCT_DRIFT_NUMERIC,
)
from feedback_flywheel.warehouse.schema import DRIFT_RESULTS as DRIFT_RESULTS_TABLE

KIND_BY_FEATURE_KIND = {"input": "covariate", "prediction": "prediction", "label": "label"}
#: the columns of ml.drift_results the stage computes (computed_at is added when written)
DRIFT_COLUMNS = tuple(c for c in DRIFT_RESULTS_TABLE.column_names if c != "computed_at")


def _kind(feature_kind: str) -> str:
    return KIND_BY_FEATURE_KIND.get(feature_kind, feature_kind)


def _summaries(
    con: duckdb.DuckDBPyConnection, batch_id: str
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The batch's numeric drift summaries, categorical summaries and contingency tables."""
    numeric = con.execute(
        f"""
        select model_name, feature_name, feature_kind, n_ref, n_cur, missing_ref, missing_cur,
            ks_d, wasserstein, wasserstein_norm, psi, js_distance
        from {FCT_DRIFT_NUMERIC} where batch_id = ?
        """,
        [batch_id],
    ).df()
    summary = con.execute(
        f"""
        select model_name, feature_name, feature_kind, n_ref, n_cur, missing_ref, missing_cur,
            linf, js_distance, unseen_share_cur
        from {FCT_DRIFT_CATEGORICAL_SUMMARY} where batch_id = ?
        """,
        [batch_id],
    ).df()
    tables = con.execute(
        f"""
        select model_name, feature_name, category, n_ref, n_cur
        from {FCT_DRIFT_CATEGORICAL} where batch_id = ? and category <> '__missing__'
        order by model_name, feature_name, category
        """,
        [batch_id],
    ).df()
    return numeric, summary, tables


def _keys(record: Any, extra: list[str]) -> dict[str, Any]:
    """The record's group keys beyond the model (the timeline's evaluation_date)."""
    return {key: getattr(record, key) for key in extra}


def _missing_row(record: Any, floors: EffectFloors, extra: list[str]) -> dict[str, Any]:
    """The two-proportion test of the missing rate of one feature."""
    total_ref = int(record.n_ref) + int(record.missing_ref)
    total_cur = int(record.n_cur) + int(record.missing_cur)
    z, p = two_proportion_test(
        int(record.missing_ref), total_ref, int(record.missing_cur), total_cur
    )
    rate_ref = record.missing_ref / total_ref if total_ref else float("nan")
    rate_cur = record.missing_cur / total_cur if total_cur else float("nan")
    return _keys(record, extra) | {
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


def _numeric_rows(
    numeric: pd.DataFrame, floors: EffectFloors, extra: list[str]
) -> list[dict[str, Any]]:
    """KS (exact p-value from D, n, m) and the missing rate, per numeric feature."""
    rows: list[dict[str, Any]] = []
    for record in numeric.itertuples(index=False):
        n_ref, n_cur = int(record.n_ref), int(record.n_cur)
        rows.append(
            _keys(record, extra)
            | {
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
                    "psi": getattr(record, "psi", None),
                    "js_distance": getattr(record, "js_distance", None),
                },
            }
        )
        rows.append(_missing_row(record, floors, extra))
    return rows


def _categorical_rows(
    summary: pd.DataFrame, tables: pd.DataFrame, floors: EffectFloors, extra: list[str]
) -> list[dict[str, Any]]:
    """Chi-square homogeneity, the unseen share and the missing rate, per categorical feature."""
    rows: list[dict[str, Any]] = []
    keys = ["model_name", *extra, "feature_name"]
    by_feature = {key: table for key, table in tables.groupby(keys)} if not tables.empty else {}
    for record in summary.itertuples(index=False):
        table = by_feature.get(tuple(getattr(record, key) for key in keys), tables.iloc[0:0])
        statistic, p_value, dof = chi2_homogeneity(
            table.n_ref.astype(int).tolist(), table.n_cur.astype(int).tolist()
        )
        if int(record.n_ref) == 0 or int(record.n_cur) == 0:
            p_value = float("nan")
        common = _keys(record, extra) | {
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
                "details": {"js_distance": getattr(record, "js_distance", None), "dof": dof},
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
        rows.append(_missing_row(record, floors, extra))
    return rows


def drift_tests(con: duckdb.DuckDBPyConnection, batch_id: str, policy: Policy) -> pd.DataFrame:
    """One row per (model, feature, test) of the batch: statistic, p-value, BH-adjusted p-value,
    effect size against its floor, and the gated, persistent drift flag."""
    numeric, summary, tables = _summaries(con, batch_id)
    results = test_rows(numeric, summary, tables, policy, ["model_name"])
    if results.empty:
        return results
    results["is_drift"] = _persistent(con, batch_id, results, policy)
    results["batch_id"] = batch_id
    results["details"] = results.details.map(lambda d: json.dumps(d, default=float))
    results["policy_version"] = policy.policy_version
    return results


def test_rows(
    numeric: pd.DataFrame,
    summary: pd.DataFrame,
    tables: pd.DataFrame,
    policy: Policy,
    group_by: list[str],
) -> pd.DataFrame:
    """The tests of the numeric summaries, categorical summaries and contingency tables given,
    Benjamini-Hochberg adjusted across the tests of each ``group_by`` group (a model's batch, or
    a model's day of the timeline), gated by significance, effect floor and sample size
    (``is_drift_now``). Columns of ``group_by`` beyond model_name come along from the inputs."""
    extra = [key for key in group_by if key != "model_name"]
    floors = policy.drift.effect_size_floors
    results = pd.DataFrame(
        _numeric_rows(numeric, floors, extra) + _categorical_rows(summary, tables, floors, extra)
    )
    if results.empty:
        return results
    results["p_adjusted"] = np.nan
    by = group_by[0] if len(group_by) == 1 else group_by
    for _, index in results.groupby(by).groups.items():
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
    return results


def _persistent(
    con: duckdb.DuckDBPyConnection, batch_id: str, results: pd.DataFrame, policy: Policy
) -> pd.Series:
    """Drift counts only when it held in at least k of the last m batches (this one included)."""
    k, m = policy.drift.persistence.k, policy.drift.persistence.m
    if m == 1:
        return results.is_drift_now.copy()
    history = con.execute(
        f"""
        with recent as (
            select distinct batch_id from {DRIFT_RESULTS} where batch_id < ?
            order by batch_id desc limit ?
        )
        select model_name, feature_name, test, sum(case when is_drift_now then 1 else 0 end)
        from {DRIFT_RESULTS} where batch_id in (select batch_id from recent)
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

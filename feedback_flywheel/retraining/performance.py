"""Performance checks over the warehouse's labelled-performance summaries.

``marts.fct_performance_windows`` holds labelled and correct counts per model version and segment
in a current and a reference window. From them come the overall accuracy change, its split per
segment attribute into the part the shift of the segment mix explains (covariate) and the
residual (concept), and the within-segment change per segment value (all BH-adjusted). Results go
to ``ml.performance_checks``. The confidence-based accuracy estimate of the current window before
its labels arrive is a mart of the batch's own build (``marts.fct_performance_estimates``).
"""

from __future__ import annotations

import math
from typing import Any

import duckdb
import numpy as np
import pandas as pd
from scipy import stats

from feedback_flywheel.config.policies import Policy
from feedback_flywheel.retraining.stats import Z95, bh_adjust, two_proportion_test
from feedback_flywheel.warehouse.catalogue import FCT_PERFORMANCE_WINDOWS
from feedback_flywheel.warehouse.schema import PERFORMANCE_CHECKS

#: the columns of ml.performance_checks the stage computes
PERFORMANCE_COLUMNS = tuple(c for c in PERFORMANCE_CHECKS.column_names if c != "computed_at")
_WINDOW_COUNTS = (
    "labelled_count_reference",
    "labelled_count_current",
    "correct_count_reference",
    "correct_count_current",
)


def _rate(correct: float, total: float) -> float:
    return correct / total if total else float("nan")


def _window_counts(con: duckdb.DuckDBPyConnection, batch_id: str) -> pd.DataFrame:
    """One row per (model, version, segment attribute, value) with the labelled and correct
    counts of both windows side by side (0 where a window has none)."""
    windows = con.execute(
        f"""
        select model_name, model_version, segment_attribute, segment_value, window_side,
            labelled_count, correct_count
        from {FCT_PERFORMANCE_WINDOWS} where batch_id = ?
        """,
        [batch_id],
    ).df()
    if windows.empty:
        return windows
    pivot = windows.pivot_table(
        index=["model_name", "model_version", "segment_attribute", "segment_value"],
        columns="window_side",
        values=["labelled_count", "correct_count"],
        aggfunc="sum",
        fill_value=0,
    )
    pivot.columns = [f"{value}_{side}" for value, side in pivot.columns]
    for column in _WINDOW_COUNTS:
        if column not in pivot:
            pivot[column] = 0
    return pivot.reset_index()


def _overall_row(base: dict[str, Any], overall: Any, policy: Policy) -> dict[str, Any]:
    """The version's accuracy change between the windows, flagged as a performance drop."""
    drop = policy.signals.performance_drop
    n_ref, n_cur = int(overall.labelled_count_reference), int(overall.labelled_count_current)
    x_ref, x_cur = int(overall.correct_count_reference), int(overall.correct_count_current)
    acc_ref, acc_cur = _rate(x_ref, n_ref), _rate(x_cur, n_cur)
    _, p = two_proportion_test(x_ref, n_ref, x_cur, n_cur)
    return base | {
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
            and p < policy.drift.alpha
            and acc_cur - acc_ref <= -drop.min_drop
        ),
    }


def _decomposition_row(
    base: dict[str, Any], overall: dict[str, Any], attribute: str, by_value: pd.DataFrame
) -> dict[str, Any]:
    """The accuracy change split, for one segment attribute, into the part the change of the
    segment mix explains (the reference accuracy re-weighted by the current mix) and the residual
    concept part, with its 95% interval and p-value."""
    n_cur, acc_ref, acc_cur = overall["n_cur"], overall["accuracy_ref"], overall["accuracy_cur"]
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
    return base | {
        "check_name": "concept_decomposition",
        "segment_attribute": attribute,
        "segment_value": "__all__",
        "n_ref": overall["n_ref"],
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


def _segment_row(base: dict[str, Any], record: Any) -> dict[str, Any]:
    """The within-segment accuracy change of one segment value, with its 95% interval."""
    s_ref, s_cur = int(record.labelled_count_reference), int(record.labelled_count_current)
    y_ref, y_cur = int(record.correct_count_reference), int(record.correct_count_current)
    a_ref, a_cur = _rate(y_ref, s_ref), _rate(y_cur, s_cur)
    _, p = two_proportion_test(y_ref, s_ref, y_cur, s_cur)
    se = (
        math.sqrt(a_ref * (1 - a_ref) / s_ref + a_cur * (1 - a_cur) / s_cur)
        if s_ref and s_cur
        else float("nan")
    )
    return base | {
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


def performance_checks(
    con: duckdb.DuckDBPyConnection, batch_id: str, policy: Policy
) -> pd.DataFrame:
    """Accuracy change per model version, its split into covariate and concept parts per segment
    attribute, and the within-segment change per segment value (BH-adjusted)."""
    pivot = _window_counts(con, batch_id)
    if pivot.empty:
        return pd.DataFrame()
    concept = policy.signals.concept_drift
    alpha = policy.drift.alpha
    rows: list[dict[str, Any]] = []
    for (model, version), group in pivot.groupby(["model_name", "model_version"]):
        base = {"model_name": model, "model_version": version}
        overall = _overall_row(base, group[group.segment_attribute == "__all__"].iloc[0], policy)
        rows.append(overall)
        segments = group[group.segment_attribute != "__all__"]
        decomposition_rows = [
            _decomposition_row(base, overall, attribute, by_value)
            for attribute, by_value in segments.groupby("segment_attribute")
        ]
        # one decomposition per segment attribute: correct for testing several of them
        _flag_drops(
            decomposition_rows, "concept_part", concept.min_labelled, concept.min_drop, alpha
        )
        rows += decomposition_rows
        segment_rows = [_segment_row(base, record) for record in segments.itertuples(index=False)]
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

"""The Python stage of monitoring, checked against scipy and hand-computable cases: KS and
chi-square p-values, Benjamini-Hochberg, the covariate/concept split, the estimate, the policy
and the decision rules."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from feedback_flywheel.config.policies import PolicyError, load_policy
from feedback_flywheel.retraining import decision, performance
from feedback_flywheel.retraining import stats as flywheel_stats
from feedback_flywheel.warehouse import init_warehouse
from tests.python.helpers import DemoWarehouse, default_policy


@pytest.mark.parametrize(
    ("n_ref", "n_cur", "high"),
    [(40, 65, 6), (900, 1500, 30), (3000, 2000, 12), (12000, 20000, 50), (50000, 70000, 8)],
)
def test_ks_pvalue_equals_scipy_ks_2samp_including_ties(n_ref, n_cur, high) -> None:
    rng = np.random.default_rng(n_ref)
    ref = rng.integers(0, high, n_ref)  # integers: many ties
    cur = rng.integers(0, high + 1, n_cur)
    expected = stats.ks_2samp(ref, cur)
    assert flywheel_stats.ks_pvalue(expected.statistic, n_ref, n_cur) == pytest.approx(
        expected.pvalue, rel=1e-9, abs=1e-12
    )


def test_chi2_homogeneity_equals_chi2_contingency() -> None:
    n_ref, n_cur = [120, 340, 55, 0, 9], [100, 410, 20, 7, 0]
    expected = stats.chi2_contingency(np.array([n_ref, n_cur]), correction=False)
    statistic, p_value, dof = flywheel_stats.chi2_homogeneity(n_ref, n_cur)
    assert statistic == pytest.approx(expected.statistic, abs=1e-9)
    assert p_value == pytest.approx(expected.pvalue, abs=1e-12)
    assert dof == expected.dof


def test_chi2_on_a_single_bucket_is_no_evidence() -> None:
    assert flywheel_stats.chi2_homogeneity([10, 0], [5, 0]) == (0.0, 1.0, 0)


def test_bh_adjust_matches_the_textbook_step_up_procedure() -> None:
    p = np.array([0.001, 0.04, 0.03, 0.2, np.nan, 0.01, 0.5])
    valid = p[~np.isnan(p)]
    order = np.argsort(valid)
    ranked = valid[order] * len(valid) / np.arange(1, len(valid) + 1)
    stepped = np.minimum.accumulate(ranked[::-1])[::-1].clip(max=1)
    expected = np.empty_like(valid)
    expected[order] = stepped
    adjusted = flywheel_stats.bh_adjust(p)
    assert np.isnan(adjusted[4])
    np.testing.assert_allclose(adjusted[~np.isnan(p)], expected, atol=1e-12)


def test_two_proportion_test_matches_a_direct_computation() -> None:
    z, p = flywheel_stats.two_proportion_test(80, 100, 60, 100)
    pooled = 140 / 200
    expected_z = (0.6 - 0.8) / np.sqrt(pooled * (1 - pooled) * (2 / 100))
    assert z == pytest.approx(expected_z)
    assert p == pytest.approx(2 * stats.norm.sf(abs(expected_z)))


def _windows_db(tmp_path: Path, rows: list[tuple]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(tmp_path / "perf.duckdb"))
    con.execute("create schema marts")
    frame = pd.DataFrame(
        rows,
        columns=[
            "segment_attribute",
            "segment_value",
            "window_side",
            "labelled_count",
            "correct_count",
        ],
    )
    frame["batch_id"] = "b1"
    frame["model_name"] = "m"
    frame["model_version"] = "v1"
    con.register("windows_frame", frame)
    con.execute("create table marts.fct_performance_windows as select * from windows_frame")
    return con


def _segments(acc_a_ref, acc_b_ref, n_a_ref, n_b_ref, acc_a_cur, acc_b_cur, n_a_cur, n_b_cur):
    def part(value, side, n, acc):
        return ("region", value, side, n, round(n * acc))

    segment_rows = [
        part("a", "reference", n_a_ref, acc_a_ref),
        part("b", "reference", n_b_ref, acc_b_ref),
        part("a", "current", n_a_cur, acc_a_cur),
        part("b", "current", n_b_cur, acc_b_cur),
    ]
    overall = []
    for side in ("reference", "current"):
        n = sum(row[3] for row in segment_rows if row[2] == side)
        x = sum(row[4] for row in segment_rows if row[2] == side)
        overall.append(("__all__", "__all__", side, n, x))
    return segment_rows + overall


def test_a_pure_covariate_shift_is_explained_by_the_covariate_part(tmp_path: Path) -> None:
    # within-segment accuracy unchanged; the mix moves towards the worse segment b
    rows = _segments(0.9, 0.6, 8000, 2000, 0.9, 0.6, 2000, 8000)
    con = _windows_db(tmp_path, rows)
    checks = performance.performance_checks(con, "b1", default_policy())
    split = checks[checks.check_name == "concept_decomposition"].iloc[0]
    acc_ref = (0.9 * 8000 + 0.6 * 2000) / 10000
    acc_cur = (0.9 * 2000 + 0.6 * 8000) / 10000
    assert split.accuracy_change == pytest.approx(acc_cur - acc_ref)
    assert split.covariate_part == pytest.approx(acc_cur - acc_ref)
    assert split.concept_part == pytest.approx(0.0, abs=1e-12)
    assert split.concept_lower < 0 < split.concept_upper
    assert not split.is_flagged
    segments = checks[checks.check_name == "segment_concept"]
    assert not segments.is_flagged.any()


def test_a_concept_change_in_one_segment_is_attributed_to_it(tmp_path: Path) -> None:
    # same mix; segment b's accuracy drops from 0.8 to 0.5
    rows = _segments(0.85, 0.8, 5000, 1000, 0.85, 0.5, 5000, 1000)
    con = _windows_db(tmp_path, rows)
    checks = performance.performance_checks(con, "b1", default_policy())
    split = checks[checks.check_name == "concept_decomposition"].iloc[0]
    assert split.covariate_part == pytest.approx(0.0, abs=1e-12)
    assert split.concept_part == pytest.approx(split.accuracy_change)
    assert split.concept_upper < 0
    segments = checks[checks.check_name == "segment_concept"].set_index("segment_value")
    assert bool(segments.loc["b", "is_flagged"])
    assert not bool(segments.loc["a", "is_flagged"])
    assert segments.loc["b", "accuracy_change"] == pytest.approx(-0.3)


def test_estimated_accuracy_mart_matches_an_independent_computation_from_the_bins(
    demo_warehouse: DemoWarehouse,
) -> None:
    """fct_performance_estimates, recomputed in numpy from fct_calibration_bins by the documented
    rule: each current prediction counts with its score bin's accuracy on the reference window's
    labels (the bin's mean current score where the reference has no label)."""
    with demo_warehouse.connect() as con:
        bins = con.execute("select * from marts.fct_calibration_bins").df()
        estimates = con.execute("select * from marts.fct_performance_estimates").df()
    assert len(estimates) and estimates.performance_estimate_id.is_unique
    checked = 0
    for (batch_id, model, version), group in bins.groupby(
        ["batch_id", "model_name", "model_version"]
    ):
        predictions = group.current_predictions.fillna(0).to_numpy(dtype=float)
        if predictions.sum() == 0:
            assert not (
                (estimates.batch_id == batch_id) & (estimates.model_version == version)
            ).any()
            continue
        labelled = group.reference_labelled.fillna(0).to_numpy(dtype=float)
        correct = group.reference_correct.fillna(0).to_numpy(dtype=float)
        scores = group.current_score_sum.fillna(0).to_numpy(dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            bin_accuracy = np.where(labelled > 0, correct / labelled, scores / predictions)
        weighted = np.nansum(np.where(predictions > 0, predictions * bin_accuracy, 0.0))
        (row,) = estimates[
            (estimates.batch_id == batch_id)
            & (estimates.model_name == model)
            & (estimates.model_version == version)
        ].itertuples()
        assert row.predictions == predictions.sum()
        assert row.uncalibrated_estimate == pytest.approx(scores.sum() / predictions.sum())
        if labelled.sum() > 0:
            assert row.estimated_accuracy == pytest.approx(weighted / predictions.sum())
            assert row.reference_accuracy == pytest.approx(correct.sum() / labelled.sum())
            checked += 1
        else:
            assert pd.isna(row.estimated_accuracy)
    assert checked >= 3


def test_the_policy_file_is_valid_and_versioned() -> None:
    policy = default_policy()
    assert policy.policy_version.startswith("p1-")
    assert policy.signals.covariate_drift.enabled


def test_an_invalid_policy_names_the_key(tmp_path: Path) -> None:
    text = Path(default_policy().source).read_text()
    bad = tmp_path / "policy.yml"
    bad.write_text(text.replace("retrain_when: impact", "retrain_when: sometimes"))
    with pytest.raises(PolicyError, match=r"retrain_when.*'impact', 'any' or 'all'"):
        load_policy(bad)
    bad.write_text(text.replace("kind: builtin", "kind: deployment"))
    with pytest.raises(PolicyError, match="deployment_name"):
        load_policy(bad)


def _signals(fired: dict[str, bool], has_data: bool = True) -> dict[str, decision.Signal]:
    return {
        name: decision.Signal(name, True, has_data, value, 1.0 if value else 0.0, 1.0)
        for name, value in fired.items()
    }


def test_decide_retrain_hold_cooldown_and_insufficient_data(tmp_path: Path) -> None:
    policy = default_policy().model_copy(update={"retrain_when": "any"})
    con = duckdb.connect(str(tmp_path / "d.duckdb"))
    con.execute("create schema ml")
    init_warehouse(con)
    t0 = datetime(2026, 2, 1)
    common = {"model_name": "m", "dataset_version": "ds-x", "policy": policy}
    quiet = decision.decide(
        con,
        batch_id="b1",
        watermark_at=t0,
        signals=_signals({"covariate_drift": False}),
        **common,
    )
    assert quiet.decision == "hold"
    blind = decision.decide(
        con,
        batch_id="b1",
        watermark_at=t0,
        signals=_signals({"covariate_drift": True}, has_data=False),
        **common,
    )
    assert blind.decision == "insufficient_data"
    first = decision.decide(
        con,
        batch_id="b2",
        watermark_at=t0,
        signals=_signals({"covariate_drift": True}),
        **common,
    )
    assert first.decision == "retrain"
    assert "covariate_drift" in first.reason
    decision.record_decision(
        con,
        first,
        policy,
        audit_key=b"k" * 32,
        is_dry_run=False,
        trigger_status="triggered",
        triggered_run_id="tr-1",
        decided_at=t0,
    )
    soon = t0 + timedelta(days=policy.cooldown_days - 1)
    again = decision.decide(
        con,
        batch_id="b3",
        watermark_at=soon,
        signals=_signals({"covariate_drift": True}),
        **common,
    )
    assert again.decision == "hold"
    assert "cooldown" in again.reason
    later = t0 + timedelta(days=policy.cooldown_days + 1)
    after = decision.decide(
        con,
        batch_id="b4",
        watermark_at=later,
        signals=_signals({"covariate_drift": True}),
        **common,
    )
    assert after.decision == "retrain"
    assert decision.existing_decision(con, "b2", "m")["triggered_run_id"] == "tr-1"

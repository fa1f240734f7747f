"""Signal fidelity (models/reports/calibration/rpt_feedback_fidelity.sql) on the demo world.

Every statistic of every group is recomputed here from the published feedback and labels with
scikit-learn (agreement, Cohen's kappa, precision, recall, false-positive rate) and scipy
(Spearman's rho, Wilson intervals), on the same rows, to 1e-9. And the measured rates of click,
thumbs and conversion given a right and a wrong prediction match what the demo world drew them
with (truth.json's implicit_agreement) within their 95% intervals.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import accuracy_score, cohen_kappa_score, precision_score, recall_score

from tests.python.helpers import project_vars

Z95 = stats.norm.ppf(0.975)
SIGNALS = ("click", "conversion", "thumbs", "dwell_seconds", "rating")
PAIRS = [
    (s, r)
    for s in ("click", "conversion", "thumbs", "dwell_seconds")
    for r in ("rating", "correctness")
]
PAIRS.append(("rating", "correctness"))


@pytest.fixture(scope="module")
def report(demo_warehouse) -> pd.DataFrame:
    with demo_warehouse.connect() as con:
        return con.execute("select * from marts.rpt_feedback_fidelity").df()


@pytest.fixture(scope="module")
def signals(demo_warehouse) -> pd.DataFrame:
    """Each prediction's signals, rebuilt in pandas from fct_feedback and the current labels
    (not read from fct_feedback_signals), with its week, version and segments."""
    with demo_warehouse.connect() as con:
        feedback = con.execute(
            "select inference_id, model_name, model_version, inference_logged_at, event_type, "
            "value_numeric, occurred_at, event_id from marts.fct_feedback "
            f"where not is_retracted and event_type in {SIGNALS}"
        ).df()
        labels = con.execute(
            "select inference_id, is_correct from marts.fct_training_examples where is_current"
        ).df()
        segments = con.execute(
            "select inference_id, segment_attribute, segment_value "
            "from marts.fct_inference_segments"
        ).df()
    latest = (
        feedback.sort_values(["occurred_at", "event_id"])
        .groupby(["inference_id", "event_type"])
        .tail(1)
    )
    wide = latest.pivot(index="inference_id", columns="event_type", values="value_numeric")
    meta = latest.groupby("inference_id")[
        ["model_name", "model_version", "inference_logged_at"]
    ].first()
    frame = meta.join(wide).join(labels.set_index("inference_id"))
    logged = pd.to_datetime(frame["inference_logged_at"])
    frame["week"] = (
        logged.dt.normalize() - pd.to_timedelta(logged.dt.day_of_week, unit="D")
    ).dt.strftime("%Y-%m-%d")
    attributes = project_vars().segment_attributes
    pivoted = segments[segments.segment_attribute.isin(attributes)].pivot(
        index="inference_id", columns="segment_attribute", values="segment_value"
    )
    frame = frame.join(pivoted)
    for attribute in attributes:
        if attribute not in frame:
            frame[attribute] = None
        frame[attribute] = frame[attribute].fillna("__missing__")
    return frame.reset_index()


def _positive(frame: pd.DataFrame, name: str) -> np.ndarray:
    vars_ = project_vars()
    if name == "correctness":
        return frame["is_correct"].astype(bool).to_numpy()
    if name == "thumbs":
        return (frame[name] > 0).to_numpy()
    if name == "dwell_seconds":
        return (frame[name] >= vars_.fidelity_dwell_positive_seconds).to_numpy()
    if name == "rating":
        return (frame[name] >= vars_.fidelity_rating_positive_at).to_numpy()
    return (frame[name] == 1).to_numpy()


def _values(frame: pd.DataFrame, name: str) -> np.ndarray:
    column = "is_correct" if name == "correctness" else name
    return frame[column].astype(float).to_numpy()


def _groups(frame: pd.DataFrame):
    yield "__overall__", "__all__", frame
    for breakdown, column in [("week", "week"), ("model_version", "model_version")]:
        for value, group in frame.groupby(column):
            yield breakdown, value, group
    for attribute in project_vars().segment_attributes:
        for value, group in frame.groupby(attribute):
            yield attribute, value, group


def _wilson(successes: int, trials: int) -> tuple[float, float]:
    interval = stats.binomtest(successes, trials).proportion_ci(method="wilson")
    return interval.low, interval.high


def _expected_rows(signals: pd.DataFrame) -> dict[tuple, dict]:
    column = {"correctness": "is_correct"}
    min_count = project_vars().fidelity_min_group_count
    expected = {}
    for model_name, by_model in signals.groupby("model_name"):
        for signal, reference in PAIRS:
            both = by_model[
                by_model[signal].notna() & by_model[column.get(reference, reference)].notna()
            ]
            for breakdown, value, group in _groups(both):
                key = (model_name, signal, reference, breakdown, value)
                s, r = _positive(group, signal), _positive(group, reference)
                row = {"overlap_count": len(group), "suppressed": len(group) < min_count}
                if not row["suppressed"]:
                    row["agreement_rate"] = accuracy_score(r, s)
                    row["kappa_counts"] = (int(s.sum()), int(r.sum()))
                    row["cohen_kappa"] = (
                        cohen_kappa_score(r, s) if len(set(s) | set(r)) > 1 else None
                    )
                    row["precision_rate"] = precision_score(r, s, zero_division=np.nan)
                    row["recall_rate"] = recall_score(r, s, zero_division=np.nan)
                    row["false_positive_rate"] = (
                        1 - recall_score(~r, ~s, zero_division=np.nan) if (~r).any() else np.nan
                    )
                    row["agreement_interval"] = _wilson(int((s == r).sum()), len(group))
                    row["recall_interval"] = (
                        _wilson(int((s & r).sum()), int(r.sum())) if r.any() else None
                    )
                    if signal in ("dwell_seconds", "rating") or reference in (
                        "dwell_seconds",
                        "rating",
                    ):
                        rho = stats.spearmanr(
                            _values(group, signal), _values(group, reference)
                        ).statistic
                        row["rank_correlation"] = rho
                        z = np.arctanh(rho)
                        half = Z95 / math.sqrt(len(group) - 3)
                        row["rank_interval"] = (np.tanh(z - half), np.tanh(z + half))
                expected[key] = row
    return expected


def _close(actual, expected) -> bool:
    if expected is None or (isinstance(expected, float) and math.isnan(expected)):
        return actual is None or (isinstance(actual, float) and math.isnan(actual))
    return actual is not None and abs(actual - expected) <= 1e-9


def test_fct_feedback_signals_holds_the_latest_signal_of_each_type(demo_warehouse, signals):
    with demo_warehouse.connect() as con:
        mart = (
            con.execute("select * from marts.fct_feedback_signals").df().set_index("inference_id")
        )
    mine = signals.set_index("inference_id")
    assert set(mart.index) == set(mine.index)
    for name in (*SIGNALS, "is_correct"):
        left, right = mart[name].loc[mine.index], mine[name]
        both_null = left.isna() & right.isna()
        assert (both_null | (left == right)).all(), name


def test_every_fidelity_statistic_equals_sklearn_and_scipy_on_the_same_rows(report, signals):
    expected = _expected_rows(signals)
    actual = report.set_index(
        ["model_name", "signal_name", "reference_name", "breakdown", "breakdown_value"]
    )
    assert set(actual.index) == set(expected), set(actual.index) ^ set(expected)
    checked = 0
    for key, row in expected.items():
        got = actual.loc[key]
        assert got["overlap_count"] == row["overlap_count"], key
        assert bool(got["is_suppressed"]) == row["suppressed"], key
        if row["suppressed"]:
            assert all(
                pd.isna(got[c]) for c in ("agreement_rate", "cohen_kappa", "rank_correlation")
            ), key
            continue
        for name in (
            "agreement_rate",
            "cohen_kappa",
            "precision_rate",
            "recall_rate",
            "false_positive_rate",
        ):
            value = None if pd.isna(got[name]) else float(got[name])
            assert _close(value, row[name]), (key, name, value, row[name])
        assert _close(float(got["agreement_rate_lower"]), row["agreement_interval"][0]), key
        assert _close(float(got["agreement_rate_upper"]), row["agreement_interval"][1]), key
        if row["recall_interval"] is not None:
            assert _close(float(got["recall_rate_lower"]), row["recall_interval"][0]), key
            assert _close(float(got["recall_rate_upper"]), row["recall_interval"][1]), key
        if "rank_correlation" in row:
            assert _close(float(got["rank_correlation"]), row["rank_correlation"]), key
            assert _close(float(got["rank_correlation_lower"]), row["rank_interval"][0]), key
            assert _close(float(got["rank_correlation_upper"]), row["rank_interval"][1]), key
        else:
            assert pd.isna(got["rank_correlation"]), key
        if not pd.isna(got["cohen_kappa"]):
            # Cohen's (1960) standard error, from the confusion counts recomputed here
            po, n = row["agreement_rate"], row["overlap_count"]
            pe = (
                row["kappa_counts"][0] * row["kappa_counts"][1]
                + (n - row["kappa_counts"][0]) * (n - row["kappa_counts"][1])
            ) / n**2
            se = math.sqrt(po * (1 - po) / (n * (1 - pe) ** 2))
            assert _close(float(got["cohen_kappa_lower"]), row["cohen_kappa"] - Z95 * se), key
            assert _close(float(got["cohen_kappa_upper"]), row["cohen_kappa"] + Z95 * se), key
        checked += 1
    assert checked >= 50  # most groups of the demo world are large enough to report


@pytest.mark.parametrize(
    ("signal", "given_correct", "given_wrong"),
    [
        ("click", "p_click_given_correct", "p_click_given_wrong"),
        ("thumbs", "p_up_given_correct", "p_up_given_wrong"),
        ("conversion", "p_convert_given_correct", "p_convert_given_wrong"),
    ],
)
def test_measured_agreement_with_correctness_matches_the_world_within_the_interval(
    demo_warehouse, report, signal, given_correct, given_wrong
):
    """recall_rate = P(signal | right), false_positive_rate = P(signal | wrong), per model over
    all time: each 95% interval holds the rate the demo world drew the signal with."""
    truth = demo_warehouse.truth["implicit_agreement"][signal]
    rows = report[
        (report.signal_name == signal)
        & (report.reference_name == "correctness")
        & (report.breakdown == "__overall__")
    ]
    assert len(rows) >= 1
    for row in rows.itertuples():
        assert row.recall_rate_lower <= truth[given_correct] <= row.recall_rate_upper, row
        assert (
            row.false_positive_rate_lower <= truth[given_wrong] <= row.false_positive_rate_upper
        ), row
        # a signal that is more likely after a right prediction agrees beyond chance
        assert row.cohen_kappa_lower > 0, row

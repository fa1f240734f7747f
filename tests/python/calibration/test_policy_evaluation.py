"""The query policies and the offline evaluation's statistics, without a warehouse.

Picks are checked against what each policy's rule says, computed here another way; the built-in
model's accuracy against scikit-learn's logistic regression fitted to the same design matrix;
the intervals against scipy's one-sample t test and the area against numpy's trapezoid.
"""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from sklearn.linear_model import LogisticRegression

from feedback_flywheel.calibration import evaluation, policies
from feedback_flywheel.retraining.features import learn_features, parse_features
from feedback_flywheel.retraining.logistic import DEFAULT_L2


def _pool(rows: int, labels: int, seed: int, missing_share: float = 0.1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    top1 = rng.uniform(0.34, 1.0, rows)
    top2 = rng.uniform(0.0, 1.0, rows) * (1 - top1)
    entropy = rng.uniform(0, 1.1, rows)
    missing = rng.uniform(size=rows) < missing_share
    return pd.DataFrame(
        {
            "inference_id": [f"inf-{seed}-{index:05d}" for index in range(rows)],
            "label": rng.choice([f"c{k}" for k in range(labels)], rows),
            "least_confidence_score": np.where(missing, np.nan, 1 - top1),
            "margin_score": 1 - (top1 - top2),
            "entropy_score": np.where(missing, np.nan, entropy),
        }
    )


def test_the_sample_key_is_the_dbt_hash_fraction() -> None:
    # macros/cross_db/hashing.sql: the first 8 hex digits of md5("<key>:<seed>") over 2**32
    digest = hashlib.md5(b"inf-7:42").hexdigest()
    assert policies.sample_key("inf-7", 42) == int(digest[:8], 16) / 2**32
    assert 0 <= policies.sample_key("anything", 0) < 1


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(0, 80),
    labels=st.integers(1, 4),
    budget=st.integers(0, 100),
    seed=st.integers(0, 10_000),
    policy=st.sampled_from(policies.POLICIES),
)
def test_every_policy_takes_the_budget_or_the_whole_pool_without_repeats(
    rows: int, labels: int, budget: int, seed: int, policy: str
) -> None:
    pool = _pool(rows, labels, seed)
    picks = policies.pick(pool, policy, budget, seed)
    assert len(picks) == min(budget, rows)
    assert len(set(picks.tolist())) == len(picks)


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 120), budget=st.integers(1, 60), seed=st.integers(0, 10_000))
def test_random_takes_the_smallest_sample_keys(rows: int, budget: int, seed: int) -> None:
    pool = _pool(rows, 3, seed)
    keys = [policies.sample_key(inference_id, seed) for inference_id in pool.inference_id]
    expected = sorted(range(rows), key=lambda position: keys[position])[:budget]
    assert policies.pick(pool, "random", budget, seed).tolist() == expected


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 120), budget=st.integers(1, 60), seed=st.integers(0, 10_000))
def test_stratified_takes_the_labels_in_turn(rows: int, budget: int, seed: int) -> None:
    pool = _pool(rows, 3, seed)
    picked = pool.iloc[policies.pick(pool, "stratified", budget, seed)]
    counts = picked.label.value_counts()
    available = pool.label.value_counts()
    # a label has fewer than another only when it has run out of rows
    for label, count in counts.items():
        for other, other_count in counts.items():
            if other_count > count + 1:
                assert count == available[label], (label, other)
    # within a label, the smallest sample keys
    for label, group in picked.groupby("label"):
        keys = pool[pool.label == label].inference_id.map(lambda i: policies.sample_key(i, seed))
        assert (
            sorted(group.inference_id.map(lambda i: policies.sample_key(i, seed)))
            == sorted(keys)[: len(group)]
        )


@pytest.mark.parametrize("policy", policies.UNCERTAINTY_POLICIES)
def test_uncertainty_policies_take_the_highest_scores_then_the_unscored(policy: str) -> None:
    pool = _pool(200, 3, 11, missing_share=0.3)
    score = pool[f"{policy}_score"]
    scored = int(score.notna().sum())
    for budget in (1, 17, scored, scored + 5):
        picked = pool.iloc[policies.pick(pool, policy, budget, 11)]
        taken = picked[f"{policy}_score"]
        if budget <= scored:
            assert taken.notna().all()
            assert taken.min() >= score.nlargest(budget).min()
        else:
            assert taken.notna().sum() == scored


def test_mix_is_a_stratified_half_then_the_least_confident_of_the_rest() -> None:
    pool = _pool(300, 4, 3)
    for budget in (1, 2, 9, 40, 301):
        picks = policies.pick(pool, "mix", budget, 3)
        half = math.ceil(budget / 2)
        stratified = policies.pick(pool, "stratified", len(pool), 3)[:half]
        assert picks[:half].tolist() == stratified.tolist()
        rest = pool.drop(index=stratified)
        expected = (
            rest.assign(missing=rest.least_confidence_score.isna())
            .sort_values(["missing", "least_confidence_score"], ascending=[True, False])
            .index[: budget - half]
        )
        assert set(picks[half:].tolist()) == set(expected.tolist())


def _features(rows: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)

    def frame(count: int, offset: int) -> pd.DataFrame:
        x = rng.normal(size=(count, 2))
        colour = rng.choice(["red", "blue", "green"], count)
        logits = np.stack([x[:, 0], x[:, 1], -x[:, 0] + (colour == "red")], axis=1)
        labels = np.array(["a", "b", "c"])[(logits + rng.gumbel(size=logits.shape)).argmax(1)]
        return pd.DataFrame(
            {
                "inference_id": [f"x-{offset + index}" for index in range(count)],
                "label": labels,
                "features_json": [
                    json.dumps({"x0": float(a), "x1": float(b), "colour": str(c)})
                    for (a, b), c in zip(x, colour, strict=True)
                ],
                "sample_weight": 1.0,
            }
        )

    return frame(rows, 0), frame(400, rows)


def test_the_accuracy_is_the_built_in_model_scored_on_the_next_batch() -> None:
    pool, test = _features(150, 8)
    picks = np.arange(0, 150, 2)
    measured = evaluation.fitted_accuracy(pool, picks, test)
    # scikit-learn on the same design matrix: its C is 1 / (rows * l2) for our mean loss + l2 / 2
    train = pool.iloc[picks]
    records = parse_features(train.features_json)
    spec = learn_features(records)
    reference = LogisticRegression(C=1 / (len(train) * DEFAULT_L2), tol=1e-10, max_iter=10_000)
    reference.fit(spec.transform(records), train.label)
    predicted = reference.predict(spec.transform(parse_features(test.features_json)))
    assert measured == pytest.approx(float(np.mean(predicted == test.label)), abs=1e-9)


def test_a_pick_with_one_class_predicts_that_class() -> None:
    pool, test = _features(60, 2)
    only_a = np.flatnonzero(pool.label.to_numpy() == "a")[:5]
    assert evaluation.fitted_accuracy(pool, only_a, test) == float(np.mean(test.label == "a"))


def test_the_interval_is_the_one_sample_t_interval() -> None:
    values = np.array([0.71, 0.74, 0.69, 0.77, 0.72])
    mean, lower, upper = evaluation.t_interval(values)
    reference = stats.ttest_1samp(values, 0).confidence_interval(0.95)
    assert mean == pytest.approx(values.mean(), abs=1e-12)
    assert (lower, upper) == pytest.approx((reference.low, reference.high), abs=1e-12)
    assert evaluation.t_interval(np.array([0.5])) == (0.5, None, None)


def test_the_area_is_the_trapezoid_over_the_budget_range() -> None:
    budgets = np.array([400, 50, 100, 200])
    accuracy = np.array([0.9, 0.6, 0.7, 0.8])
    order = np.argsort(budgets)
    expected = np.trapezoid(accuracy[order], budgets[order]) / (400 - 50)
    assert evaluation.aulc(budgets, accuracy) == pytest.approx(expected, abs=1e-12)
    assert evaluation.aulc(np.array([10]), np.array([0.4])) == 0.4


def test_the_gain_is_paired_by_seed_against_random() -> None:
    rows = []
    rng = np.random.default_rng(0)
    for seed in range(5):
        for budget in (10, 20):
            base = 0.6 + 0.05 * rng.normal()
            rows.append(("random", budget, seed, base, budget))
            rows.append(("entropy", budget, seed, base + 0.02 + 0.001 * seed, budget))
    per_seed = pd.DataFrame(rows, columns=["policy", "budget", "seed", "accuracy", "picked_rows"])
    scores = evaluation.scores(per_seed).set_index("policy")
    gains = (
        per_seed[per_seed.policy == "entropy"].groupby("seed").accuracy.mean()
        - per_seed[per_seed.policy == "random"].groupby("seed").accuracy.mean()
    )
    reference = stats.ttest_1samp(gains.to_numpy(), 0).confidence_interval(0.95)
    assert scores.loc["entropy", "gain_mean"] == pytest.approx(gains.mean(), abs=1e-12)
    assert scores.loc["entropy", "gain_lower"] == pytest.approx(reference.low, abs=1e-12)
    assert scores.loc["entropy", "gain_lower"] > 0
    assert scores.loc["random", "gain_mean"] == 0.0

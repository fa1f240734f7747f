"""Offline evaluation of query policies: label-efficiency curves from logged, labelled batches.

For each pair of consecutive dataset batches (t, t+1) of a model, each policy
(:mod:`.policies`), budget and seed: the policy picks ``budget`` rows from the pool (the model's
labelled examples as of batch t), the built-in trainer's model
(:func:`~feedback_flywheel.retraining.logistic.fit_multinomial_logistic`, features learned on the
picks) is fitted on them, and scored by accuracy on the labels that entered in batch t+1 (rows
also in the pool are left out of it). A pick with one class predicts that class.

Per (policy, budget, seed) the accuracy is the mean over the pairs. The **curve** of a policy is
its accuracy per budget: the mean over seeds with a 95% Student-t interval across seeds. Its
**AULC** (area under the label-efficiency curve) is the trapezoid area under accuracy over the
budgets divided by their range (a mean accuracy; with one budget, that budget's accuracy), per
seed. Its **gain** is its AULC minus random's AULC of the same seed; both carry a 95% t interval
across seeds. Which policy is chosen from these is the mart ``fct_sampling_policy_scores``'s rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from feedback_flywheel.calibration.policies import BASELINE_POLICY, POLICIES, full_orders, pick
from feedback_flywheel.retraining.features import (
    DEFAULT_MAX_CATEGORIES,
    learn_features,
    parse_features,
)
from feedback_flywheel.retraining.logistic import DEFAULT_L2, fit_multinomial_logistic

CONFIDENCE = 0.95
#: the evaluation's fits stop at this gradient norm (the policies are ranked, not the weights)
EVALUATION_GTOL = 1e-6


@dataclass(frozen=True)
class BatchPair:
    """One evaluation pair: the pool as of ``train_batch_id`` and the labels of the next batch."""

    train_batch_id: str
    test_batch_id: str
    pool: pd.DataFrame  # inference_id, label, the three scores, features_json, sample_weight
    test: pd.DataFrame  # inference_id, label, features_json


def seeds_of(base_seed: int, count: int) -> list[int]:
    """The evaluation's seeds: ``base_seed``, ``base_seed + 1``, ... (``count`` of them)."""
    return [base_seed + offset for offset in range(count)]


class _LazyRecords:
    """``parse_features`` of a pool's ``features_json``, row by row as the fits ask for them
    (a pool holds every labelled example of the model; a fit reads a few hundred)."""

    def __init__(self, features_json: pd.Series) -> None:
        self._texts = features_json.to_numpy(dtype=object)
        self._parsed: dict[int, dict[str, Any]] = {}

    def __getitem__(self, position: int) -> dict[str, Any]:
        if position not in self._parsed:
            self._parsed[position] = parse_features([self._texts[position]])[0]
        return self._parsed[position]


def fitted_accuracy(
    pool: pd.DataFrame,
    picks: np.ndarray,
    test: pd.DataFrame,
    parsed: tuple[Any, list[dict[str, Any]]] | None = None,
) -> float:
    """Accuracy on ``test`` of the built-in model fitted on ``pool``'s rows at ``picks`` (the
    rows in pool order, so two policies that pick the same rows get the same fit).

    ``parsed``: the pool's and the test rows' ``features_json`` already parsed (one dict per
    row, :func:`parse_features`), when the caller fits many picks of the same pair.
    """
    pool_records, test_records = parsed or (
        parse_features(pool["features_json"]),
        parse_features(test["features_json"]),
    )
    picks = np.sort(picks)  # the fit is the same whatever order a policy picked the rows in
    train = pool.iloc[picks]
    labels = train["label"].astype(str).to_numpy()
    truth = test["label"].astype(str).to_numpy()
    classes = np.unique(labels)
    if len(classes) == 1:
        return float(np.mean(truth == classes[0]))
    records = [pool_records[position] for position in picks]
    spec = learn_features(records, max_categories=DEFAULT_MAX_CATEGORIES)
    weights = train["sample_weight"].astype(float).fillna(1.0).to_numpy()
    model = fit_multinomial_logistic(
        spec.transform(records), labels, weights, l2=DEFAULT_L2, gtol=EVALUATION_GTOL
    )
    probabilities = model.predict_proba(spec.transform(test_records))
    predicted = np.asarray(model.classes, dtype=object)[probabilities.argmax(axis=1)]
    return float(np.mean(predicted == truth))


def trials(
    pairs: Sequence[BatchPair], budgets: Sequence[int], seeds: Sequence[int]
) -> pd.DataFrame:
    """One row per (pair, policy, budget, seed): rows picked and the accuracy on the test rows.

    A pick identical to one already fitted on the same pair (a deterministic policy under another
    seed, or any policy once the budget covers the pool) reuses that fit's accuracy.
    """
    rows: list[dict[str, object]] = []
    for pair in pairs:
        fitted: dict[bytes, float] = {}
        parsed = (
            _LazyRecords(pair.pool["features_json"]),
            parse_features(pair.test["features_json"]),
        )
        orders = {seed: full_orders(pair.pool, seed) for seed in seeds}
        for policy in POLICIES:
            for seed in seeds:
                for budget in budgets:
                    picks = pick(pair.pool, policy, budget, seed, orders[seed])
                    key = np.sort(picks).tobytes()
                    if key not in fitted:
                        fitted[key] = fitted_accuracy(pair.pool, picks, pair.test, parsed)
                    rows.append(
                        {
                            "train_batch_id": pair.train_batch_id,
                            "test_batch_id": pair.test_batch_id,
                            "policy": policy,
                            "budget": int(budget),
                            "seed": int(seed),
                            "picked_rows": len(picks),
                            "pool_rows": len(pair.pool),
                            "test_rows": len(pair.test),
                            "accuracy": fitted[key],
                        }
                    )
    return pd.DataFrame(rows)


def t_interval(values: np.ndarray) -> tuple[float, float | None, float | None]:
    """(mean, lower, upper) of a 95% Student-t interval; no bounds below two values."""
    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, None, None
    spread = float(values.std(ddof=1))
    if spread == 0.0:
        return mean, mean, mean
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, len(values) - 1)) * spread / np.sqrt(len(values))
    return mean, mean - half, mean + half


def aulc(budgets: np.ndarray, accuracy: np.ndarray) -> float:
    """Trapezoid area under accuracy over budgets, divided by the budget range."""
    order = np.argsort(budgets)
    budgets, accuracy = np.asarray(budgets, float)[order], np.asarray(accuracy, float)[order]
    if len(budgets) == 1:
        return float(accuracy[0])
    widths = np.diff(budgets)
    return float(np.sum(widths * (accuracy[1:] + accuracy[:-1]) / 2) / (budgets[-1] - budgets[0]))


def curves(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Per (policy, budget): accuracy mean and 95% interval across seeds, seeds, test rows."""
    rows = []
    for (policy, budget), group in per_seed.groupby(["policy", "budget"], sort=True):
        mean, lower, upper = t_interval(group["accuracy"].to_numpy())
        rows.append(
            {
                "policy": policy,
                "budget": int(budget),
                "accuracy_mean": mean,
                "accuracy_lower": lower,
                "accuracy_upper": upper,
                "picked_rows": int(group["picked_rows"].max()),
                "seeds": int(group["seed"].nunique()),
            }
        )
    return pd.DataFrame(rows)


def scores(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Per policy: AULC and gain over random (mean and 95% interval across seeds)."""
    areas = (
        per_seed.groupby(["policy", "seed"], sort=True)[["budget", "accuracy"]]
        .apply(lambda group: aulc(group["budget"].to_numpy(), group["accuracy"].to_numpy()))
        .rename("aulc")
        .reset_index()
    )
    baseline = areas[areas["policy"] == BASELINE_POLICY].set_index("seed")["aulc"]
    rows = []
    for policy, group in areas.groupby("policy", sort=True):
        area = t_interval(group["aulc"].to_numpy())
        gain = t_interval((group.set_index("seed")["aulc"] - baseline).dropna().to_numpy())
        rows.append(
            {
                "policy": policy,
                "aulc_mean": area[0],
                "aulc_lower": area[1],
                "aulc_upper": area[2],
                "gain_mean": gain[0],
                "gain_lower": gain[1],
                "gain_upper": gain[2],
                "seeds": int(group["seed"].nunique()),
            }
        )
    return pd.DataFrame(rows)


def per_seed(trial_rows: pd.DataFrame) -> pd.DataFrame:
    """Trials averaged over the pairs: one row per (policy, budget, seed)."""
    return (
        trial_rows.groupby(["policy", "budget", "seed"], sort=True)
        .agg(accuracy=("accuracy", "mean"), picked_rows=("picked_rows", "max"))
        .reset_index()
    )

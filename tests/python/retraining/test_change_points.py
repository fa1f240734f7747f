"""Change points from daily summaries equal the brute-force single-change fit on the raw values:
the split (at a day boundary) with the least within-segment sum of squares for a mean shift, and
the largest multinomial log-likelihood (scipy's entropy) for a change of shares."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from feedback_flywheel.retraining import change_points

START = date(2026, 2, 1)


def _days(count: int) -> list[date]:
    return [START + timedelta(days=d) for d in range(count)]


def _brute_force_mean_split(values_by_day: list[np.ndarray]) -> int:
    """The day index starting the second segment that minimises the raw values' SSE."""
    best, best_cost = None, np.inf
    for k in range(1, len(values_by_day)):
        left, right = np.concatenate(values_by_day[:k]), np.concatenate(values_by_day[k:])
        cost = ((left - left.mean()) ** 2).sum() + ((right - right.mean()) ** 2).sum()
        if cost < best_cost:
            best, best_cost = k, cost
    return best


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_mean_shift_is_the_least_squares_split_of_the_raw_values(seed: int) -> None:
    rng = np.random.default_rng(seed)
    change = int(rng.integers(3, 12))
    values = [
        rng.lognormal(5.4 + (0.47 if day >= change else 0.0), 0.6, int(rng.integers(50, 400)))
        for day in range(15)
    ]
    expected = _brute_force_mean_split(values)
    got = change_points.mean_shift(
        _days(15),
        np.array([len(v) for v in values]),
        np.array([v.sum() for v in values]),
    )
    assert got == _days(15)[expected]
    assert abs(expected - change) <= 1  # a clear shift is found where it was put


def test_share_shift_maximises_the_multinomial_likelihood() -> None:
    rng = np.random.default_rng(7)
    before, after = [0.5, 0.3, 0.2], [0.3, 0.3, 0.4]
    counts = np.array(
        [rng.multinomial(300, after if day >= 9 else before) for day in range(15)], dtype=float
    )

    def log_likelihood(block: np.ndarray) -> float:
        totals = block.sum(axis=0)
        return -totals.sum() * stats.entropy(totals)

    ratios = [log_likelihood(counts[:k]) + log_likelihood(counts[k:]) for k in range(1, 15)]
    expected = int(np.argmax(ratios)) + 1
    assert change_points.share_shift(_days(15), counts) == _days(15)[expected]
    assert expected == 9


def test_days_without_values_are_skipped_and_short_series_have_no_change() -> None:
    days = _days(4)
    assert change_points.mean_shift(days[:1], np.array([10]), np.array([5.0])) is None
    got = change_points.mean_shift(
        days, np.array([10, 0, 10, 10]), np.array([10.0, 0.0, 50.0, 50.0])
    )
    assert got == days[2]


def test_locate_reads_a_daily_profile_per_test() -> None:
    rows = []
    for index, day in enumerate(_days(6)):
        shifted = index >= 3
        rows.append((day, "__value__", 100, 100 * (2.0 if shifted else 1.0)))
        rows.append((day, "__missing__", 30 if shifted else 2, None))
    profile = pd.DataFrame(rows, columns=["logged_date", "category", "value_count", "value_sum"])
    assert change_points.locate(profile, "ks") == _days(6)[3]
    assert change_points.locate(profile, "missing_rate") == _days(6)[3]
    assert change_points.locate(profile.iloc[0:0], "ks") is None

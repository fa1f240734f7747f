"""Change points: the day a flagged change started, from the feature's daily series.

A drift flag says *that* a day's window differs from its reference; with a reference of 14 days
the change can lie anywhere in the days the two windows cover. The estimate is the single change
point of that span (the reference's first day to the flagged day) that best splits the daily
series into a before and an after, the maximum-likelihood split of a one-change model
(Hinkley 1970; binary segmentation's first step):

* numeric values: a change in the mean — the split maximising the between-segment sum of squares
  ``n_L n_R / N (mean_L - mean_R)^2`` (the Gaussian likelihood ratio, the CUSUM estimator), from
  each day's count and exact sum (``marts.fct_drift_daily_profile``);
* categories (a categorical feature, the missing rate, the unseen share): a change in the shares
  — the split maximising the multinomial likelihood ratio
  ``sum_seg sum_c n_sc log(n_sc / n_s) - sum_c n_c log(n_c / N)``, from each day's counts.

The estimate is the first day of the "after" segment. Days without data are not in the series
(the change is then dated at the next day with data). A change of spread alone, with the mean
unchanged, is located less well by the mean's statistic; the KS flag still stands.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

#: the profile's category of a numeric feature's values, and of the missing ones
VALUE, MISSING = "__value__", "__missing__"


def mean_shift(days: list[date], counts: np.ndarray, sums: np.ndarray) -> date | None:
    """The first day of the after-segment of the best mean-shift split of a daily series
    (count and sum per day, in day order); None with fewer than two days of values."""
    keep = counts > 0
    days = [day for day, kept in zip(days, keep, strict=True) if kept]
    counts, sums = counts[keep].astype(float), sums[keep].astype(float)
    if len(days) < 2:
        return None
    n_left, s_left = np.cumsum(counts)[:-1], np.cumsum(sums)[:-1]
    n_total, s_total = counts.sum(), sums.sum()
    n_right, s_right = n_total - n_left, s_total - s_left
    between = n_left * n_right / n_total * (s_left / n_left - s_right / n_right) ** 2
    return days[int(np.argmax(between)) + 1]


def _log_likelihood(counts: np.ndarray) -> np.ndarray:
    """sum_c n_c log(n_c / n) of each row of a (segments x categories) count matrix."""
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(counts > 0, counts * np.log(counts / totals), 0.0)
    return terms.sum(axis=1)


def share_shift(days: list[date], counts: np.ndarray) -> date | None:
    """The first day of the after-segment of the best multinomial split of a daily series of
    category counts (days x categories, in day order); None with fewer than two days."""
    keep = counts.sum(axis=1) > 0
    days = [day for day, kept in zip(days, keep, strict=True) if kept]
    counts = counts[keep].astype(float)
    if len(days) < 2:
        return None
    left = np.cumsum(counts, axis=0)[:-1]
    right = counts.sum(axis=0) - left
    ratio = _log_likelihood(left) + _log_likelihood(right)
    return days[int(np.argmax(ratio)) + 1]


def locate(profile: pd.DataFrame, test: str) -> date | None:
    """The change day of one feature's daily profile (rows of ``fct_drift_daily_profile`` over
    the span to search) for the kind of test that flagged it."""
    if profile.empty:
        return None
    table = profile.pivot_table(
        index="logged_date", columns="category", values="value_count", aggfunc="sum", fill_value=0
    ).sort_index()
    days = [pd.Timestamp(day).date() for day in table.index]
    if test == "ks":
        if VALUE not in table:
            return None
        sums = profile[profile.category == VALUE].groupby("logged_date").value_sum.sum()
        return mean_shift(
            days, table[VALUE].to_numpy(), sums.reindex(table.index, fill_value=0).to_numpy()
        )
    if test == "missing_rate":
        missing = table[MISSING] if MISSING in table else 0 * table.iloc[:, 0]
        present = table.drop(columns=[MISSING], errors="ignore").sum(axis=1)
        return share_shift(days, np.column_stack([missing.to_numpy(), present.to_numpy()]))
    return share_shift(days, table.drop(columns=[MISSING], errors="ignore").to_numpy())

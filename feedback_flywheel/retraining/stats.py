"""The statistics the Python stage adds to the warehouse's summaries: p-values (scipy) and the
Benjamini-Hochberg correction. Pure functions of a few numbers each; no database."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

#: the 97.5% quantile of the standard normal (two-sided 95% intervals); SQL has its own,
#: the dbt macro z95()
Z95 = 1.959963984540054
KS_EXACT_MAX_N = 10_000  # scipy.stats.ks_2samp's MAX_AUTO_N: exact below, asymptotic above


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

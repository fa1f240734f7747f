"""The model-version leaderboard: an item-level Bradley–Terry fit, one strength per version.

Items are ``model_name:model_version``. Only pairs whose two outputs come from different versions
say anything about the versions, so only they are fitted and counted; a version never compared
with another is listed, unidentified, without a strength. The intervals come from a percentile
cluster bootstrap over contexts (pairs of one context are resampled together, since they share
the prompt). Pure: the pairs come in as a frame, the board goes out as one (the mean reward score
per version is joined on by the stage, from the warehouse).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from feedback_flywheel.config.policies import RewardPolicy
from feedback_flywheel.rewards.bradley_terry import (
    HIGH,
    LOW,
    OUTCOMES,
    TIE,
    FitResult,
    fit_bradley_terry,
    theta_of,
)
from feedback_flywheel.rewards.training import ECHO_SOURCE


@dataclass(frozen=True)
class _CrossPairs:
    """The cross-version pairs as an item-level design, aggregated: the likelihood of a pair
    depends only on its (low item, high item, outcome), so pairs that share all three are one
    *cell* whose weight is the sum of theirs. One design row per cell (+1 in the low item's
    column, −1 in the high item's); ``by_context`` holds each context's summed pair weight per
    cell, so a bootstrap resample of contexts is a weighted sum of its rows, not a copy of every
    pair it draws. The penalised objective is the same sum over the pairs either way."""

    design: np.ndarray
    outcome: np.ndarray
    weight: np.ndarray
    by_context: sparse.csr_matrix


def _item_indices(pairs: pd.DataFrame) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """The sorted items of the pairs; each pair's low and high item as an index into them; and
    whether the pair compares two different items (a cross-version pair)."""
    item_low = pairs.model_name + ":" + pairs.model_version_low
    item_high = pairs.model_name + ":" + pairs.model_version_high
    items = sorted(set(item_low) | set(item_high))
    index = {item: i for i, item in enumerate(items)}
    cross = (item_low != item_high).to_numpy()
    return items, item_low.map(index).to_numpy(), item_high.map(index).to_numpy(), cross


def _cross_pairs(
    sub: pd.DataFrame, low: np.ndarray, high: np.ndarray, outcome: np.ndarray, n_items: int
) -> _CrossPairs:
    """The cross-version pairs ``sub`` (with their item indices and outcomes) as cells. Contexts
    are numbered in sorted order (the bootstrap draws them by that number)."""
    codes = (low * n_items + high) * len(OUTCOMES) + outcome
    cells, cell_of_pair = np.unique(codes, return_inverse=True)
    _, context_of_pair = np.unique(sub.context_id.to_numpy(), return_inverse=True)
    pair_weight = sub.pair_weight.to_numpy(dtype=float)
    by_context = sparse.csr_matrix(
        (pair_weight, (context_of_pair, cell_of_pair)),
        shape=(int(context_of_pair.max()) + 1, len(cells)),
    )  # duplicates (pairs of one context in one cell) are summed
    cell_low, cell_high = divmod(cells // len(OUTCOMES), n_items)
    design = np.zeros((len(cells), n_items))
    rows = np.arange(len(cells))
    design[rows, cell_low] += 1.0
    design[rows, cell_high] -= 1.0
    return _CrossPairs(
        design=design,
        outcome=cells % len(OUTCOMES),
        weight=np.bincount(cell_of_pair, weights=pair_weight, minlength=len(cells)),
        by_context=by_context,
    )


def _tally(
    low: np.ndarray, high: np.ndarray, outcome: np.ndarray, n_items: int
) -> dict[str, np.ndarray]:
    """Per item, over the cross-version pairs given: comparisons, wins, losses and ties."""

    def count(indices: np.ndarray) -> np.ndarray:
        return np.bincount(indices, minlength=n_items).astype(int)

    return {
        "compared": count(low) + count(high),
        "wins": count(low[outcome == LOW]) + count(high[outcome == HIGH]),
        "losses": count(high[outcome == LOW]) + count(low[outcome == HIGH]),
        "ties": count(low[outcome == TIE]) + count(high[outcome == TIE]),
    }


def _fit_centred(
    cross: _CrossPairs,
    weight: np.ndarray,
    identified: np.ndarray,
    l2: float,
    ties: str,
    x0: np.ndarray | None = None,
) -> tuple[np.ndarray, FitResult]:
    """Strengths fitted on the cells with ``weight`` (the full data's, or a resample's),
    centred on the mean of the identified items (strengths are only defined up to a constant),
    and the fit itself."""
    result = fit_bradley_terry(cross.design, cross.outcome, weight=weight, l2=l2, ties=ties, x0=x0)
    return result.weights - result.weights[identified].mean(), result


def _bootstrap_draws(
    cross: _CrossPairs,
    identified: np.ndarray,
    base_fit: FitResult,
    policy: RewardPolicy,
    ties: str,
) -> np.ndarray:
    """Centred strengths refitted on ``bootstrap_samples`` resamples of whole contexts (drawn
    with replacement, seeded by the policy), each warm-started from the full fit: one row per
    draw. A context drawn k times counts k times: the resample's cell weights are the drawn
    contexts' rows of ``by_context`` summed with those multiplicities."""
    board = policy.leaderboard
    rng = np.random.default_rng(board.seed)
    n_contexts = cross.by_context.shape[0]
    by_cell = cross.by_context.T.tocsr()
    warm = theta_of(base_fit, ties, False)
    draws = []
    for _ in range(board.bootstrap_samples):
        chosen = rng.integers(0, n_contexts, n_contexts)
        times = np.bincount(chosen, minlength=n_contexts).astype(float)
        values, _ = _fit_centred(cross, by_cell @ times, identified, board.l2, ties, warm)
        draws.append(values)
    return np.array(draws)


def _strengths(
    cross: _CrossPairs, identified: np.ndarray, policy: RewardPolicy, ties: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Strength and 95% bootstrap interval (2.5th and 97.5th percentiles) of each identified
    item; NaN for the others, and for the intervals when the policy asks for no bootstrap."""
    n_items = len(identified)
    strength = np.full(n_items, np.nan)
    lower = np.full(n_items, np.nan)
    upper = np.full(n_items, np.nan)
    base, base_fit = _fit_centred(cross, cross.weight, identified, policy.leaderboard.l2, ties)
    strength[identified] = base[identified]
    if policy.leaderboard.bootstrap_samples > 0:
        draws = _bootstrap_draws(cross, identified, base_fit, policy, ties)
        lower[identified] = np.percentile(draws[:, identified], 2.5, axis=0)
        upper[identified] = np.percentile(draws[:, identified], 97.5, axis=0)
    return strength, lower, upper


def _ranks(strength: np.ndarray, identified: np.ndarray) -> np.ndarray:
    """1 for the strongest identified item, 2 for the next, …; None for unidentified items."""
    order = np.argsort(-np.nan_to_num(strength, nan=-np.inf), kind="stable")
    rank = np.empty(len(strength), dtype=object)
    position = 1
    for i in order:
        rank[i] = position if identified[i] else None
        position += int(identified[i])
    return rank


def fit_leaderboard(pairs: pd.DataFrame, policy: RewardPolicy, ties: str) -> pd.DataFrame:
    """Item-level Bradley–Terry: one strength per model version (``model_name:model_version``),
    from pairs whose two outputs come from different versions, with a percentile cluster bootstrap
    over contexts. Strengths are centred on the mean of the identified items. Versions never
    compared with another version are listed with ``is_identified`` false and no strength.
    Pairs the reward model judged itself (``pair_source`` ``reward_model``) are left out: the
    leaderboard says which version people (and AI judges) prefer, not what the model echoes."""
    if "pair_source" in pairs:
        pairs = pairs[pairs.pair_source != ECHO_SOURCE].reset_index(drop=True)
    items, low_idx, high_idx, cross = _item_indices(pairs)
    if not items:
        return pd.DataFrame()
    outcome = pairs.preferred_output.map(OUTCOMES).to_numpy()
    counts = _tally(low_idx[cross], high_idx[cross], outcome[cross], len(items))
    identified = counts["compared"] > 0
    if cross.any():
        games = _cross_pairs(
            pairs[cross], low_idx[cross], high_idx[cross], outcome[cross], len(items)
        )
        strength, lower, upper = _strengths(games, identified, policy, ties)
    else:
        strength, lower, upper = (np.full(len(items), np.nan) for _ in range(3))
    return _board_frame(items, strength, lower, upper, counts, _ranks(strength, identified))


def _board_frame(
    items: list[str],
    strength: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    counts: dict[str, np.ndarray],
    rank: np.ndarray,
) -> pd.DataFrame:
    """One row per item, in item order (the columns of ml.reward_leaderboard the fit decides)."""
    rows = []
    for i, item in enumerate(items):
        name, _, version = item.partition(":")
        rows.append(
            {
                "item": item,
                "model_name": name,
                "model_version": version,
                "strength": strength[i],
                "strength_lower": lower[i],
                "strength_upper": upper[i],
                "cross_version_comparisons": int(counts["compared"][i]),
                "wins": int(counts["wins"][i]),
                "losses": int(counts["losses"][i]),
                "ties": int(counts["ties"][i]),
                "rank": rank[i],
                "is_identified": bool(counts["compared"][i] > 0),
            }
        )
    return pd.DataFrame(rows)

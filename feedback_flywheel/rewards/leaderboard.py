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
    """The cross-version pairs as an item-level design: one row per pair, +1 in the column of the
    low output's item and −1 in the high output's."""

    design: np.ndarray
    outcome: np.ndarray
    weight: np.ndarray
    contexts: np.ndarray


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
    """The cross-version pairs ``sub`` (with their item indices and outcomes) as a design."""
    design = np.zeros((len(sub), n_items))
    rows = np.arange(len(sub))
    design[rows, low] += 1.0
    design[rows, high] -= 1.0
    return _CrossPairs(
        design=design,
        outcome=outcome,
        weight=sub.pair_weight.to_numpy(dtype=float),
        contexts=sub.context_id.to_numpy(),
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
    rows: np.ndarray,
    identified: np.ndarray,
    l2: float,
    ties: str,
    x0: np.ndarray | None = None,
) -> tuple[np.ndarray, FitResult]:
    """Strengths fitted on ``rows`` of the cross pairs, centred on the mean of the identified
    items (strengths are only defined up to a constant), and the fit itself."""
    result = fit_bradley_terry(
        cross.design[rows],
        cross.outcome[rows],
        weight=cross.weight[rows],
        l2=l2,
        ties=ties,
        x0=x0,
    )
    return result.weights - result.weights[identified].mean(), result


def _context_clusters(contexts: np.ndarray) -> list[np.ndarray]:
    """The row numbers of each context, one array per context (the bootstrap's resampling
    unit), in sorted context order."""
    _, inverse = np.unique(contexts, return_inverse=True)
    by_context = np.argsort(inverse, kind="stable")
    boundaries = np.flatnonzero(np.diff(inverse[by_context])) + 1
    return np.split(by_context, boundaries)


def _bootstrap_draws(
    cross: _CrossPairs,
    identified: np.ndarray,
    base_fit: FitResult,
    policy: RewardPolicy,
    ties: str,
) -> np.ndarray:
    """Centred strengths refitted on ``bootstrap_samples`` resamples of whole contexts (drawn
    with replacement, seeded by the policy), each warm-started from the full fit: one row per
    draw."""
    board = policy.leaderboard
    rng = np.random.default_rng(board.seed)
    members = _context_clusters(cross.contexts)
    warm = theta_of(base_fit, ties, False)
    draws = []
    for _ in range(board.bootstrap_samples):
        chosen = rng.integers(0, len(members), len(members))
        rows = np.concatenate([members[i] for i in chosen])
        values, _ = _fit_centred(cross, rows, identified, board.l2, ties, warm)
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
    everything = np.arange(len(cross.outcome))
    base, base_fit = _fit_centred(cross, everything, identified, policy.leaderboard.l2, ties)
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

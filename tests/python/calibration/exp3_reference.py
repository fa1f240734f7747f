"""Exp3 as Auer et al. (2002) write it, the plain way: weights multiplied (never logged or
shifted), the draw by numpy's searchsorted on the cumulative probabilities. The reference the
bandit's rounds (feedback_flywheel/calibration/bandit.py) are checked against."""

from __future__ import annotations

import math

import numpy as np


def reference_exp3(
    names: list[str], rewards: list[dict[str, float]], keys: list[float], gamma: float
) -> list[tuple[list[float], str, float | None]]:
    """Per round: the probabilities (``names`` order), the draw, the reward credited."""
    count = len(names)
    weights = np.ones(count)
    rounds, drawn, probability = [], None, None
    for reward, key in zip(rewards, keys, strict=True):
        credited = None
        if drawn is not None:
            index = names.index(drawn)
            credited = reward[drawn]
            weights[index] *= math.exp(gamma * (credited / probability[index]) / count)
        probability = (1 - gamma) * weights / weights.sum() + gamma / count
        drawn = names[int(np.searchsorted(np.cumsum(probability), key, side="right"))]
        rounds.append((list(probability), drawn, credited))
    return rounds

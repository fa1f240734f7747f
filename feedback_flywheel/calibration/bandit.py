"""An Exp3 bandit over the query policies, across cycles (Auer et al. 2002; libact's ALBL uses it
to choose among active-learning strategies).

Each batch's offline evaluation is one round, per model. The bandit holds a weight per policy and
plays the distribution ``p_i = (1 - gamma) * w_i / sum(w) + gamma / K``; the round's draw is the
policy whose cumulative probability first exceeds the draw key ``hash_fraction("<model>|<batch>",
seed)`` (policies in name order), so a re-run draws the same policy. In the next round the drawn
policy's realised gain, its AULC on that round's evaluation (an accuracy, in [0, 1]), is credited
to it alone, importance-weighted: ``w_j *= exp(gamma * (x_j / p_j) / K)``. The other policies'
AULCs are known too, but Exp3 learns only from what it played, as a live loop would.

Weights are kept as logarithms shifted so that the largest is 0 (the probabilities are the same
and nothing overflows). ``fct_sampling_policy_scores`` flags the draw as the chosen policy under
var ``sampling_policy_chooser: exp3``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from feedback_flywheel.calibration.policies import sample_key


@dataclass(frozen=True)
class BanditRound:
    """One round of one model's bandit: per policy (name order) its log weight after the update,
    its probability of being drawn, the reward credited this round (the previous draw only), and
    the policy drawn."""

    policies: tuple[str, ...]
    log_weights: tuple[float, ...]
    probabilities: tuple[float, ...]
    credited: str | None
    reward: float | None
    drawn: str


@dataclass(frozen=True)
class PreviousRound:
    """What a round needs of the one before: each policy's log weight and probability, the draw."""

    log_weights: Mapping[str, float]
    probabilities: Mapping[str, float]
    drawn: str


def draw_key(model_name: str, batch_id: str, seed: int) -> float:
    """The round's uniform draw in [0, 1): the sample key of ``"<model>|<batch>"``."""
    return sample_key(f"{model_name}|{batch_id}", seed)


def exp3_round(
    policies: Sequence[str],
    aulc: Mapping[str, float],
    previous: PreviousRound | None,
    gamma: float,
    key: float,
) -> BanditRound:
    """The round after ``previous`` (None: the first, all weights equal), given this round's AULC
    per policy, the exploration share ``gamma`` in (0, 1] and the draw key in [0, 1)."""
    if not 0 < gamma <= 1:
        raise ValueError(f"gamma must be in (0, 1], got {gamma}")
    if not 0 <= key < 1:
        raise ValueError(f"the draw key must be in [0, 1), got {key}")
    names = tuple(sorted(policies))
    count = len(names)
    log_weights = {name: 0.0 for name in names}
    credited, reward = None, None
    if previous is not None:
        log_weights.update({n: w for n, w in previous.log_weights.items() if n in log_weights})
        if previous.drawn in log_weights and previous.drawn in aulc:
            credited, reward = previous.drawn, float(aulc[previous.drawn])
            estimate = reward / previous.probabilities[previous.drawn]
            log_weights[credited] += gamma * estimate / count
    top = max(log_weights.values())
    shifted = [log_weights[name] - top for name in names]
    total = math.fsum(math.exp(weight) for weight in shifted)
    probabilities = [(1 - gamma) * math.exp(weight) / total + gamma / count for weight in shifted]
    drawn, cumulative = names[-1], 0.0
    for name, probability in zip(names, probabilities, strict=True):
        cumulative += probability
        if key < cumulative:
            drawn = name
            break
    return BanditRound(names, tuple(shifted), tuple(probabilities), credited, reward, drawn)

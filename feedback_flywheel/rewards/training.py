"""Training a reward-model candidate on the train split, and the validation pairs it is judged on.

Pure: the pairs and features come in as frames (read by :mod:`.store`), the candidate goes out as
a :class:`~feedback_flywheel.rewards.model.RewardModel`. Features are standardised on the train
outputs; reward_model pairs (the model's own echo) are capped in weight; the display order, when
known, feeds a position-bias term; a fit warm-starts from the incumbent when it can.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from feedback_flywheel.config.policies import RewardPolicy
from feedback_flywheel.rewards.bradley_terry import (
    OUTCOMES,
    FitResult,
    fit_bradley_terry,
    theta_of,
)
from feedback_flywheel.rewards.model import RewardModel, pair_metrics

#: pair_source of the pairs fed back from the reward model's own scores
ECHO_SOURCE = "reward_model"


def usable_pairs(
    pairs: pd.DataFrame, features: pd.DataFrame, names: list[str]
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Pairs whose two outputs have features, and their raw feature matrices (low, high)."""
    known = pairs.inference_id_low.isin(features.index) & pairs.inference_id_high.isin(
        features.index
    )
    pairs = pairs[known].reset_index(drop=True)
    values = features.reindex(columns=names).astype(float).fillna(0.0)
    low = values.loc[pairs.inference_id_low].to_numpy()
    high = values.loc[pairs.inference_id_high].to_numpy()
    return pairs, low, high


def capped_weights(pairs: pd.DataFrame, max_share: float) -> np.ndarray:
    """pair_weight, with reward_model pairs scaled down so their total is at most ``max_share``
    of the other pairs' total weight (the echo cap)."""
    weight = pairs.pair_weight.to_numpy(dtype=float).copy()
    echo = (pairs.pair_source == ECHO_SOURCE).to_numpy()
    if echo.any():
        cap = max_share * weight[~echo].sum()
        total = weight[echo].sum()
        if total > cap:
            weight[echo] *= cap / total if total > 0 else 0.0
    return weight


def positions(pairs: pd.DataFrame) -> np.ndarray:
    """+1 when the low output was shown first, −1 when the high one was, 0 when unknown."""
    first = pairs.first_shown_inference_id
    return np.where(first.isna(), 0.0, np.where(first == pairs.inference_id_low, 1.0, -1.0)).astype(
        float
    )


def _standardisation(
    low: np.ndarray, high: np.ndarray, n_features: int
) -> tuple[np.ndarray, np.ndarray]:
    """Means and scales of the features over the outputs of both sides (a constant feature keeps
    scale 1, so it contributes nothing instead of dividing by zero)."""
    stacked = np.vstack([low, high])
    means = stacked.mean(axis=0) if len(stacked) else np.zeros(n_features)
    scales = stacked.std(axis=0) if len(stacked) else np.ones(n_features)
    return means, np.where(scales > 1e-12, scales, 1.0)


def _warm_start(
    warm: RewardModel | None, names: list[str], ties: str, fit_position: bool
) -> np.ndarray | None:
    """The incumbent's parameters as a starting point, when it has the same features and tie
    model (otherwise the fit starts cold)."""
    if warm is None or warm.feature_names != names or warm.ties != ties:
        return None
    previous = FitResult(warm.weights, warm.position_bias, warm.tie_parameter, 0.0, 0, True)
    return theta_of(previous, ties, fit_position)


def train_candidate(
    version: str,
    pairs: pd.DataFrame,
    low: np.ndarray,
    high: np.ndarray,
    names: list[str],
    policy: RewardPolicy,
    warm: RewardModel | None,
) -> tuple[RewardModel, FitResult, bool]:
    """Fit the reward model on the train split of ``pairs`` (features standardised on the train
    outputs); warm-started from ``warm`` when it has the same features. Returns the model, the
    fit, and whether the warm start was used."""
    train = (pairs.split == "train").to_numpy()
    means, scales = _standardisation(low[train], high[train], len(names))
    design = ((low[train] - means) - (high[train] - means)) / scales
    outcome = pairs.preferred_output.map(OUTCOMES).to_numpy()[train]
    weight = capped_weights(pairs[train], policy.reward_model_pairs.max_weight_share)
    position = positions(pairs[train])
    settings = policy.training
    fit_position = settings.position_bias and bool(np.any(position != 0))
    x0 = _warm_start(warm, names, settings.ties, fit_position)
    fit = fit_bradley_terry(
        design,
        outcome,
        weight=weight,
        position=position,
        l2=settings.l2,
        ties=settings.ties,
        fit_position=fit_position,
        x0=x0,
        max_iterations=settings.max_iterations,
    )
    model = RewardModel(
        version=version,
        feature_names=list(names),
        means=means,
        scales=scales,
        weights=fit.weights,
        position_bias=fit.position_bias,
        tie_parameter=fit.tie_parameter,
        ties=settings.ties,
        extra={"l2": settings.l2},
    )
    return model, fit, x0 is not None


@dataclass(frozen=True)
class ValidationPairs:
    """The validation-split pairs a candidate and the incumbent are both judged on: the raw
    features of each side and the outcome. The model's own echo (reward_model pairs) never counts
    in held-out metrics."""

    low: pd.DataFrame
    high: pd.DataFrame
    outcome: np.ndarray

    @classmethod
    def of(
        cls, pairs: pd.DataFrame, low: np.ndarray, high: np.ndarray, names: list[str]
    ) -> ValidationPairs:
        """The validation pairs among ``pairs`` (with their feature matrices ``low``, ``high``)."""
        held_out = ((pairs.split == "validation") & (pairs.pair_source != ECHO_SOURCE)).to_numpy()
        return cls(
            low=pd.DataFrame(low[held_out], columns=names),
            high=pd.DataFrame(high[held_out], columns=names),
            outcome=pairs.preferred_output.map(OUTCOMES).to_numpy()[held_out],
        )

    def metrics(self, model: RewardModel) -> dict[str, float | int]:
        """:func:`~feedback_flywheel.rewards.model.pair_metrics` of ``model`` on these pairs."""
        return pair_metrics(model.score(self.low) - model.score(self.high), self.outcome)

"""The reward model r(x) = w · standardised φ(x), how it is stored, and how it is judged.

A :class:`RewardModel` is what one ``ml.reward_models`` row's ``parameters_json`` holds; it scores
feature frames read from ``marts.fct_output_features``. :func:`input_hash` fingerprints the exact
values scored (``ml.reward_scores.input_hash``), and :func:`pair_metrics` computes the held-out
metrics the promotion rule compares. No warehouse access here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from feedback_flywheel.rewards.bradley_terry import LOW, TIE


@dataclass
class RewardModel:
    """r(x) = Σ_k w_k (φ_k(x) − μ_k) / s_k over named features; what ``parameters_json`` holds."""

    version: str
    feature_names: list[str]
    means: np.ndarray
    scales: np.ndarray
    weights: np.ndarray
    position_bias: float = 0.0
    tie_parameter: float = 0.0
    ties: str = "davidson"
    extra: dict[str, Any] = field(default_factory=dict)

    def standardise(self, features: pd.DataFrame) -> np.ndarray:
        """The model's features of each row, centred and scaled as in training (a missing
        feature or value counts as 0 before scaling)."""
        values = features.reindex(columns=self.feature_names).to_numpy(dtype=float)
        values = np.nan_to_num(values, nan=0.0)
        return (values - self.means) / self.scales

    def score(self, features: pd.DataFrame) -> np.ndarray:
        """r(x) of each row of ``features``."""
        return self.standardise(features) @ self.weights

    def to_json(self) -> str:
        """The parameters as canonical JSON (sorted keys), with ``extra`` (l2, warm start,
        iterations) alongside, so a stored version can be rebuilt and audited."""
        return json.dumps(
            {
                "model": "bradley_terry_linear",
                "feature_names": self.feature_names,
                "means": [float(v) for v in self.means],
                "scales": [float(v) for v in self.scales],
                "weights": [float(v) for v in self.weights],
                "position_bias": self.position_bias,
                "tie_parameter": self.tie_parameter,
                "ties": self.ties,
                **self.extra,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, version: str, text: str) -> RewardModel:
        """The model ``version`` from its stored ``parameters_json`` (``extra`` is not kept)."""
        data = json.loads(text)
        return cls(
            version=version,
            feature_names=list(data["feature_names"]),
            means=np.array(data["means"], dtype=float),
            scales=np.array(data["scales"], dtype=float),
            weights=np.array(data["weights"], dtype=float),
            position_bias=float(data.get("position_bias", 0.0)),
            tie_parameter=float(data.get("tie_parameter", 0.0)),
            ties=str(data.get("ties", "davidson")),
        )


def input_hash(feature_names: list[str], row: np.ndarray) -> str:
    """md5 of the feature names and the exact values scored (repr of each float)."""
    text = json.dumps(
        [[name, repr(float(value))] for name, value in zip(feature_names, row, strict=True)]
    )
    return hashlib.md5(text.encode()).hexdigest()


def pair_metrics(d: np.ndarray, outcome: np.ndarray, bins: int = 10) -> dict[str, float | int]:
    """Held-out metrics of reward differences d = r_low − r_high on decisive pairs: pairwise
    accuracy (a zero difference counts one half), log loss of σ(d), and the calibration error of
    σ(d) against the observed rate at which the low output won (expected calibration error over
    ``bins`` equal-width bins of σ(d), weighted by pair count)."""
    decisive = outcome != TIE
    d, won = d[decisive], (outcome[decisive] == LOW).astype(float)
    if len(d) == 0:
        return {"pairs": 0, "accuracy": float("nan"), "log_loss": float("nan"), "ece": float("nan")}
    correct = np.where(d == 0, 0.5, ((d > 0) == (won == 1)).astype(float))
    log_loss = float(np.mean(np.logaddexp(0.0, -d) * won + np.logaddexp(0.0, d) * (1 - won)))
    p = special.expit(d)
    which = np.minimum((p * bins).astype(int), bins - 1)
    ece = 0.0
    for index in range(bins):
        mask = which == index
        if mask.any():
            ece += mask.mean() * abs(p[mask].mean() - won[mask].mean())
    return {
        "pairs": len(d),
        "accuracy": float(correct.mean()),
        "log_loss": log_loss,
        "ece": float(ece),
    }

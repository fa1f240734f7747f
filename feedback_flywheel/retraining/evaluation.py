"""Evaluating a candidate: the held-out slice, the metrics, and the paired comparison with the
serving model.

**Held-out slice** (:func:`holdout_mask`): a row is held out when
``int(md5("holdout|<inference_id>|<seed>")[:8], 16) / 2**32 < holdout_share``. The prefix keeps
it independent of the warehouse's sampling hash ``md5("<inference_id>:<seed>")``, which chose the
training sample; reusing that hash would put the stratified rows (small hash) in the held-out slice
and the uncertainty rows in training.

**Metrics** (unweighted, over held-out rows): accuracy, macro F1 (mean over the labels that occur
in the truth or the predictions of F1 = 2 TP / (2 TP + FP + FN)), and log loss (mean negative log
probability of the true label, clipped at 1e-15; a label never seen in training gets the clip).

**Beating the current model** (:func:`compare_with_baseline`): the current version is the latest
``deployed_at`` of the model in ``marts.dim_model_versions``. The baseline is, in this order
(``baseline_scope``): ``served`` — its recorded ``predicted_label`` on the held-out rows it served;
``rescored`` — when it served none of them but a run of this flow trained it, its recorded
parameters rescored on every held-out row; ``all_versions`` — otherwise the recorded predictions
of whichever versions served the held-out rows. The candidate is scored on exactly the same rows.
The gain is the paired accuracy difference; the candidate beats the current model when the gain
exceeds ``min_improvement`` and a one-sided paired z-test of ``gain <= min_improvement`` (normal
approximation of the per-row differences; McNemar's test when ``min_improvement`` is 0) has a
p-value at most ``significance``. ``significance=1`` makes it a plain comparison of the point
estimates.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

LOG_LOSS_EPS = 1e-15


def holdout_fraction(inference_id: str, seed: int) -> float:
    """``int(md5("holdout|<inference_id>|<seed>")[:8], 16) / 2**32``, uniform in [0, 1)."""
    digest = hashlib.md5(f"holdout|{inference_id}|{seed}".encode()).hexdigest()
    return int(digest[:8], 16) / 4294967296.0


def holdout_mask(inference_ids: Iterable[str], holdout_share: float, seed: int) -> np.ndarray:
    """True for the rows held out: :func:`holdout_fraction` below ``holdout_share``."""
    return np.array(
        [
            holdout_fraction(str(inference_id), seed) < holdout_share
            for inference_id in inference_ids
        ],
        dtype=bool,
    )


def accuracy(y_true: Sequence[Any] | np.ndarray, y_pred: Sequence[Any] | np.ndarray) -> float:
    """Share of rows where the prediction equals the truth (NaN for no rows)."""
    y_true, y_pred = np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object)
    return float(np.mean(y_true == y_pred)) if len(y_true) else math.nan


def macro_f1(
    y_true: Sequence[Any] | np.ndarray,
    y_pred: Sequence[Any] | np.ndarray,
    labels: Sequence[Any] | None = None,
) -> float:
    """Unweighted mean over ``labels`` of F1 = 2 TP / (2 TP + FP + FN).

    ``labels`` defaults to every label in the truth or the predictions; a given label with no
    true and no predicted rows scores 0 (as scikit-learn does). NaN for no rows.
    """
    y_true, y_pred = np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object)
    if not len(y_true):
        return math.nan
    labels = sorted(set(y_true) | set(y_pred)) if labels is None else list(labels)
    scores = []
    for label in labels:
        tp = float(np.sum((y_true == label) & (y_pred == label)))
        fp = float(np.sum((y_true != label) & (y_pred == label)))
        fn = float(np.sum((y_true == label) & (y_pred != label)))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return float(np.mean(scores))


def log_loss(
    y_true: Sequence[Any] | np.ndarray,
    probabilities: np.ndarray,
    classes: Sequence[Any],
    eps: float = LOG_LOSS_EPS,
) -> float:
    """Mean ``-log p(true label)``, probabilities clipped to [eps, 1]; NaN for no rows.

    A true label that is not in ``classes`` has probability 0 (so it costs ``-log eps``).
    """
    y_true = np.asarray(y_true, dtype=object)
    if not len(y_true):
        return math.nan
    index = {label: position for position, label in enumerate(classes)}
    chosen = np.array(
        [
            probabilities[row, index[label]] if label in index else 0.0
            for row, label in enumerate(y_true)
        ]
    )
    return float(-np.mean(np.log(np.clip(chosen, eps, 1.0))))


@dataclass(frozen=True)
class BaselineComparison:
    """Candidate vs the current model on the same held-out rows (see the module docstring)."""

    n_rows: int
    candidate_accuracy: float
    baseline_accuracy: float
    baseline_macro_f1: float
    gain: float
    p_value: float
    beats: bool


def compare_with_baseline(
    y_true: Sequence[Any] | np.ndarray,
    candidate_pred: Sequence[Any] | np.ndarray,
    baseline_pred: Sequence[Any] | np.ndarray,
    *,
    min_improvement: float = 0.0,
    significance: float = 0.05,
) -> BaselineComparison:
    """Paired accuracy comparison with a one-sided z-test of ``gain <= min_improvement``.

    ``d_i = [candidate right] - [baseline right]``; gain = mean(d), standard error
    sd(d, ddof=1) / sqrt(n), p = 1 - Phi((gain - min_improvement) / se). With no spread in ``d``
    (or a single row) p is 0 when the gain exceeds the margin, else 1. No rows: nothing beats.
    """
    y_true = np.asarray(y_true, dtype=object)
    candidate_right = (np.asarray(candidate_pred, dtype=object) == y_true).astype(float)
    baseline_right = (np.asarray(baseline_pred, dtype=object) == y_true).astype(float)
    n_rows = len(y_true)
    if n_rows == 0:
        return BaselineComparison(0, math.nan, math.nan, math.nan, math.nan, math.nan, False)
    difference = candidate_right - baseline_right
    gain = float(difference.mean())
    spread = float(difference.std(ddof=1)) if n_rows > 1 else 0.0
    if spread > 0:
        p_value = float(stats.norm.sf((gain - min_improvement) / (spread / math.sqrt(n_rows))))
    else:
        p_value = 0.0 if gain > min_improvement else 1.0
    return BaselineComparison(
        n_rows=n_rows,
        candidate_accuracy=float(candidate_right.mean()),
        baseline_accuracy=float(baseline_right.mean()),
        baseline_macro_f1=macro_f1(y_true, baseline_pred),
        gain=gain,
        p_value=p_value,
        beats=bool(gain > min_improvement and p_value <= significance),
    )

"""The built-in retraining: features, a weighted multinomial logistic regression, and its metrics.

This module is the pure part of ``flows/retrain.py`` (no database, no Prefect), so tests call it
directly. It is a *baseline* trainer: good enough to tell whether fresh, curated labels can beat
the model that is serving, and small enough to audit. Teams with their own training code point the
retraining policy at their Prefect deployment instead (:func:`trigger_retraining`).

**Features** (:func:`learn_features`, learned on the training part only, applied to both parts):

* ``features_json`` is a JSON object per row (the inputs the model saw).
* A key is *numeric* when every non-null value it has in the training part is a JSON number or
  boolean (booleans count as 0/1). Missing values (key absent, ``null``, NaN, or a non-numeric
  value at scoring time) are replaced by the training mean; then the column is standardised with
  the training mean and standard deviation (a constant column is only centred), so the L2 penalty
  treats every numeric feature alike.
* Every other key is *categorical*: its values as text, one-hot over the categories seen in
  training (at most ``max_categories`` per key, the most frequent, ties by name). A missing or
  unseen category is all zeros for that key (the intercept carries the base rate). No category is
  dropped: the L2 penalty makes the full one-hot identifiable.

**Model** (:func:`fit_multinomial_logistic`): softmax regression over the classes seen in
training with an unpenalised intercept per class, minimising

    L(W, b) = sum_i s_i * (logsumexp(x_i W + b) - (x_i W + b)_{y_i}) / sum_i s_i + l2/2 * ||W||^2

with ``s_i`` the sample weights, by L-BFGS (``scipy.optimize.minimize``) with the exact gradient.
The intercepts are centred after the fit (they are only defined up to a common shift).
A run's ``parameters_json`` holds the classes, the coefficients (features x classes), the
intercepts, the feature names and encoding, and the run's inputs: :func:`rescore` rebuilds the
model from it.

**Held-out slice** (:func:`holdout_mask`): a row is held out when
``int(md5("holdout|<inference_id>|<seed>")[:8], 16) / 2**32 < holdout_share``. The prefix keeps
it independent of the warehouse's sampling hash ``md5("<inference_id>:<seed>")``, which chose the
training sample; reusing that hash would put the stratified rows (small hash) in the held-out slice
and the uncertainty rows in training.

**Metrics** (unweighted, over held-out rows): accuracy, macro F1 (mean over the labels that occur
in the truth or the predictions of F1 = 2 TP / (2 TP + FP + FN)), and log loss (mean negative log
probability of the true label, clipped at 1e-15; a label never seen in training gets the clip).

**Beating the current model** (:func:`compare_with_baseline`): the current version is the latest
``deployed_at`` of the model in ``raw.model_deployments``. The baseline is, in this order
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
import json
import math
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

__all__ = [
    "DEFAULT_L2",
    "DEFAULT_MAX_CATEGORIES",
    "LOG_LOSS_EPS",
    "SAMPLE_COLUMNS",
    "BaselineComparison",
    "FeatureSpec",
    "LogisticModel",
    "RegistryView",
    "TrainingResult",
    "accuracy",
    "compare_with_baseline",
    "fit_multinomial_logistic",
    "holdout_fraction",
    "holdout_mask",
    "labelled_rows",
    "learn_features",
    "load_model",
    "log_loss",
    "macro_f1",
    "multinomial_objective",
    "next_version",
    "parse_features",
    "registry_view",
    "rescore",
    "run_inputs",
    "sample_fingerprint",
    "train_and_evaluate",
    "training_run_id",
    "trigger_retraining",
]

LOG_LOSS_EPS = 1e-15
DEFAULT_L2 = 1e-2
DEFAULT_MAX_CATEGORIES = 50
SAMPLE_COLUMNS = (
    "training_sample_id",
    "inference_id",
    "model_name",
    "model_version",
    "label",
    "predicted_label",
    "features_json",
    "sample_weight",
)


# --- features ----------------------------------------------------------------------------------


def parse_features(features_json: Iterable[str | None]) -> list[dict[str, Any]]:
    """One dict per row from JSON-object text; null, invalid JSON or a non-object is ``{}``."""
    records: list[dict[str, Any]] = []
    for text in features_json:
        try:
            value = json.loads(text) if isinstance(text, str) else None
        except ValueError:
            value = None
        records.append(value if isinstance(value, dict) else {})
    return records


def _as_number(value: Any) -> float | None:
    """A JSON number or boolean as a finite float; anything else (text, null, NaN) is None."""
    if isinstance(value, bool | int | float):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


def _as_category(value: Any) -> str | None:
    """A value as category text (nested values as compact JSON); null is None."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


@dataclass(frozen=True)
class FeatureSpec:
    """How ``features_json`` becomes a numeric matrix; learned on training rows only.

    ``numeric`` are (key, mean, scale) triples: value -> (value or mean - mean) / scale.
    ``categorical`` are (key, categories) pairs: one 0/1 column per category.
    """

    numeric: tuple[tuple[str, float, float], ...]
    categorical: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def feature_names(self) -> list[str]:
        """Column names: numeric keys, then ``key=category`` for every one-hot column."""
        names = [key for key, _, _ in self.numeric]
        for key, categories in self.categorical:
            names.extend(f"{key}={category}" for category in categories)
        return names

    def transform(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The (rows x features) float matrix of ``records`` (dicts from :func:`parse_features`)."""
        matrix = np.zeros((len(records), len(self.feature_names)), dtype=np.float64)
        for column, (key, mean, scale) in enumerate(self.numeric):
            values = [_as_number(record.get(key)) for record in records]
            matrix[:, column] = [
                ((mean if value is None else value) - mean) / scale for value in values
            ]
        column = len(self.numeric)
        for key, categories in self.categorical:
            position = {category: index for index, category in enumerate(categories)}
            for row, record in enumerate(records):
                index = position.get(_as_category(record.get(key)))
                if index is not None:
                    matrix[row, column + index] = 1.0
            column += len(categories)
        return matrix

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (for ``parameters_json``)."""
        return {
            "numeric": [
                {"key": key, "mean": mean, "scale": scale} for key, mean, scale in self.numeric
            ],
            "categorical": [
                {"key": key, "categories": list(categories)} for key, categories in self.categorical
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        """The inverse of :meth:`to_dict`."""
        return cls(
            numeric=tuple(
                (item["key"], float(item["mean"]), float(item["scale"])) for item in data["numeric"]
            ),
            categorical=tuple(
                (item["key"], tuple(item["categories"])) for item in data["categorical"]
            ),
        )


def learn_features(
    records: Sequence[Mapping[str, Any]], *, max_categories: int = DEFAULT_MAX_CATEGORIES
) -> FeatureSpec:
    """Learn the feature encoding from training rows (see the module docstring for the rules).

    Keys are taken in sorted order so the columns do not depend on row order; a key whose values
    are all null in training is left out.
    """
    if max_categories < 1:
        raise ValueError(f"max_categories must be at least 1; got {max_categories}")
    keys = sorted({key for record in records for key in record})
    numeric: list[tuple[str, float, float]] = []
    categorical: list[tuple[str, tuple[str, ...]]] = []
    for key in keys:
        present = [record[key] for record in records if record.get(key) is not None]
        if not present:
            continue
        numbers = [_as_number(value) for value in present]
        if all(isinstance(value, bool | int | float) for value in present):
            finite = np.array([number for number in numbers if number is not None])
            if finite.size == 0:
                continue
            mean = float(finite.mean())
            # Standard deviation after imputation (the imputed values sit at the mean).
            spread = float(np.sqrt(((finite - mean) ** 2).sum() / len(records)))
            numeric.append((key, mean, spread if spread > 0 else 1.0))
        else:
            counts = Counter(_as_category(value) for value in present)
            ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
            kept = sorted(str(category) for category, _ in ranked[:max_categories])
            categorical.append((key, tuple(kept)))
    return FeatureSpec(tuple(numeric), tuple(categorical))


# --- the model ---------------------------------------------------------------------------------


def multinomial_objective(
    params: np.ndarray,
    features: np.ndarray,
    targets: np.ndarray,
    weights: np.ndarray,
    l2: float,
) -> tuple[float, np.ndarray]:
    """The penalised, weight-normalised multinomial log loss and its gradient.

    ``params`` is ``[W.ravel(), b]`` with ``W`` of shape (features, classes); ``targets`` is the
    one-hot (rows x classes) matrix; ``weights`` are non-negative with a positive sum. The formula
    is in the module docstring.
    """
    n_features, n_classes = features.shape[1], targets.shape[1]
    coef = params[: n_features * n_classes].reshape(n_features, n_classes)
    intercept = params[n_features * n_classes :]
    logits = features @ coef + intercept
    log_norm = special.logsumexp(logits, axis=1)
    share = weights / weights.sum()
    loss = float(share @ (log_norm - (logits * targets).sum(axis=1)))
    loss += 0.5 * l2 * float((coef**2).sum())
    residual = (np.exp(logits - log_norm[:, None]) - targets) * share[:, None]
    grad_coef = features.T @ residual + l2 * coef
    grad_intercept = residual.sum(axis=0)
    return loss, np.concatenate([grad_coef.ravel(), grad_intercept])


@dataclass(frozen=True)
class LogisticModel:
    """A fitted multinomial logistic regression: ``softmax(X @ coef + intercept)`` over classes."""

    classes: tuple[str, ...]
    coef: np.ndarray  # (features, classes)
    intercept: np.ndarray  # (classes,)
    l2: float
    fit_info: dict[str, Any] = field(default_factory=dict)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities, one row per input row, columns in ``classes`` order."""
        logits = features @ self.coef + self.intercept
        return special.softmax(logits, axis=1)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """The most probable class per row (ties: the first in ``classes`` order)."""
        return np.asarray(self.classes, dtype=object)[self.predict_proba(features).argmax(axis=1)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters: classes, coefficients (features x classes), intercepts."""
        return {
            "classes": list(self.classes),
            "coefficients": self.coef.tolist(),
            "intercepts": self.intercept.tolist(),
            "l2": self.l2,
            "fit": self.fit_info,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LogisticModel:
        """The inverse of :meth:`to_dict`."""
        classes = tuple(data["classes"])
        coef = np.asarray(data["coefficients"], dtype=np.float64).reshape(-1, len(classes))
        return cls(
            classes=classes,
            coef=coef,
            intercept=np.asarray(data["intercepts"], dtype=np.float64),
            l2=float(data["l2"]),
            fit_info=dict(data.get("fit", {})),
        )


def fit_multinomial_logistic(
    features: np.ndarray,
    labels: Sequence[str] | np.ndarray,
    sample_weight: Sequence[float] | np.ndarray | None = None,
    *,
    l2: float = DEFAULT_L2,
    gtol: float = 1e-9,
    max_iter: int = 5000,
) -> LogisticModel:
    """Fit the weighted, L2-penalised softmax regression (objective in the module docstring).

    Classes are the sorted distinct labels; at least two are needed. Raises ValueError for a
    negative or all-zero weight vector or a non-positive ``l2`` (without it the optimum need not
    exist on separable data). ``fit_info`` records the optimiser's outcome.
    """
    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels, dtype=object)
    if features.ndim != 2 or features.shape[0] != labels.shape[0]:
        raise ValueError(
            f"features must be (rows x columns) with one label per row; got {features.shape} "
            f"and {labels.shape[0]} labels"
        )
    weights = (
        np.ones(len(labels)) if sample_weight is None else np.asarray(sample_weight, np.float64)
    )
    if weights.shape != labels.shape or (weights < 0).any() or not weights.sum() > 0:
        raise ValueError("sample_weight must be one non-negative weight per row, not all zero")
    if not l2 > 0:
        raise ValueError(f"l2 must be positive; got {l2}")
    classes = tuple(sorted({str(label) for label in labels}))
    if len(classes) < 2:
        raise ValueError(f"need at least two classes to train; the training rows have {classes}")
    index = {label: position for position, label in enumerate(classes)}
    targets = np.zeros((len(labels), len(classes)))
    targets[np.arange(len(labels)), [index[str(label)] for label in labels]] = 1.0
    n_features, n_classes = features.shape[1], len(classes)

    result = optimize.minimize(
        multinomial_objective,
        np.zeros(n_features * n_classes + n_classes),
        args=(features, targets, weights, l2),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": max_iter, "gtol": gtol, "ftol": 1e-15, "maxcor": 30},
    )
    coef = result.x[: n_features * n_classes].reshape(n_features, n_classes)
    intercept = result.x[n_features * n_classes :]
    intercept = intercept - intercept.mean()
    _, gradient = multinomial_objective(result.x, features, targets, weights, l2)
    info = {
        "optimizer": "scipy.optimize.minimize(method='L-BFGS-B')",
        "converged": bool(result.success),
        "message": str(result.message),
        "iterations": int(result.nit),
        "loss": float(result.fun),
        "max_abs_gradient": float(np.abs(gradient).max()),
    }
    return LogisticModel(classes, coef, intercept, float(l2), info)


# --- held-out slice and metrics -----------------------------------------------------------------


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


# --- versions and ids ---------------------------------------------------------------------------


def next_version(versions: Iterable[str]) -> str:
    """``v<N+1>``: N is the largest number of a ``v<N>`` version, else the count of versions."""
    versions = list(versions)
    numbers = [int(match[1]) for v in versions if (match := re.fullmatch(r"[vV](\d+)", v))]
    return f"v{(max(numbers) if numbers else len(set(versions))) + 1}"


def training_run_id(dataset_version: str, model_name: str, inputs: Mapping[str, Any]) -> str:
    """``tr-<dataset_version>-<model_name>-<10 hex>``: the hash is over ``inputs`` (as sorted
    JSON), so the same data and parameters always give the same id."""
    text = json.dumps(
        {"dataset_version": dataset_version, "model_name": model_name, **inputs},
        sort_keys=True,
        default=str,
    )
    return f"tr-{dataset_version}-{model_name}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"


def sample_fingerprint(training_sample_ids: Iterable[str]) -> str:
    """sha256 of the sorted sample row ids: which rows a run trained and evaluated on."""
    return hashlib.sha256("\n".join(sorted(training_sample_ids)).encode()).hexdigest()


# --- one training run ---------------------------------------------------------------------------


def _nan_to_none(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def labelled_rows(sample: pd.DataFrame) -> pd.DataFrame:
    """The rows a run uses: labelled ones, sorted by ``inference_id`` (so nothing depends on the
    order they were read in)."""
    return (
        sample[sample["label"].notna()]
        .sort_values(["inference_id", "training_sample_id"], kind="stable")
        .reset_index(drop=True)
    )


def run_inputs(
    sample: pd.DataFrame,
    *,
    holdout_share: float,
    seed: int,
    l2: float,
    max_categories: int,
    min_improvement: float,
    significance: float,
) -> dict[str, Any]:
    """Everything a run's outcome depends on besides the dataset version, model and registry:
    the fingerprint of its sample rows and its parameters (hashed into the training run id)."""
    ids = labelled_rows(sample)["training_sample_id"].astype(str)
    return {
        "sample_fingerprint": sample_fingerprint(ids),
        "holdout_share": holdout_share,
        "seed": seed,
        "l2": l2,
        "max_categories": max_categories,
        "min_improvement": min_improvement,
        "significance": significance,
    }


@dataclass(frozen=True)
class RegistryView:
    """What ``raw.model_deployments`` says for one run: the version to beat (and, when a run of
    this flow trained it, its parameters), the candidate's version, and whether this very run was
    deployed before (a re-run deploys nothing)."""

    current_version: str | None
    current_parameters: dict[str, Any] | None
    candidate_version: str
    already_deployed: bool


def registry_view(registry: pd.DataFrame, run_id: str) -> RegistryView:
    """Read one model's deployments (``model_version``, ``deployed_at``, ``training_run_id`` and
    optionally ``parameters_json``: the ``ml.training_runs`` parameters of the run behind a row).

    The current version is the latest ``deployed_at`` (ties: the larger version text) among the
    deployments *not* made by ``run_id``, so a re-run compares with what the first run compared
    with. The candidate version is the one ``run_id`` was deployed as, else :func:`next_version`.
    """
    own = registry[registry["training_run_id"] == run_id]
    others = registry[registry["training_run_id"] != run_id].sort_values(
        ["deployed_at", "model_version"]
    )
    current, parameters = None, None
    if not others.empty:
        latest = others.iloc[-1]
        current = str(latest["model_version"])
        text = latest.get("parameters_json")
        parameters = json.loads(text) if isinstance(text, str) else None
    if own.empty:
        candidate = next_version(registry["model_version"].astype(str))
        return RegistryView(current, parameters, candidate, False)
    candidate = str(own.sort_values("deployed_at")["model_version"].iloc[-1])
    return RegistryView(current, parameters, candidate, True)


def load_model(parameters: Mapping[str, Any]) -> tuple[FeatureSpec, LogisticModel]:
    """The feature encoding and model of a training run, from its ``parameters_json``."""
    return FeatureSpec.from_dict(parameters["features"]), LogisticModel.from_dict(parameters)


def rescore(parameters: Mapping[str, Any], features_json: Iterable[str | None]) -> np.ndarray:
    """Class probabilities (columns in ``parameters["classes"]`` order) of a recorded model."""
    spec, model = load_model(parameters)
    return model.predict_proba(spec.transform(parse_features(features_json)))


@dataclass(frozen=True)
class TrainingResult:
    """Everything one training run learned and measured (one ``ml.training_runs`` row, less the
    bookkeeping the flow adds: attempt, decision, status, timestamps)."""

    training_run_id: str
    model_name: str
    dataset_version: str
    candidate_version: str
    already_deployed: bool
    n_train: int
    n_holdout: int
    holdout_accuracy: float | None
    holdout_macro_f1: float | None
    holdout_log_loss: float | None
    baseline_model_version: str | None
    baseline_scope: str
    n_baseline: int
    baseline_accuracy: float | None
    baseline_macro_f1: float | None
    accuracy_gain: float | None
    accuracy_gain_p_value: float | None
    beats_current: bool
    train_seconds: float
    parameters: dict[str, Any]

    @property
    def parameters_json(self) -> str:
        return json.dumps(self.parameters, sort_keys=True)


def train_and_evaluate(
    sample: pd.DataFrame,
    registry: pd.DataFrame,
    *,
    dataset_version: str,
    model_name: str,
    holdout_share: float = 0.2,
    seed: int = 42,
    l2: float = DEFAULT_L2,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    min_improvement: float = 0.0,
    significance: float = 0.05,
) -> TrainingResult:
    """Split, fit, evaluate and compare one model's training sample against its current version.

    ``sample`` has the :data:`SAMPLE_COLUMNS` of ``marts.fct_training_sample`` for one dataset
    version and model (rows with a null label are ignored, a null weight counts as 1);
    ``registry`` has that model's ``raw.model_deployments`` rows (see :func:`registry_view`).
    """
    if not 0 < holdout_share < 1:
        raise ValueError(f"holdout_share must be in (0, 1); got {holdout_share}")
    if not 0 <= significance <= 1:
        raise ValueError(f"significance must be in [0, 1]; got {significance}")
    rows = labelled_rows(sample)
    if rows.empty:
        raise ValueError(f"{model_name}: no labelled rows in {dataset_version}")
    inputs = run_inputs(
        rows,
        holdout_share=holdout_share,
        seed=seed,
        l2=l2,
        max_categories=max_categories,
        min_improvement=min_improvement,
        significance=significance,
    )
    run_id = training_run_id(dataset_version, model_name, inputs)
    view = registry_view(registry, run_id)

    held_out = holdout_mask(rows["inference_id"], holdout_share, seed)
    train, holdout = rows[~held_out], rows[held_out]
    train_records = parse_features(train["features_json"])
    spec = learn_features(train_records, max_categories=max_categories)
    weights = train["sample_weight"].astype(float).fillna(1.0).to_numpy()
    started = time.perf_counter()
    model = fit_multinomial_logistic(
        spec.transform(train_records), train["label"].astype(str).to_numpy(), weights, l2=l2
    )
    train_seconds = time.perf_counter() - started

    y_holdout = holdout["label"].astype(str).to_numpy(dtype=object)
    probabilities = model.predict_proba(spec.transform(parse_features(holdout["features_json"])))
    predicted = np.asarray(model.classes, dtype=object)[probabilities.argmax(axis=1)]

    recorded = holdout["predicted_label"].to_numpy(dtype=object)
    served = (holdout["model_version"] == view.current_version).to_numpy(dtype=bool)
    if served.any():
        scope, baseline = "served", recorded
    elif view.current_parameters is not None:
        scope, served = "rescored", np.ones(len(holdout), dtype=bool)
        current_probabilities = rescore(view.current_parameters, holdout["features_json"])
        classes = np.asarray(view.current_parameters["classes"], dtype=object)
        baseline = classes[current_probabilities.argmax(axis=1)]
    else:
        scope, served, baseline = "all_versions", np.ones(len(holdout), dtype=bool), recorded
    usable = served & pd.notna(baseline)
    comparison = compare_with_baseline(
        y_holdout[usable],
        predicted[usable],
        baseline[usable],
        min_improvement=min_improvement,
        significance=significance,
    )
    parameters = {
        "model": "multinomial_logistic_regression",
        **model.to_dict(),
        "feature_names": spec.feature_names,
        "features": spec.to_dict(),
        "inputs": inputs,
        "holdout_rule": "md5('holdout|<inference_id>|<seed>')[:8] / 2**32 < holdout_share",
        "comparison": {
            "test": "one-sided paired z-test of the accuracy gain (normal approximation)",
            "candidate_accuracy_on_baseline_rows": _nan_to_none(comparison.candidate_accuracy),
        },
    }
    return TrainingResult(
        training_run_id=run_id,
        model_name=model_name,
        dataset_version=dataset_version,
        candidate_version=view.candidate_version,
        already_deployed=view.already_deployed,
        n_train=len(train),
        n_holdout=len(holdout),
        holdout_accuracy=_nan_to_none(accuracy(y_holdout, predicted)),
        holdout_macro_f1=_nan_to_none(macro_f1(y_holdout, predicted)),
        holdout_log_loss=_nan_to_none(log_loss(y_holdout, probabilities, model.classes)),
        baseline_model_version=view.current_version,
        baseline_scope=scope,
        n_baseline=comparison.n_rows,
        baseline_accuracy=_nan_to_none(comparison.baseline_accuracy),
        baseline_macro_f1=_nan_to_none(comparison.baseline_macro_f1),
        accuracy_gain=_nan_to_none(comparison.gain),
        accuracy_gain_p_value=_nan_to_none(comparison.p_value),
        beats_current=comparison.beats,
        train_seconds=train_seconds,
        parameters=parameters,
    )


# --- triggering ---------------------------------------------------------------------------------


def trigger_retraining(
    dataset_version: str | None,
    decision_id: str | None,
    *,
    deployment_name: str | None,
    db_path: str | None,
    model_name: str | None = None,
) -> str:
    """Start the retraining a decision asked for; return what identifies it.

    With ``deployment_name`` (the policy's ``action.kind: deployment``) a flow run of that Prefect
    deployment is created with ``dataset_version`` and ``decision_id`` as parameters, without
    waiting for it (``timeout=0``); the flow run id is returned. Otherwise the built-in ``retrain``
    flow runs here (a subflow when called inside a flow) and the training run id(s) it recorded are
    returned, comma-separated when it trained several models.
    """
    if deployment_name:
        import prefect.deployments

        flow_run = prefect.deployments.run_deployment(
            name=deployment_name,
            parameters={"dataset_version": dataset_version, "decision_id": decision_id},
            timeout=0,
        )
        return str(flow_run.id)
    from flows.retrain import retrain

    summary = retrain(
        dataset_version=dataset_version,
        decision_id=decision_id,
        db_path=db_path,
        model_name=model_name,
    )
    return ",".join(run["training_run_id"] for run in summary["training_runs"])

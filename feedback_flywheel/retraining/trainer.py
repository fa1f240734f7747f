"""The built-in retraining: one training run, from a dataset version's training sample to a
candidate measured against the serving model.

The built-in retraining: features, a weighted multinomial logistic regression, and its metrics.

This module is the pure part of ``flows/retrain.py`` (no database, no Prefect), so tests call it
directly. It is a *baseline* trainer: good enough to tell whether fresh, curated labels can beat
the model that is serving, and small enough to audit. Teams with their own training code point the
retraining policy at their Prefect deployment instead (:func:`trigger_retraining`).

The parts: :mod:`.features` (the encoding), :mod:`.logistic` (the model), :mod:`.evaluation`
(held-out slice, metrics, comparison with the serving model); this module puts them together
(:func:`train_and_evaluate`) and names the run (:func:`training_run_id`). Pure: no database, no
Prefect (``flows/retrain.py`` composes it with the reads and writes of :mod:`.training_store`).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from feedback_flywheel.retraining import training_window
from feedback_flywheel.retraining.evaluation import (
    LOG_LOSS_EPS,
    BaselineComparison,
    accuracy,
    compare_with_baseline,
    holdout_fraction,
    holdout_mask,
    log_loss,
    macro_f1,
)
from feedback_flywheel.retraining.features import (
    DEFAULT_MAX_CATEGORIES,
    FeatureSpec,
    learn_features,
    parse_features,
)
from feedback_flywheel.retraining.logistic import (
    DEFAULT_L2,
    LogisticModel,
    fit_multinomial_logistic,
    multinomial_objective,
)

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
]

SAMPLE_COLUMNS = (
    "training_sample_id",
    "inference_id",
    "model_name",
    "model_version",
    "label",
    "predicted_label",
    "features_json",
    "sample_weight",
    "inference_logged_at",
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
    training_window: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything a run's outcome depends on besides the dataset version, model and registry:
    the fingerprint of its sample rows and its parameters (hashed into the training run id)."""
    ids = labelled_rows(sample)["training_sample_id"].astype(str)
    window = {"training_window": training_window} if training_window else {}
    return window | {
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
    """What the registry (``marts.dim_model_versions``) says for one run: the version to beat
    (and, when a run of this flow trained it, its parameters), the candidate's version, and
    whether this very run was deployed before (a re-run deploys nothing)."""

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


def _baseline_predictions(
    holdout: pd.DataFrame, view: RegistryView
) -> tuple[str, np.ndarray, np.ndarray]:
    """What the serving model predicted on the held-out rows, and on which of them: its own
    recorded predictions where it served them (``served``), else its recorded parameters
    rescored on every row (``rescored``), else whatever version served each row
    (``all_versions``). Returns (scope, rows it covers, predictions)."""
    recorded = holdout["predicted_label"].to_numpy(dtype=object)
    served = (holdout["model_version"] == view.current_version).to_numpy(dtype=bool)
    if served.any():
        return "served", served, recorded
    everywhere = np.ones(len(holdout), dtype=bool)
    if view.current_parameters is not None:
        current_probabilities = rescore(view.current_parameters, holdout["features_json"])
        classes = np.asarray(view.current_parameters["classes"], dtype=object)
        return "rescored", everywhere, classes[current_probabilities.argmax(axis=1)]
    return "all_versions", everywhere, recorded


def _fit(
    train: pd.DataFrame, *, max_categories: int, l2: float
) -> tuple[FeatureSpec, LogisticModel, float]:
    """Learn the encoding on the training rows and fit the model; (spec, model, seconds)."""
    records = parse_features(train["features_json"])
    spec = learn_features(records, max_categories=max_categories)
    weights = train["sample_weight"].astype(float).fillna(1.0).to_numpy()
    started = time.perf_counter()
    model = fit_multinomial_logistic(
        spec.transform(records), train["label"].astype(str).to_numpy(), weights, l2=l2
    )
    return spec, model, time.perf_counter() - started


def _evaluate(
    spec: FeatureSpec,
    model: LogisticModel,
    holdout: pd.DataFrame,
    view: RegistryView,
    *,
    min_improvement: float,
    significance: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str, BaselineComparison]:
    """The candidate's predictions on the held-out rows and its paired comparison with the
    serving model there: (truth, probabilities, predictions, baseline scope, comparison)."""
    y_holdout = holdout["label"].astype(str).to_numpy(dtype=object)
    probabilities = model.predict_proba(spec.transform(parse_features(holdout["features_json"])))
    predicted = np.asarray(model.classes, dtype=object)[probabilities.argmax(axis=1)]
    scope, served, baseline = _baseline_predictions(holdout, view)
    usable = served & pd.notna(baseline)
    comparison = compare_with_baseline(
        y_holdout[usable],
        predicted[usable],
        baseline[usable],
        min_improvement=min_improvement,
        significance=significance,
    )
    return y_holdout, probabilities, predicted, scope, comparison


def _run_parameters(
    model: LogisticModel,
    spec: FeatureSpec,
    inputs: dict[str, Any],
    comparison: BaselineComparison,
) -> dict[str, Any]:
    """What a run records so :func:`rescore` can rebuild its model and an auditor its rules."""
    return {
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
    since: datetime | None = None,
    after_change: pd.DataFrame | None = None,
    min_rows_after_change: int = training_window.MIN_ROWS_AFTER_CHANGE,
    recency_half_life_days: float = training_window.RECENCY_HALF_LIFE_DAYS,
) -> TrainingResult:
    """Split, fit, evaluate and compare one model's training sample against its current version.

    ``sample`` has the :data:`SAMPLE_COLUMNS` of ``marts.fct_training_sample`` for one dataset
    version and model (rows with a null label are ignored, a null weight counts as 1);
    ``registry`` has that model's ``marts.dim_model_versions`` rows (see :func:`registry_view`).
    With ``since`` (a change point) it learns from ``after_change`` (the examples logged since)
    or weighs recency, and is judged on the held-out rows since (:mod:`.training_window`).
    """
    if not 0 < holdout_share < 1:
        raise ValueError(f"holdout_share must be in (0, 1); got {holdout_share}")
    if not 0 <= significance <= 1:
        raise ValueError(f"significance must be in [0, 1]; got {significance}")
    chosen, window = training_window.choose(
        sample,
        after_change,
        since,
        min_rows=min_rows_after_change,
        half_life_days=recency_half_life_days,
    )
    rows = labelled_rows(chosen)
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
        training_window=window.as_dict() if since is not None else None,
    )
    run_id = training_run_id(dataset_version, model_name, inputs)
    view = registry_view(registry, run_id)

    held_out = holdout_mask(rows["inference_id"], holdout_share, seed)
    train, holdout = rows[~held_out], rows[held_out]
    holdout = holdout[training_window.judged_after(holdout, since)]
    spec, model, train_seconds = _fit(train, max_categories=max_categories, l2=l2)

    y_holdout, probabilities, predicted, scope, comparison = _evaluate(
        spec, model, holdout, view, min_improvement=min_improvement, significance=significance
    )
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
        parameters=_run_parameters(model, spec, inputs, comparison),
    )

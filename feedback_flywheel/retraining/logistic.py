"""The built-in trainer's model: a weighted, L2-penalised multinomial logistic regression.

**Model** (:func:`fit_multinomial_logistic`): softmax regression over the classes seen in
training with an unpenalised intercept per class, minimising

    L(W, b) = sum_i s_i * (logsumexp(x_i W + b) - (x_i W + b)_{y_i}) / sum_i s_i + l2/2 * ||W||^2

with ``s_i`` the sample weights, by L-BFGS (``scipy.optimize.minimize``) with the exact gradient.
The intercepts are centred after the fit (they are only defined up to a common shift).
A run's ``parameters_json`` holds the classes, the coefficients (features x classes), the
intercepts, the feature names and encoding, and the run's inputs: :func:`rescore` rebuilds the
model from it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize, special

DEFAULT_L2 = 1e-2


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

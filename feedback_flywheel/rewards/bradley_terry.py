"""The Bradley–Terry maths: the per-pair likelihood with its gradient, and the penalised fit.

Pure numpy / scipy, no warehouse: both the reward model (one row per pair of feature differences)
and the leaderboard (one row per pair of ±1 item indicators) are fitted here.

The loss is the Bradley–Terry negative log-likelihood −log σ(r_a − r_b) with an L2 penalty on the
weights, minimised by L-BFGS-B with the analytic gradient. Ties are modelled (Davidson or
Rao–Kupper, one tie parameter τ fitted on the log scale) or excluded (tie rows dropped). An
optional position-bias term β · position adds the advantage of the output shown first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

#: outcome codes: the low output won, the high output won, a tie
LOW, HIGH, TIE = 0, 1, 2
#: ``preferred_output`` of fct_preference_pairs → outcome code
OUTCOMES = {"low": LOW, "high": HIGH, "tie": TIE}

#: where the tie parameter τ starts (log 0.1) and the bounds L-BFGS-B keeps it in
_TIE_START = float(np.log(0.1))
_TIE_BOUNDS = (-12.0, 4.0)


@dataclass(frozen=True)
class FitResult:
    """A fitted Bradley–Terry model over a design of pair differences."""

    weights: np.ndarray
    position_bias: float
    tie_parameter: float  # Davidson: nu; Rao–Kupper: eta; exclude: 0
    objective: float
    iterations: int
    converged: bool


def _unpack(
    theta: np.ndarray, k: int, ties: str, position: bool
) -> tuple[np.ndarray, float, float]:
    """Split the optimiser's vector into (weights, β, τ); τ is −∞ when ties are excluded."""
    weights = theta[:k]
    index = k
    beta = 0.0
    if position:
        beta = float(theta[index])
        index += 1
    tau = float(theta[index]) if ties != "exclude" else float("-inf")
    return weights, beta, tau


# --- the per-pair likelihood --------------------------------------------------------------------


def pair_nll(
    d: np.ndarray, outcome: np.ndarray, ties: str, tau: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-pair negative log-likelihood of ``outcome`` (0: a won, 1: b won, 2: tie) given the
    reward difference ``d = r_a - r_b``, and its derivatives by d and by the tie parameter τ.

    davidson:   P(a) = e^{d/2} / Z, P(b) = e^{-d/2} / Z, P(tie) = ν / Z, Z = e^{d/2} + e^{-d/2} + ν,
                ν = e^τ (given a decisive outcome, P(a) = σ(d): plain Bradley–Terry).
    rao_kupper: P(a) = σ(d − η), P(b) = σ(−d − η), P(tie) = the rest, η = e^τ.
    exclude:    P(a) = σ(d), P(b) = σ(−d) (ties must have been removed).
    """
    if ties == "rao_kupper":
        return _rao_kupper_nll(d, outcome, tau)
    return _davidson_nll(d, outcome, ties == "davidson", tau)


def _rao_kupper_nll(
    d: np.ndarray, outcome: np.ndarray, tau: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`pair_nll` under Rao–Kupper: a threshold η = e^τ a difference must pass to win."""
    eta = np.exp(tau)
    u = special.expit(eta - d)  # P(not a) = 1 - sigma(d - eta)
    v = special.expit(-eta - d)  # P(b)
    nll = np.empty_like(d)
    g_d = np.empty_like(d)
    g_eta = np.empty_like(d)
    a, b, t = outcome == LOW, outcome == HIGH, outcome == TIE
    nll[a] = np.logaddexp(0.0, eta - d[a])  # -log sigma(d - eta)
    g_d[a] = -u[a]
    g_eta[a] = u[a]
    nll[b] = np.logaddexp(0.0, d[b] + eta)  # -log sigma(-d - eta)
    g_d[b] = 1.0 - v[b]
    g_eta[b] = 1.0 - v[b]
    p_tie = np.maximum(u[t] - v[t], 1e-300)
    nll[t] = -np.log(p_tie)
    du, dv = u[t] * (1.0 - u[t]), v[t] * (1.0 - v[t])
    g_d[t] = (du - dv) / p_tie  # dP/dd = -u(1-u) + v(1-v); nll' = -P'/P
    g_eta[t] = -(du + dv) / p_tie
    # chain rule to the fitted parameter: d eta / d tau = eta
    return nll, g_d, g_eta * eta


def _davidson_nll(
    d: np.ndarray, outcome: np.ndarray, with_ties: bool, tau: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`pair_nll` under Davidson (``with_ties``) or plain Bradley–Terry (no tie mass)."""
    half = d / 2.0
    if with_ties:
        log_z = np.logaddexp(np.logaddexp(half, -half), tau)
        p_tie = np.exp(tau - log_z)
    else:
        log_z = np.logaddexp(half, -half)
        p_tie = np.zeros_like(d)
    p_a = np.exp(half - log_z)
    p_b = np.exp(-half - log_z)
    numerator = np.where(outcome == LOW, half, np.where(outcome == HIGH, -half, tau))
    nll = log_z - numerator
    observed = np.where(outcome == LOW, 0.5, np.where(outcome == HIGH, -0.5, 0.0))
    g_d = (p_a - p_b) / 2.0 - observed
    g_tau = p_tie - (outcome == TIE)
    return nll, g_d, g_tau


# --- the penalised fit --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Problem:
    """One fit's data and settings, and the objective L-BFGS-B minimises over
    θ = (w, [β when fit_position], [τ unless ties are excluded])."""

    design: np.ndarray
    outcome: np.ndarray
    weight: np.ndarray
    position: np.ndarray
    l2: float
    ties: str
    fit_position: bool

    @property
    def k(self) -> int:
        """Number of weights (columns of the design)."""
        return self.design.shape[1]

    @property
    def size(self) -> int:
        """Length of θ."""
        return self.k + int(self.fit_position) + int(self.ties != "exclude")

    def start(self, x0: np.ndarray | None) -> np.ndarray:
        """θ to start from: ``x0`` when it has the right length (a warm start), else zero weights
        and a small tie parameter."""
        theta0 = np.zeros(self.size)
        if self.ties != "exclude":
            theta0[-1] = _TIE_START
        if x0 is not None and len(x0) == self.size:
            theta0 = np.asarray(x0, dtype=float).copy()
        return theta0

    def bounds(self) -> list[tuple[float | None, float | None]]:
        """Weights and β are free; τ is kept in a range where the likelihood stays finite."""
        bounds: list[tuple[float | None, float | None]] = [(None, None)] * (
            self.k + int(self.fit_position)
        )
        if self.ties != "exclude":
            bounds.append(_TIE_BOUNDS)
        return bounds

    def objective(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Σ weight · NLL + l2/2 |w|², and its gradient by θ."""
        k = self.k
        w, beta, tau = _unpack(theta, k, self.ties, self.fit_position)
        d = self.design @ w + beta * self.position
        nll, g_d, g_tau = pair_nll(d, self.outcome, self.ties, tau)
        value = float(self.weight @ nll) + 0.5 * self.l2 * float(w @ w)
        weighted = self.weight * g_d
        grad = np.empty(self.size)
        grad[:k] = self.design.T @ weighted + self.l2 * w
        index = k
        if self.fit_position:
            grad[index] = float(weighted @ self.position)
            index += 1
        if self.ties != "exclude":
            grad[index] = float(self.weight @ g_tau)
        return value, grad


def _problem(
    design: np.ndarray,
    outcome: np.ndarray,
    weight: np.ndarray | None,
    position: np.ndarray | None,
    l2: float,
    ties: str,
    fit_position: bool,
) -> _Problem:
    """The arrays as floats, defaults filled in, tie rows dropped when ties are excluded, and β
    fitted only when some display order is known."""
    design = np.asarray(design, dtype=float)
    outcome = np.asarray(outcome, dtype=int)
    n = design.shape[0]
    weight = np.ones(n) if weight is None else np.asarray(weight, dtype=float)
    position = np.zeros(n) if position is None else np.asarray(position, dtype=float)
    if ties == "exclude":
        keep = outcome != TIE
        design, outcome = design[keep], outcome[keep]
        weight, position = weight[keep], position[keep]
    fit_position = fit_position and bool(np.any(position != 0))
    return _Problem(design, outcome, weight, position, l2, ties, fit_position)


def fit_bradley_terry(
    design: np.ndarray,
    outcome: np.ndarray,
    *,
    weight: np.ndarray | None = None,
    position: np.ndarray | None = None,
    l2: float = 1.0,
    ties: str = "davidson",
    fit_position: bool = False,
    x0: np.ndarray | None = None,
    max_iterations: int = 1000,
) -> FitResult:
    """Minimise Σ weight · NLL(outcome | d) + l2/2 |w|² by L-BFGS-B with the analytic gradient,
    where d = design · w (+ β · position when ``fit_position``).

    ``design`` holds one row per pair: φ(a) − φ(b) for a feature model, or the ±1 indicator
    difference of two items for an item-level model. ``position`` is +1 when a was shown first,
    −1 when b was, 0 when unknown. With ``ties='exclude'`` tie rows are dropped here.
    """
    problem = _problem(design, outcome, weight, position, l2, ties, fit_position)
    result = optimize.minimize(
        problem.objective,
        problem.start(x0),
        jac=True,
        method="L-BFGS-B",
        bounds=problem.bounds(),
        options={"maxiter": max_iterations, "gtol": 1e-9, "ftol": 1e-13},
    )
    w, beta, tau = _unpack(result.x, problem.k, ties, problem.fit_position)
    return FitResult(
        weights=np.asarray(w, dtype=float).copy(),
        position_bias=beta,
        tie_parameter=0.0 if ties == "exclude" else float(np.exp(tau)),
        objective=float(result.fun),
        iterations=int(result.nit),
        converged=bool(result.success),
    )


def theta_of(fit: FitResult, ties: str, fit_position: bool) -> np.ndarray:
    """The optimiser's parameter vector of a fit (to warm-start the next one)."""
    parts = [fit.weights]
    if fit_position:
        parts.append(np.array([fit.position_bias]))
    if ties != "exclude":
        parts.append(np.array([np.log(max(fit.tie_parameter, 1e-12))]))
    return np.concatenate(parts)

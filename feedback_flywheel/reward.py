"""The reward model: a batched Bradley–Terry model r(x) = w · φ(x) trained on preference pairs.

What it reads (all built by dbt): ``marts.fct_preference_pairs`` (judgements of two outputs of the
same context, with provenance, weight and a train / validation split by context) and
``intermediate.int_output_features`` (the features φ(x) of an output, computed in SQL: word,
character and sentence counts, has_question, the keyword flags of var ``reward_text_keywords``,
and ``predicted_score``; a pair whose output has no ``output_text`` has no features and is left
out). What it writes (tables created here by :func:`ensure_tables`):

- ``ml.reward_models``: one row per batch: trained or skipped, the version, its pairs window,
  held-out pairwise accuracy, log loss and calibration error of σ(Δr) against the observed win
  rates, the incumbent's metrics on the same validation pairs, the parameters (JSON), whether it
  was promoted and why.
- ``ml.reward_scores``: the scores of new outputs by the current (promoted) version, one row per
  (inference_id, version), with an ``input_hash`` of the exact features scored.
- ``ml.reward_leaderboard``: the item-level Bradley–Terry fit (one strength per model version)
  with cluster-bootstrap intervals, and the mean reward score per version.

The loss is the Bradley–Terry negative log-likelihood −log σ(r_a − r_b) with an L2 penalty,
minimised by L-BFGS with the analytic gradient; ties are modelled (Davidson or Rao–Kupper) or
excluded (``policies/reward.yml``). Each batch retrains on all accumulated pairs, warm-started
from the current version, when enough new pairs arrived; a candidate is promoted only when it
beats the current version on the same validation pairs. A batch is processed once: re-running it
finds its ``ml.reward_models`` row and changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import duckdb
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from scipy import optimize, special

from feedback_flywheel import audit, paths
from feedback_flywheel.policy import load_policy_file

# --- tables ------------------------------------------------------------------------------------

REWARD_MODELS_DDL = """
create table if not exists ml.reward_models (
    batch_id varchar not null primary key,
    reward_model_version varchar,
    status varchar not null,
    is_promoted boolean not null,
    current_version varchar,
    previous_version varchar,
    reason varchar not null,
    pairs_from_batch_id varchar,
    pairs_to_batch_id varchar,
    n_pairs_train bigint,
    n_pairs_validation bigint,
    n_pairs_new bigint,
    n_ties_train bigint,
    heldout_pairs bigint,
    heldout_accuracy double,
    heldout_log_loss double,
    heldout_calibration_error double,
    current_heldout_accuracy double,
    current_heldout_log_loss double,
    warm_started_from varchar,
    optimizer_iterations integer,
    converged boolean,
    train_seconds double,
    parameters_json varchar,
    policy_version varchar,
    created_at timestamp not null
)
"""

REWARD_SCORES_DDL = """
create table if not exists ml.reward_scores (
    inference_id varchar not null,
    reward_model_version varchar not null,
    batch_id varchar not null,
    score double not null,
    input_hash varchar not null,
    scored_at timestamp not null,
    primary key (inference_id, reward_model_version)
)
"""

LEADERBOARD_DDL = """
create table if not exists ml.reward_leaderboard (
    batch_id varchar not null,
    item varchar not null,
    model_name varchar,
    model_version varchar,
    strength double,
    strength_lower double,
    strength_upper double,
    cross_version_comparisons bigint not null,
    wins bigint not null,
    losses bigint not null,
    ties bigint not null,
    rank integer,
    is_identified boolean not null,
    mean_reward double,
    scored_outputs bigint not null,
    computed_at timestamp not null,
    primary key (batch_id, item)
)
"""

ML_TABLES_DDL = (REWARD_MODELS_DDL, REWARD_SCORES_DDL, LEADERBOARD_DDL)

#: Feature columns of intermediate.int_output_features that are not features.
NON_FEATURE_COLUMNS = ("inference_id", "model_name", "model_version", "context_id", "logged_at")
OUTCOMES = {"low": 0, "high": 1, "tie": 2}
LOW, HIGH, TIE = 0, 1, 2


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the ml tables this module writes, if missing (safe to repeat)."""
    con.execute("create schema if not exists ml")
    for ddl in ML_TABLES_DDL:
        con.execute(ddl)


# --- policy ------------------------------------------------------------------------------------


class RewardPolicyError(ValueError):
    """The reward policy file is invalid; the message names the file, the key and the values
    allowed."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrainingPolicy(_Strict):
    min_pairs: int = Field(ge=1)
    min_new_pairs: int = Field(ge=0)
    l2: float = Field(ge=0)
    ties: Literal["davidson", "rao_kupper", "exclude"]
    position_bias: bool
    max_iterations: int = Field(ge=10, le=100_000)


class PromotionPolicy(_Strict):
    metric: Literal["log_loss", "accuracy"]
    min_improvement: float = Field(ge=0)
    min_accuracy: float = Field(ge=0, le=1)


class RewardModelPairsPolicy(_Strict):
    max_weight_share: float = Field(ge=0, le=1)


class LeaderboardPolicy(_Strict):
    bootstrap_samples: int = Field(ge=0, le=10_000)
    seed: int = Field(ge=0)
    l2: float = Field(gt=0)


class RewardPolicy(_Strict):
    version: Literal[1]
    training: TrainingPolicy
    promotion: PromotionPolicy
    reward_model_pairs: RewardModelPairsPolicy
    leaderboard: LeaderboardPolicy
    policy_version: str = ""
    source: str = ""


def default_reward_policy_path() -> Path:
    return paths.project_dir() / "policies" / "reward.yml"


def load_reward_policy(path: Path | None = None) -> RewardPolicy:
    """The reward policy at ``path`` (default ``policies/reward.yml``), validated."""
    return load_policy_file(
        Path(path) if path else default_reward_policy_path(),
        RewardPolicy,
        RewardPolicyError,
        "reward",
        "r1",
    )


# --- the Bradley–Terry fit ---------------------------------------------------------------------


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
    weights = theta[:k]
    index = k
    beta = 0.0
    if position:
        beta = float(theta[index])
        index += 1
    tau = float(theta[index]) if ties != "exclude" else float("-inf")
    return weights, beta, tau


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
        return nll, g_d, g_eta * eta
    half = d / 2.0
    if ties == "davidson":
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
    design = np.asarray(design, dtype=float)
    outcome = np.asarray(outcome, dtype=int)
    n, k = design.shape
    weight = np.ones(n) if weight is None else np.asarray(weight, dtype=float)
    position = np.zeros(n) if position is None else np.asarray(position, dtype=float)
    if ties == "exclude":
        keep = outcome != TIE
        design, outcome, weight, position = (
            design[keep],
            outcome[keep],
            weight[keep],
            position[keep],
        )
    fit_position = fit_position and bool(np.any(position != 0))
    size = k + int(fit_position) + int(ties != "exclude")
    theta0 = np.zeros(size)
    if ties != "exclude":
        theta0[-1] = np.log(0.1)
    if x0 is not None and len(x0) == size:
        theta0 = np.asarray(x0, dtype=float).copy()

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, beta, tau = _unpack(theta, k, ties, fit_position)
        d = design @ w + beta * position
        nll, g_d, g_tau = pair_nll(d, outcome, ties, tau)
        value = float(weight @ nll) + 0.5 * l2 * float(w @ w)
        weighted = weight * g_d
        grad = np.empty(size)
        grad[:k] = design.T @ weighted + l2 * w
        index = k
        if fit_position:
            grad[index] = float(weighted @ position)
            index += 1
        if ties != "exclude":
            grad[index] = float(weight @ g_tau)
        return value, grad

    bounds = [(None, None)] * (k + int(fit_position))
    if ties != "exclude":
        bounds.append((-12.0, 4.0))
    result = optimize.minimize(
        objective,
        theta0,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": max_iterations, "gtol": 1e-9, "ftol": 1e-13},
    )
    w, beta, tau = _unpack(result.x, k, ties, fit_position)
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


# --- the reward model ------------------------------------------------------------------------


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
        values = features.reindex(columns=self.feature_names).to_numpy(dtype=float)
        values = np.nan_to_num(values, nan=0.0)
        return (values - self.means) / self.scales

    def score(self, features: pd.DataFrame) -> np.ndarray:
        return self.standardise(features) @ self.weights

    def to_json(self) -> str:
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


# --- reading the warehouse ---------------------------------------------------------------------


def feature_columns(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The feature columns of intermediate.int_output_features, in table order."""
    rows = con.execute(
        """
        select column_name from information_schema.columns
        where table_schema = 'marts' and table_name = 'fct_output_features'
        order by ordinal_position
        """
    ).fetchall()
    return [name for (name,) in rows if name not in NON_FEATURE_COLUMNS]


def load_pairs(con: duckdb.DuckDBPyConnection, batch_id: str) -> pd.DataFrame:
    """Every pair of fct_preference_pairs completed by ``batch_id`` (the accumulated pairs)."""
    return con.execute(
        """
        select
            preference_pair_id, pair_key, context_id, inference_id_low, inference_id_high,
            first_shown_inference_id, preferred_output, pair_source, annotator_id, model_name,
            model_version_low, model_version_high, split, batch_id, pair_weight
        from marts.fct_preference_pairs
        where batch_id <= ?
        order by preference_pair_id
        """,
        [batch_id],
    ).df()


def load_features(
    con: duckdb.DuckDBPyConnection, inference_ids: list[str] | None = None, where: str = ""
) -> pd.DataFrame:
    """Features of the given outputs (or of those matching ``where``), indexed by inference_id."""
    if inference_ids is not None:
        frame = pd.DataFrame({"inference_id": pd.Series(inference_ids, dtype=object)})
        con.register("wanted_outputs", frame)
        try:
            result = con.execute(
                """
                select features.* from marts.fct_output_features as features
                inner join wanted_outputs using (inference_id)
                order by features.inference_id
                """
            ).df()
        finally:
            con.unregister("wanted_outputs")
    else:
        result = con.execute(
            f"select * from marts.fct_output_features {where} order by inference_id"
        ).df()
    return result.set_index("inference_id")


def current_model(
    con: duckdb.DuckDBPyConnection, before_batch: str | None = None
) -> RewardModel | None:
    """The promoted version in force (the latest promoted, optionally before a batch)."""
    query = """
        select reward_model_version, parameters_json from ml.reward_models
        where is_promoted {extra} order by batch_id desc limit 1
    """
    extra, args = ("and batch_id < ?", [before_batch]) if before_batch else ("", [])
    rows = con.execute(query.format(extra=extra), args).fetchall()
    return RewardModel.from_json(rows[0][0], rows[0][1]) if rows else None


# --- one batch -------------------------------------------------------------------------------


@dataclass
class RewardOutcome:
    """What the reward stage did for one batch (also one row of ml.reward_models)."""

    batch_id: str
    status: str  # trained | skipped | already_done
    reward_model_version: str | None
    is_promoted: bool
    current_version: str | None
    reason: str
    scored: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        head = f"reward model, batch {self.batch_id}: {self.status}"
        if self.reward_model_version:
            head += f" {self.reward_model_version}"
            head += " (promoted)" if self.is_promoted else " (not promoted)"
        return (
            f"{head}; current {self.current_version or 'none'}; {self.reason}; scored {self.scored}"
        )


def _prepare(
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
    echo = (pairs.pair_source == "reward_model").to_numpy()
    if echo.any():
        cap = max_share * weight[~echo].sum()
        total = weight[echo].sum()
        if total > cap:
            weight[echo] *= cap / total if total > 0 else 0.0
    return weight


def _positions(pairs: pd.DataFrame) -> np.ndarray:
    first = pairs.first_shown_inference_id
    return np.where(first.isna(), 0.0, np.where(first == pairs.inference_id_low, 1.0, -1.0)).astype(
        float
    )


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
    outputs); warm-started from ``warm`` when it has the same features."""
    train = (pairs.split == "train").to_numpy()
    stacked = np.vstack([low[train], high[train]])
    means = stacked.mean(axis=0) if len(stacked) else np.zeros(len(names))
    scales = stacked.std(axis=0) if len(stacked) else np.ones(len(names))
    scales = np.where(scales > 1e-12, scales, 1.0)
    design = ((low[train] - means) - (high[train] - means)) / scales
    outcome = pairs.preferred_output.map(OUTCOMES).to_numpy()[train]
    weight = capped_weights(pairs[train], policy.reward_model_pairs.max_weight_share)
    position = _positions(pairs[train])
    settings = policy.training
    fit_position = settings.position_bias and bool(np.any(position != 0))
    x0, warm_used = None, False
    if warm is not None and warm.feature_names == names and warm.ties == settings.ties:
        previous = FitResult(warm.weights, warm.position_bias, warm.tie_parameter, 0.0, 0, True)
        x0 = theta_of(previous, settings.ties, fit_position)
        warm_used = True
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
    return model, fit, warm_used


def fit_leaderboard(pairs: pd.DataFrame, policy: RewardPolicy, ties: str) -> pd.DataFrame:
    """Item-level Bradley–Terry: one strength per model version (``model_name:model_version``),
    from pairs whose two outputs come from different versions, with a percentile cluster bootstrap
    over contexts. Strengths are centred on the mean of the identified items. Versions never
    compared with another version are listed with ``is_identified`` false and no strength.
    Pairs the reward model judged itself (``pair_source`` ``reward_model``) are left out: the
    leaderboard says which version people (and AI judges) prefer, not what the model echoes."""
    if "pair_source" in pairs:
        pairs = pairs[pairs.pair_source != "reward_model"].reset_index(drop=True)
    item_low = pairs.model_name + ":" + pairs.model_version_low
    item_high = pairs.model_name + ":" + pairs.model_version_high
    items = sorted(set(item_low) | set(item_high))
    cross = (item_low != item_high).to_numpy()
    rows = []
    if not items:
        return pd.DataFrame()
    index = {item: i for i, item in enumerate(items)}
    outcome_all = pairs.preferred_output.map(OUTCOMES).to_numpy()
    low_idx = item_low.map(index).to_numpy()
    high_idx = item_high.map(index).to_numpy()
    lo_c, hi_c, result_c = low_idx[cross], high_idx[cross], outcome_all[cross]

    def count(indices: np.ndarray) -> np.ndarray:
        return np.bincount(indices, minlength=len(items)).astype(int)

    compared = count(lo_c) + count(hi_c)
    wins = count(lo_c[result_c == LOW]) + count(hi_c[result_c == HIGH])
    losses = count(hi_c[result_c == LOW]) + count(lo_c[result_c == HIGH])
    tie_count = count(lo_c[result_c == TIE]) + count(hi_c[result_c == TIE])
    identified = compared > 0
    strength = np.full(len(items), np.nan)
    lower = np.full(len(items), np.nan)
    upper = np.full(len(items), np.nan)
    if cross.any():
        sub = pairs[cross].reset_index(drop=True)
        design = np.zeros((len(sub), len(items)))
        design[np.arange(len(sub)), low_idx[cross]] += 1.0
        design[np.arange(len(sub)), high_idx[cross]] -= 1.0
        outcome = outcome_all[cross]
        weight = sub.pair_weight.to_numpy(dtype=float)
        board = policy.leaderboard

        def fit(rows_: np.ndarray, x0: np.ndarray | None = None) -> tuple[np.ndarray, FitResult]:
            result = fit_bradley_terry(
                design[rows_],
                outcome[rows_],
                weight=weight[rows_],
                l2=board.l2,
                ties=ties,
                x0=x0,
            )
            values = result.weights - result.weights[identified].mean()
            return values, result

        base, base_fit = fit(np.arange(len(sub)))
        strength[identified] = base[identified]
        if board.bootstrap_samples > 0:
            rng = np.random.default_rng(board.seed)
            contexts = sub.context_id.to_numpy()
            unique_contexts, inverse = np.unique(contexts, return_inverse=True)
            by_context = np.argsort(inverse, kind="stable")
            boundaries = np.flatnonzero(np.diff(inverse[by_context])) + 1
            members = np.split(by_context, boundaries)
            warm = theta_of(base_fit, ties, False)
            draws = []
            for _ in range(board.bootstrap_samples):
                chosen = rng.integers(0, len(unique_contexts), len(unique_contexts))
                rows_ = np.concatenate([members[i] for i in chosen])
                values, _ = fit(rows_, warm)
                draws.append(values)
            draws_array = np.array(draws)
            lower[identified] = np.percentile(draws_array[:, identified], 2.5, axis=0)
            upper[identified] = np.percentile(draws_array[:, identified], 97.5, axis=0)
    order = np.argsort(-np.nan_to_num(strength, nan=-np.inf), kind="stable")
    rank = np.empty(len(items), dtype=object)
    position = 1
    for i in order:
        rank[i] = position if identified[i] else None
        position += int(identified[i])
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
                "cross_version_comparisons": int(compared[i]),
                "wins": int(wins[i]),
                "losses": int(losses[i]),
                "ties": int(tie_count[i]),
                "rank": rank[i],
                "is_identified": bool(identified[i]),
            }
        )
    return pd.DataFrame(rows)


def _already_done(con: duckdb.DuckDBPyConnection, batch_id: str) -> RewardOutcome | None:
    rows = con.execute(
        """
        select status, reward_model_version, is_promoted, current_version, reason
        from ml.reward_models where batch_id = ?
        """,
        [batch_id],
    ).fetchall()
    if not rows:
        return None
    row = rows[0]
    return RewardOutcome(
        batch_id=batch_id,
        status="already_done",
        reward_model_version=row[1],
        is_promoted=bool(row[2]),
        current_version=row[3],
        reason=f"batch already processed ({row[0]}); nothing changed. Earlier: {row[4]}",
    )


def _outputs_to_score(
    con: duckdb.DuckDBPyConnection,
    version: str,
    window_start: datetime,
    window_end: datetime,
    lookback_days: int,
) -> pd.DataFrame:
    """New outputs (logged in the batch window, or within lookback_days before it for late
    files) and the outputs of preference pairs, not yet scored by ``version``."""
    return con.execute(
        f"""
        with wanted as (
            select inference_id from marts.fct_output_features
            where logged_at < ?
                and logged_at >= ? - interval {int(lookback_days)} day
            union
            select inference_id_low from marts.fct_preference_pairs
            union
            select inference_id_high from marts.fct_preference_pairs
        )
        select features.* from marts.fct_output_features as features
        inner join wanted using (inference_id)
        where features.logged_at < ?
            and not exists (
                select 1 from ml.reward_scores as scores
                where scores.inference_id = features.inference_id
                    and scores.reward_model_version = ?
            )
        order by features.inference_id
        """,
        [window_end, window_start, window_end, version],
    ).df()


def run_batch(
    con: duckdb.DuckDBPyConnection,
    *,
    batch_id: str,
    window_start: datetime,
    window_end: datetime,
    policy: RewardPolicy | None = None,
    lookback_days: int = 3,
    now: datetime | None = None,
) -> RewardOutcome:
    """The reward stage of one batch: train (when enough new pairs arrived), promote (when the
    candidate beats the current version), fit the leaderboard, score new outputs by the current
    version. Everything is written in one transaction with its audit row; a batch that already
    has its ml.reward_models row is left alone."""
    policy = policy or load_reward_policy()
    ensure_tables(con)
    done = _already_done(con, batch_id)
    if done is not None:
        return done
    now = now or datetime.now(UTC).replace(tzinfo=None)
    names = feature_columns(con)
    pairs = load_pairs(con, batch_id)
    incumbent = current_model(con)
    trained = con.execute(
        """
        select reward_model_version, pairs_to_batch_id from ml.reward_models
        where status = 'trained' order by batch_id desc limit 1
        """
    ).fetchall()
    last_trained = trained[0] if trained else None
    features = load_features(
        con, sorted(set(pairs.inference_id_low) | set(pairs.inference_id_high))
    )
    pairs, low, high = _prepare(pairs, features, names)
    since = last_trained[1] if last_trained else None
    # New pairs count towards retraining only when they are not the model's own echo.
    fresh = pairs.pair_source != "reward_model"
    new_pairs = int((fresh & (pairs.batch_id > since)).sum()) if since else int(fresh.sum())
    n_train = int((pairs.split == "train").sum())
    n_validation = int((pairs.split == "validation").sum())
    settings = policy.training
    record: dict[str, Any] = {
        "batch_id": batch_id,
        "reward_model_version": None,
        "status": "skipped",
        "is_promoted": False,
        "current_version": incumbent.version if incumbent else None,
        "previous_version": incumbent.version if incumbent else None,
        "pairs_from_batch_id": pairs.batch_id.min() if len(pairs) else None,
        "pairs_to_batch_id": batch_id,
        "n_pairs_train": n_train,
        "n_pairs_validation": n_validation,
        "n_pairs_new": new_pairs,
        "n_ties_train": int(((pairs.split == "train") & (pairs.preferred_output == "tie")).sum()),
        "policy_version": policy.policy_version,
        "created_at": now,
    }
    candidate: RewardModel | None = None
    if n_train < settings.min_pairs:
        record["reason"] = (
            f"too few pairs to train: {n_train} in the train split < training.min_pairs "
            f"{settings.min_pairs}; "
            + ("keeping " + incumbent.version if incumbent else "no model yet")
        )
    elif last_trained is not None and new_pairs < settings.min_new_pairs:
        record["reason"] = (
            f"too few new pairs: {new_pairs} since {last_trained[0]} (pairs up to "
            f"{last_trained[1]}) < training.min_new_pairs {settings.min_new_pairs}; keeping "
            f"{incumbent.version if incumbent else 'no model'}"
        )
    else:
        version = f"rm-{batch_id}"
        started = time.perf_counter()
        candidate, fit, warm_used = train_candidate(
            version, pairs, low, high, names, policy, incumbent
        )
        # Held-out metrics never count the model's own echo (reward_model pairs).
        validation = (
            (pairs.split == "validation") & (pairs.pair_source != "reward_model")
        ).to_numpy()
        outcome = pairs.preferred_output.map(OUTCOMES).to_numpy()[validation]
        low_frame = pd.DataFrame(low[validation], columns=names)
        high_frame = pd.DataFrame(high[validation], columns=names)
        scores = pair_metrics(candidate.score(low_frame) - candidate.score(high_frame), outcome)
        previous = (
            pair_metrics(incumbent.score(low_frame) - incumbent.score(high_frame), outcome)
            if incumbent is not None
            else None
        )
        promote, why = _promotion(scores, previous, incumbent, policy)
        candidate.extra.update(
            {
                "warm_started_from": incumbent.version if warm_used and incumbent else None,
                "iterations": fit.iterations,
            }
        )
        record.update(
            {
                "reward_model_version": version,
                "status": "trained",
                "is_promoted": promote,
                "current_version": version if promote else record["current_version"],
                "reason": why,
                "heldout_pairs": scores["pairs"],
                "heldout_accuracy": scores["accuracy"],
                "heldout_log_loss": scores["log_loss"],
                "heldout_calibration_error": scores["ece"],
                "current_heldout_accuracy": previous["accuracy"] if previous else None,
                "current_heldout_log_loss": previous["log_loss"] if previous else None,
                "warm_started_from": incumbent.version if warm_used and incumbent else None,
                "optimizer_iterations": fit.iterations,
                "converged": fit.converged,
                "train_seconds": round(time.perf_counter() - started, 4),
                "parameters_json": candidate.to_json(),
            }
        )
    scorer = candidate if record["is_promoted"] else incumbent
    board = fit_leaderboard(pairs, policy, settings.ties) if len(pairs) else pd.DataFrame()
    scored = 0
    with audit.atomic(con):
        _insert(con, "ml.reward_models", pd.DataFrame([record]))
        if scorer is not None:
            outputs = _outputs_to_score(
                con, scorer.version, window_start, window_end, lookback_days
            )
            if len(outputs):
                values = scorer.standardise(outputs)
                raw = outputs.reindex(columns=scorer.feature_names).astype(float).fillna(0.0)
                frame = pd.DataFrame(
                    {
                        "inference_id": outputs.inference_id,
                        "reward_model_version": scorer.version,
                        "batch_id": batch_id,
                        "score": values @ scorer.weights,
                        "input_hash": [
                            input_hash(scorer.feature_names, row) for row in raw.to_numpy()
                        ],
                        "scored_at": now,
                    }
                )
                _insert(con, "ml.reward_scores", frame)
                scored = len(frame)
        if len(board):
            means = con.execute(
                """
                select features.model_name || ':' || features.model_version as item,
                    avg(scores.score) as mean_reward, count(*) as scored_outputs
                from ml.reward_scores as scores
                inner join marts.fct_output_features as features using (inference_id)
                where scores.reward_model_version = ?
                group by 1
                """,
                [scorer.version if scorer else ""],
            ).df()
            board = board.merge(means, on="item", how="left")
            board["scored_outputs"] = board.scored_outputs.fillna(0).astype(int)
            board["batch_id"] = batch_id
            board["computed_at"] = now
            _insert(con, "ml.reward_leaderboard", board)
        audit.record(
            con,
            kind="reward_model",
            subject_id=record["reward_model_version"] or f"reward-{batch_id}",
            batch_id=batch_id,
            payload={
                key: value
                for key, value in record.items()
                if key not in ("created_at", "parameters_json", "train_seconds")
            }
            | {
                "parameters": json.loads(record["parameters_json"])
                if record.get("parameters_json")
                else None,
                "scored_outputs": scored,
            },
        )
    return RewardOutcome(
        batch_id=batch_id,
        status=record["status"],
        reward_model_version=record["reward_model_version"],
        is_promoted=record["is_promoted"],
        current_version=record["current_version"],
        reason=record["reason"],
        scored=scored,
        metrics={
            key: record.get(key)
            for key in (
                "heldout_pairs",
                "heldout_accuracy",
                "heldout_log_loss",
                "heldout_calibration_error",
                "current_heldout_accuracy",
                "current_heldout_log_loss",
                "n_pairs_train",
                "n_pairs_validation",
                "n_pairs_new",
            )
        },
    )


def _promotion(
    scores: dict[str, Any],
    previous: dict[str, Any] | None,
    incumbent: RewardModel | None,
    policy: RewardPolicy,
) -> tuple[bool, str]:
    """Whether the candidate beats the current version on the same validation pairs, and why."""
    rules = policy.promotion
    if scores["pairs"] == 0:
        return False, "no decisive validation pairs to compare on; not promoted"
    accuracy = f"held-out accuracy {scores['accuracy']:.3f}, log loss {scores['log_loss']:.4f}"
    if previous is None or incumbent is None:
        if scores["accuracy"] > rules.min_accuracy:
            return True, f"first reward model: {accuracy} > coin {rules.min_accuracy}; promoted"
        return False, f"first reward model: {accuracy} not above {rules.min_accuracy}"
    if rules.metric == "log_loss":
        gain = previous["log_loss"] - scores["log_loss"]
        against = f"log loss {scores['log_loss']:.4f} vs {previous['log_loss']:.4f}"
    else:
        gain = scores["accuracy"] - previous["accuracy"]
        against = f"accuracy {scores['accuracy']:.3f} vs {previous['accuracy']:.3f}"
    if gain > rules.min_improvement:
        where = f"on {scores['pairs']} validation pairs"
        return True, f"beats {incumbent.version} {where} ({against}); promoted"
    return False, (
        f"does not beat {incumbent.version} on {scores['pairs']} validation pairs ({against}, "
        f"needs an improvement > {rules.min_improvement}); keeping {incumbent.version}"
    )


def _insert(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    columns = [
        name
        for (name,) in con.execute(
            """
            select column_name from information_schema.columns
            where table_schema = ? and table_name = ? order by ordinal_position
            """,
            table.split("."),
        ).fetchall()
    ]
    data = frame.reindex(columns=columns)
    con.register("incoming_reward_rows", data)
    try:
        names = ", ".join(columns)
        con.execute(f"insert into {table} ({names}) select {names} from incoming_reward_rows")
    finally:
        con.unregister("incoming_reward_rows")


# --- reading for people ------------------------------------------------------------------------


def has_tables(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the reward stage has run at least once (its ml tables exist)."""
    rows = con.execute(
        """
        select count(*) from information_schema.tables
        where table_schema = 'ml' and table_name in ('reward_models', 'reward_leaderboard')
        """
    ).fetchall()
    return rows[0][0] == 2


def status_frame(con: duckdb.DuckDBPyConnection, limit: int = 10) -> pd.DataFrame:
    """The latest ml.reward_models rows (newest first)."""
    return con.execute(
        """
        select batch_id, status, reward_model_version, is_promoted, current_version,
            n_pairs_train, n_pairs_validation, n_pairs_new, heldout_accuracy, heldout_log_loss,
            heldout_calibration_error, reason
        from ml.reward_models order by batch_id desc limit ?
        """,
        [limit],
    ).df()


def leaderboard_frame(con: duckdb.DuckDBPyConnection, batch_id: str | None = None) -> pd.DataFrame:
    """The leaderboard of a batch (default: the latest one that has one)."""
    if batch_id is None:
        batch_id = con.execute("select max(batch_id) from ml.reward_leaderboard").fetchall()[0][0]
    return con.execute(
        """
        select batch_id, rank, item, strength, strength_lower, strength_upper,
            cross_version_comparisons, wins, losses, ties, is_identified, mean_reward,
            scored_outputs
        from ml.reward_leaderboard where batch_id = ? order by rank nulls last, item
        """,
        [batch_id],
    ).df()

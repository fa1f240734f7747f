"""The policy files: the retraining policy (``policies/retraining.yml``) and the reward policy
(``policies/reward.yml``), each validated on load by one loader.

A policy's version (a hash of the file's content) is recorded with every decision or reward
model it shaped, so a decision can be replayed against the exact policy it was made under.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

PolicyModel = TypeVar("PolicyModel", bound=BaseModel)


class PolicyError(ValueError):
    """The policy file is invalid; the message names the file, the key and what is allowed."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Persistence(_Strict):
    k: int = Field(ge=1)
    m: int = Field(ge=1)

    @model_validator(mode="after")
    def _k_at_most_m(self) -> Persistence:
        if self.k > self.m:
            raise ValueError(f"persistence k ({self.k}) must be <= m ({self.m})")
        return self


class EffectFloors(_Strict):
    ks: float = Field(ge=0)
    chi2: float = Field(ge=0)
    missing_rate: float = Field(ge=0, le=1)
    unseen_share: float = Field(ge=0, le=1)


class DriftPolicy(_Strict):
    alpha: float = Field(gt=0, lt=1)
    min_samples: int = Field(ge=1)
    effect_size_floors: EffectFloors
    persistence: Persistence


class FeatureSignal(_Strict):
    enabled: bool
    min_features: int = Field(default=1, ge=1)


class PerformanceSignal(_Strict):
    enabled: bool
    min_drop: float = Field(ge=0, le=1)
    min_labelled: int = Field(default=100, ge=1)


class FastPerformanceSignal(PerformanceSignal):
    """The performance timeline's newest matured day, tested at its own significance level (it
    is tested every day on a short window, so stricter than the batch's alpha)."""

    alpha: float = Field(default=0.01, gt=0, lt=1)


#: a policy file written before the fast signal existed keeps its behaviour: the signal is off
_FAST_OFF = FastPerformanceSignal(enabled=False, min_drop=0.1, min_labelled=200)


class Signals(_Strict):
    covariate_drift: FeatureSignal
    prediction_drift: FeatureSignal
    label_drift: FeatureSignal
    performance_drop: PerformanceSignal
    concept_drift: PerformanceSignal
    estimated_performance_drop: PerformanceSignal
    fast_performance_drop: FastPerformanceSignal = _FAST_OFF


class Action(_Strict):
    kind: Literal["builtin", "deployment"]
    deployment_name: str | None = None

    @model_validator(mode="after")
    def _deployment_needs_a_name(self) -> Action:
        if self.kind == "deployment" and not self.deployment_name:
            raise ValueError("action.kind 'deployment' needs action.deployment_name (flow/name)")
        return self


class Policy(_Strict):
    version: Literal[1]
    drift: DriftPolicy
    signals: Signals
    retrain_when: Literal["impact", "any", "all"]
    cooldown_days: float = Field(ge=0)
    action: Action
    policy_version: str = ""
    source: str = ""


class RewardPolicyError(ValueError):
    """The reward policy file is invalid; the message names the file, the key and the values
    allowed."""


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


def default_policy_path(project_dir: Path) -> Path:
    return project_dir / "policies" / "retraining.yml"


def default_reward_policy_path(project_dir: Path) -> Path:
    return project_dir / "policies" / "reward.yml"


def load_policy(path: Path) -> Policy:
    """The retraining policy at ``path``, validated."""
    return load_policy_file(Path(path), Policy, PolicyError, "retraining", "p1")


def load_reward_policy(path: Path) -> RewardPolicy:
    """The reward policy at ``path``, validated."""
    return load_policy_file(Path(path), RewardPolicy, RewardPolicyError, "reward", "r1")


def load_policy_file(
    path: Path,
    model: type[PolicyModel],
    error: type[Exception],
    what: str,
    version_prefix: str,
) -> PolicyModel:
    """Read and validate a YAML policy file into ``model``: an unreadable file, invalid YAML or an
    invalid value raises ``error`` naming the file and every offending key with what it got. The
    result carries ``policy_version`` (``<prefix>-`` and a hash of the file's text, so any edit
    makes a new version) and ``source`` (the file)."""
    try:
        text = path.read_text()
    except OSError as problem:
        raise error(f"cannot read the {what} policy {path}: {problem}") from None
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as problem:
        raise error(f"{path} is not valid YAML: {problem}") from None
    try:
        policy = model.model_validate(document)
    except ValidationError as invalid:
        lines = []
        for problem in invalid.errors():
            key = ".".join(str(part) for part in problem["loc"])
            message = problem["msg"].removeprefix("Value error, ")
            lines.append(
                f"  {key or '(top level)'}: {message}"
                + (f" (got {problem.get('input')!r})" if key else "")
            )
        raise error(f"invalid {what} policy {path}:\n" + "\n".join(lines)) from None
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    return policy.model_copy(
        update={"policy_version": f"{version_prefix}-{digest}", "source": str(path)}
    )

"""The retraining policy: a YAML file (``policies/retraining.yml``) validated on load.

Its version (a hash of the file's content) is recorded with every decision, so a decision can be
replayed against the exact policy it was made under.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from feedback_flywheel import paths

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


class Signals(_Strict):
    covariate_drift: FeatureSignal
    prediction_drift: FeatureSignal
    label_drift: FeatureSignal
    performance_drop: PerformanceSignal
    concept_drift: PerformanceSignal
    estimated_performance_drop: PerformanceSignal


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
    retrain_when: Literal["any", "all"]
    cooldown_days: float = Field(ge=0)
    action: Action
    policy_version: str = ""
    source: str = ""

    def enabled_signals(self) -> list[str]:
        return [name for name, signal in self.signals if signal.enabled]


def default_policy_path() -> Path:
    return paths.project_dir() / "policies" / "retraining.yml"


def load_policy(path: Path | None = None) -> Policy:
    """The policy at ``path`` (default ``policies/retraining.yml``), validated."""
    return load_policy_file(
        Path(path) if path else default_policy_path(), Policy, PolicyError, "retraining", "p1"
    )


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

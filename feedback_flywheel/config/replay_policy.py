"""The replay policy (``policies/replay.yml``): the experience replay buffer's capacity and
removers, its priorities and sampling defaults, the samples-per-insert limiter and the
composition warnings. Validated on load; an error names the file, the key and what is allowed.
Its hash (``x1-…``) is recorded with every buffer version."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from feedback_flywheel.config.policies import _Strict, load_policy_file


class ReplayPolicyError(ValueError):
    """The replay policy file is invalid; the message names the file, the key and the values
    allowed."""


class BufferPolicy(_Strict):
    capacity: int = Field(ge=1, le=10_000_000_000)
    remover: Literal["lowest_priority", "fifo"]
    max_times_sampled: int | None = Field(ge=1)
    max_age_days: float | None = Field(gt=0)
    max_policy_lag: int | None = Field(ge=0)
    min_size_to_sample: int = Field(ge=1)


class PriorityPolicy(_Strict):
    alpha: float = Field(ge=0, le=10)
    epsilon: float = Field(gt=0)
    beta_start: float = Field(ge=0, le=1)
    beta_anneal_batches: int = Field(ge=1)


class RateLimitPolicy(_Strict):
    max_samples_per_insert: float | None = Field(gt=0)
    on_limit: Literal["refuse", "wait"]
    wait_seconds: float = Field(ge=0, le=86_400)


class CompositionPolicy(_Strict):
    dominant_share: float = Field(gt=0, le=1)
    segment_attribute: str | None = Field(pattern=r"^[a-z_][a-z0-9_]*$", max_length=63)
    age_buckets_days: list[float] = Field(min_length=1, max_length=20)
    reward_buckets: list[float] = Field(min_length=1, max_length=20)

    @model_validator(mode="after")
    def _buckets_ascend(self) -> CompositionPolicy:
        for name in ("age_buckets_days", "reward_buckets"):
            edges = getattr(self, name)
            if any(b <= a for a, b in itertools.pairwise(edges)):
                raise ValueError(f"{name} must be strictly increasing; got {edges}")
        return self


class ReplayPolicy(_Strict):
    version: Literal[1]
    buffer: BufferPolicy
    priority: PriorityPolicy
    rate_limit: RateLimitPolicy
    composition: CompositionPolicy
    policy_version: str = ""
    source: str = ""


def default_replay_policy_path(project_dir: Path) -> Path:
    return project_dir / "policies" / "replay.yml"


def load_replay_policy(path: Path) -> ReplayPolicy:
    """The replay policy at ``path``, validated."""
    return load_policy_file(Path(path), ReplayPolicy, ReplayPolicyError, "replay", "x1")

"""Thresholds, windows and budgets: read from ``dbt_project.yml`` ``vars``, validated on load.

``dbt_project.yml`` is the one documented place for them (dbt reads the same values). A run may
override any of them (``flywheel run --var lookback_days=5``); the merged values are validated
here before dbt sees them, and an error names the key, what it got and what it allows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from feedback_flywheel import paths

BATCH_VARS = ("batch_id", "batch_start", "batch_end")


class SettingsError(ValueError):
    """The configuration is invalid; the message names the key and the allowed values."""


class DriftFeatures(BaseModel):
    """The keys of ``inputs`` whose drift is monitored, by kind."""

    model_config = ConfigDict(extra="forbid")

    numeric: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)


class FlywheelVars(BaseModel):
    """The project's dbt vars. Field descriptions are the documentation users read."""

    model_config = ConfigDict(extra="forbid")

    segment_attributes: list[str] = Field(
        min_length=1, description="Keys of inference_log.context that become segment columns."
    )
    batch_id: str = Field(pattern=r"^b\d{8}T\d{6}$", description="Id of the batch being built.")
    batch_start: str = Field(description="Start of the batch window over received_at (UTC).")
    batch_end: str = Field(description="End (exclusive) of the batch window: the watermark.")
    lookback_days: int = Field(ge=0, le=365, description="How long held feedback is re-tried.")
    label_settle_hours: int = Field(ge=0, le=24 * 90, description="Age at which a label matures.")
    clock_skew_seconds: int = Field(ge=0, le=86400, description="Tolerated client clock skew.")
    supported_schema_versions: list[str] = Field(min_length=1)
    label_weights: dict[str, float]
    sampling_seed: int = Field(ge=0)
    stratify_by: str
    stratified_quota_per_cell: int = Field(ge=0)
    uncertainty_method: Literal["least_confidence", "margin", "entropy"]
    uncertainty_budget: int = Field(ge=0)

    drift_current_days: int = Field(ge=1, le=365, description="Drift: current window length.")
    drift_reference_days: int = Field(ge=1, le=3650, description="Drift: reference window.")
    drift_features: DriftFeatures
    drift_top_k: int = Field(ge=1, le=1000, description="Categorical drift: categories kept.")
    drift_bins: int = Field(ge=2, le=100, description="PSI / JS bins from reference quantiles.")
    performance_current_days: int = Field(ge=1, le=365)
    performance_reference_days: int = Field(ge=1, le=3650)
    calibration_bins: int = Field(ge=2, le=100)

    @model_validator(mode="after")
    def _stratify_by_is_a_segment(self) -> FlywheelVars:
        if self.stratify_by not in self.segment_attributes:
            raise ValueError(
                f"stratify_by must be one of segment_attributes "
                f"({', '.join(self.segment_attributes)}); got {self.stratify_by!r}"
            )
        return self

    def dbt_vars(self) -> dict[str, Any]:
        """The values as the ``--vars`` mapping dbt receives."""
        return self.model_dump()


def project_vars(project_dir: Path | None = None) -> dict[str, Any]:
    """The ``vars:`` block of ``dbt_project.yml`` as written."""
    project_file = (project_dir or paths.project_dir()) / "dbt_project.yml"
    with project_file.open() as handle:
        return dict(yaml.safe_load(handle).get("vars") or {})


def parse_overrides(pairs: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["key=value", ...]`` from the command line into a dict; values are parsed as YAML."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key.strip():
            raise SettingsError(f"--var expects key=value, got {pair!r}")
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides


def load_settings(
    overrides: dict[str, Any] | None = None, project_dir: Path | None = None
) -> FlywheelVars:
    """The project's vars with ``overrides`` applied, validated.

    Raises SettingsError with one line per problem: the key, what was given and what is allowed.
    """
    values = project_vars(project_dir)
    unknown = sorted(set(overrides or {}) - set(FlywheelVars.model_fields))
    if unknown:
        raise SettingsError(
            f"unknown setting(s) {', '.join(unknown)}; known settings: "
            f"{', '.join(FlywheelVars.model_fields)}"
        )
    values.update(overrides or {})
    try:
        return FlywheelVars.model_validate(values)
    except ValidationError as error:
        lines = []
        for problem in error.errors():
            key = ".".join(str(part) for part in problem["loc"])
            message = problem["msg"].removeprefix("Value error, ")
            if key:
                lines.append(f"  {key}: {message} (got {problem.get('input')!r})")
            else:
                lines.append(f"  {message}")
        raise SettingsError(
            "invalid settings (dbt_project.yml vars, or --var overrides):\n" + "\n".join(lines)
        ) from None

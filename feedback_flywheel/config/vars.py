"""The dbt vars: thresholds, windows and budgets read from ``dbt_project.yml``, validated on load.

``dbt_project.yml`` is the one documented place for them (dbt reads the same values). A run may
override any of them (``flywheel run --var lookback_days=5``); the merged values are validated
here before dbt sees them, and an error names the key, what it got and what it allows.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

BATCH_VARS = ("batch_id", "batch_start", "batch_end")
# Features of fct_output_features that do not come from var reward_text_keywords.
REWARD_FIXED_FEATURES = ("n_words", "n_chars", "n_sentences", "has_question", "predicted_score")


#: a lower-case SQL identifier: what every name a var puts into SQL as a column or key must be
IDENTIFIER_PATTERN = r"^[a-z_][a-z0-9_]*$"
Identifier = Annotated[str, StringConstraints(pattern=IDENTIFIER_PATTERN, max_length=63)]
#: text a var puts into SQL as a quoted literal (group names, labels, LIKE patterns)
Text = Annotated[str, StringConstraints(max_length=500)]
Version = Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z._-]{1,32}$")]
Timestamp = Annotated[
    str,
    StringConstraints(pattern=r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}:\d{2})?$"),
]
#: raw columns that may be configured as personal (pseudonymised in staging)
PERSONAL_COLUMN_CHOICES = ("subject_id", "session_id", "annotator_id")
#: the numeric feedback event types a replay reward mapping may name
REWARD_EVENT_TYPES = ("reward", "rating", "thumbs", "click", "dwell_seconds", "conversion")
RewardEventType = Literal[REWARD_EVENT_TYPES]  # type: ignore[valid-type]


class SettingsError(ValueError):
    """The configuration is invalid; the message names the key and the allowed values."""


class DriftFeatures(BaseModel):
    """The keys of ``inputs`` whose drift is monitored, by kind."""

    model_config = ConfigDict(extra="forbid")

    numeric: list[Identifier] = Field(default_factory=list)
    categorical: list[Identifier] = Field(default_factory=list)


class FlywheelVars(BaseModel):
    """The project's dbt vars. Field descriptions are the documentation users read."""

    model_config = ConfigDict(extra="forbid")

    segment_attributes: list[Identifier] = Field(
        description="Keys of inference_log.context the analyses break down by (segments)."
    )
    batch_id: str = Field(pattern=r"^b\d{8}T\d{6}$", description="Id of the batch being built.")
    batch_start: Timestamp = Field(description="Start of the batch window (UTC).")
    batch_end: Timestamp = Field(description="End (exclusive) of the batch window: the watermark.")
    lookback_days: int = Field(ge=0, le=365, description="How long held feedback is re-tried.")
    label_settle_hours: int = Field(ge=0, le=24 * 90, description="Age at which a label matures.")
    clock_skew_seconds: int = Field(ge=0, le=86400, description="Tolerated client clock skew.")
    supported_schema_versions: list[Version] = Field(min_length=1)
    warn_quarantine_share: float = Field(
        gt=0, le=1, description="Share of a file quarantined for one reason that is a warning."
    )
    timestamp_floor: Timestamp = Field(
        description="Timestamps before this are implausible: quarantined, and no batch starts "
        "before it."
    )
    personal_columns: list[Literal[PERSONAL_COLUMN_CHOICES]] = Field(  # type: ignore[valid-type]
        description="Raw id columns pseudonymised with a keyed hash in staging."
    )
    label_weights: dict[Identifier, float]
    sampling_seed: int = Field(ge=0)
    stratify_by: Identifier | None = Field(
        description="Segment attribute the training sample stratifies by (× label); null: label."
    )
    stratified_quota_per_cell: int = Field(ge=0)
    uncertainty_method: Literal["least_confidence", "margin", "entropy"]
    uncertainty_budget: int = Field(ge=0)
    sampling_policy: Literal["fixed", "auto"] = Field(
        description="fixed: the sample above; auto: the policy and budget the last batch's "
        "offline evaluation chose (marts.fct_sampling_policy_scores)."
    )
    sampling_policy_budgets: list[Annotated[int, Field(ge=1, le=1_000_000)]] = Field(
        min_length=1, max_length=12, description="Policy evaluation: the budgets of the curves."
    )
    sampling_policy_seeds: int = Field(
        ge=2, le=50, description="Policy evaluation: seeds the intervals are across."
    )
    sampling_policy_pairs: int = Field(
        ge=0, le=60, description="Policy evaluation: the last (t, t+1) batch pairs used (0: off)."
    )
    sampling_budget_tolerance: float = Field(
        ge=0, le=1, description="Policy choice: the smallest budget within this of the best."
    )
    sampling_policy_chooser: Literal["rule", "exp3"] = Field(
        description="Policy choice: the documented rule (best AULC that beats random), or the "
        "Exp3 bandit's draw across cycles (marts.fct_sampling_policy_scores)."
    )
    sampling_policy_exp3_gamma: float = Field(
        gt=0, le=1, description="Exp3 bandit over the policies: the exploration share gamma."
    )
    weak_label_signals: list[Literal["click", "conversion", "thumbs", "dwell_seconds"]] = Field(
        max_length=4,
        description="Implicit signals that stand in for a missing label, weighted by their "
        "measured fidelity (marts.fct_weak_label_examples); [] (the default): none.",
    )
    weak_label_min_fidelity: float = Field(
        gt=0, le=1, description="Weak labels: the least 95% lower bound of a signal's fidelity."
    )
    weak_label_fidelity_days: int = Field(
        ge=1, le=3650, description="Weak labels: days of served predictions fidelity is over."
    )
    weak_label_budget: int = Field(
        ge=0, le=1_000_000, description="Weak labels a model's training sample takes at most."
    )

    drift_current_days: int = Field(ge=1, le=365, description="Drift: current window length.")
    drift_reference_days: int = Field(ge=1, le=3650, description="Drift: reference window.")
    drift_timeline_days: int = Field(
        ge=0, le=3660, description="Drift timeline: past days of a batch evaluated (0: none)."
    )
    drift_features: DriftFeatures
    drift_top_k: int = Field(ge=1, le=1000, description="Categorical drift: categories kept.")
    drift_bins: int = Field(ge=2, le=100, description="PSI / JS bins from reference quantiles.")
    discovery_days: int = Field(ge=1, le=3650, description="Days of logs discovery profiles.")
    performance_current_days: int = Field(ge=1, le=365)
    performance_reference_days: int = Field(ge=1, le=3650)
    performance_fast_days: int = Field(
        ge=1, le=365, description="Performance timeline: the current (fast) window."
    )
    calibration_bins: int = Field(ge=2, le=100)

    # Analytics: deployment impact and bias across segments (models/marts/analytics).
    deployment_impact_days: int = Field(
        ge=1, le=365, description="Days with predictions compared before and after a deployment."
    )
    bias_intersections: list[list[Identifier]] = Field(
        description="Intersections of segment attributes reported as their own attribute."
    )
    bias_reference_groups: dict[str, Text] = Field(
        description="Reference group per attribute ('a|b' for an intersection); default majority."
    )
    bias_positive_labels: dict[Text, list[Text]] = Field(
        description="Per model, the labels treated as the positive prediction (default: all)."
    )
    bias_min_group_count: int = Field(
        ge=1, description="Denominator below which a group's metric is suppressed."
    )
    bias_alpha: float = Field(gt=0, lt=1, description="FDR level of the BH-adjusted bias flags.")
    data_tests_scope: Literal["batch", "full"] = Field(
        description="Data tests read the batch's rows (batch) or whole tables (full)."
    )
    bias_disparity_band: list[float] = Field(
        min_length=2,
        max_length=2,
        description="Disparity ratios inside [low, high] count as fair (Aequitas: 0.8, 1.25).",
    )

    @model_validator(mode="after")
    def _bias_settings_are_usable(self) -> FlywheelVars:
        attributes = set(self.segment_attributes)
        for intersection in self.bias_intersections:
            unknown = [name for name in intersection if name not in attributes]
            if len(intersection) < 2 or unknown or len(set(intersection)) < len(intersection):
                raise ValueError(
                    f"bias_intersections: each entry lists two or more distinct attributes of "
                    f"segment_attributes ({', '.join(self.segment_attributes)}); "
                    f"got {intersection!r}"
                )
        known = attributes | {"|".join(entry) for entry in self.bias_intersections}
        for attribute in self.bias_reference_groups:
            if attribute not in known:
                raise ValueError(
                    f"bias_reference_groups: {attribute!r} is neither a segment attribute nor "
                    f"an intersection of bias_intersections ({', '.join(sorted(known))})"
                )
        for model, labels in self.bias_positive_labels.items():
            if not labels:
                raise ValueError(f"bias_positive_labels.{model}: give a non-empty list of labels")
        low, high = self.bias_disparity_band
        if not 0 < low <= 1 <= high:
            raise ValueError(f"bias_disparity_band: need 0 < low <= 1 <= high; got [{low}, {high}]")
        return self

    # Preferences and the reward model.
    preference_validation_share: float = Field(
        gt=0, lt=1, description="Share of contexts in the validation split (hash of context_id)."
    )
    preference_source_weights: dict[
        Literal["human", "ai_judge", "feedback_rating", "reward_model"], float
    ] = Field(description="Training weight of a preference pair by pair_source (each >= 0).")
    preference_reward_model_pairs: bool = Field(
        description="Add the reward model's own scores as (down-weighted) reward_model pairs."
    )
    reward_model_pair_min_margin: float = Field(
        ge=0, description="Score difference a reward_model pair needs."
    )
    reward_text_keywords: dict[Identifier, Text] = Field(
        description="Text features: column name -> LIKE pattern on the lower-cased output_text."
    )

    @model_validator(mode="after")
    def _reward_settings_are_usable(self) -> FlywheelVars:
        negative = {k: v for k, v in self.preference_source_weights.items() if v < 0}
        if negative:
            raise ValueError(f"preference_source_weights must be >= 0; got {negative}")
        for name in self.reward_text_keywords:
            if name in REWARD_FIXED_FEATURES:
                raise ValueError(
                    f"reward_text_keywords: {name!r} is a built-in feature "
                    f"({', '.join(REWARD_FIXED_FEATURES)}); choose another name"
                )
        return self

    # Experience replay: the transitions of models/marts/replay.
    replay_reward_scale: dict[RewardEventType, float] = Field(
        min_length=1,
        description="Event types that are rewards: type -> scale (value * scale + offset).",
    )
    replay_reward_offset: dict[RewardEventType, float] = Field(
        description="Offset added to a mapped event's scaled value (default 0)."
    )
    replay_reward_window_hours: int = Field(
        ge=0, le=24 * 365, description="A step with no reward this long after serving expires."
    )
    replay_expired_rewards: Literal["zero", "drop"] = Field(
        description="An expired step enters with reward 0, flagged (zero), or never (drop)."
    )
    replay_session_timeout_minutes: int = Field(
        ge=0, le=60 * 24 * 365, description="A session idle this long is over (terminal step)."
    )
    replay_n_step: int = Field(ge=1, le=50, description="Steps summed in the n-step return.")
    replay_gamma: float = Field(ge=0, le=1, description="Discount of the n-step return.")

    # Feedback-loop calibration: signal fidelity (models/reports/calibration).
    fidelity_min_group_count: int = Field(
        ge=1, description="Overlap below which a fidelity group is suppressed (counts only)."
    )
    fidelity_dwell_positive_seconds: float = Field(
        ge=0, description="Dwell at or above this many seconds counts as a positive signal."
    )
    fidelity_rating_positive_at: float = Field(
        ge=1, le=5, description="A rating at or above this counts as positive (1..5)."
    )
    fidelity_current_days: int = Field(
        ge=1, le=365, description="Fidelity-drop flag: days of predictions tested."
    )
    fidelity_history_days: int = Field(
        ge=1, le=3650, description="Fidelity-drop flag: the days before, its own history."
    )
    fidelity_drop_alpha: float = Field(
        gt=0, lt=1, description="Fidelity-drop flag: one-sided p-value below which it fires."
    )
    fidelity_drop_min_effect: float = Field(
        ge=0, le=1, description="Fidelity-drop flag: the least drop in agreement that counts."
    )

    # Feedback-loop calibration: label coverage and the maturation window.
    label_coverage_days: int = Field(
        ge=1, le=3650, description="Label coverage: days of predictions the curves are built from."
    )
    label_coverage_max_days: int = Field(
        ge=1, le=365, description="Label coverage: the oldest age (days) a curve reaches."
    )
    label_maturation_days: Annotated[int, Field(ge=0, le=365)] | Literal["auto"] = Field(
        description="Days the performance windows end before the watermark, or auto (derived "
        "from label coverage)."
    )
    label_maturation_share: float = Field(
        gt=0, le=1, description="Under auto: the share of the coverage plateau that is mature."
    )
    latency_days: int = Field(
        ge=1, le=3650, description="Loop latency: days of stage starts the quantiles are over."
    )

    @model_validator(mode="after")
    def _reward_offsets_name_mapped_types(self) -> FlywheelVars:
        unmapped = sorted(set(self.replay_reward_offset) - set(self.replay_reward_scale))
        if unmapped:
            raise ValueError(
                f"replay_reward_offset names {', '.join(unmapped)}, which replay_reward_scale does "
                f"not map to a reward ({', '.join(self.replay_reward_scale)}); add a scale for it"
            )
        return self

    @model_validator(mode="after")
    def _stratify_by_is_a_segment(self) -> FlywheelVars:
        if self.stratify_by is not None and self.stratify_by not in self.segment_attributes:
            raise ValueError(
                f"stratify_by must be one of segment_attributes "
                f"({', '.join(self.segment_attributes)}); got {self.stratify_by!r}"
            )
        return self

    @property
    def floor(self) -> datetime:
        """var timestamp_floor as a naive UTC datetime."""
        return datetime.fromisoformat(self.timestamp_floor)

    def dbt_vars(self) -> dict[str, Any]:
        """The values as the ``--vars`` mapping dbt receives."""
        return self.model_dump()


def project_vars(project_dir: Path) -> dict[str, Any]:
    """The ``vars:`` block of ``dbt_project.yml`` as written."""
    project_file = project_dir / "dbt_project.yml"
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


def load_vars(
    project_dir: Path, overrides: dict[str, Any] | None = None, *, source: Path | None = None
) -> FlywheelVars:
    """The project's vars with ``overrides`` applied, validated.

    Raises SettingsError with one line per problem: the key, what was given and what is allowed
    (``source``, the configuration file the overrides partly came from, is named in it).
    """
    values = project_vars(project_dir)
    unknown = sorted(set(overrides or {}) - set(FlywheelVars.model_fields))
    if unknown:
        where = f" (in {source} or --var)" if source and source.exists() else ""
        raise SettingsError(
            f"unknown setting(s) {', '.join(unknown)}{where}; known settings: "
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
        where = f"{source}, " if source and source.exists() else ""
        raise SettingsError(
            f"invalid settings ({where}dbt_project.yml vars, or --var overrides):\n"
            + "\n".join(lines)
        ) from None

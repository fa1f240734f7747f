"""The ``ml`` tables of the experience replay buffer (:mod:`feedback_flywheel.replay`).

The buffer is a governed warehouse table, not a trainer's memory: which transitions it holds
(``replay_buffer``) with their priorities and how often each was sampled, every transition it
let go and why (``replay_evictions``), the TD errors trainers reported (``replay_td_errors``),
every sample drawn (``replay_samples``, ``replay_sample_draws``), and one version per batch
(``replay_versions``) with its composition (``replay_composition``). The transitions themselves
(state, action, reward, next state) are the mart ``fct_replay_transitions``.
"""

from __future__ import annotations

from feedback_flywheel.warehouse.ml_table import MlTable
from feedback_flywheel.warehouse.ml_table import col as _c

BATCH_ID = "The batch (b<watermark as YYYYMMDDTHHMMSS>) the row belongs to."
TRANSITION_ID = "The transition (fct_replay_transitions.transition_id: the step's inference_id)."

REPLAY_BUFFER = MlTable(
    "replay_buffer",
    "The transitions the replay buffer holds now: one row each, with its priority (where it came "
    "from), how often it was sampled, and the batch that inserted it. Capacity is never exceeded "
    "after a batch (policies/replay.yml).",
    (
        _c("transition_id", "varchar", TRANSITION_ID, False),
        _c("model_name", "varchar", "The model of the session.", False),
        _c("session_id", "varchar", "The session of the step.", False),
        _c("policy_version", "varchar", "The model version that acted.", False),
        _c("priority", "double", "p_i: sampling weight before the exponent alpha (> 0).", False),
        _c(
            "priority_source",
            "varchar",
            "new_max (inserted at the buffer's maximum priority, as in PER), reward_proxy "
            "(|reward - mean reward of the buffer| + epsilon) or td_error (|TD error| + epsilon "
            "a trainer reported).",
            False,
        ),
        _c("td_error", "double", "The latest TD error reported for it (null: none)."),
        _c("td_training_run_id", "varchar", "The training run that reported td_error."),
        _c("times_sampled", "bigint", "Draws of it by every sample so far.", False),
        _c("insert_seq", "bigint", "Insertion order across the buffer's life (FIFO).", False),
        _c("inserted_batch_id", "varchar", "The batch whose refresh inserted it.", False),
        _c("logged_at", "timestamp", "When its step was served (its age counts from here).", False),
        _c("inserted_at", "timestamp", "When it was inserted (UTC).", False),
        _c("last_sampled_at", "timestamp", "When it was last drawn (UTC)."),
    ),
    primary_key=("transition_id",),
    loaded_at_field="inserted_at",
    published=False,
)

REPLAY_EVICTIONS = MlTable(
    "replay_evictions",
    "The eviction log: every transition the buffer removed (or never took, for a duplicate "
    "step), once, with its reason code and the batch that removed it.",
    (
        _c("transition_id", "varchar", TRANSITION_ID, False),
        _c("batch_id", "varchar", "The batch whose refresh removed it. " + BATCH_ID, False),
        _c(
            "reason_code",
            "varchar",
            "feedback_retracted, source_quarantined, duplicate, stale_age, stale_policy, "
            "max_times_sampled or over_capacity.",
            False,
        ),
        _c("detail", "varchar", "What the reason measured (e.g. age 31.0 d > max_age_days 30)."),
        _c("inserted_batch_id", "varchar", "The batch that inserted it (null: never inserted)."),
        _c("priority", "double", "Its priority when removed."),
        _c("times_sampled", "bigint", "Its draws when removed."),
        _c("policy_version", "varchar", "The model version that acted."),
        _c("evicted_at", "timestamp", "When it was removed (UTC).", False),
    ),
    primary_key=("transition_id",),
    loaded_at_field="evicted_at",
    published=False,
)

REPLAY_TD_ERRORS = MlTable(
    "replay_td_errors",
    "TD errors trainers reported back (flywheel replay priorities / replay.report_td_errors): "
    "one row per (training run, transition). Reporting a run again replaces its rows.",
    (
        _c("training_run_id", "varchar", "The trainer's run that computed the errors.", False),
        _c("transition_id", "varchar", TRANSITION_ID, False),
        _c("td_error", "double", "The TD error delta (priority = |delta| + epsilon).", False),
        _c("report_seq", "bigint", "Order of the reports (the latest per transition wins).", False),
        _c("reported_at", "timestamp", "When the run reported (UTC).", False),
    ),
    primary_key=("training_run_id", "transition_id"),
    loaded_at_field="reported_at",
    published=False,
)

REPLAY_SAMPLES = MlTable(
    "replay_samples",
    "One row per sample drawn from the buffer: sampler, n, alpha, beta, seed, the version it was "
    "drawn from, and the samples-per-insert ratio after it.",
    (
        _c("sample_id", "varchar", "rs-<version>-<seq>: the sample's id.", False),
        _c("buffer_batch_id", "varchar", "The buffer version (batch) it was drawn from.", False),
        _c("sampler", "varchar", "uniform, prioritized or recent.", False),
        _c("draws", "bigint", "n: rows drawn (with replacement).", False),
        _c("alpha", "double", "Priority exponent (0 for uniform and recent).", False),
        _c("beta", "double", "Importance-weight exponent.", False),
        _c("seed", "bigint", "Seed of the uniforms (same seed, same version: same rows).", False),
        _c("recent_window", "bigint", "recent: the newest transitions it drew from."),
        _c("model_name", "varchar", "The model whose transitions it drew (null: every model)."),
        _c("eligible", "bigint", "N: transitions it could draw (below max_times_sampled).", False),
        _c("samples_per_insert", "double", "Draws so far / transitions inserted so far, after it."),
        _c("drawn_at", "timestamp", "When it was drawn (UTC).", False),
    ),
    primary_key=("sample_id",),
    loaded_at_field="drawn_at",
)

REPLAY_SAMPLE_DRAWS = MlTable(
    "replay_sample_draws",
    "The rows of every sample: one per draw, with its sampling probability and normalised "
    "importance weight.",
    (
        _c("sample_id", "varchar", "The sample (replay_samples).", False),
        _c("draw", "bigint", "0, 1, ... n - 1: position in the sample.", False),
        _c("transition_id", "varchar", TRANSITION_ID, False),
        _c("probability", "double", "P(i) = p_i^alpha / sum_k p_k^alpha over the eligible.", False),
        _c("weight", "double", "(N P(i))^-beta / max_k (N P(k))^-beta: in (0, 1].", False),
    ),
    primary_key=("sample_id", "draw"),
    published=False,
)

REPLAY_VERSIONS = MlTable(
    "replay_versions",
    "One version of the buffer per batch: its size and capacity, what the batch inserted and "
    "evicted (by reason), its priorities, the hash of its membership (rebuildable from "
    "replay_buffer and replay_evictions) and the composition warnings.",
    (
        _c("batch_id", "varchar", BATCH_ID, False),
        _c("buffer_version", "varchar", "rb-<batch_id>.", False),
        _c("size", "bigint", "Transitions in the buffer after the batch.", False),
        _c("capacity", "bigint", "policies/replay.yml buffer.capacity.", False),
        _c("inserted", "bigint", "Transitions the batch inserted.", False),
        _c("evicted", "bigint", "Transitions the batch removed (or logged as duplicates).", False),
        _c("evictions_json", "varchar", "Removed per reason code, as JSON.", False),
        _c("priority_min", "double", "Smallest priority in the buffer."),
        _c("priority_mean", "double", "Mean priority."),
        _c("priority_max", "double", "Largest priority (what new transitions get)."),
        _c("reward_mean", "double", "Mean reward of the buffer (the proxy's running mean)."),
        _c("membership_hash", "varchar", "SHA-256 of the sorted transition ids it holds.", False),
        _c("warnings", "varchar", "Composition warnings, '; ' separated (null: none)."),
        _c("policy_version", "varchar", "x1-<hash of policies/replay.yml>.", False),
        _c("computed_at", "timestamp", "When the batch refreshed the buffer (UTC).", False),
    ),
    primary_key=("batch_id",),
    loaded_at_field="computed_at",
)

REPLAY_COMPOSITION = MlTable(
    "replay_composition",
    "What the buffer holds after each batch, by age, reward, priority, source policy version and "
    "segment: "
    "transitions and share per bucket.",
    (
        _c("batch_id", "varchar", BATCH_ID, False),
        _c(
            "dimension",
            "varchar",
            "age, reward, priority, policy_version or segment:<attribute>.",
            False,
        ),
        _c("bucket", "varchar", "The bucket (e.g. 1-7d, [0, 0.5), v2, latam).", False),
        _c("transitions", "bigint", "Transitions in the bucket.", False),
        _c("share", "double", "transitions / buffer size.", False),
    ),
    primary_key=("batch_id", "dimension", "bucket"),
)

#: the replay tables, in creation order
REPLAY_TABLES = (
    REPLAY_BUFFER,
    REPLAY_EVICTIONS,
    REPLAY_TD_ERRORS,
    REPLAY_SAMPLES,
    REPLAY_SAMPLE_DRAWS,
    REPLAY_VERSIONS,
    REPLAY_COMPOSITION,
)

"""The declarations of every ``ml`` table — what the Python stage writes: its columns with their
types and meaning, its primary key, when a row was written (freshness), and whether the serving
copy publishes it. :mod:`.schema` turns them into DDL and into the dbt source YAML."""

from __future__ import annotations

from feedback_flywheel.warehouse.calibration_tables import CALIBRATION_TABLES
from feedback_flywheel.warehouse.ml_table import ML_SCHEMA, MlColumn, MlTable
from feedback_flywheel.warehouse.ml_table import col as _c
from feedback_flywheel.warehouse.replay_tables import REPLAY_TABLES

__all__ = ["ML_SCHEMA", "ML_TABLES", "MlColumn", "MlTable"]


BATCH_ID = "The batch (b<watermark as YYYYMMDDTHHMMSS>) the row belongs to."
MODEL_NAME = "Name of the model."
MODEL_VERSION = "Version of the model."

BATCH_RUNS = MlTable(
    "batch_runs",
    "One row per attempt at a batch of the batch cycle: its window, status (running, success, "
    "failed, abandoned), what it counted, how long dbt took, the audit chain's head when it "
    "closed and when its serving copy was published.",
    (
        _c("batch_id", "varchar", BATCH_ID, False),
        _c(
            "attempt",
            "integer",
            "1, 2, ... per batch: each run of the same batch appends one.",
            False,
        ),
        _c("window_start", "timestamp", "Start of the batch window over received_at (UTC).", False),
        _c("window_end", "timestamp", "End of the window (exclusive): the watermark (UTC).", False),
        _c(
            "status",
            "varchar",
            "running, success, failed, or abandoned (its run died; the next run marks it).",
            False,
        ),
        _c("feedback_in", "bigint", "Raw feedback rows that arrived in the window."),
        _c("feedback_accepted", "bigint", "Feedback rows the batch accepted."),
        _c("feedback_quarantined", "bigint", "Feedback rows the batch quarantined."),
        _c("feedback_held", "bigint", "Feedback rows still held (inference not logged yet)."),
        _c("quarantined_by_reason", "varchar", "JSON object reason_code -> rows quarantined."),
        _c("inferences_in", "bigint", "Raw inference rows logged in the window."),
        _c("training_examples_added", "bigint", "Training examples the batch added."),
        _c("dataset_version", "varchar", "The dataset version the batch built (ds-<batch_id>)."),
        _c("error_message", "varchar", "Why a failed attempt failed."),
        _c("warnings", "varchar", "JSON list of the batch's warnings (absent features, ...)."),
        _c("dbt_seconds", "double", "Wall-clock seconds of the batch's dbt build."),
        _c("audit_head_seq", "bigint", "seq of ml.audit_log's last row when the batch closed."),
        _c("audit_head_hash", "varchar", "row_hash of that row (flywheel audit verify checks it)."),
        _c("published_at", "timestamp", "When the batch's serving copy was published (UTC)."),
        _c("started_at", "timestamp", "When the attempt started (UTC).", False),
        _c("finished_at", "timestamp", "When it finished (UTC); null while running."),
    ),
    primary_key=("batch_id", "attempt"),
    loaded_at_field="started_at",
)

DRIFT_RESULTS = MlTable(
    "drift_results",
    "One row per (batch, model, feature, test): the drift statistic from the warehouse's "
    "summaries, its p-value (scipy), the Benjamini-Hochberg adjusted p-value, the effect size "
    "against its floor, and the gated, persistent drift flag.",
    (
        _c("batch_id", "varchar", BATCH_ID, False),
        _c("model_name", "varchar", MODEL_NAME, False),
        _c(
            "feature_name",
            "varchar",
            "Input feature, predicted_score/predicted_label or label.",
            False,
        ),
        _c("kind", "varchar", "covariate, prediction or label drift.", False),
        _c("test", "varchar", "ks, chi2, missing_rate or unseen_share.", False),
        _c("statistic", "double", "KS D, chi-square, z of the missing-rate change, or share."),
        _c("p_value", "double", "Two-sided p-value of the test (null for unseen_share)."),
        _c("p_adjusted", "double", "Benjamini-Hochberg adjusted p-value across the batch."),
        _c("effect_metric", "varchar", "What effect_size measures.", False),
        _c("effect_size", "double", "Effect size compared with the policy's floor."),
        _c("threshold", "double", "The effect-size floor of the test.", False),
        _c("alpha", "double", "Significance level of the policy.", False),
        _c("n_ref", "bigint", "Values in the reference window."),
        _c("n_cur", "bigint", "Values in the current window."),
        _c(
            "is_significant",
            "boolean",
            "p_adjusted < alpha (or the effect alone, untested).",
            False,
        ),
        _c("is_drift_now", "boolean", "Significant, large enough and enough samples.", False),
        _c("is_drift", "boolean", "Drift that persisted in k of the last m batches.", False),
        _c("details", "varchar", "JSON: the other statistics of the test."),
        _c("policy_version", "varchar", "Version of the retraining policy applied.", False),
        _c("computed_at", "timestamp", "When the row was written (UTC).", False),
    ),
    loaded_at_field="computed_at",
)

DRIFT_TIMELINE = MlTable(
    "drift_timeline",
    "The drift tests of every day of a batch's window, per (batch, model, day, feature, test): "
    "the past days from the timeline marts (a backfill's history), the last from the drift at "
    "the watermark (ml.drift_results). Same tests, correction (Benjamini-Hochberg across the "
    "tests of one model and day) and gate as the decision's, so a change shows on the day it "
    "happened; only the watermark's row can trigger a retraining.",
    (
        _c("batch_id", "varchar", BATCH_ID, False),
        _c("model_name", "varchar", MODEL_NAME, False),
        _c(
            "evaluation_date",
            "date",
            "The day evaluated: its windows end at that day's end (the watermark for the last).",
            False,
        ),
        _c("feature_name", "varchar", "Input feature or predicted_score/predicted_label.", False),
        _c("kind", "varchar", "covariate or prediction drift.", False),
        _c("test", "varchar", "ks, chi2, missing_rate or unseen_share.", False),
        _c("statistic", "double", "KS D, chi-square, z of the missing-rate change, or share."),
        _c("p_value", "double", "Two-sided p-value of the test (null for unseen_share)."),
        _c("p_adjusted", "double", "Benjamini-Hochberg adjusted across the model's day."),
        _c("effect_metric", "varchar", "What effect_size measures.", False),
        _c("effect_size", "double", "Effect size compared with the policy's floor."),
        _c("threshold", "double", "The effect-size floor of the test.", False),
        _c("n_ref", "bigint", "Values in the day's reference window."),
        _c("n_cur", "bigint", "Values in the day's current window."),
        _c("is_drift", "boolean", "Significant, large enough and enough samples that day.", False),
        _c(
            "is_watermark",
            "boolean",
            "The batch's own evaluation at its watermark (the one a decision reads).",
            False,
        ),
        _c("change_point_date", "date", "First flagged day of a run: the change's start."),
        _c("policy_version", "varchar", "Version of the retraining policy applied.", False),
        _c("computed_at", "timestamp", "When the row was written (UTC).", False),
    ),
    primary_key=("batch_id", "model_name", "evaluation_date", "feature_name", "test"),
    loaded_at_field="computed_at",
)

PERFORMANCE_CHECKS = MlTable(
    "performance_checks",
    "Labelled-accuracy checks per batch and model version: the overall change between the "
    "performance windows, its split into a covariate and a concept part per segment attribute, "
    "and the within-segment change per segment value.",
    (
        _c("batch_id", "varchar", BATCH_ID, False),
        _c("model_name", "varchar", MODEL_NAME, False),
        _c("model_version", "varchar", MODEL_VERSION, False),
        _c(
            "check_name",
            "varchar",
            "accuracy_change, concept_decomposition or segment_concept.",
            False,
        ),
        _c("segment_attribute", "varchar", "Segment attribute (__all__ for overall).", False),
        _c("segment_value", "varchar", "Segment value (__all__ for overall).", False),
        _c("n_ref", "bigint", "Matured labels in the reference window."),
        _c("n_cur", "bigint", "Matured labels in the current window."),
        _c("accuracy_ref", "double", "Accuracy in the reference window."),
        _c("accuracy_cur", "double", "Accuracy in the current window."),
        _c("accuracy_change", "double", "accuracy_cur - accuracy_ref."),
        _c("covariate_part", "double", "Change explained by the shift of the segment mix."),
        _c("concept_part", "double", "The residual change within segments (concept drift)."),
        _c("concept_lower", "double", "Lower bound of the 95% interval of concept_part."),
        _c("concept_upper", "double", "Upper bound of the 95% interval of concept_part."),
        _c("p_value", "double", "Two-sided p-value of the change."),
        _c("p_adjusted", "double", "Benjamini-Hochberg adjusted p-value within its family."),
        _c("is_flagged", "boolean", "A significant drop of at least the policy's min_drop.", False),
        _c("computed_at", "timestamp", "When the row was written (UTC).", False),
    ),
    loaded_at_field="computed_at",
)

PERFORMANCE_TIMELINE = MlTable(
    "performance_timeline",
    "Labelled accuracy per day of the batch's window and its label-maturation lookback, per "
    "model version: the day's last performance_fast_days days against the "
    "performance_reference_days before them, overall (accuracy_change) and per segment value "
    "(segment_concept, Benjamini-Hochberg across the day's segments), with the estimated start "
    "of a flagged drop. A day is evaluated again by later batches as its labels mature; the "
    "newest batch's row of a day is the current view.",
    (
        _c("batch_id", "varchar", BATCH_ID, False),
        _c("model_name", "varchar", MODEL_NAME, False),
        _c("model_version", "varchar", MODEL_VERSION, False),
        _c("evaluation_date", "date", "The day evaluated: its windows end at its end.", False),
        _c("check_name", "varchar", "accuracy_change or segment_concept.", False),
        _c("segment_attribute", "varchar", "Segment attribute (__all__ for overall).", False),
        _c("segment_value", "varchar", "Segment value (__all__ for overall).", False),
        _c("n_ref", "bigint", "Matured labels in the reference window."),
        _c("n_cur", "bigint", "Matured labels in the current (fast) window."),
        _c("accuracy_ref", "double", "Accuracy in the reference window."),
        _c("accuracy_cur", "double", "Accuracy in the current window."),
        _c("accuracy_change", "double", "accuracy_cur - accuracy_ref."),
        _c("p_value", "double", "Two-sided p-value of the change (two-proportion test)."),
        _c("p_adjusted", "double", "Benjamini-Hochberg adjusted p-value within its family."),
        _c("is_flagged", "boolean", "A significant drop of at least the policy's min_drop.", False),
        _c("change_point_date", "date", "First flagged day of a run: the drop's estimated start."),
        _c("policy_version", "varchar", "Version of the retraining policy applied.", False),
        _c("computed_at", "timestamp", "When the row was written (UTC).", False),
    ),
    primary_key=(
        "batch_id",
        "model_name",
        "model_version",
        "evaluation_date",
        "check_name",
        "segment_attribute",
        "segment_value",
    ),
    loaded_at_field="computed_at",
)

RETRAINING_DECISIONS = MlTable(
    "retraining_decisions",
    "One row per batch and model: retrain, warning, hold or insufficient_data, every signal "
    "with its value and threshold, the policy it was made under, and what it triggered. "
    "Append-only.",
    (
        _c("decision_id", "varchar", "dec-<batch_id>-<model_name>.", False),
        _c("batch_id", "varchar", BATCH_ID, False),
        _c("model_name", "varchar", MODEL_NAME, False),
        _c("decision", "varchar", "retrain, warning, hold or insufficient_data.", False),
        _c("reason", "varchar", "The reason in words.", False),
        _c("signals_json", "varchar", "JSON: every signal's value, threshold and verdict.", False),
        _c("fired_signals", "varchar", "Comma-separated names of the signals that fired."),
        _c("policy_version", "varchar", "p1-<hash of the policy file>.", False),
        _c("policy_json", "varchar", "The policy itself, as JSON.", False),
        _c("dataset_version", "varchar", "The dataset version a retraining would train on."),
        _c("action_kind", "varchar", "builtin or deployment."),
        _c("is_dry_run", "boolean", "True when recorded without triggering.", False),
        _c("trigger_status", "varchar", "not_applicable, dry_run, triggered or failed: ...", False),
        _c("triggered_run_id", "varchar", "Training run id(s) or flow run id it triggered."),
        _c("watermark_at", "timestamp", "The batch's watermark (UTC).", False),
        _c("decided_at", "timestamp", "When the decision was recorded (UTC).", False),
    ),
    loaded_at_field="decided_at",
)

TRAINING_RUNS = MlTable(
    "training_runs",
    "One row per attempt of a built-in training run: the dataset version it trained on, the "
    "candidate's held-out metrics against the serving version, and what happened to it.",
    (
        _c("training_run_id", "varchar", "Hash of the run's sample rows and parameters.", False),
        _c("attempt", "integer", "1, 2, ... per run id.", False),
        _c("decision_id", "varchar", "The retraining decision that triggered it, if any."),
        _c("model_name", "varchar", MODEL_NAME, False),
        _c("dataset_version", "varchar", "The dataset version trained on.", False),
        _c("status", "varchar", "deployed, already_deployed, not_deployed or failed.", False),
        _c("candidate_version", "varchar", "The version the candidate would be deployed as."),
        _c("baseline_model_version", "varchar", "The serving version it was compared with."),
        _c("baseline_scope", "varchar", "served, rescored or all_versions."),
        _c("parameters_json", "varchar", "Learned parameters and the run's inputs (JSON)."),
        _c("error_message", "varchar", "Why a failed run failed."),
        _c("n_train", "bigint", "Training rows."),
        _c("n_holdout", "bigint", "Held-out rows."),
        _c("n_baseline", "bigint", "Held-out rows both models were scored on."),
        _c("holdout_accuracy", "double", "Candidate accuracy on the held-out rows."),
        _c("holdout_macro_f1", "double", "Candidate macro F1 on the held-out rows."),
        _c("holdout_log_loss", "double", "Candidate log loss on the held-out rows."),
        _c("baseline_accuracy", "double", "Serving version's accuracy on the same rows."),
        _c("baseline_macro_f1", "double", "Serving version's macro F1 on the same rows."),
        _c("accuracy_gain", "double", "Paired accuracy difference, candidate - serving."),
        _c("accuracy_gain_p_value", "double", "One-sided p-value of the gain."),
        _c("train_seconds", "double", "Seconds the fit took."),
        _c("beats_current", "boolean", "Whether the candidate beats the serving version."),
        _c("started_at", "timestamp", "When the attempt started (UTC).", False),
        _c("finished_at", "timestamp", "When it finished (UTC)."),
    ),
    primary_key=("training_run_id", "attempt"),
    loaded_at_field="started_at",
)

REWARD_MODELS = MlTable(
    "reward_models",
    "One row per batch of the reward stage: trained or skipped, the version, its pairs window, "
    "held-out metrics beside the incumbent's, the parameters, whether it was promoted and why.",
    (
        _c("batch_id", "varchar", BATCH_ID, False),
        _c("reward_model_version", "varchar", "rm-<batch_id> when trained, else null."),
        _c("status", "varchar", "trained or skipped.", False),
        _c("is_promoted", "boolean", "Whether the candidate became the current version.", False),
        _c("current_version", "varchar", "The current reward model after the batch."),
        _c("previous_version", "varchar", "The current reward model before the batch."),
        _c("reason", "varchar", "Why it was trained, skipped, promoted or not.", False),
        _c("pairs_from_batch_id", "varchar", "First batch whose pairs were used."),
        _c("pairs_to_batch_id", "varchar", "Last batch whose pairs were used."),
        _c("n_pairs_train", "bigint", "Training pairs."),
        _c("n_pairs_validation", "bigint", "Validation pairs."),
        _c("n_pairs_new", "bigint", "Pairs new since the last trained version."),
        _c("n_ties_train", "bigint", "Ties among the training pairs."),
        _c("heldout_pairs", "bigint", "Validation pairs the metrics are over."),
        _c("heldout_accuracy", "double", "Pairwise accuracy on validation pairs."),
        _c("heldout_log_loss", "double", "Log loss on validation pairs."),
        _c("heldout_calibration_error", "double", "ECE of sigma(delta r), 10 bins."),
        _c("current_heldout_accuracy", "double", "The incumbent's accuracy on the same pairs."),
        _c("current_heldout_log_loss", "double", "The incumbent's log loss on the same pairs."),
        _c("warm_started_from", "varchar", "The version the fit started from."),
        _c("optimizer_iterations", "integer", "L-BFGS iterations."),
        _c("converged", "boolean", "Whether L-BFGS converged."),
        _c("train_seconds", "double", "Seconds the fit took."),
        _c("parameters_json", "varchar", "Weights, feature scaling and tie parameters (JSON)."),
        _c("policy_version", "varchar", "r1-<hash of the reward policy file>."),
        _c("created_at", "timestamp", "When the row was written (UTC).", False),
    ),
    primary_key=("batch_id",),
    loaded_at_field="created_at",
)

REWARD_SCORES = MlTable(
    "reward_scores",
    "Scores of outputs by a reward model version: one row per (inference_id, "
    "reward_model_version), with the hash of the feature vector that was scored.",
    (
        _c("inference_id", "varchar", "The output (prediction) that was scored.", False),
        _c("reward_model_version", "varchar", "The reward model version that scored it.", False),
        _c("batch_id", "varchar", "The batch that wrote the score.", False),
        _c("score", "double", "r(x) = w . standardised phi(x).", False),
        _c("input_hash", "varchar", "md5 of the feature names and values that were scored.", False),
        _c("scored_at", "timestamp", "When the score was written (UTC).", False),
    ),
    primary_key=("inference_id", "reward_model_version"),
    loaded_at_field="scored_at",
    published=False,  # grows with the traffic; the dashboard does not need it
)

REWARD_LEADERBOARD = MlTable(
    "reward_leaderboard",
    "Per batch, one row per model version: item-level Bradley-Terry strength on cross-version "
    "preference pairs with cluster-bootstrap 95% intervals, and the mean reward score.",
    (
        _c("batch_id", "varchar", BATCH_ID, False),
        _c("item", "varchar", "<model_name>:<model_version>.", False),
        _c("model_name", "varchar", MODEL_NAME),
        _c("model_version", "varchar", MODEL_VERSION),
        _c("strength", "double", "Bradley-Terry strength (centred)."),
        _c("strength_lower", "double", "Lower bound of its 95% bootstrap interval."),
        _c("strength_upper", "double", "Upper bound of its 95% bootstrap interval."),
        _c(
            "cross_version_comparisons", "bigint", "Pairs comparing it with another version.", False
        ),
        _c("wins", "bigint", "Pairs it won.", False),
        _c("losses", "bigint", "Pairs it lost.", False),
        _c("ties", "bigint", "Pairs judged a tie.", False),
        _c("rank", "integer", "1 = strongest; null when not identified."),
        _c("is_identified", "boolean", "Whether any pair compares it with another version.", False),
        _c("mean_reward", "double", "Mean reward-model score of its outputs."),
        _c("scored_outputs", "bigint", "Outputs the mean is over.", False),
        _c("computed_at", "timestamp", "When the row was written (UTC).", False),
    ),
    primary_key=("batch_id", "item"),
    loaded_at_field="computed_at",
)

AUDIT_LOG = MlTable(
    "audit_log",
    "The hash-chained, append-only audit trail: every decision, dataset version, training run, "
    "deployment and reward model, each row hashed together with the previous row's hash.",
    (
        _c("seq", "bigint", "1, 2, 3, ... with no gap.", False),
        _c("kind", "varchar", "decision, dataset_version, training_run, deployment, ...", False),
        _c(
            "subject_id",
            "varchar",
            "Id of the thing recorded (decision_id, dataset_version...).",
            False,
        ),
        _c("batch_id", "varchar", "The batch it belongs to (null when none)."),
        _c("payload_json", "varchar", "Its content as canonical JSON.", False),
        _c("prev_hash", "varchar", "row_hash of the row before (64 zeros for the first).", False),
        _c("row_hash", "varchar", "SHA-256 over the row's content and prev_hash.", False),
        _c("recorded_at", "timestamp", "When the row was appended (UTC).", False),
    ),
    primary_key=("seq",),
    loaded_at_field="recorded_at",
)

#: every ml table, in creation order
ML_TABLES: dict[str, MlTable] = {
    table.name: table
    for table in (
        BATCH_RUNS,
        DRIFT_RESULTS,
        DRIFT_TIMELINE,
        PERFORMANCE_CHECKS,
        PERFORMANCE_TIMELINE,
        RETRAINING_DECISIONS,
        TRAINING_RUNS,
        REWARD_MODELS,
        REWARD_SCORES,
        REWARD_LEADERBOARD,
        AUDIT_LOG,
        *REPLAY_TABLES,
        *CALIBRATION_TABLES,
    )
}

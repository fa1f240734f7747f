"""The relation catalogue: every warehouse relation the Python package reads, named once.

Python reads only what dbt publishes — public marts and reports (schema ``marts``) — and the
``ml`` tables it writes itself (declared in :mod:`feedback_flywheel.warehouse.schema`, each a dbt
source). Never ``raw`` (only :mod:`feedback_flywheel.ingest`, which writes it, reads it back),
``staging`` or ``intermediate``: dbt lineage, exposures and the docs site see every read, and a
renamed column fails a contract instead of breaking a query silently.

SQL in the package names relations through these constants (``f"... from {FCT_FEEDBACK}"``).
Tests hold the rules: every mart and report here is ``access: public`` with an enforced contract
and appears in an exposure; every ml table is a source; no SQL string outside ``warehouse/`` and
``ingest/`` names a relation directly.
"""

from __future__ import annotations

from dataclasses import dataclass

from feedback_flywheel.warehouse.schema import ML_SCHEMA, ML_TABLES


@dataclass(frozen=True)
class Relation:
    """A table or view of the warehouse (and of its serving copy, which keeps the names)."""

    schema: str
    name: str

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"


def _mart(name: str) -> Relation:
    return Relation("marts", name)


def _ml(name: str) -> Relation:
    if name not in ML_TABLES:
        raise KeyError(f"{name} is not declared in feedback_flywheel/warehouse/schema.py")
    return Relation(ML_SCHEMA, name)


# --- marts and reports (built by dbt; public, with enforced contracts) ---------------------------
# curation
FCT_TRAINING_EXAMPLES = _mart("fct_training_examples")
FCT_TRAINING_SAMPLE = _mart("fct_training_sample")
FCT_DATASET_VERSIONS = _mart("fct_dataset_versions")
# feedback validation
FCT_FEEDBACK_QUARANTINE = _mart("fct_feedback_quarantine")
# registry
DIM_MODEL_VERSIONS = _mart("dim_model_versions")
# monitoring
FCT_DRIFT_NUMERIC = _mart("fct_drift_numeric")
FCT_DRIFT_CATEGORICAL = _mart("fct_drift_categorical")
FCT_DRIFT_CATEGORICAL_SUMMARY = _mart("fct_drift_categorical_summary")
FCT_DRIFT_TIMELINE_NUMERIC = _mart("fct_drift_timeline_numeric")
FCT_DRIFT_TIMELINE_CATEGORICAL = _mart("fct_drift_timeline_categorical")
FCT_DRIFT_DAILY_PROFILE = _mart("fct_drift_daily_profile")
FCT_PERFORMANCE_WINDOWS = _mart("fct_performance_windows")
FCT_PERFORMANCE_DAILY = _mart("fct_performance_daily")
FCT_CALIBRATION_BINS = _mart("fct_calibration_bins")
FCT_PERFORMANCE_ESTIMATES = _mart("fct_performance_estimates")
RPT_KPI_DAILY = _mart("rpt_kpi_daily")
# analytics (the dashboard)
RPT_KPI_TRENDS_DAILY = _mart("rpt_kpi_trends_daily")
RPT_KPI_WEEKDAY_PROFILE = _mart("rpt_kpi_weekday_profile")
RPT_DEPLOYMENT_IMPACT = _mart("rpt_deployment_impact")
RPT_SEGMENT_BIAS = _mart("rpt_segment_bias")
RPT_SEGMENT_BIAS_SUMMARY = _mart("rpt_segment_bias_summary")
RPT_FEEDBACK_SKEW = _mart("rpt_feedback_skew")
# feedback-loop calibration
RPT_FEEDBACK_FIDELITY = _mart("rpt_feedback_fidelity")
RPT_FEEDBACK_FIDELITY_ALERTS = _mart("rpt_feedback_fidelity_alerts")
FCT_LABEL_COVERAGE = _mart("fct_label_coverage")
FCT_LABEL_MATURATION = _mart("fct_label_maturation")
FCT_SAMPLING_POLICY_CURVES = _mart("fct_sampling_policy_curves")
FCT_SAMPLING_POLICY_SCORES = _mart("fct_sampling_policy_scores")
FCT_FEEDBACK_LATENCY = _mart("fct_feedback_latency")
RPT_WEAK_LABELS = _mart("rpt_weak_labels")
# experience replay
FCT_REPLAY_TRANSITIONS = _mart("fct_replay_transitions")
# preferences and the reward model
FCT_PREFERENCE_PAIRS = _mart("fct_preference_pairs")
FCT_OUTPUT_FEATURES = _mart("fct_output_features")
RPT_PREFERENCE_QUALITY = _mart("rpt_preference_quality")
# discovery (what the logs carry)
RPT_PAYLOAD_KEYS = _mart("rpt_payload_keys")
# segments
FCT_INFERENCE_SEGMENTS = _mart("fct_inference_segments")
# batches and lineage
RPT_BATCH_RECONCILIATION = _mart("rpt_batch_reconciliation")
RPT_RAW_RECONCILIATION = _mart("rpt_raw_reconciliation")
RPT_BATCH_COVERAGE = _mart("rpt_batch_coverage")
RPT_FILE_QUARANTINE = _mart("rpt_file_quarantine")
FCT_RAW_EVENT_LINEAGE = _mart("fct_raw_event_lineage")

# --- ml tables (written by the Python stage; dbt sources under the name `ml`) -------------------
BATCH_RUNS = _ml("batch_runs")
DRIFT_RESULTS = _ml("drift_results")
DRIFT_TIMELINE = _ml("drift_timeline")
PERFORMANCE_CHECKS = _ml("performance_checks")
PERFORMANCE_TIMELINE = _ml("performance_timeline")
RETRAINING_DECISIONS = _ml("retraining_decisions")
TRAINING_RUNS = _ml("training_runs")
REWARD_MODELS = _ml("reward_models")
REWARD_SCORES = _ml("reward_scores")
REWARD_LEADERBOARD = _ml("reward_leaderboard")
AUDIT_LOG = _ml("audit_log")
REPLAY_BUFFER = _ml("replay_buffer")
REPLAY_EVICTIONS = _ml("replay_evictions")
REPLAY_TD_ERRORS = _ml("replay_td_errors")
REPLAY_SAMPLES = _ml("replay_samples")
REPLAY_SAMPLE_DRAWS = _ml("replay_sample_draws")
REPLAY_VERSIONS = _ml("replay_versions")
SAMPLING_POLICY_CURVES = _ml("sampling_policy_curves")
SAMPLING_POLICY_SCORES = _ml("sampling_policy_scores")
REPLAY_COMPOSITION = _ml("replay_composition")

#: every mart and report the package reads
MARTS: tuple[Relation, ...] = tuple(
    value
    for value in dict(globals()).values()
    if isinstance(value, Relation) and value.schema == "marts"
)
#: every ml table the package reads or writes
ML: tuple[Relation, ...] = tuple(
    value
    for value in dict(globals()).values()
    if isinstance(value, Relation) and value.schema == ML_SCHEMA
)

"""What the dashboard reads: pure functions of a (read-only) connection to the serving snapshot.

Each function lets SQL do the reducing and returns a small frame the page only draws. They take
the connection as their first argument so that tests can call them on any published copy, and
they are the only place the dashboard names tables and columns. Optional marts (built by later
stages, e.g. ``rpt_segment_bias``) are looked up first: a function returns an empty frame, never
an error, when its table is not in the snapshot.
"""

from feedback_flywheel.dashboard.queries.bias import (
    BIAS_CLASS_METRICS,
    bias_choices,
    bias_flags,
    bias_groups,
    bias_over_time,
    bias_summary,
    feedback_skew,
)
from feedback_flywheel.dashboard.queries.calibration import (
    feedback_latency,
    fidelity_breakdowns,
    fidelity_overall,
    fidelity_weekly,
    label_coverage,
    label_maturation,
    sampling_policy_curves,
    sampling_policy_scores,
    weak_labels,
)
from feedback_flywheel.dashboard.queries.common import (
    KPI_METRICS,
    KpiMetric,
    has_table,
    model_names,
    snapshot_info,
)
from feedback_flywheel.dashboard.queries.kpis import (
    deployment_impact,
    deployments,
    kpi_daily,
    kpi_latest,
    kpi_rolling,
    weekday_profile,
)
from feedback_flywheel.dashboard.queries.monitoring import (
    decision_signals,
    decisions,
    drift_overview,
    drift_tests,
    drift_timeline,
)
from feedback_flywheel.dashboard.queries.operations import (
    batch_runs,
    dataset_versions,
    latest_warnings,
    quarantine_daily,
    quarantine_reasons,
    training_runs,
)
from feedback_flywheel.dashboard.queries.replay import (
    replay_composition,
    replay_evictions,
    replay_versions,
)

__all__ = [
    "BIAS_CLASS_METRICS",
    "KPI_METRICS",
    "KpiMetric",
    "batch_runs",
    "bias_choices",
    "bias_flags",
    "bias_groups",
    "bias_over_time",
    "bias_summary",
    "dataset_versions",
    "decision_signals",
    "decisions",
    "deployment_impact",
    "deployments",
    "drift_overview",
    "drift_tests",
    "drift_timeline",
    "feedback_latency",
    "feedback_skew",
    "fidelity_breakdowns",
    "fidelity_overall",
    "fidelity_weekly",
    "has_table",
    "kpi_daily",
    "kpi_latest",
    "kpi_rolling",
    "label_coverage",
    "label_maturation",
    "latest_warnings",
    "model_names",
    "quarantine_daily",
    "quarantine_reasons",
    "replay_composition",
    "replay_evictions",
    "replay_versions",
    "sampling_policy_curves",
    "sampling_policy_scores",
    "snapshot_info",
    "training_runs",
    "weak_labels",
    "weekday_profile",
]

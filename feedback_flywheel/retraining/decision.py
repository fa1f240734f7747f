"""The retraining decision: one auditable row per batch and model, with every signal it read.

A decision is data (``ml.retraining_decisions``): the decision (retrain, hold or
insufficient_data), each signal's value, threshold and whether it fired, the policy version and
the reason in words, and — when it triggered one — the retraining run. A batch that already has a
decision for a model keeps it: re-running the batch never triggers a second retraining.

Crash-safe: a retrain decision is recorded **before** its trigger, with ``trigger_status``
``pending``; the trigger carries the decision id (its idempotency key); then
:func:`complete_decision` fills in the outcome, once (``pending`` → ``triggered`` / ``failed: …``;
nothing else of the row ever changes), with a second audit row of the completed decision. A run
that died in between leaves the decision pending; the next run finds it and completes it from
what the trigger left behind (the training runs recorded under the decision id, or the flow run
with that idempotency key) instead of triggering again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import duckdb
import pandas as pd

from feedback_flywheel import audit
from feedback_flywheel.config.policies import Policy
from feedback_flywheel.warehouse.catalogue import RETRAINING_DECISIONS
from feedback_flywheel.warehouse.schema import RETRAINING_DECISIONS as RETRAINING_DECISIONS_TABLE

#: the columns of ml.retraining_decisions, in order
DECISION_COLUMNS = RETRAINING_DECISIONS_TABLE.column_names
#: trigger_status of a retrain decision recorded before its trigger ran
PENDING = "pending"


@dataclass
class Signal:
    """One input of the decision: its value against its threshold."""

    name: str
    enabled: bool
    has_data: bool
    fired: bool
    value: float | None
    threshold: float | None
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "has_data": self.has_data,
            "fired": self.fired,
            "value": self.value,
            "threshold": self.threshold,
            **self.detail,
        }


@dataclass
class Decision:
    decision_id: str
    batch_id: str
    model_name: str
    decision: str
    reason: str
    signals: dict[str, Signal]
    dataset_version: str
    watermark_at: datetime

    @property
    def fired(self) -> list[str]:
        return [name for name, signal in self.signals.items() if signal.enabled and signal.fired]


#: the tests that measure a feature's values (the missing-rate test counts an absent key as
#: missing values, so it would report data for a feature that is not there at all)
DISTRIBUTION_TESTS = ("ks", "chi2")


def _feature_signal(
    name: str, drift: pd.DataFrame, kind: str, policy_signal: Any, min_samples: int
) -> Signal:
    """How many features of ``kind`` drifted; the signal has data only when some feature had
    enough values on both sides for its distribution test, and says which features had none."""
    rows = drift[drift.kind == kind] if not drift.empty else drift
    drifted = sorted(set(rows[rows.is_drift].feature_name)) if not rows.empty else []
    measured = rows[rows.test.isin(DISTRIBUTION_TESTS)] if not rows.empty else rows
    enough = (
        measured[(measured.n_ref >= min_samples) & (measured.n_cur >= min_samples)]
        if not measured.empty
        else measured
    )
    without = sorted(set(measured.feature_name) - set(enough.feature_name))
    has_data = not enough.empty
    return Signal(
        name=name,
        enabled=policy_signal.enabled,
        has_data=has_data,
        fired=has_data and len(drifted) >= policy_signal.min_features,
        value=float(len(drifted)) if has_data else None,
        threshold=float(policy_signal.min_features),
        detail={"features": drifted, "features_without_data": without},
    )


def _performance_signal(checks: pd.DataFrame, policy: Policy) -> Signal:
    """The worst overall accuracy change among versions with enough labels, flagged when any
    version's check flagged a significant drop."""
    drop = policy.signals.performance_drop
    overall = checks[checks.check_name == "accuracy_change"] if not checks.empty else checks
    enough = overall[(overall.n_ref >= drop.min_labelled) & (overall.n_cur >= drop.min_labelled)]
    worst = enough.sort_values("accuracy_change").head(1) if not enough.empty else enough
    return Signal(
        name="performance_drop",
        enabled=drop.enabled,
        has_data=not enough.empty,
        fired=bool(not overall.empty and overall.is_flagged.any()),
        value=None if worst.empty else float(worst.accuracy_change.iloc[0]),
        threshold=-drop.min_drop,
        detail={
            "model_version": None if worst.empty else worst.model_version.iloc[0],
            "p_value": None if worst.empty else float(worst.p_value.iloc[0]),
        },
    )


def _concept_signal(checks: pd.DataFrame, policy: Policy) -> Signal:
    """Concept drift: a flagged within-segment drop or a flagged concept part of a
    decomposition; the segments are listed worst first."""
    concept = policy.signals.concept_drift
    segment = checks[checks.check_name == "segment_concept"] if not checks.empty else checks
    flagged = segment[segment.is_flagged] if not segment.empty else segment
    decomposition = (
        checks[(checks.check_name == "concept_decomposition") & checks.is_flagged]
        if not checks.empty
        else checks
    )
    worst_segment = flagged.sort_values("accuracy_change").head(1) if not flagged.empty else flagged
    return Signal(
        name="concept_drift",
        enabled=concept.enabled,
        has_data=bool(not segment.empty and (segment.n_cur >= concept.min_labelled).any()),
        fired=bool(not flagged.empty or not decomposition.empty),
        value=None if worst_segment.empty else float(worst_segment.accuracy_change.iloc[0]),
        threshold=-concept.min_drop,
        detail={
            "segments": [
                f"{row.segment_attribute}={row.segment_value} ({row.model_version}): "
                f"{row.accuracy_change:+.3f} [{row.concept_lower:+.3f}, {row.concept_upper:+.3f}]"
                # worst first: the reason quotes the first five
                for row in flagged.sort_values(
                    ["accuracy_change", "segment_attribute", "segment_value"]
                ).itertuples(index=False)
            ],
            "decompositions": [
                f"by {row.segment_attribute} ({row.model_version}): concept "
                f"{row.concept_part:+.3f}, covariate {row.covariate_part:+.3f}"
                for row in decomposition.itertuples(index=False)
            ],
        },
    )


def _estimated_signal(estimates: pd.DataFrame, policy: Policy) -> Signal:
    """The worst gap between the confidence-based estimate and the reference accuracy."""
    estimated = policy.signals.estimated_performance_drop
    usable = estimates[estimates.estimated_accuracy.notna()] if not estimates.empty else estimates
    gaps = (usable.estimated_accuracy - usable.reference_accuracy) if not usable.empty else None
    worst_gap = None if gaps is None or gaps.empty else float(gaps.min())
    return Signal(
        name="estimated_performance_drop",
        enabled=estimated.enabled,
        has_data=worst_gap is not None,
        fired=worst_gap is not None and worst_gap <= -estimated.min_drop,
        value=worst_gap,
        threshold=-estimated.min_drop,
    )


def build_signals(
    model_name: str,
    drift: pd.DataFrame,
    checks: pd.DataFrame,
    estimates: pd.DataFrame,
    policy: Policy,
) -> dict[str, Signal]:
    """Every signal the policy knows, computed for one model from the batch's results."""
    drift = drift[drift.model_name == model_name] if not drift.empty else drift
    checks = checks[checks.model_name == model_name] if not checks.empty else checks
    estimates = estimates[estimates.model_name == model_name] if not estimates.empty else estimates
    min_samples = policy.drift.min_samples
    return {
        "covariate_drift": _feature_signal(
            "covariate_drift", drift, "covariate", policy.signals.covariate_drift, min_samples
        ),
        "prediction_drift": _feature_signal(
            "prediction_drift", drift, "prediction", policy.signals.prediction_drift, min_samples
        ),
        "label_drift": _feature_signal(
            "label_drift", drift, "label", policy.signals.label_drift, min_samples
        ),
        "performance_drop": _performance_signal(checks, policy),
        "concept_drift": _concept_signal(checks, policy),
        "estimated_performance_drop": _estimated_signal(estimates, policy),
    }


def attach_change_points(signals: dict[str, Signal], changes: dict[str, str]) -> None:
    """Record with the feature signals where each drifted feature's change started (the drift
    timeline's estimate, :mod:`.change_points`)."""
    for name in ("covariate_drift", "prediction_drift"):
        features = signals[name].detail.get("features") or []
        signals[name].detail["change_points"] = {f: changes[f] for f in features if f in changes}


def last_triggered_retrain(
    con: duckdb.DuckDBPyConnection, model_name: str, before: datetime
) -> datetime | None:
    row = con.execute(
        f"""
        select max(watermark_at) from {RETRAINING_DECISIONS}
        where model_name = ? and decision = 'retrain' and not is_dry_run
            and trigger_status in ('triggered', 'completed') and watermark_at <= ?
        """,
        [model_name, before],
    ).fetchone()
    return row[0] if row else None


def decide(
    con: duckdb.DuckDBPyConnection,
    *,
    batch_id: str,
    model_name: str,
    watermark_at: datetime,
    dataset_version: str,
    signals: dict[str, Signal],
    policy: Policy,
) -> Decision:
    """Apply the policy to the signals: retrain, hold (nothing fired, or cooldown), or
    insufficient_data (no enabled signal had enough data to say anything)."""
    enabled = {name: signal for name, signal in signals.items() if signal.enabled}
    fired = [name for name, signal in enabled.items() if signal.fired]
    with_data = [name for name, signal in enabled.items() if signal.has_data]
    decision_id = f"dec-{batch_id}-{model_name}"

    def make(decision: str, reason: str) -> Decision:
        return Decision(
            decision_id,
            batch_id,
            model_name,
            decision,
            reason,
            signals,
            dataset_version,
            watermark_at,
        )

    if not with_data:
        return make(
            "insufficient_data",
            "no data for any enabled signal: " + _no_data(enabled) + "; nothing to decide",
        )
    lacking = {name: signal for name, signal in enabled.items() if not signal.has_data}
    missing = f"; no data for {_no_data(lacking)}" if lacking else ""
    wanted = bool(fired) if policy.retrain_when == "any" else len(fired) == len(enabled)
    if not wanted:
        quiet = ", ".join(f"{name} {_describe(signals[name])}" for name in with_data)
        return make("hold", f"no signal fired ({quiet}){missing}")
    last = last_triggered_retrain(con, model_name, watermark_at)
    because = "; ".join(f"{name} {_describe(signals[name])}" for name in fired)
    if last is not None and watermark_at - last < timedelta(days=policy.cooldown_days):
        return make(
            "hold",
            f"cooldown: a retraining was triggered at {last} (cooldown {policy.cooldown_days:g} "
            f"days); would have retrained because {because}",
        )
    return make("retrain", f"retrain because {because}{missing}")


def _no_data(signals: dict[str, Signal]) -> str:
    """The signals without data, each with the features that had none when it knows them."""
    parts = []
    for name, signal in signals.items():
        features = signal.detail.get("features_without_data") or []
        parts.append(
            f"{name} (features without values: {', '.join(features)})" if features else name
        )
    return ", ".join(parts)


def _describe(signal: Signal) -> str:
    if signal.value is None:
        return "(no value)"
    extra = ""
    for key in ("features", "segments"):
        if signal.detail.get(key):
            extra = f": {', '.join(signal.detail[key][:5])}"
    changes = signal.detail.get("change_points") or {}
    if changes:
        extra += " (changed from " + ", ".join(f"{f} {d}" for f, d in changes.items()) + ")"
    return f"= {signal.value:g} (threshold {signal.threshold:g}){extra}"


def existing_decision(
    con: duckdb.DuckDBPyConnection, batch_id: str, model_name: str
) -> dict[str, Any] | None:
    frame = con.execute(
        f"""
        select * from {RETRAINING_DECISIONS} where batch_id = ? and model_name = ?
        order by decided_at limit 1
        """,
        [batch_id, model_name],
    ).df()
    return None if frame.empty else frame.iloc[0].to_dict()


def record_decision(
    con: duckdb.DuckDBPyConnection,
    decision: Decision,
    policy: Policy,
    *,
    audit_key: bytes,
    is_dry_run: bool,
    trigger_status: str,
    triggered_run_id: str | None,
    decided_at: datetime,
) -> None:
    """Append the decision row and, in the same transaction, its ``decision`` row of the audit
    trail (``ml.audit_log``, payload = the decision row). A retrain decision about to be
    triggered is recorded with ``trigger_status`` :data:`PENDING` (then
    :func:`complete_decision`)."""
    values = [
        decision.decision_id,
        decision.batch_id,
        decision.model_name,
        decision.decision,
        decision.reason,
        json.dumps({n: s.as_dict() for n, s in decision.signals.items()}, default=float),
        ",".join(decision.fired),
        policy.policy_version,
        policy.model_dump_json(exclude={"source"}),
        decision.dataset_version,
        policy.action.kind,
        is_dry_run,
        trigger_status,
        triggered_run_id,
        decision.watermark_at,
        decided_at,
    ]
    with audit.atomic(con):
        con.execute(
            f"""
            insert into {RETRAINING_DECISIONS} values
                (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            values,
        )
        audit.record(
            con,
            key=audit_key,
            kind="decision",
            subject_id=decision.decision_id,
            payload=dict(zip(DECISION_COLUMNS, values, strict=True)),
            batch_id=decision.batch_id,
        )


def complete_decision(
    con: duckdb.DuckDBPyConnection,
    decision_id: str,
    *,
    audit_key: bytes,
    trigger_status: str,
    triggered_run_id: str | None,
) -> bool:
    """Fill in the trigger outcome of a pending decision — the one change a decision row ever
    gets — and append the completed row to the audit trail, in one transaction. Returns False
    (and changes nothing) when the decision is not pending (already completed)."""
    if trigger_status == PENDING:
        raise ValueError("complete_decision needs the trigger's outcome, not pending")
    with audit.atomic(con):
        updated = con.execute(
            f"""
            update {RETRAINING_DECISIONS}
            set trigger_status = ?, triggered_run_id = ?
            where decision_id = ? and trigger_status = ?
            returning *
            """,
            [trigger_status, triggered_run_id, decision_id, PENDING],
        ).fetchall()
        if not updated:
            return False
        row = dict(zip(DECISION_COLUMNS, updated[0], strict=True))
        audit.record(
            con,
            key=audit_key,
            kind="decision",
            subject_id=decision_id,
            payload=row,
            batch_id=row["batch_id"],
        )
    return True


def pending_decisions(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Retrain decisions recorded but never completed (the run died during their trigger)."""
    frame = con.execute(
        f"select * from {RETRAINING_DECISIONS} where trigger_status = ? order by decided_at",
        [PENDING],
    ).df()
    return frame.to_dict(orient="records")

"""The retraining decision: one auditable row per batch and model, with every signal it read.

A decision is data (``ml.retraining_decisions``): the decision (retrain, warning, hold or
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
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import duckdb

from feedback_flywheel import audit
from feedback_flywheel.config.policies import Policy
from feedback_flywheel.retraining.signals import DRIFT_SIGNALS, IMPACT_SIGNALS, Signal
from feedback_flywheel.retraining.training_window import MAX_ROWS_AFTER_CHANGE
from feedback_flywheel.warehouse.catalogue import (
    FCT_TRAINING_EXAMPLES,
    RETRAINING_DECISIONS,
    TRAINING_RUNS,
)
from feedback_flywheel.warehouse.schema import RETRAINING_DECISIONS as RETRAINING_DECISIONS_TABLE

# The cooldown after a retraining that was not deployed gives way once the labelled examples
# since the change it learned from are this many times as many as it had: judged again on
# twice the rows, a real gain it could not show (the paired test lacked power) can show.
EVIDENCE_GROWTH = 2.0

#: the columns of ml.retraining_decisions, in order
DECISION_COLUMNS = RETRAINING_DECISIONS_TABLE.column_names
#: trigger_status of a retrain decision recorded before its trigger ran
PENDING = "pending"


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


def last_triggered_retrain(
    con: duckdb.DuckDBPyConnection, model_name: str, before: datetime
) -> dict[str, Any] | None:
    """The newest retrain decision up to ``before`` whose retraining was triggered, with
    whether one of its training runs was deployed (None: none was triggered)."""
    row = con.execute(
        f"""
        select decision.decision_id, decision.watermark_at, decision.signals_json,
            exists (
                select 1 from {TRAINING_RUNS} as run
                where run.decision_id = decision.decision_id
                    and run.status in ('deployed', 'already_deployed')
            ) as deployed
        from {RETRAINING_DECISIONS} as decision
        where decision.model_name = ? and decision.decision = 'retrain'
            and not decision.is_dry_run
            and decision.trigger_status in ('triggered', 'completed')
            and decision.watermark_at <= ?
        order by decision.watermark_at desc limit 1
        """,
        [model_name, before],
    ).fetchone()
    if row is None:
        return None
    return {
        "decision_id": row[0],
        "watermark_at": row[1],
        "signals": json.loads(row[2]),
        "deployed": bool(row[3]),
    }


def verdict(policy: Policy, enabled: dict[str, Signal], fired: list[str]) -> tuple[bool, list[str]]:
    """Whether the fired signals ask for a retraining, and (when they do not) the fired signals
    that are only a warning. ``any``: any fired signal; ``all``: every enabled one; ``impact``:
    a fired impact signal (realised performance drop, concept drift, fast performance drop), or a
    drift signal together with an estimated performance drop; drift alone, or an estimate alone,
    is a warning."""
    if policy.retrain_when == "any":
        return bool(fired), []
    if policy.retrain_when == "all":
        return bool(enabled) and len(fired) == len(enabled), []
    drift = [name for name in fired if name in DRIFT_SIGNALS]
    estimated = "estimated_performance_drop" in fired
    if any(name in IMPACT_SIGNALS for name in fired) or (drift and estimated):
        return True, []
    return False, drift + (["estimated_performance_drop"] if estimated else [])


def _worsened(last: dict[str, Any], signals: dict[str, Signal], fired: list[str]) -> str | None:
    """Why the cooldown after ``last`` is lifted, or None: its retraining was not deployed and
    an impact signal that fired then and fires now is worse now by at least its own floor (a
    change of the size the signal exists to catch, not noise)."""
    if last["deployed"]:
        return None
    for name in fired:
        before = (last["signals"].get(name) or {}).get("value")
        signal = signals[name]
        if name not in IMPACT_SIGNALS or before is None or signal.value is None:
            continue
        if signal.value <= before - abs(signal.threshold or 0.0):
            return (
                f"the retraining of {last['decision_id']} was not deployed and {name} worsened "
                f"from {before:g} to {signal.value:g} (by more than {abs(signal.threshold):g})"
            )
    return None


def _more_evidence(con: duckdb.DuckDBPyConnection, last: dict[str, Any], model: str) -> str | None:
    """Why the cooldown after ``last`` is lifted, or None: its retraining was not deployed, it
    learned from a change point on (``parameters_json.inputs.training_window``), and the model's
    labelled examples logged since that day are now ``EVIDENCE_GROWTH`` times as many as it
    had (each retry needs the evidence doubled again, so they thin out). A run that already
    learned from the most rows a retraining takes (``MAX_ROWS_AFTER_CHANGE``) is not retried
    for more: the retry would learn from and be judged on as many rows as it did."""
    if last["deployed"]:
        return None
    window = "$.inputs.training_window"
    runs = con.execute(
        f"""
        select json_extract_string(parameters_json, '{window}.since') as since,
            max(cast(json_extract(parameters_json, '{window}.rows_after_change') as bigint))
        from {TRAINING_RUNS}
        where decision_id = ? and model_name = ? and status = 'not_deployed'
        group by since
        having since is not null
        """,
        [last["decision_id"], model],
    ).fetchall()
    for since, rows in runs:
        if not rows or rows >= MAX_ROWS_AFTER_CHANGE:
            continue
        now = con.execute(
            f"""
            select count(*) from {FCT_TRAINING_EXAMPLES}
            where model_name = ? and label is not null and superseded_in_batch_id is null
                and inference_logged_at >= cast(? as date)
            """,
            [model, since],
        ).fetchall()[0][0]
        if now >= EVIDENCE_GROWTH * rows:
            return (
                f"the retraining of {last['decision_id']} was not deployed and the labelled "
                f"examples since its change point {since} grew from {rows:,} to {now:,} "
                f"(at least x{EVIDENCE_GROWTH:g}): enough to judge a retraining again"
            )
    return None


def _cooldown(
    con: duckdb.DuckDBPyConnection,
    model_name: str,
    watermark_at: datetime,
    signals: dict[str, Signal],
    fired: list[str],
    policy: Policy,
) -> tuple[str | None, str | None]:
    """(why the decision holds for the cooldown, why the cooldown is lifted): both None when no
    retraining was triggered within ``cooldown_days``."""
    last = last_triggered_retrain(con, model_name, watermark_at)
    if last is None or watermark_at - last["watermark_at"] >= timedelta(days=policy.cooldown_days):
        return None, None
    lifted = _worsened(last, signals, fired) or _more_evidence(con, last, model_name)
    if lifted:
        return None, lifted
    return (
        f"cooldown: a retraining was triggered at {last['watermark_at']} (cooldown "
        f"{policy.cooldown_days:g} days)",
        None,
    )


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
    """Apply the policy to the signals: retrain, warning (drift without performance impact, under
    ``retrain_when: impact``), hold (nothing fired, or cooldown), or insufficient_data (no
    enabled signal had enough data to say anything). The cooldown is lifted when the retraining
    that started it was not deployed and the impact keeps worsening, or the labelled examples
    since the change it learned from have doubled."""
    enabled = {name: signal for name, signal in signals.items() if signal.enabled}
    fired = [name for name, signal in enabled.items() if signal.fired]
    with_data = [name for name, signal in enabled.items() if signal.has_data]

    def make(decision: str, reason: str) -> Decision:
        return Decision(
            f"dec-{batch_id}-{model_name}",
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
    wanted, warnings = verdict(policy, enabled, fired)
    quiet = ", ".join(
        f"{name} {_describe(signals[name])}" for name in with_data if name not in fired
    )
    if warnings:
        what = (
            "drift without performance impact"
            if warnings != ["estimated_performance_drop"]
            else "estimated performance drop without drift"
        )
        cited = "; ".join(f"{name} {_describe(signals[name])}" for name in warnings)
        return make("warning", f"{what}: {cited} (but {quiet or '-'}){missing}")
    if not wanted:
        return make("hold", f"no signal fired ({quiet}){missing}")
    because = "; ".join(f"{name} {_describe(signals[name])}" for name in fired)
    held, lifted = _cooldown(con, model_name, watermark_at, signals, fired, policy)
    if held:
        return make("hold", f"{held}; would have retrained because {because}")
    if lifted:
        missing += f"; cooldown lifted: {lifted}"
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
        cited = list(changes.items())[:5]  # as many as the reason quotes
        extra += " (changed from " + ", ".join(f"{f} {d}" for f, d in cited) + ")"
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

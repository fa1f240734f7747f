"""The Python stage of a batch: what the marts say, turned into decisions.

Drift tests (p-values, Benjamini-Hochberg, the drift gate), the performance checks, one
retraining decision per model (recorded before anything is triggered), the triggers of pending
decisions, and the reward model. Each is a Prefect task of :func:`flows.batch_cycle.batch_cycle`;
they read the marts through the relation catalogue and write the ``ml`` tables.
"""

import json
from datetime import timedelta
from typing import Any

import duckdb
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from feedback_flywheel import batches, calibration, replay
from feedback_flywheel.config import Settings
from feedback_flywheel.config.faults import fault_point
from feedback_flywheel.config.policies import Policy
from feedback_flywheel.retraining import decision as decisions
from feedback_flywheel.retraining import (
    drift,
    performance,
    performance_timeline,
    signals,
    timeline,
    training_store,
)
from feedback_flywheel.retraining.results import write_batch_rows
from feedback_flywheel.rewards import stage as reward_stage
from feedback_flywheel.warehouse import connect
from feedback_flywheel.warehouse.catalogue import (
    DRIFT_RESULTS,
    DRIFT_TIMELINE,
    FCT_PERFORMANCE_ESTIMATES,
    PERFORMANCE_CHECKS,
    PERFORMANCE_TIMELINE,
    RPT_KPI_DAILY,
)
from flows.retrain import trigger_retraining
from flows.retries import IO_RETRIES


@task(name="test-drift", **IO_RETRIES)
def test_drift(settings: Settings, batch: batches.BatchWindow) -> int:
    """p-values, Benjamini-Hochberg and the drift gate over the warehouse's drift summaries: at
    the watermark (ml.drift_results) and on every day of the batch's window (ml.drift_timeline)."""
    policy = settings.retraining_policy
    now = batches.utc_now()
    with connect(settings.db_path) as con:
        results = drift.drift_tests(con, batch.batch_id, policy)
        write_batch_rows(con, DRIFT_RESULTS, batch.batch_id, results, drift.DRIFT_COLUMNS, now)
        span = settings.vars.drift_current_days + settings.vars.drift_reference_days
        days = timeline.timeline_rows(con, batch.batch_id, batch.window_end, results, policy, span)
        write_batch_rows(con, DRIFT_TIMELINE, batch.batch_id, days, timeline.TIMELINE_COLUMNS, now)
        drifted = results[results.is_drift] if not results.empty else results
    logger = get_run_logger()
    past = days[~days.is_watermark] if not days.empty else days
    for (model, feature), first in timeline.first_drift_days(past).items():
        logger.info("drift timeline: %s %s drifted from %s", model, feature, first)
    for row in drifted.itertuples(index=False):
        logger.info(
            "drift: %s %s (%s) %s=%.3g p_adj=%.2g effect %s=%.3g",
            row.model_name,
            row.feature_name,
            row.kind,
            row.test,
            row.statistic,
            row.p_adjusted,
            row.effect_metric,
            row.effect_size,
        )
    return len(drifted)


@task(name="check-performance", **IO_RETRIES)
def check_performance(settings: Settings, batch: batches.BatchWindow) -> int:
    """Accuracy change and its covariate / concept split (the confidence-based estimate is the
    mart fct_performance_estimates, built with the batch)."""
    now = batches.utc_now()
    policy, settings_vars = settings.retraining_policy, settings.vars
    days = performance_timeline.evaluation_days(
        batch.window_start,
        batch.window_end,
        settings_vars.drift_timeline_days,
        settings_vars.performance_current_days,
    )
    with connect(settings.db_path) as con:
        checks = performance.performance_checks(con, batch.batch_id, policy)
        write_batch_rows(
            con, PERFORMANCE_CHECKS, batch.batch_id, checks, performance.PERFORMANCE_COLUMNS, now
        )
        daily = performance_timeline.timeline_checks(
            con,
            batch.batch_id,
            days,
            policy,
            fast_days=settings_vars.performance_fast_days,
            reference_days=settings_vars.performance_reference_days,
        )
        columns = performance_timeline.PERFORMANCE_TIMELINE_COLUMNS
        write_batch_rows(con, PERFORMANCE_TIMELINE, batch.batch_id, daily, columns, now)
    logger = get_run_logger()
    for row in daily[daily.change_point_date.notna()].itertuples(index=False):
        logger.info(
            "performance timeline: %s %s %s=%s accuracy %+.3f on %s, drop started %s",
            row.model_name,
            row.model_version,
            row.segment_attribute,
            row.segment_value,
            row.accuracy_change,
            row.evaluation_date,
            row.change_point_date,
        )
    return 0 if checks.empty else int(checks.is_flagged.sum())


def _batch_results(
    con: duckdb.DuckDBPyConnection, batch: batches.BatchWindow, lookback_days: int
) -> dict[str, Any]:
    """What the decision reads of the batch: its drift results, performance checks and
    estimates, and the performance timeline's recent days (the fast signal: the days whose
    labels matured since the last batches)."""
    results = {
        relation: con.execute(f"select * from {relation} where batch_id = ?", [batch.batch_id]).df()
        for relation in (DRIFT_RESULTS, PERFORMANCE_CHECKS, FCT_PERFORMANCE_ESTIMATES)
    }
    since = batch.window_end.date() - timedelta(days=lookback_days)
    results[PERFORMANCE_TIMELINE] = performance_timeline.recent_days(con, batch.batch_id, since)
    return results


def _signals(
    con: duckdb.DuckDBPyConnection,
    batch_id: str,
    model_name: str,
    results: dict[str, Any],
    policy: Policy,
) -> dict[str, signals.Signal]:
    """The model's signals, with where each drift and each fast drop started."""
    found = signals.build_signals(
        model_name,
        results[DRIFT_RESULTS],
        results[PERFORMANCE_CHECKS],
        results[FCT_PERFORMANCE_ESTIMATES],
        policy,
        performance_days=results[PERFORMANCE_TIMELINE],
    )
    signals.attach_change_points(found, timeline.current_change_points(con, batch_id, model_name))
    signals.attach_drop_starts(found, performance_timeline.drop_starts(con, batch_id, model_name))
    return found


@task(name="decide-retraining", **IO_RETRIES)
def decide_retraining(
    settings: Settings, batch: batches.BatchWindow, dry_run: bool
) -> list[decisions.Decision]:
    """One decision per model served before the watermark, recorded at once: a retrain to be
    triggered as ``pending`` (its trigger comes next, see :func:`trigger_decision`), everything
    else complete. A model already decided for this batch keeps its decision (re-running a batch
    never triggers a second retraining)."""
    logger = get_run_logger()
    policy = settings.retraining_policy
    made = []
    with connect(settings.db_path) as con:
        models = [
            name
            for (name,) in con.execute(
                f"select distinct model_name from {RPT_KPI_DAILY} "
                "where inference_count > 0 order by 1"
            ).fetchall()
        ]
        results = _batch_results(con, batch, settings.vars.performance_current_days)
        for model_name in models:
            earlier = decisions.existing_decision(con, batch.batch_id, model_name)
            if earlier is not None:
                logger.info(
                    "%s: batch %s was already decided (%s, %s); keeping it",
                    model_name,
                    batch.batch_id,
                    earlier["decision"],
                    earlier["decision_id"],
                )
                continue
            found = _signals(con, batch.batch_id, model_name, results, policy)
            decision = decisions.decide(
                con,
                batch_id=batch.batch_id,
                model_name=model_name,
                watermark_at=batch.window_end,
                dataset_version=batch.dataset_version,
                signals=found,
                policy=policy,
            )
            status = "not_applicable"
            if decision.decision == "retrain":
                status = "dry_run" if dry_run else decisions.PENDING
            decisions.record_decision(
                con,
                decision,
                policy,
                audit_key=settings.secret.audit_key,
                is_dry_run=dry_run,
                trigger_status=status,
                triggered_run_id=None,
                decided_at=batches.utc_now(),
            )
            made.append(decision)
    for decision in made:
        logger.info("%s: %s — %s", decision.model_name, decision.decision, decision.reason)
    return made


@task(name="trigger-retraining")
def trigger_decision(settings: Settings, pending: dict[str, Any]) -> str:
    """Trigger the retraining a pending decision asks for and complete the decision with the
    outcome. A trigger that already ran (the run died before completing the decision) is not
    run again: the training runs recorded under the decision id (the built-in action) are
    taken as its outcome, and a Prefect deployment receives the decision id as its idempotency
    key. Returns the trigger status."""
    logger = get_run_logger()
    policy = settings.retraining_policy
    decision_id = pending["decision_id"]
    deployment = policy.action.deployment_name if policy.action.kind == "deployment" else None
    recorded = [] if deployment else training_store.runs_for_decision(settings.db_path, decision_id)
    if recorded:
        status, run_id = "triggered", ",".join(recorded)
        logger.info("%s: its retraining already ran (%s); completing it", decision_id, run_id)
    else:
        fault_point("trigger-retraining:before")
        try:
            run_id = trigger_retraining(
                pending["dataset_version"],
                decision_id,
                deployment_name=deployment,
                db_path=str(settings.db_path),
                model_name=pending["model_name"],
                train_from=signals.training_start(json.loads(pending["signals_json"])),
            )
            status = "triggered"
        except Exception as error:  # recorded with the decision, then re-raised
            status = f"failed: {type(error).__name__}: {error}"[:500]
            _complete(settings, decision_id, status, None)
            raise
        fault_point("trigger-retraining:after")
    _complete(settings, decision_id, status, run_id)
    return status


def _complete(settings: Settings, decision_id: str, status: str, run_id: str | None) -> None:
    with connect(settings.db_path) as con:
        decisions.complete_decision(
            con,
            decision_id,
            audit_key=settings.secret.audit_key,
            trigger_status=status,
            triggered_run_id=run_id,
        )


def trigger_pending(settings: Settings, dry_run: bool) -> None:
    """Trigger every decision still waiting for its trigger: this batch's, and any a run that
    died left. A dry run triggers nothing (and says so when an earlier run left one)."""
    with connect(settings.db_path) as con:
        pending = decisions.pending_decisions(con)
    if dry_run:
        if pending:
            get_run_logger().warning(
                "%d decision(s) wait for their trigger (%s); a run without --dry-run triggers them",
                len(pending),
                ", ".join(row["decision_id"] for row in pending),
            )
        return
    for row in pending:
        trigger_decision(settings, row)


@task(name="train-reward-model", **IO_RETRIES)
def train_reward_model(settings: Settings, batch: batches.BatchWindow) -> str:
    """The reward stage: retrain the Bradley-Terry reward model on the accumulated preference
    pairs when enough new ones arrived (policies/reward.yml), promote it only when it beats the
    current version, fit the model-version leaderboard, score the batch's new outputs. A batch
    already processed is left as it is. Returns the one-line summary it logs."""
    logger = get_run_logger()
    with connect(settings.db_path) as con:
        outcome = reward_stage.run_batch(
            con,
            batch_id=batch.batch_id,
            window_start=batch.window_start,
            window_end=batch.window_end,
            policy=settings.reward_policy,
            audit_key=settings.secret.audit_key,
            lookback_days=settings.vars.lookback_days,
        )
    logger.info(outcome.summary())
    metrics = "\n".join(
        f"| {name} | {value if value is not None else '-'} |"
        for name, value in outcome.metrics.items()
    )
    create_markdown_artifact(
        key="reward-model",
        markdown=f"## Reward model, batch {batch.batch_id}\n\n{outcome.summary()}\n\n"
        f"| metric | value |\n|---|---|\n{metrics}\n",
        description=f"Reward model after batch {batch.batch_id}",
    )
    return outcome.summary()


def replay_segment_attribute(settings: Settings) -> str:
    """The segment attribute the buffer's composition is broken down by: the replay policy's,
    else the first of var segment_attributes."""
    attributes = settings.vars.segment_attributes
    chosen = settings.replay_policy.composition.segment_attribute
    if chosen is None:
        return attributes[0] if attributes else "(none)"
    if chosen not in attributes:
        raise ValueError(
            f"{settings.replay_policy.source}: composition.segment_attribute {chosen!r} is not one "
            f"of var segment_attributes ({', '.join(attributes)}); name one of them or null"
        )
    return chosen


@task(name="refresh-replay-buffer", **IO_RETRIES)
def refresh_replay_buffer(settings: Settings, batch: batches.BatchWindow) -> str:
    """The replay stage: insert the transitions that entered (fct_replay_transitions), refresh
    priorities, evict stale, retracted, over-sampled and over-capacity transitions with their
    reason, and record the buffer version (policies/replay.yml). A batch already refreshed is
    left as it is. Returns the one-line summary it logs."""
    logger = get_run_logger()
    with connect(settings.db_path) as con:
        outcome = replay.refresh(
            con,
            batch_id=batch.batch_id,
            watermark=batch.window_end,
            policy=settings.replay_policy,
            segment_attribute=replay_segment_attribute(settings),
            audit_key=settings.secret.audit_key,
            now=batches.utc_now(),
        )
    logger.info(outcome.summary())
    for warning in outcome.warnings:
        logger.warning("replay buffer: %s", warning)
    return outcome.summary()


@task(name="evaluate-sampling-policies", **IO_RETRIES)
def evaluate_sampling_policies(settings: Settings, batch: batches.BatchWindow) -> str:
    """The sampling-policy evaluation: per model, train the built-in model on each query
    policy's picks from the last labelled batches and score it on the next one's labels
    (ml.sampling_policy_curves and _scores; the next batch's fct_sampling_policy_scores chooses
    from them). A batch already evaluated is left as it is. Returns the line it logs."""
    logger = get_run_logger()
    with connect(settings.db_path) as con:
        outcome = calibration.evaluate_batch(con, batch.batch_id, settings.vars)
    summary = outcome.summary()
    logger.info(summary)
    return summary

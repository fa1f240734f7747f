"""The batch cycle: open a batch, build the warehouse for its window, test drift and performance,
decide whether to retrain (and trigger it), train the reward model, close the batch, publish.

The flow only composes: each step is a small task around a capability's function, handed the
run's :class:`~feedback_flywheel.config.Settings` explicitly. The ones that touch the database
retry with backoff. The DuckDB file is opened by one step at a time and closed again, because dbt
(a subprocess) needs the single writer lock while it builds.
"""

import re
import sys
import time
from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from feedback_flywheel import audit, batches
from feedback_flywheel.config import Settings
from feedback_flywheel.discovery.run import DiscoveryError, discover, needs_discovery
from feedback_flywheel.publish import artifacts, serving
from feedback_flywheel.publish.warnings import batch_warnings
from feedback_flywheel.retraining import decision as decisions
from feedback_flywheel.retraining import drift, performance
from feedback_flywheel.retraining.results import write_batch_rows
from feedback_flywheel.rewards import stage as reward_stage
from feedback_flywheel.warehouse import connect, init_warehouse
from feedback_flywheel.warehouse.catalogue import (
    DRIFT_RESULTS,
    PERFORMANCE_CHECKS,
    PERFORMANCE_ESTIMATES,
    RPT_KPI_DAILY,
)
from feedback_flywheel.warehouse.dbt import run_dbt
from flows.retrain import trigger_retraining

IO_RETRIES = {"retries": 3, "retry_delay_seconds": [2, 10, 30]}


@task(name="plan-batch", **IO_RETRIES)
def plan_batch(
    settings: Settings,
    window_start: datetime | None,
    window_end: datetime | None,
    batch_id: str | None,
) -> batches.BatchWindow | None:
    """The window to process: an explicit one, the latest batch again, or last watermark → now."""
    with connect(settings.db_path) as con:
        init_warehouse(con)
        if batch_id:
            return batches.rerun_window(con, batch_id)
        if window_start and window_end:
            return batches.window(window_start, window_end)
        planned = batches.plan_windows(con, window_end or batches.utc_now())
        return planned[0] if planned else None


@task(name="discover-configuration")
def discover_configuration(settings: Settings) -> Settings:
    """On the first batch of a warehouse without a configuration file, discover the monitored
    features and segment attributes from its logs and write them into the file, so the first
    build already monitors the user's own data. Returns the settings to build with."""
    with connect(settings.db_path) as con:
        has_history = batches.has_inference_history(con)
    if not needs_discovery(settings, has_history):
        return settings
    logger = get_run_logger()
    try:
        found = discover(settings)
    except DiscoveryError as error:
        # nothing to learn from yet (feedback before its inferences): build with the defaults
        # and discover on the next batch, which still finds no file
        logger.warning("discovery skipped: %s", error)
        return settings
    for line in found.lines():
        logger.info("discovery: %s", line)
    return settings.reload(found.path)


@task(name="open-batch", **IO_RETRIES)
def open_batch(settings: Settings, batch: batches.BatchWindow) -> int:
    with connect(settings.db_path) as con:
        return batches.open_batch(con, batch)


class _Progress:
    """One line on a terminal, rewritten in place: dbt nodes done of total, and seconds."""

    def __init__(self, label: str, enabled: bool) -> None:
        self.label, self.enabled = label, enabled and sys.stderr.isatty()
        self.started, self.done, self.total = time.monotonic(), 0, 0

    def line(self, dbt_line: str) -> None:
        match = NODE_LINE.search(dbt_line)
        if not match or not self.enabled:
            return
        number, total = int(match[1]), int(match[2])
        if match[3] != "START":
            self.done += 1
        self.total = max(self.total, total, number)
        elapsed = time.monotonic() - self.started
        sys.stderr.write(f"\r  {self.label}: {self.done}/{self.total} nodes, {elapsed:.0f} s ")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self.total:
            sys.stderr.write("\r" + " " * 60 + "\r")
            sys.stderr.flush()


NODE_LINE = re.compile(r"\b(\d+) of (\d+) (START|OK|PASS|FAIL|ERROR|WARN|SKIP|NO-OP)")


@task(name="dbt-build")
def dbt_build(settings: Settings, batch: batches.BatchWindow, progress: bool = False) -> float:
    """``dbt build`` with the batch's window: seeds, models, snapshots and their data tests.

    dbt unit tests check the SQL logic, not the data; they run in ``make test``, not every batch.
    Every node's line goes to the run's log; with ``progress`` a terminal shows one line, nodes
    done of total.
    """
    logger = get_run_logger()
    bar = _Progress(f"batch {batch.batch_id} dbt build", progress)

    def on_line(line: str) -> None:
        bar.line(line)
        if " of " in line or "Completed" in line or "ERROR" in line or "FAIL" in line:
            logger.info(line.split("  ", 1)[-1].strip())

    result = run_dbt(
        ["build", "--exclude-resource-type", "unit_test"],
        project_dir=settings.project_dir,
        db_path=settings.db_path,
        target=settings.target,
        dbt_vars=settings.dbt_vars(),
        on_line=on_line,
        extra_env=batch.dbt_env(),
    )
    bar.close()
    return result.seconds


@task(name="audit-dataset-versions", **IO_RETRIES)
def audit_dataset_versions(settings: Settings, batch: batches.BatchWindow) -> list[str]:
    """Append the batch's new dataset version(s) to the audit trail (``ml.audit_log``); a re-run
    of the batch rebuilds the same version and adds nothing. Returns the audit row hashes."""
    with connect(settings.db_path) as con:
        entries = audit.dataset_version_entries(con, batch.batch_id)
        with audit.atomic(con):
            return [audit.record(con, **entry) for entry in entries]


@task(name="record-batch", **IO_RETRIES)
def record_batch(
    settings: Settings, batch: batches.BatchWindow, attempt: int, dbt_seconds: float
) -> dict[str, Any]:
    with connect(settings.db_path) as con:
        counts = batches.batch_counts(con, batch)
        found = batch_warnings(con, batch.batch_id, settings.vars.warn_quarantine_share)
        batches.close_batch(
            con,
            batch,
            attempt,
            status="success",
            counts=counts,
            dbt_seconds=dbt_seconds,
            warnings=found,
        )
    logger = get_run_logger()
    for line in found:
        logger.warning("%s: %s", batch.batch_id, line)
    return {**counts, "warnings": found}


@task(name="fail-batch", **IO_RETRIES)
def fail_batch(settings: Settings, batch: batches.BatchWindow, attempt: int, error: str) -> None:
    with connect(settings.db_path) as con:
        batches.close_batch(con, batch, attempt, status="failed", error_message=error[:4000])


@task(name="test-drift", **IO_RETRIES)
def test_drift(settings: Settings, batch: batches.BatchWindow) -> int:
    """p-values, Benjamini-Hochberg and the drift gate over the warehouse's drift summaries."""
    with connect(settings.db_path) as con:
        results = drift.drift_tests(con, batch.batch_id, settings.retraining_policy)
        write_batch_rows(
            con, DRIFT_RESULTS, batch.batch_id, results, drift.DRIFT_COLUMNS, batches.utc_now()
        )
        drifted = results[results.is_drift] if not results.empty else results
    logger = get_run_logger()
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
    """Accuracy change, its covariate / concept split, and the confidence-based estimate."""
    now = batches.utc_now()
    with connect(settings.db_path) as con:
        checks = performance.performance_checks(con, batch.batch_id, settings.retraining_policy)
        write_batch_rows(
            con, PERFORMANCE_CHECKS, batch.batch_id, checks, performance.PERFORMANCE_COLUMNS, now
        )
        estimates = performance.performance_estimates(con, batch.batch_id)
        write_batch_rows(
            con,
            PERFORMANCE_ESTIMATES,
            batch.batch_id,
            estimates,
            performance.ESTIMATE_COLUMNS,
            now,
        )
    return 0 if checks.empty else int(checks.is_flagged.sum())


@task(name="decide-retraining", **IO_RETRIES)
def decide_retraining(settings: Settings, batch: batches.BatchWindow) -> list[decisions.Decision]:
    """One decision per model served before the watermark; a model already decided for this
    batch keeps its decision (re-running a batch never triggers a second retraining)."""
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
        results = {
            relation: con.execute(
                f"select * from {relation} where batch_id = ?", [batch.batch_id]
            ).df()
            for relation in (DRIFT_RESULTS, PERFORMANCE_CHECKS, PERFORMANCE_ESTIMATES)
        }
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
            signals = decisions.build_signals(
                model_name,
                results[DRIFT_RESULTS],
                results[PERFORMANCE_CHECKS],
                results[PERFORMANCE_ESTIMATES],
                policy,
            )
            made.append(
                decisions.decide(
                    con,
                    batch_id=batch.batch_id,
                    model_name=model_name,
                    watermark_at=batch.window_end,
                    dataset_version=batch.dataset_version,
                    signals=signals,
                    policy=policy,
                )
            )
    for decision in made:
        logger.info("%s: %s — %s", decision.model_name, decision.decision, decision.reason)
    return made


def act_on(settings: Settings, decision: decisions.Decision, dry_run: bool) -> None:
    """Trigger the retraining a decision asks for (unless dry-run), then append the decision."""
    logger = get_run_logger()
    policy = settings.retraining_policy
    status, run_id = "not_applicable", None
    if decision.decision == "retrain" and dry_run:
        status = "dry_run"
        logger.info("%s: dry run, retraining not triggered", decision.model_name)
    elif decision.decision == "retrain":
        try:
            run_id = trigger_retraining(
                decision.dataset_version,
                decision.decision_id,
                deployment_name=policy.action.deployment_name
                if policy.action.kind == "deployment"
                else None,
                db_path=str(settings.db_path),
            )
            status = "triggered"
        except Exception as error:  # recorded with the decision, then re-raised
            status = f"failed: {type(error).__name__}: {error}"[:500]
            _record(settings, decision, dry_run, status, None)
            raise
    _record(settings, decision, dry_run, status, run_id)


def _record(
    settings: Settings,
    decision: decisions.Decision,
    dry_run: bool,
    status: str,
    run_id: str | None,
) -> None:
    with connect(settings.db_path) as con:
        decisions.record_decision(
            con,
            decision,
            settings.retraining_policy,
            is_dry_run=dry_run,
            trigger_status=status,
            triggered_run_id=run_id,
            decided_at=batches.utc_now(),
        )


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


@task(name="publish-batch-summary")
def publish_summary(settings: Settings, batch: batches.BatchWindow) -> str:
    """The batch summary as a Prefect artifact (stable key ``batch-summary``) and as text."""
    with connect(settings.db_path) as con:
        markdown = artifacts.batch_markdown(con, batch.batch_id)
    create_markdown_artifact(
        key="batch-summary", markdown=markdown, description=f"Batch {batch.batch_id}"
    )
    return markdown


@task(name="publish-serving-snapshot", **IO_RETRIES)
def publish_serving_snapshot(settings: Settings, batch: batches.BatchWindow) -> str:
    """Publish the read-only copy of the marts that the dashboard reads (atomic swap of a
    separate DuckDB file; see feedback_flywheel/publish/serving.py). Returns its path."""
    try:
        result = serving.publish(settings.db_path, settings.serving_path, batch_id=batch.batch_id)
    except Exception as error:
        raise serving.PublishError(
            f"batch {batch.batch_id} succeeded, but its serving snapshot was not published "
            f"({type(error).__name__}: {error}); the dashboard keeps the previous one. "
            "Publish it with `flywheel publish`."
        ) from error
    get_run_logger().info(result.describe())
    return str(result.path)


@flow(name="batch_cycle", log_prints=True)
def batch_cycle(
    window_start: datetime | None = None,
    window_end: datetime | None = None,
    batch_id: str | None = None,
    overrides: dict[str, Any] | None = None,
    db_path: str | None = None,
    dry_run: bool = False,
    policy_path: str | None = None,
    progress: bool = False,
) -> dict[str, Any] | None:
    """Run one batch: from the last watermark to ``window_end`` (default: now), or the explicit
    window, or (``batch_id``) the latest batch again: build the warehouse, test drift and
    performance, decide whether to retrain and (unless ``dry_run``) trigger it. Returns the
    batch's counts, or None when the warehouse is already up to date."""
    logger = get_run_logger()
    # one load of the configuration: a bad var or policy fails before a batch is opened
    settings = Settings.load(db_path=db_path, overrides=overrides, policy_path=policy_path)
    batch = plan_batch(settings, window_start, window_end, batch_id)
    if batch is None:
        logger.info("Nothing to do: the warehouse is already at the requested watermark.")
        return None
    logger.info(
        "Batch %s: received_at in [%s, %s)", batch.batch_id, batch.window_start, batch.window_end
    )
    settings = discover_configuration(settings)
    attempt = open_batch(settings, batch)
    try:
        dbt_seconds = dbt_build(settings, batch, progress)
        audit_dataset_versions(settings, batch)
        test_drift(settings, batch)
        check_performance(settings, batch)
        made = decide_retraining(settings, batch)
        for decision in made:
            act_on(settings, decision, dry_run)
        train_reward_model(settings, batch)
        counts = record_batch(settings, batch, attempt, dbt_seconds)
    except Exception as error:
        fail_batch(settings, batch, attempt, f"{type(error).__name__}: {error}")
        raise
    publish_summary(settings, batch)
    publish_serving_snapshot(settings, batch)
    logger.info(
        "Batch %s done: %s feedback in, %s accepted, %s quarantined, %s held",
        batch.batch_id,
        counts["feedback_in"],
        counts["feedback_accepted"],
        counts["feedback_quarantined"],
        counts["feedback_held"],
    )
    return {
        "batch_id": batch.batch_id,
        **counts,
        "decisions": {decision.model_name: decision.decision for decision in made},
    }


if __name__ == "__main__":
    batch_cycle()

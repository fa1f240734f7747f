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
from feedback_flywheel.config.faults import fault_point
from feedback_flywheel.discovery.run import DiscoveryError, discover, needs_discovery
from feedback_flywheel.publish import artifacts, serving
from feedback_flywheel.publish.warnings import batch_warnings
from feedback_flywheel.warehouse import connect, init_warehouse
from feedback_flywheel.warehouse.dbt import BATCH_BUILD_ARGS, run_dbt
from flows.python_stage import (
    check_performance,
    decide_retraining,
    evaluate_sampling_policies,
    refresh_replay_buffer,
    test_drift,
    train_reward_model,
    trigger_pending,
)
from flows.retries import IO_RETRIES


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
        planned = batches.plan_windows(
            con,
            window_end or batches.utc_now(),
            floor=settings.vars.floor,
            clock_skew_seconds=settings.vars.clock_skew_seconds,
        )
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
    The data tests read the batch's rows (each model's ``meta.batch_scope``); the tests of the
    on-demand views (tag ``on_demand``) are left to ``flywheel check`` (``BATCH_BUILD_ARGS``).
    Every node's result line goes to the run's log (its start line only to the progress); with
    ``progress`` a terminal shows one line, nodes done of total.
    """
    logger = get_run_logger()
    bar = _Progress(f"batch {batch.batch_id} dbt build", progress)

    def on_line(line: str) -> None:
        bar.line(line)
        if " START " in line:  # the node's result line follows, with its time: logged once
            return
        if " of " in line or "Completed" in line or "ERROR" in line or "FAIL" in line:
            logger.info(line.split("  ", 1)[-1].strip())

    result = run_dbt(
        list(BATCH_BUILD_ARGS),
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
            key = settings.secret.audit_key
            return [audit.record(con, key=key, **entry) for entry in entries]


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
            audit_head=audit.head(con),
        )
    logger = get_run_logger()
    for line in found:
        logger.warning("%s: %s", batch.batch_id, line)
    return {**counts, "warnings": found}


@task(name="fail-batch", **IO_RETRIES)
def fail_batch(settings: Settings, batch: batches.BatchWindow, attempt: int, error: str) -> None:
    with connect(settings.db_path) as con:
        batches.close_batch(con, batch, attempt, status="failed", error_message=error[:4000])


@task(name="publish-batch-summary")
def publish_summary(settings: Settings, batch: batches.BatchWindow) -> str:
    """The batch summary as a Prefect artifact (stable key ``batch-summary``) and as text."""
    with connect(settings.db_path) as con:
        markdown = artifacts.batch_markdown(
            con, batch.batch_id, audit_key=settings.secret.audit_key
        )
    create_markdown_artifact(
        key="batch-summary", markdown=markdown, description=f"Batch {batch.batch_id}"
    )
    return markdown


@task(name="publish-serving-snapshot", **IO_RETRIES)
def publish_serving_snapshot(settings: Settings, batch_id: str) -> str:
    """Publish the read-only copy of the marts that the dashboard reads (atomic swap of a
    separate DuckDB file; see feedback_flywheel/publish/serving.py) and record it in
    ``ml.batch_runs.published_at``. Returns its path."""
    try:
        result = serving.publish(settings.db_path, settings.serving_path, batch_id=batch_id)
    except Exception as error:
        raise serving.PublishError(
            f"batch {batch_id} succeeded, but its serving snapshot was not published "
            f"({type(error).__name__}: {error}); the dashboard keeps the previous one. "
            "The next run publishes it, or publish it now with `flywheel publish`."
        ) from error
    with connect(settings.db_path) as con:
        batches.mark_published(con, batch_id, result.published_at)
    get_run_logger().info(result.describe())
    return str(result.path)


@task(name="recover-previous-run", **IO_RETRIES)
def recover_previous_run(settings: Settings) -> None:
    """Complete what a run that died left behind (the caller holds the run lock): attempts
    still ``running`` become ``abandoned``, half-built serving copies are removed, and the
    latest successful batch is published if its publish never happened."""
    logger = get_run_logger()
    with connect(settings.db_path) as con:
        init_warehouse(con)
        abandoned = batches.abandon_running(con)
        unpublished = batches.unpublished_batch(con)
    for batch_id, attempt in abandoned:
        logger.warning(
            "batch %s attempt %d was left running by a run that died: abandoned", batch_id, attempt
        )
    for leftover in serving.remove_stale_copies(settings.serving_path):
        logger.warning("removed %s, left by a publish that died", leftover.name)
    if unpublished is not None:
        logger.warning("batch %s was never published: publishing it now", unpublished)
        publish_serving_snapshot(settings, unpublished)


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
    replay_policy_path: str | None = None,
    lock_wait_seconds: float = 0.0,
) -> dict[str, Any] | None:
    """Run one batch: from the last watermark to ``window_end`` (default: now), or the explicit
    window, or (``batch_id``) the latest batch again: build the warehouse, test drift and
    performance, decide whether to retrain and (unless ``dry_run``) trigger it. Returns the
    batch's counts, or None when the warehouse is already up to date.

    It holds the warehouse's run lock throughout (a second run waits ``lock_wait_seconds``, then
    refuses with RunLockBusy), and first completes what a run that died left: attempts still
    running are marked abandoned, a batch never published is published, a decision whose trigger
    never completed is completed (after this batch's decisions)."""
    # one load of the configuration: a bad var or policy fails before a batch is opened
    settings = Settings.load(
        db_path=db_path,
        overrides=overrides,
        policy_path=policy_path,
        replay_policy_path=replay_policy_path,
    )
    with batches.run_lock(settings.db_path, wait_seconds=lock_wait_seconds):
        recover_previous_run(settings)
        batch = plan_batch(settings, window_start, window_end, batch_id)
        fault_point("after:plan-batch")
        if batch is None:
            get_run_logger().info(
                "Nothing to do: the warehouse is already at the requested watermark."
            )
            return None
        return _run_batch(settings, batch, dry_run, progress)


def _run_batch(
    settings: Settings, batch: batches.BatchWindow, dry_run: bool, progress: bool
) -> dict[str, Any]:
    logger = get_run_logger()
    logger.info("Batch %s: [%s, %s)", batch.batch_id, batch.window_start, batch.window_end)
    settings = discover_configuration(settings)
    attempt = open_batch(settings, batch)
    fault_point("after:open-batch")
    try:
        dbt_seconds = dbt_build(settings, batch, progress)
        fault_point("after:dbt-build")
        audit_dataset_versions(settings, batch)
        fault_point("after:audit-dataset-versions")
        test_drift(settings, batch)
        fault_point("after:test-drift")
        check_performance(settings, batch)
        fault_point("after:check-performance")
        made = decide_retraining(settings, batch, dry_run)
        fault_point("after:decide-retraining")
        trigger_pending(settings, dry_run)
        train_reward_model(settings, batch)
        fault_point("after:train-reward-model")
        # no fault point of its own: a kill after the reward model comes before it, a kill
        # after the replay refresh after it (then the re-run finds the batch evaluated)
        evaluate_sampling_policies(settings, batch)
        refresh_replay_buffer(settings, batch)
        fault_point("after:refresh-replay-buffer")
        counts = record_batch(settings, batch, attempt, dbt_seconds)
        fault_point("after:record-batch")
    except Exception as error:
        fail_batch(settings, batch, attempt, f"{type(error).__name__}: {error}")
        raise
    publish_summary(settings, batch)
    fault_point("after:publish-batch-summary")
    publish_serving_snapshot(settings, batch.batch_id)
    fault_point("after:publish-serving-snapshot")
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

"""The batch cycle: open a batch, build the warehouse for its window, record it, close it.

Later stages (drift, decision, reward model, replay, calibration) slot in between the build and
the close. Each step is a small task; the ones that touch the database retry with backoff. The
DuckDB file is opened by one step at a time and closed again, because dbt (a subprocess) needs the
single writer lock while it builds.
"""

from datetime import datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from feedback_flywheel import (
    batches,
    monitoring,
    paths,
    report,
    training,
    warehouse,
)
from feedback_flywheel import decision as decision_module
from feedback_flywheel.dbt_runner import run_dbt
from feedback_flywheel.policy import Policy, load_policy
from feedback_flywheel.settings import BATCH_VARS, load_settings

IO_RETRIES = {"retries": 3, "retry_delay_seconds": [2, 10, 30]}


@task(name="plan-batch", **IO_RETRIES)
def plan_batch(
    db_path: Path, window_start: datetime | None, window_end: datetime | None, batch_id: str | None
) -> batches.BatchWindow | None:
    """The window to process: an explicit one, the latest batch again, or last watermark → now."""
    with warehouse.connect(db_path) as con:
        warehouse.init_warehouse(con)
        if batch_id:
            return batches.rerun_window(con, batch_id)
        if window_start and window_end:
            return batches.window(window_start, window_end)
        planned = batches.plan_windows(con, window_end or batches.utc_now())
        return planned[0] if planned else None


@task(name="open-batch", **IO_RETRIES)
def open_batch(db_path: Path, batch: batches.BatchWindow) -> int:
    with warehouse.connect(db_path) as con:
        return batches.open_batch(con, batch)


@task(name="dbt-build")
def dbt_build(db_path: Path, batch: batches.BatchWindow, overrides: dict[str, Any]) -> float:
    """``dbt build`` with the batch's window as vars: seeds, models and their data tests.

    dbt unit tests check the SQL logic, not the data; they run in ``make test``, not every batch.
    """
    logger = get_run_logger()
    load_settings({**overrides, **batch.dbt_vars()})  # the batch window is valid too
    constant_vars = {
        name: value
        for name, value in load_settings(overrides).dbt_vars().items()
        if name not in BATCH_VARS
    }

    def on_line(line: str) -> None:
        if " of " in line or "Completed" in line or "ERROR" in line or "FAIL" in line:
            logger.info(line.split("  ", 1)[-1].strip())

    result = run_dbt(
        ["build", "--exclude-resource-type", "unit_test"],
        dbt_vars=constant_vars,
        db_path=db_path,
        on_line=on_line,
        extra_env=batch.dbt_env(),
    )
    return result.seconds


@task(name="audit-dataset-versions", **IO_RETRIES)
def audit_dataset_versions(db_path: Path, batch: batches.BatchWindow) -> list[str]:
    """Append the batch's new dataset version(s) to the audit trail (``ml.audit_log``); a re-run
    of the batch rebuilds the same version and adds nothing. Returns the audit row hashes."""
    from feedback_flywheel import audit

    with warehouse.connect(db_path) as con:
        entries = audit.dataset_version_entries(con, batch.batch_id)
        with audit.atomic(con):
            return [audit.record(con, **entry) for entry in entries]


@task(name="record-batch", **IO_RETRIES)
def record_batch(
    db_path: Path, batch: batches.BatchWindow, attempt: int, dbt_seconds: float
) -> dict[str, Any]:
    with warehouse.connect(db_path) as con:
        counts = batches.batch_counts(con, batch)
        batches.close_batch(
            con, batch, attempt, status="success", counts=counts, dbt_seconds=dbt_seconds
        )
        return counts


@task(name="fail-batch", **IO_RETRIES)
def fail_batch(db_path: Path, batch: batches.BatchWindow, attempt: int, error: str) -> None:
    with warehouse.connect(db_path) as con:
        batches.close_batch(con, batch, attempt, status="failed", error_message=error[:4000])


@task(name="test-drift", **IO_RETRIES)
def test_drift(db_path: Path, batch: batches.BatchWindow, policy: Policy) -> int:
    """p-values, Benjamini-Hochberg and the drift gate over the warehouse's drift summaries."""
    with warehouse.connect(db_path) as con:
        monitoring.ensure_tables(con)
        results = monitoring.drift_tests(con, batch.batch_id, policy)
        monitoring.write_batch_rows(
            con,
            "ml.drift_results",
            batch.batch_id,
            results,
            monitoring.DRIFT_COLUMNS,
            batches.utc_now(),
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
def check_performance(db_path: Path, batch: batches.BatchWindow, policy: Policy) -> int:
    """Accuracy change, its covariate / concept split, and the confidence-based estimate."""
    with warehouse.connect(db_path) as con:
        monitoring.ensure_tables(con)
        checks = monitoring.performance_checks(con, batch.batch_id, policy)
        monitoring.write_batch_rows(
            con,
            "ml.performance_checks",
            batch.batch_id,
            checks,
            monitoring.PERFORMANCE_COLUMNS,
            batches.utc_now(),
        )
        estimates = monitoring.performance_estimates(con, batch.batch_id)
        monitoring.write_batch_rows(
            con,
            "ml.performance_estimates",
            batch.batch_id,
            estimates,
            monitoring.ESTIMATE_COLUMNS,
            batches.utc_now(),
        )
    return 0 if checks.empty else int(checks.is_flagged.sum())


@task(name="decide-retraining", **IO_RETRIES)
def decide_retraining(
    db_path: Path, batch: batches.BatchWindow, policy: Policy
) -> list[decision_module.Decision]:
    """One decision per model served in the batch; a model already decided for this batch keeps
    its decision (re-running a batch never triggers a second retraining)."""
    logger = get_run_logger()
    decisions = []
    with warehouse.connect(db_path) as con:
        monitoring.ensure_tables(con)
        con.execute(decision_module.DECISIONS_DDL)
        models = [
            name
            for (name,) in con.execute(
                """
                select distinct model_name from intermediate.int_inferences_validated
                where is_accepted and logged_at < ? order by 1
                """,
                [batch.window_end],
            ).fetchall()
        ]
        drift = con.execute(
            "select * from ml.drift_results where batch_id = ?", [batch.batch_id]
        ).df()
        checks = con.execute(
            "select * from ml.performance_checks where batch_id = ?", [batch.batch_id]
        ).df()
        estimates = con.execute(
            "select * from ml.performance_estimates where batch_id = ?", [batch.batch_id]
        ).df()
        for model_name in models:
            earlier = decision_module.existing_decision(con, batch.batch_id, model_name)
            if earlier is not None:
                logger.info(
                    "%s: batch %s was already decided (%s, %s); keeping it",
                    model_name,
                    batch.batch_id,
                    earlier["decision"],
                    earlier["decision_id"],
                )
                continue
            signals = decision_module.build_signals(model_name, drift, checks, estimates, policy)
            decisions.append(
                decision_module.decide(
                    con,
                    batch_id=batch.batch_id,
                    model_name=model_name,
                    watermark_at=batch.window_end,
                    dataset_version=batch.dataset_version,
                    signals=signals,
                    policy=policy,
                )
            )
    for decision in decisions:
        logger.info("%s: %s — %s", decision.model_name, decision.decision, decision.reason)
    return decisions


def act_on(
    db_path: Path,
    decision: decision_module.Decision,
    policy: Policy,
    dry_run: bool,
) -> None:
    """Trigger the retraining a decision asks for (unless dry-run), then append the decision."""
    logger = get_run_logger()
    status, run_id = "not_applicable", None
    if decision.decision == "retrain" and dry_run:
        status = "dry_run"
        logger.info("%s: dry run, retraining not triggered", decision.model_name)
    elif decision.decision == "retrain":
        try:
            run_id = training.trigger_retraining(
                decision.dataset_version,
                decision.decision_id,
                deployment_name=policy.action.deployment_name
                if policy.action.kind == "deployment"
                else None,
                db_path=str(db_path),
            )
            status = "triggered"
        except Exception as error:  # recorded with the decision, then re-raised
            status = f"failed: {type(error).__name__}: {error}"[:500]
            _record(db_path, decision, policy, dry_run, status, None)
            raise
    _record(db_path, decision, policy, dry_run, status, run_id)


def _record(db_path, decision, policy, dry_run, status, run_id) -> None:
    with warehouse.connect(db_path) as con:
        decision_module.record_decision(
            con,
            decision,
            policy,
            is_dry_run=dry_run,
            trigger_status=status,
            triggered_run_id=run_id,
            decided_at=batches.utc_now(),
        )


@task(name="train-reward-model", **IO_RETRIES)
def train_reward_model(db_path: Path, batch: batches.BatchWindow, lookback_days: int) -> str:
    """The reward stage: retrain the Bradley-Terry reward model on the accumulated preference
    pairs when enough new ones arrived (policies/reward.yml), promote it only when it beats the
    current version, fit the model-version leaderboard, score the batch's new outputs. A batch
    already processed is left as it is. Returns the one-line summary it logs."""
    from feedback_flywheel import reward

    logger = get_run_logger()
    with warehouse.connect(db_path) as con:
        outcome = reward.run_batch(
            con,
            batch_id=batch.batch_id,
            window_start=batch.window_start,
            window_end=batch.window_end,
            lookback_days=lookback_days,
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
def publish_summary(db_path: Path, batch: batches.BatchWindow) -> str:
    """The batch summary as a Prefect artifact (stable key ``batch-summary``) and as text."""
    with warehouse.connect(db_path) as con:
        markdown = report.batch_markdown(con, batch.batch_id)
    create_markdown_artifact(
        key="batch-summary", markdown=markdown, description=f"Batch {batch.batch_id}"
    )
    return markdown


@task(name="publish-serving-snapshot", **IO_RETRIES)
def publish_serving_snapshot(db_path: Path, batch: batches.BatchWindow) -> str:
    """Publish the read-only copy of the marts that the dashboard reads (atomic swap of a
    separate DuckDB file; see feedback_flywheel/serving.py). Returns its path."""
    from feedback_flywheel import serving

    try:
        result = serving.publish(db_path, batch_id=batch.batch_id)
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
) -> dict[str, Any] | None:
    """Run one batch: from the last watermark to ``window_end`` (default: now), or the explicit
    window, or (``batch_id``) the latest batch again: build the warehouse, test drift and
    performance, decide whether to retrain and (unless ``dry_run``) trigger it. Returns the
    batch's counts, or None when the warehouse is already up to date."""
    logger = get_run_logger()
    database = Path(db_path).resolve() if db_path else paths.database_path()
    overrides = overrides or {}
    load_settings(overrides)  # fail before opening a batch when the configuration is invalid
    policy = load_policy(Path(policy_path) if policy_path else None)
    batch = plan_batch(database, window_start, window_end, batch_id)
    if batch is None:
        logger.info("Nothing to do: the warehouse is already at the requested watermark.")
        return None
    logger.info(
        "Batch %s: received_at in [%s, %s)", batch.batch_id, batch.window_start, batch.window_end
    )
    attempt = open_batch(database, batch)
    try:
        dbt_seconds = dbt_build(database, batch, overrides)
        audit_dataset_versions(database, batch)
        test_drift(database, batch, policy)
        check_performance(database, batch, policy)
        for decision in decide_retraining(database, batch, policy):
            act_on(database, decision, policy, dry_run)
        train_reward_model(database, batch, load_settings(overrides).lookback_days)
        counts = record_batch(database, batch, attempt, dbt_seconds)
    except Exception as error:
        fail_batch(database, batch, attempt, f"{type(error).__name__}: {error}")
        raise
    publish_summary(database, batch)
    publish_serving_snapshot(database, batch)
    logger.info(
        "Batch %s done: %s feedback in, %s accepted, %s quarantined, %s held",
        batch.batch_id,
        counts["feedback_in"],
        counts["feedback_accepted"],
        counts["feedback_quarantined"],
        counts["feedback_held"],
    )
    return {"batch_id": batch.batch_id, **counts}


if __name__ == "__main__":
    batch_cycle()

"""The built-in retraining a retrain decision triggers: train on a dataset version's training
sample, compare with the serving model, and deploy the candidate only when it beats it.

Per model in the sample: read its rows of ``marts.fct_training_sample`` and its registry rows
(``marts.dim_model_versions``), fit a baseline multinomial logistic regression and measure it
on a held-out slice against the serving version's recorded predictions (the maths and every rule
are in :mod:`feedback_flywheel.retraining.trainer`), deploy a winner by appending a registry row
through ingest (so it has a load-ledger entry like every raw row), record the run in
``ml.training_runs`` (append-only, one row per attempt) and publish a ``training-run`` artifact.

A run's id is a hash of its sample rows and parameters, so the same inputs give the same id; a
re-run appends attempt 2 and never deploys the same run twice. The database is opened by one step
at a time and closed again, like in the batch cycle.
"""

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from feedback_flywheel.config import Settings
from feedback_flywheel.retraining import trainer, training_store, training_window
from flows.retries import IO_RETRIES


@task(name="resolve-dataset-version", **IO_RETRIES)
def resolve_dataset_version(db_path: Path, dataset_version: str | None) -> str:
    """The requested dataset version if it has a training sample, else the latest that has one."""
    return training_store.resolve_dataset_version(db_path, dataset_version)


@task(name="load-training-sample", **IO_RETRIES)
def load_training_sample(db_path: Path, dataset_version: str) -> pd.DataFrame:
    """The dataset version's training sample (thousands of rows: it fits in memory)."""
    return training_store.load_training_sample(db_path, dataset_version)


@task(name="read-registry", **IO_RETRIES)
def read_registry(db_path: Path, model_name: str) -> pd.DataFrame:
    """The model's versions, each with the parameters of the run behind it when recorded."""
    return training_store.read_registry(db_path, model_name)


@task(name="train-candidate")
def train_candidate(
    sample: pd.DataFrame,
    registry: pd.DataFrame,
    dataset_version: str,
    model_name: str,
    options: dict[str, Any],
) -> trainer.TrainingResult:
    """Fit the candidate on the training part and measure it and the serving model on the
    held-out part (pure; see :func:`feedback_flywheel.retraining.trainer.train_and_evaluate`)."""
    return trainer.train_and_evaluate(
        sample, registry, dataset_version=dataset_version, model_name=model_name, **options
    )


@task(name="deploy-candidate", **IO_RETRIES)
def deploy_candidate(settings: Settings, result: trainer.TrainingResult) -> str:
    """Append the candidate to the registry through ingest (idempotent); returns the load id."""
    return training_store.deploy_candidate(
        settings.db_path, result, audit_key=settings.secret.audit_key
    )


@task(name="record-training-run", **IO_RETRIES)
def record_training_run(settings: Settings, row: dict[str, Any]) -> int:
    """Append one attempt of a training run to ``ml.training_runs``; returns the attempt number."""
    return training_store.record_training_run(
        settings.db_path, row, audit_key=settings.secret.audit_key
    )


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def training_markdown(dataset_version: str, runs: list[dict[str, Any]]) -> str:
    """The artifact text: one table row per model, then what happened to each candidate."""
    lines = [
        f"# Retraining on {dataset_version}",
        "",
        "| model | run | status | candidate | n train / holdout | accuracy | macro F1 | log loss "
        "| current | current accuracy | gain (p) | beats current |",
        "|---|---|---|---|---|---:|---:|---:|---|---:|---:|---|",
    ]
    for run in runs:
        gain = run.get("accuracy_gain")
        gain_text = "–" if gain is None else f"{gain:+.3f} ({_fmt(run['accuracy_gain_p_value'])})"
        lines.append(
            f"| {run['model_name']} | `{run['training_run_id']}` (attempt {run['attempt']}) "
            f"| {run['status']} | {_fmt(run.get('candidate_version'))} "
            f"| {_fmt(run.get('n_train'))} / {_fmt(run.get('n_holdout'))} "
            f"| {_fmt(run.get('holdout_accuracy'))} | {_fmt(run.get('holdout_macro_f1'))} "
            f"| {_fmt(run.get('holdout_log_loss'))} | {_fmt(run.get('baseline_model_version'))} "
            f"({run.get('baseline_scope') or '–'}, n={_fmt(run.get('n_baseline'))}) "
            f"| {_fmt(run.get('baseline_accuracy'))} | {gain_text} "
            f"| {'yes' if run.get('beats_current') else 'no'} |"
        )
    lines.append("")
    for run in runs:
        if run["status"] == "deployed":
            what = f"deployed as {run['candidate_version']} (registry load {run['load_id']})"
        elif run["status"] == "already_deployed":
            what = f"already deployed as {run['candidate_version']} by an earlier attempt"
        elif run["status"] == "failed":
            what = f"failed: {run['error_message']}"
        else:
            what = f"not deployed: {run['baseline_model_version'] or 'the current model'} stays"
        lines.append(f"- **{run['model_name']}**: {what}.")
    return "\n".join(lines) + "\n"


@task(name="publish-training-summary")
def publish_summary(dataset_version: str, runs: list[dict[str, Any]]) -> str:
    """The runs as a Prefect markdown artifact (stable key ``training-run``) and as text."""
    markdown = training_markdown(dataset_version, runs)
    create_markdown_artifact(
        key="training-run", markdown=markdown, description=f"Retraining on {dataset_version}"
    )
    return markdown


@task(name="load-examples-after-change", **IO_RETRIES)
def load_examples_after_change(
    db_path: Path, dataset_version: str, model_name: str, since: datetime, window: dict[str, Any]
) -> pd.DataFrame:
    """The model's labelled examples logged since the change point (at most
    ``max_rows_after_change``)."""
    return training_store.load_examples_since(
        db_path,
        dataset_version,
        model_name,
        since,
        limit=window["max_rows_after_change"],
        seed=window["seed"],
    )


def _train_one(
    settings: Settings,
    sample: pd.DataFrame,
    version: str,
    name: str,
    decision_id: str | None,
    options: dict[str, Any],
    window: dict[str, Any],
) -> dict[str, Any]:
    """Train, compare and (when it wins) deploy one model's candidate, and record the attempt —
    failed ones too. Returns the recorded row (without the parameters)."""
    logger = get_run_logger()
    database = settings.db_path
    started_at = training_store.utc_now()
    rows = sample[sample["model_name"] == name].reset_index(drop=True)
    load_id = None
    since = window["since"]
    try:
        registry = read_registry(database, name)
        after_change = (
            load_examples_after_change(database, version, name, since, window)
            if since is not None
            else None
        )
        result = train_candidate(
            rows,
            registry,
            version,
            name,
            options
            | {
                "since": since,
                "after_change": after_change,
                "min_rows_after_change": window["min_rows_after_change"],
                "recency_half_life_days": window["recency_half_life_days"],
            },
        )
        row = training_store.run_row(result)
        if result.beats_current and not result.already_deployed:
            load_id = deploy_candidate(settings, result)
            row["status"] = "deployed"
        else:
            row["status"] = "already_deployed" if result.beats_current else "not_deployed"
    except Exception as error:
        inputs = trainer.run_inputs(rows, **options)
        row = {
            "training_run_id": trainer.training_run_id(version, name, inputs),
            "model_name": name,
            "dataset_version": version,
            "status": "failed",
            "parameters_json": json.dumps({"inputs": inputs}, sort_keys=True),
            "error_message": f"{type(error).__name__}: {error}"[:4000],
        }
    row |= {
        "decision_id": decision_id,
        "started_at": started_at,
        "finished_at": training_store.utc_now(),
    }
    attempt = record_training_run(settings, row)
    logger.info(
        "%s: %s (holdout accuracy %s; gain over current %s: %s, p %s)",
        row["training_run_id"],
        row["status"],
        _fmt(row.get("holdout_accuracy")),
        row.get("baseline_model_version"),
        _fmt(row.get("accuracy_gain")),
        _fmt(row.get("accuracy_gain_p_value")),
    )
    return {k: v for k, v in row.items() if k != "parameters_json"} | {
        "attempt": attempt,
        "load_id": load_id,
    }


@flow(name="retrain", log_prints=True)
def retrain(
    dataset_version: str | None = None,
    decision_id: str | None = None,
    db_path: str | None = None,
    model_name: str | None = None,
    holdout_share: float = 0.2,
    seed: int = 42,
    min_improvement: float = 0.0,
    significance: float = 0.05,
    l2: float = trainer.DEFAULT_L2,
    max_categories: int = trainer.DEFAULT_MAX_CATEGORIES,
    train_from: str | None = None,
    min_rows_after_change: int = training_window.MIN_ROWS_AFTER_CHANGE,
    max_rows_after_change: int = training_window.MAX_ROWS_AFTER_CHANGE,
    recency_half_life_days: float = training_window.RECENCY_HALF_LIFE_DAYS,
) -> dict:
    """Train one candidate per model (default: every model in the sample) on ``dataset_version``
    (default: the latest with a training sample), deploy those that beat the serving version by
    more than ``min_improvement`` accuracy (one-sided paired test at ``significance``; 1 = compare
    the point estimates only), and record every run. Returns the runs (without their parameters).

    ``train_from`` (an ISO day: the change point the decision cites) makes each run learn from
    the examples logged since (at least ``min_rows_after_change``, at most
    ``max_rows_after_change``; fewer: the sample weighted by recency, half-life
    ``recency_half_life_days``) and be judged on the held-out rows since
    (:mod:`feedback_flywheel.retraining.training_window`).
    """
    settings = Settings.load(db_path=db_path)
    database = settings.db_path
    options = {
        "holdout_share": holdout_share,
        "seed": seed,
        "l2": l2,
        "max_categories": max_categories,
        "min_improvement": min_improvement,
        "significance": significance,
    }
    if not 0 < holdout_share < 1:
        raise ValueError(f"holdout_share must be in (0, 1); got {holdout_share}")
    if not 0 <= significance <= 1:
        raise ValueError(f"significance must be in [0, 1]; got {significance}")
    window = {
        "since": _day(train_from),
        "seed": seed,
        "min_rows_after_change": min_rows_after_change,
        "max_rows_after_change": max_rows_after_change,
        "recency_half_life_days": recency_half_life_days,
    }
    if min_rows_after_change < 1 or max_rows_after_change < min_rows_after_change:
        raise ValueError(
            "need 1 <= min_rows_after_change <= max_rows_after_change; got "
            f"{min_rows_after_change} and {max_rows_after_change}"
        )
    version = resolve_dataset_version(database, dataset_version)
    sample = load_training_sample(database, version)
    available = sorted(sample["model_name"].dropna().unique())
    if model_name is not None and model_name not in available:
        raise LookupError(
            f"model_name {model_name!r} has no rows in the training sample of {version}; "
            f"models there: {', '.join(available) or 'none'}"
        )
    runs = [
        _train_one(settings, sample, version, name, decision_id, options, window)
        for name in ([model_name] if model_name else available)
    ]
    failures = [
        f"{run['model_name']}: {run['error_message']}" for run in runs if run["status"] == "failed"
    ]
    publish_summary(version, runs)
    if failures:
        raise RuntimeError("retraining failed for " + "; ".join(failures))
    return {"dataset_version": version, "decision_id": decision_id, "training_runs": runs}


def _day(value: str | None) -> datetime | None:
    """The change point as the midnight starting it; None stays None."""
    if value is None:
        return None
    try:
        return datetime.combine(date.fromisoformat(value[:10]), datetime.min.time())
    except ValueError:
        raise ValueError(
            f"train_from must be an ISO day such as 2026-02-15; got {value!r}"
        ) from None


def trigger_retraining(
    dataset_version: str | None,
    decision_id: str | None,
    *,
    deployment_name: str | None,
    db_path: str | None,
    model_name: str | None = None,
    train_from: str | None = None,
) -> str:
    """Start the retraining a decision asked for; return what identifies it.

    With ``deployment_name`` (the policy's ``action.kind: deployment``) a flow run of that Prefect
    deployment is created with ``dataset_version`` and ``decision_id`` as parameters (the
    documented contract of your own training flow), without waiting for it (``timeout=0``),
    under the decision id as its idempotency key (asked again, Prefect returns the same flow
    run); the flow run id is returned. Otherwise
    the built-in :func:`retrain` flow runs here (a subflow when called inside a flow), learning
    from ``train_from`` (the change point the decision cites) on, and the training run id(s) it
    recorded are returned, comma-separated when it trained several. (Your own deployment reads
    the change points from the decision's ``signals_json``.)
    """
    if deployment_name:
        import prefect.deployments

        flow_run = prefect.deployments.run_deployment(
            name=deployment_name,
            parameters={"dataset_version": dataset_version, "decision_id": decision_id},
            timeout=0,
            idempotency_key=decision_id,
        )
        return str(flow_run.id)
    summary = retrain(
        dataset_version=dataset_version,
        decision_id=decision_id,
        db_path=db_path,
        model_name=model_name,
        train_from=train_from,
    )
    return ",".join(run["training_run_id"] for run in summary["training_runs"])


if __name__ == "__main__":
    retrain()

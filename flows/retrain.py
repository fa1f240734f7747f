"""The built-in retraining a retrain decision triggers: train on a dataset version's training
sample, compare with the serving model, and deploy the candidate only when it beats it.

Per model in the sample: read its rows of ``marts.fct_training_sample`` and its registry rows
(``raw.model_deployments``), fit a baseline multinomial logistic regression and measure it on a
held-out slice against the serving version's recorded predictions (the maths and every rule are in
:mod:`feedback_flywheel.training`), deploy a winner by appending a registry row through ingest (so
it has a load-ledger entry like every raw row), record the run in ``ml.training_runs``
(append-only, one row per attempt) and publish a ``training-run`` artifact.

A run's id is a hash of its sample rows and parameters, so the same inputs give the same id; a
re-run appends attempt 2 and never deploys the same run twice. The database is opened by one step
at a time and closed again, like in the batch cycle.
"""

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from feedback_flywheel import audit, ingest, paths, training, warehouse


def _is_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry database errors (e.g. a writer lock held by a build), not the caller's mistakes."""
    try:
        state.result()
    except (ValueError, LookupError, FileNotFoundError):
        return False
    except Exception:
        return True
    return True


IO_RETRIES: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": [2, 10, 30],
    "retry_condition_fn": _is_transient,
}
SAMPLE_COLUMNS = ", ".join(training.SAMPLE_COLUMNS)


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _require_database(db_path: Path) -> None:
    if not db_path.exists():
        raise FileNotFoundError(
            f"no warehouse at {db_path}: run the batch cycle (`flywheel run` or `make run`) first"
        )


@task(name="resolve-dataset-version", **IO_RETRIES)
def resolve_dataset_version(db_path: Path, dataset_version: str | None) -> str:
    """The requested dataset version if it has a training sample, else the latest that has one."""
    _require_database(db_path)
    with warehouse.connect(db_path) as con:
        versions = [
            (version, count)
            for version, count in con.execute(
                "select dataset_version, sample_count from marts.fct_dataset_versions "
                "order by dataset_version desc"
            ).fetchall()
        ]
    with_sample = [version for version, count in versions if count and count > 0]
    if dataset_version is None:
        if not with_sample:
            raise LookupError(
                "no dataset version has a training sample yet: run the batch cycle until labels "
                "mature (marts.fct_dataset_versions.sample_count > 0)"
            )
        return with_sample[0]
    if dataset_version not in with_sample:
        known = dataset_version in {version for version, _ in versions}
        why = "has an empty training sample" if known else "does not exist"
        raise LookupError(
            f"dataset_version {dataset_version!r} {why}; latest with a sample: "
            f"{', '.join(with_sample[:5]) or 'none'}"
        )
    return dataset_version


@task(name="load-training-sample", **IO_RETRIES)
def load_training_sample(db_path: Path, dataset_version: str) -> pd.DataFrame:
    """The dataset version's training sample (thousands of rows: it fits in memory)."""
    with warehouse.connect(db_path) as con:
        return con.execute(
            f"select {SAMPLE_COLUMNS} from marts.fct_training_sample where dataset_version = ? "
            "order by model_name, inference_id, training_sample_id",
            [dataset_version],
        ).df()


@task(name="read-registry", **IO_RETRIES)
def read_registry(db_path: Path, model_name: str) -> pd.DataFrame:
    """The model's rows of ``raw.model_deployments`` (append-only; latest deployed_at serves),
    each with the parameters of the training run behind it when this flow recorded that run."""
    with warehouse.connect(db_path) as con:
        warehouse.init_warehouse(con)  # ml.training_runs exists even before the first run
        return con.execute(
            """
            with trained as (
                select training_run_id, any_value(parameters_json) as parameters_json
                from ml.training_runs
                where model_name = ? and status in ('deployed', 'already_deployed')
                group by training_run_id
            )

            select
                deployments.model_version,
                deployments.deployed_at,
                deployments.training_run_id,
                trained.parameters_json
            from raw.model_deployments as deployments
            left join trained on deployments.training_run_id = trained.training_run_id
            where deployments.model_name = ?
            order by deployments.deployed_at, deployments.model_version
            """,
            [model_name, model_name],
        ).df()


@task(name="train-candidate")
def train_candidate(
    sample: pd.DataFrame,
    registry: pd.DataFrame,
    dataset_version: str,
    model_name: str,
    options: dict[str, Any],
) -> training.TrainingResult:
    """Fit the candidate on the training part and measure it and the serving model on the
    held-out part (pure; see :func:`feedback_flywheel.training.train_and_evaluate`)."""
    return training.train_and_evaluate(
        sample, registry, dataset_version=dataset_version, model_name=model_name, **options
    )


@task(name="deploy-candidate", **IO_RETRIES)
def deploy_candidate(db_path: Path, result: training.TrainingResult) -> str:
    """Append the candidate to ``raw.model_deployments`` through ingest: a one-row Parquet file
    ``<db folder>/registry/<training_run_id>.parquet``, loaded with a ledger entry. Returns the
    load id. The previous version's row is left as it is (raw is append-only). Idempotent: when
    a row of this training run is already there (a retried attempt), it is not added again."""
    with warehouse.connect(db_path) as con:
        existing = con.execute(
            "select _load_id from raw.model_deployments where training_run_id = ? limit 1",
            [result.training_run_id],
        ).fetchone()
        if existing is not None:  # a retried attempt: its audit row too (a no-op when there)
            audit.record(con, **audit.deployment_entry(con, str(existing[0])))
    if existing is not None:
        return str(existing[0])
    folder = db_path.parent / "registry"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (re.sub(r"[^A-Za-z0-9._-]", "_", result.training_run_id) + ".parquet")
    table = pa.table(
        {
            "model_name": pa.array([result.model_name], pa.string()),
            "model_version": pa.array([result.candidate_version], pa.string()),
            "deployed_at": pa.array([_utc_now()], pa.timestamp("us")),
            "retired_at": pa.array([None], pa.timestamp("us")),
            "training_run_id": pa.array([result.training_run_id], pa.string()),
        }
    )
    pq.write_table(table, path)
    with warehouse.connect(db_path) as con:
        loaded = ingest.ingest_file(con, "model_deployments", path)
        if loaded.status == ingest.LOADED:
            audit.record(con, **audit.deployment_entry(con, str(loaded.load_id)))
    if loaded.status != ingest.LOADED:
        raise RuntimeError(f"deploying {result.candidate_version} failed: {loaded.message}")
    return str(loaded.load_id)


@task(name="record-training-run", **IO_RETRIES)
def record_training_run(db_path: Path, row: dict[str, Any]) -> int:
    """Append one attempt of a training run to ``ml.training_runs``; returns the attempt number."""
    with warehouse.connect(db_path) as con:
        warehouse.init_warehouse(con)
        con.execute("begin transaction")
        try:
            (previous,) = con.execute(
                "select count(*) from ml.training_runs where training_run_id = ?",
                [row["training_run_id"]],
            ).fetchone()
            record = {**row, "attempt": int(previous) + 1}
            columns = ", ".join(record)
            marks = ", ".join("?" for _ in record)
            con.execute(
                f"insert into ml.training_runs ({columns}) values ({marks})", list(record.values())
            )
            audit.record(con, **audit.training_run_entry(record))
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
    return record["attempt"]


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


def _run_row(result: training.TrainingResult) -> dict[str, Any]:
    return {
        "training_run_id": result.training_run_id,
        "model_name": result.model_name,
        "dataset_version": result.dataset_version,
        "candidate_version": result.candidate_version,
        "baseline_model_version": result.baseline_model_version,
        "baseline_scope": result.baseline_scope,
        "parameters_json": result.parameters_json,
        "n_train": result.n_train,
        "n_holdout": result.n_holdout,
        "n_baseline": result.n_baseline,
        "holdout_accuracy": result.holdout_accuracy,
        "holdout_macro_f1": result.holdout_macro_f1,
        "holdout_log_loss": result.holdout_log_loss,
        "baseline_accuracy": result.baseline_accuracy,
        "baseline_macro_f1": result.baseline_macro_f1,
        "accuracy_gain": result.accuracy_gain,
        "accuracy_gain_p_value": result.accuracy_gain_p_value,
        "train_seconds": result.train_seconds,
        "beats_current": result.beats_current,
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
    l2: float = training.DEFAULT_L2,
    max_categories: int = training.DEFAULT_MAX_CATEGORIES,
) -> dict:
    """Train one candidate per model (default: every model in the sample) on ``dataset_version``
    (default: the latest with a training sample), deploy those that beat the serving version by
    more than ``min_improvement`` accuracy (one-sided paired test at ``significance``; 1 = compare
    the point estimates only), and record every run. Returns the runs (without their parameters).
    """
    logger = get_run_logger()
    database = Path(db_path).resolve() if db_path else paths.database_path()
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
    version = resolve_dataset_version(database, dataset_version)
    sample = load_training_sample(database, version)
    available = sorted(sample["model_name"].dropna().unique())
    if model_name is not None and model_name not in available:
        raise LookupError(
            f"model_name {model_name!r} has no rows in the training sample of {version}; "
            f"models there: {', '.join(available) or 'none'}"
        )
    runs: list[dict[str, Any]] = []
    failures: list[str] = []
    for name in [model_name] if model_name else available:
        started_at = _utc_now()
        rows = sample[sample["model_name"] == name].reset_index(drop=True)
        try:
            registry = read_registry(database, name)
            result = train_candidate(rows, registry, version, name, options)
            row = _run_row(result)
            load_id = None
            if result.beats_current and not result.already_deployed:
                load_id = deploy_candidate(database, result)
                row["status"] = "deployed"
            elif result.beats_current:
                row["status"] = "already_deployed"
            else:
                row["status"] = "not_deployed"
        except Exception as error:
            inputs = training.run_inputs(rows, **options)
            row = {
                "training_run_id": training.training_run_id(version, name, inputs),
                "model_name": name,
                "dataset_version": version,
                "status": "failed",
                "parameters_json": json.dumps({"inputs": inputs}, sort_keys=True),
                "error_message": f"{type(error).__name__}: {error}"[:4000],
            }
            load_id = None
            failures.append(f"{name}: {row['error_message']}")
        row |= {"decision_id": decision_id, "started_at": started_at, "finished_at": _utc_now()}
        attempt = record_training_run(database, row)
        runs.append(
            {k: v for k, v in row.items() if k != "parameters_json"}
            | {"attempt": attempt, "load_id": load_id}
        )
        logger.info(
            "%s: %s (holdout accuracy %s; gain over current %s: %s, p %s)",
            row["training_run_id"],
            row["status"],
            _fmt(row.get("holdout_accuracy")),
            row.get("baseline_model_version"),
            _fmt(row.get("accuracy_gain")),
            _fmt(row.get("accuracy_gain_p_value")),
        )
    publish_summary(version, runs)
    if failures:
        raise RuntimeError("retraining failed for " + "; ".join(failures))
    return {"dataset_version": version, "decision_id": decision_id, "training_runs": runs}


if __name__ == "__main__":
    retrain()

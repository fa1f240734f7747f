"""The reads and writes of a built-in training run: which dataset version to train on, its
training sample, the model's registry, deploying a winner, and recording the run.

``flows/retrain.py`` composes these (as Prefect tasks) with the pure :mod:`.trainer`. The registry
comes from ``marts.dim_model_versions`` (one row per version, as the last build saw it); a winner
is deployed by appending a registry row through ingest, so it has a load-ledger entry like every
raw row, and ingest — the only reader of ``raw`` — says whether a run was already deployed.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from feedback_flywheel import audit, ingest
from feedback_flywheel.ingest.registry import (
    registry_load_of_training_run,
    registry_rows_of_load,
)
from feedback_flywheel.retraining.trainer import SAMPLE_COLUMNS, TrainingResult
from feedback_flywheel.warehouse import connect
from feedback_flywheel.warehouse.catalogue import (
    DIM_MODEL_VERSIONS,
    FCT_DATASET_VERSIONS,
    FCT_TRAINING_EXAMPLES,
    FCT_TRAINING_SAMPLE,
    TRAINING_RUNS,
)


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def require_database(db_path: Path) -> None:
    if not db_path.exists():
        raise FileNotFoundError(
            f"no warehouse at {db_path}: run the batch cycle (`flywheel run` or `make run`) first"
        )


def resolve_dataset_version(db_path: Path, dataset_version: str | None) -> str:
    """The requested dataset version if it has a training sample, else the latest that has one."""
    require_database(db_path)
    with connect(db_path) as con:
        versions = con.execute(
            f"select dataset_version, sample_count from {FCT_DATASET_VERSIONS} "
            "order by dataset_version desc"
        ).fetchall()
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


def load_training_sample(db_path: Path, dataset_version: str) -> pd.DataFrame:
    """The dataset version's training sample (thousands of rows: it fits in memory)."""
    with connect(db_path) as con:
        return con.execute(
            f"select {', '.join(SAMPLE_COLUMNS)} from {FCT_TRAINING_SAMPLE} "
            "where dataset_version = ? order by model_name, inference_id, training_sample_id",
            [dataset_version],
        ).df()


def load_examples_since(
    db_path: Path, dataset_version: str, model_name: str, since: datetime, *, limit: int, seed: int
) -> pd.DataFrame:
    """The model's labelled examples of ``dataset_version`` (``marts.fct_training_examples`` as
    of its batch: added by then, not superseded by then) logged on or after ``since``, in the
    columns of a training sample; at most ``limit`` of them, chosen by the hash of the inference
    id and ``seed`` (the same rows every time)."""
    batch_id = dataset_version.removeprefix("ds-")
    with connect(db_path) as con:
        return con.execute(
            f"""
            select training_example_id as training_sample_id, inference_id, model_name,
                model_version, label, predicted_label, features_json, sample_weight,
                inference_logged_at
            from {FCT_TRAINING_EXAMPLES}
            where model_name = ? and label is not null and inference_logged_at >= ?
                and batch_id <= ?
                and (superseded_in_batch_id is null or superseded_in_batch_id > ?)
            order by md5(inference_id || ':' || ?), training_example_id
            limit ?
            """,
            [model_name, since, batch_id, batch_id, str(seed), limit],
        ).df()


def read_registry(db_path: Path, model_name: str) -> pd.DataFrame:
    """The model's versions, each with the parameters of the training run behind it when the
    built-in trainer recorded that run.

    The versions are ``marts.dim_model_versions`` (as the last build saw the registry) plus the
    versions this trainer deployed since (``ml.training_runs`` rows with status ``deployed``
    that the mart does not list yet, dated by when their run finished): a run retried before
    the next build must still find the version its first attempt deployed.
    """
    with connect(db_path) as con:
        return con.execute(
            f"""
            with trained as (
                select training_run_id, any_value(parameters_json) as parameters_json
                from {TRAINING_RUNS}
                where model_name = ? and status in ('deployed', 'already_deployed')
                group by training_run_id
            ),

            built as (
                select model_version, deployed_at, training_run_id
                from {DIM_MODEL_VERSIONS}
                where model_name = ?
            ),

            deployed_since as (
                select candidate_version as model_version, min(finished_at) as deployed_at,
                    training_run_id
                from {TRAINING_RUNS}
                where model_name = ? and status = 'deployed'
                    and candidate_version not in (select model_version from built)
                group by candidate_version, training_run_id
            ),

            versions as (
                select * from built
                union all
                select * from deployed_since
            )

            select
                versions.model_version,
                versions.deployed_at,
                versions.training_run_id,
                trained.parameters_json
            from versions
            left join trained on versions.training_run_id = trained.training_run_id
            order by versions.deployed_at, versions.model_version
            """,
            [model_name, model_name, model_name],
        ).df()


def deploy_candidate(db_path: Path, result: TrainingResult, *, audit_key: bytes) -> str:
    """Append the candidate to ``raw.model_deployments`` through ingest: a one-row Parquet file
    ``<db folder>/registry/<training_run_id>.parquet``, loaded with a ledger entry, and its
    ``deployment`` audit row. Returns the load id. The previous version's row is left as it is
    (raw is append-only). Idempotent: when a row of this training run is already there (a
    retried attempt), it is not added again."""
    with connect(db_path) as con:
        existing = registry_load_of_training_run(con, result.training_run_id)
        if existing is not None:  # a retried attempt: its audit row too (a no-op when there)
            audit.record(
                con,
                key=audit_key,
                **audit.deployment_entry(existing, registry_rows_of_load(con, existing)),
            )
    if existing is not None:
        return existing
    folder = db_path.parent / "registry"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (re.sub(r"[^A-Za-z0-9._-]", "_", result.training_run_id) + ".parquet")
    table = pa.table(
        {
            "model_name": pa.array([result.model_name], pa.string()),
            "model_version": pa.array([result.candidate_version], pa.string()),
            "deployed_at": pa.array([utc_now()], pa.timestamp("us")),
            "retired_at": pa.array([None], pa.timestamp("us")),
            "training_run_id": pa.array([result.training_run_id], pa.string()),
        }
    )
    pq.write_table(table, path)
    with connect(db_path) as con:
        loaded = ingest.ingest_file(con, "model_deployments", path)
        if loaded.status == ingest.LOADED:
            load_id = str(loaded.load_id)
            audit.record(
                con,
                key=audit_key,
                **audit.deployment_entry(load_id, registry_rows_of_load(con, load_id)),
            )
    if loaded.status != ingest.LOADED:
        raise RuntimeError(f"deploying {result.candidate_version} failed: {loaded.message}")
    return str(loaded.load_id)


def record_training_run(db_path: Path, row: dict[str, Any], *, audit_key: bytes) -> int:
    """Append one attempt of a training run to ``ml.training_runs`` with its audit row, in one
    transaction; returns the attempt number."""
    with connect(db_path) as con:
        con.execute("begin transaction")
        try:
            (previous,) = con.execute(
                f"select count(*) from {TRAINING_RUNS} where training_run_id = ?",
                [row["training_run_id"]],
            ).fetchone()
            record = {**row, "attempt": int(previous) + 1}
            columns = ", ".join(record)
            marks = ", ".join("?" for _ in record)
            con.execute(
                f"insert into {TRAINING_RUNS} ({columns}) values ({marks})", list(record.values())
            )
            audit.record(con, key=audit_key, **audit.training_run_entry(record))
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
    return record["attempt"]


def runs_for_decision(db_path: Path, decision_id: str) -> list[str]:
    """The training runs recorded under a decision (its idempotency key), in the order they
    were first recorded: what a trigger that died before the decision was completed left."""
    with connect(db_path, read_only=True) as con:
        rows = con.execute(
            f"""
            select training_run_id from {TRAINING_RUNS}
            where decision_id = ?
            group by training_run_id
            order by min(started_at), training_run_id
            """,
            [decision_id],
        ).fetchall()
    return [row[0] for row in rows]


def run_row(result: TrainingResult) -> dict[str, Any]:
    """The ``ml.training_runs`` columns a training result fills."""
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

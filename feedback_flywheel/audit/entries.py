"""What the audit trail records about each kind of thing: the ``record`` arguments (kind,
subject, payload, batch) of a training run, a deployment and a batch's dataset versions."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import duckdb

from feedback_flywheel.warehouse.catalogue import FCT_DATASET_VERSIONS


def batch_of_dataset_version(dataset_version: str | None) -> str | None:
    """``ds-<batch_id>`` → ``<batch_id>`` (dataset versions are named after their batch)."""
    if dataset_version and dataset_version.startswith("ds-"):
        return dataset_version.removeprefix("ds-")
    return None


def training_run_entry(row: Mapping[str, Any]) -> dict[str, Any]:
    """``record`` arguments for one ``ml.training_runs`` attempt. The learned parameters are
    represented by their SHA-256 (``parameters_sha256``), the rest of the row as it is."""
    payload = {key: value for key, value in row.items() if key != "parameters_json"}
    parameters = row.get("parameters_json")
    payload["parameters_sha256"] = (
        None if parameters is None else hashlib.sha256(str(parameters).encode()).hexdigest()
    )
    return {
        "kind": "training_run",
        "subject_id": str(row["training_run_id"]),
        "payload": payload,
        "batch_id": batch_of_dataset_version(row.get("dataset_version")),
    }


def deployment_entry(load_id: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``record`` arguments for the registry row(s) one load appended to ``raw.model_deployments``
    (``rows``, each with the file it came from, as ingest reports them)."""
    if not rows:
        raise LookupError(f"load {load_id} appended no row to raw.model_deployments")
    first = rows[0]
    return {
        "kind": "deployment",
        "subject_id": f"{first['model_name']}:{first['model_version']}",
        "payload": {"load_id": load_id, "rows": rows},
        "batch_id": None,
    }


def dataset_version_entries(con: duckdb.DuckDBPyConnection, batch_id: str) -> list[dict[str, Any]]:
    """``record`` arguments for the dataset version(s) a batch built (``marts.fct_dataset_versions``
    rows with that ``batch_id``: their sizes, fingerprints and sampling settings)."""
    frame = con.execute(
        f"select * from {FCT_DATASET_VERSIONS} where batch_id = ? order by dataset_version",
        [batch_id],
    ).df()
    return [
        {
            "kind": "dataset_version",
            "subject_id": str(row["dataset_version"]),
            "payload": row,
            "batch_id": batch_id,
        }
        for row in frame.to_dict(orient="records")
    ]

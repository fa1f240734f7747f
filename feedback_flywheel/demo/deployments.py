"""The model's deployment history: v1 from before the history began until v2 replaces it.

Written as a single ``model_deployments`` file (it is small and changes rarely, like the
deployment registry it stands for) and returned with ISO timestamps for ``truth.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from feedback_flywheel.demo.constants import MODEL_NAME, US_PER_DAY
from feedback_flywheel.demo.draws import iso
from feedback_flywheel.demo.writers import contract_schema, write_parquet
from feedback_flywheel.warehouse.contract import RAW_TABLES


def write_deployments(out_dir: Path, start_us: int, v2_us: int | None) -> list[dict[str, Any]]:
    """model_deployments.parquet: v1 from 30 days before the history until v2 takes over
    (``v2_us``; None in a closed loop: v1 serves until the flywheel deploys a model).

    Returns the deployments with ISO 8601 timestamps.
    """
    deployments = _deployments(start_us - 30 * US_PER_DAY, v2_us)
    schema = contract_schema(RAW_TABLES["model_deployments"])
    table = pa.Table.from_arrays(
        [
            pa.array([d["model_name"] for d in deployments]),
            pa.array([d["model_version"] for d in deployments]),
            pa.array([d["deployed_at"] for d in deployments], type=pa.timestamp("us")),
            pa.array([d["retired_at"] for d in deployments], type=pa.timestamp("us")),
            pa.array([d["training_run_id"] for d in deployments]),
        ],
        schema=schema,
    )
    folder = out_dir / "model_deployments"
    folder.mkdir(parents=True, exist_ok=True)
    write_parquet(table, folder / "model_deployments.parquet")
    return [
        {
            **d,
            "deployed_at": iso(d["deployed_at"]),
            "retired_at": None if d["retired_at"] is None else iso(d["retired_at"]),
        }
        for d in deployments
    ]


def _deployments(v1_us: int, v2_us: int | None) -> list[dict[str, Any]]:
    """The deployments, with times as microseconds (the last is still live: no retired_at)."""
    v1 = {
        "model_name": MODEL_NAME,
        "model_version": "v1",
        "deployed_at": v1_us,
        "retired_at": v2_us,
        "training_run_id": "tr-demo-v1",
    }
    if v2_us is None:
        return [v1]
    return [
        v1,
        {
            "model_name": MODEL_NAME,
            "model_version": "v2",
            "deployed_at": v2_us,
            "retired_at": None,
            "training_run_id": "tr-demo-v2",
        },
    ]

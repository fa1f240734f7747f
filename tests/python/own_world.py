"""A small world that is not the demo's: a credit-scoring model with its own features, segments
and labels, written as raw files in the documented contract (one Parquet file per table per
day). Nothing in it shares a name with the demo world, so a test on it shows the project works on
data nobody configured it for.

From ``SHIFT_DAY`` on, applicants are older (``age`` + 15): a covariate drift of one input.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from feedback_flywheel.demo import contract_schema
from feedback_flywheel.warehouse.contract import RAW_TABLES

MODEL = "credit_scorer"
START = date(2026, 3, 1)
SHIFT_DAY = 11  # 0-based day index from which age shifts
LABELS = ("approve", "deny")


@dataclass
class OwnWorld:
    """Where the world is (its files under ``root/exports``) and its time span."""

    root: Path
    start: datetime
    end: datetime
    shift_at: datetime
    #: what the commands printed, for the tests that read it
    discover_output: str = ""
    daily_output: str = ""
    summary_output: str = ""
    project_files: dict[str, str] = field(default_factory=dict)


def _write(root: Path, table: str, day: date, rows: dict[str, list]) -> None:
    folder = root / table
    folder.mkdir(parents=True, exist_ok=True)
    schema = contract_schema(RAW_TABLES[table])
    columns = {
        name: rows.get(name, [None] * len(next(iter(rows.values())))) for name in schema.names
    }
    pq.write_table(pa.table(columns, schema=schema), folder / f"{table}_{day}.parquet")


def _inferences(rng: np.random.Generator, day: int, n: int, start: datetime) -> dict[str, list]:
    age = rng.integers(21, 66, n) + (15 if day >= SHIFT_DAY else 0)
    income = np.round(rng.lognormal(10.5, 0.5, n), 2)
    employment = rng.choice(["salaried", "self_employed", "unemployed"], n, p=[0.6, 0.3, 0.1])
    guarantor = rng.random(n) < 0.3
    zipcode_band = rng.choice(list("ABCDE"), n)
    elevel = rng.choice(["low", "mid", "high"], n)
    logit = -4 + income / 30000 + (employment == "salaried") * 1.0 + guarantor * 0.8
    p_approve = 1 / (1 + np.exp(-logit))
    predicted = np.where(p_approve >= 0.5, "approve", "deny")
    score = np.round(np.maximum(p_approve, 1 - p_approve), 4)
    logged = [start + timedelta(days=day, seconds=int(s)) for s in rng.integers(0, 86400, n)]
    ids = [f"cs-{day:02d}-{i:04d}" for i in range(n)]
    return {
        "inference_id": ids,
        "logged_at": logged,
        "model_name": [MODEL] * n,
        "model_version": ["2026.03"] * n,
        "subject_id": [f"applicant-{day}-{i}" for i in range(n)],
        "context": [
            json.dumps({"zipcode_band": z, "elevel": e})
            for z, e in zip(zipcode_band, elevel, strict=True)
        ],
        "inputs": [
            json.dumps(
                {
                    "age": int(a),
                    "income": float(i),
                    "employment": str(emp),
                    "has_guarantor": bool(g),
                    "applicant_ref": f"ref-{day}-{k}-{rng.integers(1_000_000)}",
                }
            )
            for k, (a, i, emp, g) in enumerate(zip(age, income, employment, guarantor, strict=True))
        ],
        "predicted_label": list(predicted),
        "predicted_score": [float(s) for s in score],
        "probabilities": [
            json.dumps({"approve": float(p), "deny": float(1 - p)}) for p in p_approve
        ],
        "_p_approve": list(p_approve),
    }


def _labels(rng: np.random.Generator, inferences: dict[str, list]) -> dict[str, list]:
    n = len(inferences["inference_id"])
    labelled = rng.random(n) < 0.8
    truth = np.where(rng.random(n) < np.array(inferences["_p_approve"]), "approve", "deny")
    rows: dict[str, list] = {name: [] for name in ("event_id", "inference_id", "event_type")}
    rows |= {name: [] for name in ("value", "occurred_at", "received_at", "source")}
    rows["schema_version"] = []
    for index in np.flatnonzero(labelled):
        occurred = inferences["logged_at"][index] + timedelta(hours=float(rng.uniform(1, 72)))
        rows["event_id"].append(f"lbl-{inferences['inference_id'][index]}")
        rows["inference_id"].append(inferences["inference_id"][index])
        rows["event_type"].append("label")
        rows["value"].append(str(truth[index]))
        rows["occurred_at"].append(occurred)
        rows["received_at"].append(occurred + timedelta(minutes=5))
        rows["source"].append("loan_outcomes")
        rows["schema_version"].append("1.1")
    return rows


def write_world(root: Path, days: int = 16, per_day: int = 300, seed: int = 3) -> OwnWorld:
    """Write the world's raw files under ``root/exports/<table>/``; returns its time span."""
    rng = np.random.default_rng(seed)
    exports = root / "exports"
    start = datetime(START.year, START.month, START.day)
    _write(
        exports,
        "model_deployments",
        START,
        {
            "model_name": [MODEL],
            "model_version": ["2026.03"],
            "deployed_at": [start - timedelta(days=1)],
            "retired_at": [None],
            "training_run_id": [None],
        },
    )
    for day in range(days):
        inferences = _inferences(rng, day, per_day, start)
        feedback = _labels(rng, inferences)
        inferences.pop("_p_approve")
        _write(exports, "inference_log", START + timedelta(days=day), inferences)
        if feedback["event_id"]:
            _write(exports, "feedback_events", START + timedelta(days=day), feedback)
    end = start + timedelta(days=days)
    return OwnWorld(root, start, end, start + timedelta(days=SHIFT_DAY))

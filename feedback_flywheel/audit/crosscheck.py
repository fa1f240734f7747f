"""Cross-checking the audited tables against the audit chain.

The chain proves its rows agree with each other; it says nothing about the tables they describe.
An edit of ``ml.retraining_decisions`` alone would leave the chain intact. So every audited table
is compared with its chain rows, both ways:

- every row of the table is in the chain: for a **state** (a decision, a dataset version, a
  reward model) the *latest* chain row of its subject says exactly what the table says now; for
  an **event** (each attempt of a training run) some chain row says exactly that;
- every subject the chain recorded still has its row in the table.

Only the columns a payload records are compared (a payload may leave out timings and add what
the table does not hold, e.g. the hash of a training run's parameters instead of the parameters).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import duckdb

from feedback_flywheel.audit.canonical import canonical_json
from feedback_flywheel.ingest.registry import registry_rows_of_load
from feedback_flywheel.warehouse.catalogue import (
    FCT_DATASET_VERSIONS,
    REPLAY_VERSIONS,
    RETRAINING_DECISIONS,
    REWARD_MODELS,
    TRAINING_RUNS,
    Relation,
)


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """A table row in the payload's normal form (ISO timestamps, NaN as null, ...)."""
    return json.loads(canonical_json(row))


def _training_run(row: dict[str, Any]) -> dict[str, Any]:
    parameters = row.pop("parameters_json", None)
    row["parameters_sha256"] = (
        None if parameters is None else hashlib.sha256(str(parameters).encode()).hexdigest()
    )
    return row


def _reward_model(row: dict[str, Any]) -> dict[str, Any]:
    parameters = row.pop("parameters_json", None)
    row["parameters"] = json.loads(parameters) if parameters else None
    return row


@dataclass(frozen=True)
class Audited:
    """How one kind of chain row maps onto the table it describes."""

    kind: str
    relation: Relation
    subject: Callable[[dict[str, Any]], str]
    #: the table row in the form its payload takes
    as_payload: Callable[[dict[str, Any]], dict[str, Any]] = lambda row: row
    #: each table row is one chain row (events), rather than the latest state of its subject
    is_event: bool = False


AUDITED = (
    Audited("decision", RETRAINING_DECISIONS, lambda row: row["decision_id"]),
    Audited("dataset_version", FCT_DATASET_VERSIONS, lambda row: row["dataset_version"]),
    Audited(
        "training_run",
        TRAINING_RUNS,
        lambda row: row["training_run_id"],
        _training_run,
        is_event=True,
    ),
    Audited(
        "reward_model",
        REWARD_MODELS,
        lambda row: row["reward_model_version"] or f"reward-{row['batch_id']}",
        _reward_model,
    ),
    Audited("replay_buffer", REPLAY_VERSIONS, lambda row: row["buffer_version"]),
)


def _agrees(payload: dict[str, Any], row: dict[str, Any]) -> bool:
    """Every column the payload shares with the row has the same value."""
    shared = set(payload) & set(row)
    return bool(shared) and all(payload[name] == row[name] for name in shared)


def _chain_rows(rows: list[tuple], kind: str) -> dict[str, list[tuple[int, dict]]]:
    """subject -> [(seq, payload)] of the chain rows of ``kind``, in seq order."""
    found: dict[str, list[tuple[int, dict]]] = {}
    for seq, row_kind, subject_id, _, payload_json, *_ in rows:
        if row_kind == kind:
            found.setdefault(subject_id, []).append((int(seq), json.loads(payload_json)))
    return found


def _exists(con: duckdb.DuckDBPyConnection, relation: Relation) -> bool:
    (found,) = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [relation.schema, relation.name],
    ).fetchone()
    return bool(found)


def _check(
    con: duckdb.DuckDBPyConnection, audited: Audited, rows: list[tuple]
) -> list[tuple[int, str]]:
    chain = _chain_rows(rows, audited.kind)
    if not _exists(con, audited.relation):
        return [
            (
                recorded[-1][0],
                f"{audited.kind} {subject} is in the chain but {audited.relation} does not exist",
            )
            for subject, recorded in chain.items()
        ]
    table = con.execute(f"select * from {audited.relation}").df().to_dict(orient="records")
    problems = []
    subjects = set()
    for record in table:
        plain = _plain(record)  # NaN and NaT as null, timestamps as ISO text
        subject = audited.subject(plain)
        subjects.add(subject)
        expected = audited.as_payload(plain)
        recorded = chain.get(subject, [])
        candidates = recorded if audited.is_event else recorded[-1:]
        if not any(_agrees(payload, expected) for _, payload in candidates):
            seq = candidates[-1][0] if candidates else len(rows) + 1
            what = "has no audit row" if not recorded else "differs from its latest audit row"
            problems.append((seq, f"{audited.relation} row {subject} {what}"))
    for subject, recorded in chain.items():
        if subject not in subjects:
            problems.append(
                (
                    recorded[-1][0],
                    f"{audited.kind} {subject} is in the chain but not in "
                    f"{audited.relation}: its row was deleted",
                )
            )
    return problems


def _check_deployments(con: duckdb.DuckDBPyConnection, rows: list[tuple]) -> list[tuple[int, str]]:
    """Every registry row the chain recorded for a deployment is still in raw.model_deployments
    (append-only), from the same load and file row, with the same version and training run."""
    problems = []
    for subject, recorded in _chain_rows(rows, "deployment").items():
        seq, payload = recorded[-1]
        load_id = payload.get("load_id")
        current = {int(row["file_row"]): row for row in registry_rows_of_load(con, str(load_id))}
        for row in payload.get("rows", []):
            found = current.get(int(row.get("file_row", -1)))
            if found is None or any(
                found[name] != row.get(name)
                for name in ("model_name", "model_version", "training_run_id")
            ):
                problems.append(
                    (seq, f"deployment {subject}: raw.model_deployments no longer says so")
                )
    return problems


def crosscheck(
    con: duckdb.DuckDBPyConnection, rows: list[tuple]
) -> tuple[list[tuple[int, str]], int]:
    """(problems as (seq, what), tables checked) for the chain ``rows`` against the tables."""
    problems: list[tuple[int, str]] = []
    for audited in AUDITED:
        problems += _check(con, audited, rows)
    problems += _check_deployments(con, rows)
    return sorted(problems), len(AUDITED) + 1

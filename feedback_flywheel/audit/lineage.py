"""Lineage for ``flywheel audit trace``: from a training example or a dataset version back to the
raw events (with the file and line they were loaded from), and forward to the training runs that
used it and the retraining decisions that caused them.

The links, all of them columns the warehouse already has, read through public marts:

- ``marts.fct_training_examples``: ``training_example_id`` → ``inference_id`` and
  ``label_event_id``; the example belongs to dataset version V when ``batch_id <= V's batch`` and
  it was not superseded by then (the model's own rule).
- ``marts.fct_raw_event_lineage``: every raw inference and feedback row with its validation
  status, its load (``load_id``, ``file_name``, ``file_path``) and its 1-based line in that file.
- ``marts.fct_training_sample``: which dataset versions' samples used an example.
- ``ml.training_runs.dataset_version`` and ``.decision_id`` → ``ml.retraining_decisions``.
- ``ml.audit_log``: the audit rows (seq, hash) of the version, runs and decisions.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pandas as pd

from feedback_flywheel.audit.chain import AUDIT_TABLE, table_exists
from feedback_flywheel.audit.lineage_text import render_text
from feedback_flywheel.warehouse.catalogue import (
    FCT_DATASET_VERSIONS,
    FCT_RAW_EVENT_LINEAGE,
    FCT_TRAINING_EXAMPLES,
    FCT_TRAINING_SAMPLE,
    RETRAINING_DECISIONS,
    TRAINING_RUNS,
)

__all__ = ["TraceError", "render_text", "trace"]


class TraceError(LookupError):
    """The id is neither a training example, an inference, a sample row nor a dataset version."""


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    frame = frame.astype(object).where(frame.notna(), None)
    return frame.to_dict(orient="records")


# The raw rows behind a set of examples (a temp table `trace_examples` with inference_id and
# label_event_id), each with its load file and validation status.
RAW_EVENTS_SQL = f"""
with

wanted as (

    select distinct inference_id from trace_examples

),

labels as (

    select distinct label_event_id from trace_examples

)

select
    lineage.table_name,
    lineage.inference_id,
    lineage.event_id,
    lineage.event_type,
    lineage.value_text,
    lineage.status,
    lineage.reason_code,
    coalesce(labels.label_event_id is not null and lineage.status = 'accepted', false)
        as is_label_event,
    lineage.load_id,
    lineage.file_name,
    lineage.file_path,
    lineage.file_row,
    lineage.event_at
from {FCT_RAW_EVENT_LINEAGE} as lineage
inner join wanted on lineage.inference_id = wanted.inference_id
left join labels on lineage.event_id = labels.label_event_id
"""

RUNS_SQL = f"""
select
    runs.training_run_id,
    runs.attempt,
    runs.model_name,
    runs.dataset_version,
    runs.status,
    runs.candidate_version,
    runs.holdout_accuracy,
    runs.accuracy_gain,
    runs.started_at,
    runs.decision_id,
    decisions.batch_id as decision_batch_id,
    decisions.decision,
    decisions.reason as decision_reason,
    decisions.fired_signals,
    decisions.policy_version,
    decisions.trigger_status,
    decisions.decided_at
from {TRAINING_RUNS} as runs
left join {RETRAINING_DECISIONS} as decisions on runs.decision_id = decisions.decision_id
where runs.dataset_version in (select dataset_version from trace_versions)
order by runs.started_at, runs.training_run_id, runs.attempt
"""

MEMBERSHIPS_SQL = f"""
with memberships as (

    select versions.dataset_version, examples.training_example_id
    from {FCT_DATASET_VERSIONS} as versions
    inner join {FCT_TRAINING_EXAMPLES} as examples
        on examples.batch_id <= versions.batch_id
        and (
            examples.superseded_in_batch_id is null
            or examples.superseded_in_batch_id > versions.batch_id
        )
    where examples.training_example_id in (select training_example_id from trace_examples)

)

select
    memberships.dataset_version,
    memberships.training_example_id,
    sample.training_sample_id is not null as in_training_sample,
    sample.sampling_strategy
from memberships
left join {FCT_TRAINING_SAMPLE} as sample
    on memberships.dataset_version = sample.dataset_version
    and memberships.training_example_id = sample.training_example_id
order by memberships.dataset_version, memberships.training_example_id
"""


def _count(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> int:
    return int(con.execute(sql, params).fetchall()[0][0])


def _require(con: duckdb.DuckDBPyConnection) -> None:
    needed = [FCT_TRAINING_EXAMPLES, FCT_TRAINING_SAMPLE, FCT_DATASET_VERSIONS]
    needed.append(FCT_RAW_EVENT_LINEAGE)
    missing = [
        str(relation)
        for relation in needed
        if not _count(
            con,
            "select count(*) from information_schema.tables "
            "where table_schema = ? and table_name = ?",
            [relation.schema, relation.name],
        )
    ]
    if missing:
        raise TraceError(
            f"the warehouse has no {', '.join(missing)}: run the batch cycle (`flywheel run`) first"
        )


def _resolve(con: duckdb.DuckDBPyConnection, identifier: str) -> tuple[str, str]:
    """(kind, canonical id): dataset_version, training_example, inference or sample row."""
    for candidate in (identifier, f"ds-{identifier}"):
        if _count(
            con,
            f"select count(*) from {FCT_DATASET_VERSIONS} where dataset_version = ?",
            [candidate],
        ):
            return "dataset_version", candidate
    if _count(
        con,
        f"select count(*) from {FCT_TRAINING_EXAMPLES} where training_example_id = ?",
        [identifier],
    ):
        return "training_example", identifier
    rows = con.execute(
        f"select training_example_id from {FCT_TRAINING_SAMPLE} where training_sample_id = ?",
        [identifier],
    ).fetchall()
    if rows:
        return "training_example", str(rows[0][0])
    if _count(
        con,
        f"select count(*) from {FCT_RAW_EVENT_LINEAGE} "
        "where table_name = 'inference_log' and inference_id = ?",
        [identifier],
    ):
        return "inference", identifier
    raise TraceError(
        f"{identifier!r} is not a dataset version (marts.fct_dataset_versions), a training "
        "example (marts.fct_training_examples.training_example_id), a training sample row or a "
        "logged inference_id; `flywheel dataset list` shows the versions"
    )


def _audit_rows(con: duckdb.DuckDBPyConnection, subject_ids: list[str]) -> list[dict[str, Any]]:
    if not subject_ids or not table_exists(con):
        return []
    return _records(
        con.execute(
            f"""
            select seq, kind, subject_id, batch_id, row_hash, recorded_at
            from {AUDIT_TABLE}
            where subject_id in (select unnest(?::varchar[]))
            order by seq
            """,
            [subject_ids],
        ).df()
    )


def _runs(con: duckdb.DuckDBPyConnection, versions: list[str]) -> list[dict[str, Any]]:
    if not versions:
        return []
    con.execute("create or replace temp table trace_versions (dataset_version varchar)")
    con.executemany("insert into trace_versions values (?)", [[v] for v in versions])
    return _records(con.execute(RUNS_SQL).df())


def _events(con: duckdb.DuckDBPyConnection, limit: int | None) -> tuple[list, list]:
    """(files, events) for the examples in the temp table ``trace_examples``."""
    files = con.execute(
        f"""
        with events as ({RAW_EVENTS_SQL})
        select
            table_name,
            load_id,
            file_name,
            file_path,
            cast(count(*) as bigint) as rows_behind,
            cast(sum(case when is_label_event then 1 else 0 end) as bigint) as label_events,
            cast(min(file_row) as bigint) as first_file_row,
            cast(max(file_row) as bigint) as last_file_row
        from events
        group by all
        order by table_name, file_name, load_id
        """
    ).df()
    query = f"""
        with events as ({RAW_EVENTS_SQL})
        select * from events order by inference_id, table_name desc, event_at, load_id, file_row
    """
    if limit is not None:
        query += f" limit {int(limit)}"
    return _records(files), _records(con.execute(query).df())


def _trace_version(con: duckdb.DuckDBPyConnection, subject: str) -> tuple[dict, list[str]]:
    """A dataset version: its row, its examples (into ``trace_examples``) and sample size."""
    version = _records(
        con.execute(
            f"select * from {FCT_DATASET_VERSIONS} where dataset_version = ?", [subject]
        ).df()
    )[0]
    batch_id = version["batch_id"]
    con.execute(
        f"""
        create or replace temp table trace_examples as
        select training_example_id, inference_id, label_event_id
        from {FCT_TRAINING_EXAMPLES}
        where batch_id <= ? and (superseded_in_batch_id is null or superseded_in_batch_id > ?)
        """,
        [batch_id, batch_id],
    )
    n_examples = _count(con, "select count(*) from trace_examples", [])
    n_sample = _count(
        con, f"select count(*) from {FCT_TRAINING_SAMPLE} where dataset_version = ?", [subject]
    )
    part = {"dataset_version": version, "examples": n_examples, "sampled_examples": n_sample}
    return part, [subject]


def _trace_example(
    con: duckdb.DuckDBPyConnection, kind: str, subject: str
) -> tuple[dict, list[str]]:
    """A training example or an inference: its examples (into ``trace_examples``), the dataset
    versions that contain them, and the versions whose training sample used them."""
    column = "training_example_id" if kind == "training_example" else "inference_id"
    con.execute(
        f"""
        create or replace temp table trace_examples as
        select training_example_id, inference_id, label_event_id
        from {FCT_TRAINING_EXAMPLES} where {column} = ?
        """,
        [subject],
    )
    if kind == "inference":
        # An inference without a matured label has no example yet: still show its raw events.
        con.execute(
            """
            insert into trace_examples
            select null, ?, null where not exists (select 1 from trace_examples)
            """,
            [subject],
        )
    examples = _records(
        con.execute(
            f"""
            select
                examples.training_example_id,
                examples.inference_id,
                examples.label_event_id,
                examples.label_source,
                examples.label,
                examples.model_name,
                examples.model_version,
                examples.dataset_version as added_in_dataset_version,
                examples.superseded_in_batch_id,
                examples.is_current
            from {FCT_TRAINING_EXAMPLES} as examples
            where examples.training_example_id in (
                select training_example_id from trace_examples
            )
            order by examples.batch_id, examples.training_example_id
            """
        ).df()
    )
    memberships = _records(con.execute(MEMBERSHIPS_SQL).df())
    versions = sorted({row["dataset_version"] for row in memberships if row["in_training_sample"]})
    return {"training_examples": examples, "dataset_versions": memberships}, versions


def trace(
    con: duckdb.DuckDBPyConnection, identifier: str, *, limit: int | None = 50
) -> dict[str, Any]:
    """What is behind ``identifier`` and what it led to (see the module docstring).

    For a dataset version (``ds-<batch>`` or the batch id) the raw events are those behind every
    example of that version; ``limit`` caps the listed events (``None``: all), the per-file summary
    always covers all of them. For a training example (or a sample row, or an inference id) all
    its raw events are listed, with the dataset versions that contain it and whose training
    sample used it.
    """
    _require(con)
    kind, subject = _resolve(con, identifier)
    result: dict[str, Any] = {"id": identifier, "kind": kind}
    if kind == "dataset_version":
        part, versions = _trace_version(con, subject)
    else:
        part, versions = _trace_example(con, kind, subject)
    result |= part
    files, events = _events(con, limit)
    result["raw_files"] = files
    result["raw_events"] = events
    runs = _runs(con, versions)
    result["training_runs"] = runs
    subjects = [*versions, *{run["training_run_id"] for run in runs}]
    subjects += sorted({run["decision_id"] for run in runs if run["decision_id"]})
    result["audit_rows"] = _audit_rows(con, subjects)
    return result

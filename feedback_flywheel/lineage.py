"""Lineage for ``flywheel audit trace``: from a training example or a dataset version back to the
raw events (with the file and line they were loaded from), and forward to the training runs that
used it and the retraining decisions that caused them.

The links, all of them columns the warehouse already has:

- ``marts.fct_training_examples``: ``training_example_id`` → ``inference_id`` and
  ``label_event_id``; the example belongs to dataset version V when ``batch_id <= V's batch`` and
  it was not superseded by then (the model's own rule).
- ``raw.inference_log`` / ``raw.feedback_events``: ``inference_id``, ``_load_id`` →
  ``raw.load_ledger`` (``file_name``, ``file_path``) and ``_file_row`` (1-based line in that
  file); the validation status from ``intermediate.int_inferences_validated`` /
  ``int_feedback_events_classified``
  (keyed ``<load_id>:<file_row>``).
- ``marts.fct_training_sample``: which dataset versions' samples used an example.
- ``ml.training_runs.dataset_version`` and ``.decision_id`` → ``ml.retraining_decisions``.
- ``ml.audit_log``: the audit rows (seq, hash) of the version, runs and decisions.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pandas as pd

from feedback_flywheel import audit


class TraceError(LookupError):
    """The id is neither a training example, an inference, a sample row nor a dataset version."""


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    frame = frame.astype(object).where(frame.notna(), None)
    return frame.to_dict(orient="records")


# The raw rows behind a set of examples (a temp table `trace_examples` with inference_id and
# label_event_id), each with its load file and validation status.
RAW_EVENTS_SQL = """
with

wanted as (

    select distinct inference_id from trace_examples

),

labels as (

    select distinct label_event_id from trace_examples

),

inference_rows as (

    select
        'inference_log' as table_name,
        inferences.inference_id,
        cast(null as varchar) as event_id,
        cast(null as varchar) as event_type,
        cast(null as varchar) as value_text,
        inferences._load_id as load_id,
        inferences._file_row as file_row,
        case when validated.is_accepted then 'accepted' else 'refused' end as status,
        validated.reason_code,
        false as is_label_event,
        inferences.logged_at as event_at
    from raw.inference_log as inferences
    inner join wanted on inferences.inference_id = wanted.inference_id
    left join intermediate.int_inferences_validated as validated
        on validated.inference_row_id
            = inferences._load_id || ':' || cast(inferences._file_row as varchar)

),

feedback_rows as (

    select
        'feedback_events' as table_name,
        feedback.inference_id,
        feedback.event_id,
        feedback.event_type,
        feedback.value as value_text,
        feedback._load_id as load_id,
        feedback._file_row as file_row,
        classified.status,
        classified.reason_code,
        labels.label_event_id is not null and classified.status = 'accepted' as is_label_event,
        feedback.received_at as event_at
    from raw.feedback_events as feedback
    inner join wanted on feedback.inference_id = wanted.inference_id
    left join intermediate.int_feedback_events_classified as classified
        on classified.feedback_row_id
            = feedback._load_id || ':' || cast(feedback._file_row as varchar)
    left join labels on feedback.event_id = labels.label_event_id

),

events as (

    select * from inference_rows
    union all
    select * from feedback_rows

)

select
    events.table_name,
    events.inference_id,
    events.event_id,
    events.event_type,
    events.value_text,
    events.status,
    events.reason_code,
    events.is_label_event,
    events.load_id,
    ledger.file_name,
    ledger.file_path,
    events.file_row,
    events.event_at
from events
left join raw.load_ledger as ledger on events.load_id = ledger.load_id
"""

RUNS_SQL = """
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
from ml.training_runs as runs
left join ml.retraining_decisions as decisions on runs.decision_id = decisions.decision_id
where runs.dataset_version in (select dataset_version from trace_versions)
order by runs.started_at, runs.training_run_id, runs.attempt
"""


def _table_exists(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    (found,) = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, name],
    ).fetchone()
    return bool(found)


def _require(con: duckdb.DuckDBPyConnection) -> None:
    needed = [
        ("marts", "fct_training_examples"),
        ("marts", "fct_training_sample"),
        ("marts", "fct_dataset_versions"),
        ("intermediate", "int_inferences_validated"),
        ("intermediate", "int_feedback_events_classified"),
    ]
    missing = [f"{s}.{n}" for s, n in needed if not _table_exists(con, s, n)]
    if missing:
        raise TraceError(
            f"the warehouse has no {', '.join(missing)}: run the batch cycle (`flywheel run`) first"
        )


def _resolve(con: duckdb.DuckDBPyConnection, identifier: str) -> tuple[str, str]:
    """(kind, canonical id): dataset_version, training_example, inference or sample row."""
    for candidate in (identifier, f"ds-{identifier}"):
        (found,) = con.execute(
            "select count(*) from marts.fct_dataset_versions where dataset_version = ?",
            [candidate],
        ).fetchone()
        if found:
            return "dataset_version", candidate
    (found,) = con.execute(
        "select count(*) from marts.fct_training_examples where training_example_id = ?",
        [identifier],
    ).fetchone()
    if found:
        return "training_example", identifier
    row = con.execute(
        "select training_example_id from marts.fct_training_sample where training_sample_id = ?",
        [identifier],
    ).fetchone()
    if row is not None:
        return "training_example", str(row[0])
    (found,) = con.execute(
        "select count(*) from raw.inference_log where inference_id = ?", [identifier]
    ).fetchone()
    if found:
        return "inference", identifier
    raise TraceError(
        f"{identifier!r} is not a dataset version (marts.fct_dataset_versions), a training "
        "example (marts.fct_training_examples.training_example_id), a training sample row or an "
        "inference_id in raw.inference_log; `flywheel dataset list` shows the versions"
    )


def _audit_rows(con: duckdb.DuckDBPyConnection, subject_ids: list[str]) -> list[dict[str, Any]]:
    if not subject_ids or not audit.table_exists(con):
        return []
    return _records(
        con.execute(
            f"""
            select seq, kind, subject_id, batch_id, row_hash, recorded_at
            from {audit.AUDIT_TABLE}
            where subject_id in (select unnest(?::varchar[]))
            order by seq
            """,
            [subject_ids],
        ).df()
    )


def _runs(con: duckdb.DuckDBPyConnection, versions: list[str]) -> list[dict[str, Any]]:
    if not _table_exists(con, "ml", "training_runs") or not versions:
        return []
    has_decisions = _table_exists(con, "ml", "retraining_decisions")
    con.execute("create or replace temp table trace_versions (dataset_version varchar)")
    con.executemany("insert into trace_versions values (?)", [[v] for v in versions])
    sql = RUNS_SQL
    if not has_decisions:  # decisions are written by the batch cycle; a bare retrain has none
        sql = sql.replace(
            "left join ml.retraining_decisions as decisions on runs.decision_id = "
            "decisions.decision_id",
            "left join (select null::varchar as decision_id, null::varchar as batch_id, "
            "null::varchar as decision, null::varchar as reason, null::varchar as "
            "fired_signals, null::varchar as policy_version, null::varchar as trigger_status, "
            "null::timestamp as decided_at) as decisions on runs.decision_id = "
            "decisions.decision_id",
        )
    return _records(con.execute(sql).df())


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
        version = _records(
            con.execute(
                "select * from marts.fct_dataset_versions where dataset_version = ?", [subject]
            ).df()
        )[0]
        batch_id = version["batch_id"]
        con.execute(
            """
            create or replace temp table trace_examples as
            select training_example_id, inference_id, label_event_id
            from marts.fct_training_examples
            where batch_id <= ? and (superseded_in_batch_id is null or superseded_in_batch_id > ?)
            """,
            [batch_id, batch_id],
        )
        (n_examples,) = con.execute("select count(*) from trace_examples").fetchone()
        (n_sample,) = con.execute(
            "select count(*) from marts.fct_training_sample where dataset_version = ?", [subject]
        ).fetchone()
        result |= {
            "dataset_version": version,
            "examples": int(n_examples),
            "sampled_examples": int(n_sample),
        }
        versions = [subject]
    else:
        column = "training_example_id" if kind == "training_example" else "inference_id"
        con.execute(
            f"""
            create or replace temp table trace_examples as
            select training_example_id, inference_id, label_event_id
            from marts.fct_training_examples where {column} = ?
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
        result["training_examples"] = _records(
            con.execute(
                """
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
                from marts.fct_training_examples as examples
                where examples.training_example_id in (
                    select training_example_id from trace_examples
                )
                order by examples.batch_id, examples.training_example_id
                """
            ).df()
        )
        result["dataset_versions"] = _records(
            con.execute(
                """
                with memberships as (

                    select versions.dataset_version, examples.training_example_id
                    from marts.fct_dataset_versions as versions
                    inner join marts.fct_training_examples as examples
                        on examples.batch_id <= versions.batch_id
                        and (
                            examples.superseded_in_batch_id is null
                            or examples.superseded_in_batch_id > versions.batch_id
                        )
                    where examples.training_example_id in (
                        select training_example_id from trace_examples
                    )

                )

                select
                    memberships.dataset_version,
                    memberships.training_example_id,
                    sample.training_sample_id is not null as in_training_sample,
                    sample.sampling_strategy
                from memberships
                left join marts.fct_training_sample as sample
                    on memberships.dataset_version = sample.dataset_version
                    and memberships.training_example_id = sample.training_example_id
                order by memberships.dataset_version, memberships.training_example_id
                """
            ).df()
        )
        versions = sorted(
            {
                row["dataset_version"]
                for row in result["dataset_versions"]
                if row["in_training_sample"]
            }
        )
    files, events = _events(con, limit)
    result["raw_files"] = files
    result["raw_events"] = events
    runs = _runs(con, versions)
    result["training_runs"] = runs
    subjects = [*versions, *{run["training_run_id"] for run in runs}]
    subjects += sorted({run["decision_id"] for run in runs if run["decision_id"]})
    result["audit_rows"] = _audit_rows(con, subjects)
    return result


def _value(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def render_text(result: dict[str, Any]) -> str:
    """The trace as readable text (what ``flywheel audit trace`` prints without ``--json``)."""
    lines: list[str] = []
    if result["kind"] == "dataset_version":
        version = result["dataset_version"]
        lines.append(
            f"dataset version {version['dataset_version']} (batch {version['batch_id']}, as of "
            f"{version['as_of_at']}): {result['examples']:,} examples, "
            f"{result['sampled_examples']:,} in its training sample, fingerprint "
            f"{version['example_fingerprint']}"
        )
    else:
        lines.append(f"{result['kind'].replace('_', ' ')} {result['id']}")
        lines.append("")
        lines.append("training examples:")
        if not result["training_examples"]:
            lines.append("  (none yet: no matured label for this inference)")
        for example in result["training_examples"]:
            state = (
                "current"
                if example["is_current"]
                else (f"superseded in {example['superseded_in_batch_id']}")
            )
            lines.append(
                f"  {example['training_example_id']}  inference {example['inference_id']}  "
                f"label {example['label']!r} ({example['label_source']}, event "
                f"{example['label_event_id']})  added in {example['added_in_dataset_version']}, "
                f"{state}"
            )
        sampled = [row for row in result["dataset_versions"] if row["in_training_sample"]]
        lines.append(
            f"  in {len({r['dataset_version'] for r in result['dataset_versions']})} dataset "
            f"version(s); in the training sample of: "
            + (
                ", ".join(f"{r['dataset_version']} ({r['sampling_strategy']})" for r in sampled)
                or "none"
            )
        )
    lines.append("")
    lines.append("raw files behind it (raw.load_ledger):")
    for row in result["raw_files"]:
        lines.append(
            f"  {row['table_name']:<16} {row['file_name']}  (load {row['load_id']}): "
            f"{row['rows_behind']:,} row{'' if row['rows_behind'] == 1 else 's'}, lines "
            f"{row['first_file_row']}..{row['last_file_row']}"
            + (f", {row['label_events']:,} label events" if row["label_events"] else "")
        )
    total = sum(row["rows_behind"] for row in result["raw_files"])
    lines.append("")
    shown = len(result["raw_events"])
    lines.append(
        "raw events"
        + (f" (first {shown:,} of {total:,}; --limit 0 for all)" if shown < total else "")
        + ":"
    )
    for event in result["raw_events"]:
        what = (
            f"inference {event['inference_id']}"
            if event["table_name"] == "inference_log"
            else f"{event['event_type']} {event['event_id']} = {event['value_text']!r}"
        )
        status = event["status"] or "not validated yet"
        if event["reason_code"]:
            status += f" ({event['reason_code']})"
        marker = "  <- label" if event["is_label_event"] else ""
        lines.append(
            f"  {event['table_name']}/{event['file_name']}:{event['file_row']}  {what}  "
            f"[{status}]  {_value(event['event_at'])}{marker}"
        )
    lines.append("")
    lines.append("training runs that used it, and the decision behind each:")
    if not result["training_runs"]:
        lines.append("  (none)")
    for run in result["training_runs"]:
        lines.append(
            f"  {run['training_run_id']} attempt {run['attempt']} on {run['dataset_version']}: "
            f"{run['status']}"
            + (f" as {run['candidate_version']}" if run["candidate_version"] else "")
            + f", holdout accuracy {_value(run['holdout_accuracy'])}"
        )
        if run["decision_id"] is None:
            lines.append("    decision: none recorded (started by hand)")
        elif run["decision"] is None:
            lines.append(f"    decision {run['decision_id']}: not found in ml.retraining_decisions")
        else:
            lines.append(
                f"    decision {run['decision_id']} (batch {run['decision_batch_id']}, "
                f"{run['decided_at']}): {run['decision']} — {run['decision_reason']}"
            )
    if result["audit_rows"]:
        lines.append("")
        lines.append("audit trail (ml.audit_log):")
        for row in result["audit_rows"]:
            lines.append(
                f"  seq {row['seq']:<5} {row['kind']:<16} {row['subject_id']}  "
                f"{row['row_hash'][:16]}…"
            )
    return "\n".join(lines) + "\n"

"""The lineage of ``flywheel audit trace`` as text a person reads (``--json`` prints the same
dict for machines)."""

from __future__ import annotations

from typing import Any


def _value(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _subject_lines(result: dict[str, Any]) -> list[str]:
    """What was traced: a dataset version, or a training example / inference and its versions."""
    if result["kind"] == "dataset_version":
        version = result["dataset_version"]
        return [
            f"dataset version {version['dataset_version']} (batch {version['batch_id']}, as of "
            f"{version['as_of_at']}): {result['examples']:,} examples, "
            f"{result['sampled_examples']:,} in its training sample, fingerprint "
            f"{version['example_fingerprint']}"
        ]
    lines = [f"{result['kind'].replace('_', ' ')} {result['id']}", "", "training examples:"]
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
    return lines


def _raw_lines(result: dict[str, Any]) -> list[str]:
    """The raw files behind it, then the raw events with file and line."""
    lines = ["", "raw files behind it (raw.load_ledger):"]
    for row in result["raw_files"]:
        lines.append(
            f"  {row['table_name']:<16} {row['file_name']}  (load {row['load_id']}): "
            f"{row['rows_behind']:,} row{'' if row['rows_behind'] == 1 else 's'}, lines "
            f"{row['first_file_row']}..{row['last_file_row']}"
            + (f", {row['label_events']:,} label events" if row["label_events"] else "")
        )
    total = sum(row["rows_behind"] for row in result["raw_files"])
    shown = len(result["raw_events"])
    lines += [
        "",
        "raw events"
        + (f" (first {shown:,} of {total:,}; --limit 0 for all)" if shown < total else "")
        + ":",
    ]
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
    return lines


def _run_lines(result: dict[str, Any]) -> list[str]:
    """The training runs that used it, each with its decision, then the audit rows."""
    lines = ["", "training runs that used it, and the decision behind each:"]
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
        lines += ["", "audit trail (ml.audit_log):"]
        for row in result["audit_rows"]:
            lines.append(
                f"  seq {row['seq']:<5} {row['kind']:<16} {row['subject_id']}  "
                f"{row['row_hash'][:16]}…"
            )
    return lines


def render_text(result: dict[str, Any]) -> str:
    """The trace as readable text (what ``flywheel audit trace`` prints without ``--json``)."""
    return "\n".join(_subject_lines(result) + _raw_lines(result) + _run_lines(result)) + "\n"

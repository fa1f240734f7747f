"""Warnings at load time: a file that loads fine but whose rows the next batch would quarantine.

Ingest refuses a file only for what is wrong with the *file* (its columns, its types); row-level
problems are the batch's business, each row quarantined with a reason. But a whole file
quarantined for one reason (logs written with ``schema_version "1"``, an exporter that drops
``received_at``) is a mistake to catch now, not after the batch. After a file is appended, the
share of its rows that would be quarantined for each such reason is computed from the rows just
loaded; above ``warn_share`` it becomes a warning naming the reason and what to change.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from feedback_flywheel.warehouse.schema import RAW_SCHEMA

FEEDBACK_REQUIRED = ("event_id", "inference_id", "event_type", "occurred_at", "received_at")
INFERENCE_REQUIRED = ("inference_id", "logged_at", "model_name", "model_version")


@dataclass(frozen=True)
class LoadChecks:
    """What a batch will check, as far as a file's own rows can tell."""

    supported_schema_versions: tuple[str, ...]
    known_event_types: tuple[str, ...]
    warn_share: float = 0.5


def _missing(column: str) -> str:
    return f"({column} is null or trim(cast({column} as varchar)) = '')"


def _feedback_problems(checks: LoadChecks) -> list[tuple[str, str, str, list]]:
    """(reason code, SQL condition, what to do, parameters) for feedback rows."""
    versions = list(checks.supported_schema_versions)
    types = list(checks.known_event_types)
    return [
        (
            "missing_required_field",
            " or ".join(_missing(column) for column in FEEDBACK_REQUIRED),
            "the exporter must fill event_id, inference_id, event_type, occurred_at and "
            "received_at",
            [],
        ),
        (
            "unsupported_schema_version",
            "not (trim(schema_version) = any(?::varchar[]))",
            f"supported: {', '.join(versions)}; add the version to supported_schema_versions "
            "in the configuration file (once its payloads parse), or fix the exporter",
            [versions],
        ),
        (
            "unknown_event_type",
            "not (lower(trim(event_type)) = any(?::varchar[]))",
            f"known: {', '.join(types)}; add the type to seeds/feedback_event_types.csv",
            [types],
        ),
    ]


def _inference_problems() -> list[tuple[str, str, str, list]]:
    return [
        (
            "missing_required_field",
            " or ".join(_missing(column) for column in INFERENCE_REQUIRED),
            "the exporter must fill inference_id, logged_at, model_name and model_version",
            [],
        ),
        (
            "malformed_context",
            "not (coalesce(json_type(try_cast(context as json)) = 'OBJECT', false) "
            "and coalesce(json_type(try_cast(inputs as json)) = 'OBJECT', false))",
            "context and inputs must be JSON objects",
            [],
        ),
    ]


def load_warnings(
    con: duckdb.DuckDBPyConnection, table: str, load_id: str, checks: LoadChecks
) -> list[str]:
    """Warnings for the rows ``load_id`` appended to ``raw.<table>`` (inside its transaction)."""
    if table == "feedback_events":
        problems = _feedback_problems(checks)
    elif table == "inference_log":
        problems = _inference_problems()
    else:
        return []
    relation = f"{RAW_SCHEMA}.{table}"
    warnings = []
    for reason, condition, what_to_do, params in problems:
        total, flagged, example = con.execute(
            f"""
            select count(*), count(*) filter (where {condition}),
                min(_file_row) filter (where {condition})
            from {relation} where _load_id = ?
            """,
            [*params, *params, load_id],
        ).fetchall()[0]
        if total and flagged / total > checks.warn_share:
            warnings.append(
                f"{flagged / total:.0%} of the {total:,} rows ({flagged:,}, first at row "
                f"{example}) will be quarantined as {reason}: {what_to_do}"
            )
    return warnings

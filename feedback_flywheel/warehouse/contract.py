"""The raw input contract: the tables users load their logs into, column by column.

This module is the single source of truth for the raw schema. Ingest validates files against it,
the demo world writes files that satisfy it, and ``flywheel contract`` prints it. The dbt sources
in ``models/staging/raw/_raw__sources.yml`` describe the same columns for dbt docs; a test keeps the
two in step.

Every raw table also gets three bookkeeping columns from ingest (not part of what users send):
``_load_id`` (the load ledger entry the row came with), ``_file_row`` (1-based row number inside
that
file, so errors and quarantine rows can point at the exact line) and ``_loaded_at`` (UTC).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    """One column of a raw table."""

    name: str
    type: str  # DuckDB logical type the column is stored as
    required: bool  # True: the file must have the column and values must not be null
    description: str


@dataclass(frozen=True)
class RawTable:
    """One raw table: its name, the time column freshness is measured on, and its columns."""

    name: str
    description: str
    loaded_at_field: str
    columns: tuple[Column, ...]

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(
            f"{self.name} has no column {name!r}; columns: {', '.join(self.column_names)}"
        )


BOOKKEEPING_COLUMNS: tuple[Column, ...] = (
    Column(
        "_load_id",
        "VARCHAR",
        True,
        "Load ledger id (raw.load_ledger.load_id) of the file the row came in.",
    ),
    Column("_file_row", "BIGINT", True, "1-based row number of the row inside its file."),
    Column("_loaded_at", "TIMESTAMP", True, "When ingest appended the row (UTC)."),
)

INFERENCE_LOG = RawTable(
    name="inference_log",
    description=(
        "Inference-Time Logging: one row per prediction a model served, with the inputs it saw, "
        "the segment context and what it answered."
    ),
    loaded_at_field="logged_at",
    columns=(
        Column(
            "inference_id", "VARCHAR", True, "Unique id of the prediction; feedback refers to it."
        ),
        Column("logged_at", "TIMESTAMP", True, "When the prediction was served (UTC)."),
        Column("model_name", "VARCHAR", True, "Name of the model that served it."),
        Column(
            "model_version", "VARCHAR", True, "Version of that model (matches model_deployments)."
        ),
        Column(
            "subject_id",
            "VARCHAR",
            True,
            "Pseudonymous id of the user or entity the prediction was about.",
        ),
        Column(
            "session_id", "VARCHAR", False, "RL-style session the prediction belongs to (nullable)."
        ),
        Column(
            "step_index",
            "BIGINT",
            False,
            "0-based step of the prediction inside its session (nullable).",
        ),
        Column(
            "context",
            "VARCHAR",
            True,
            'JSON object of segment attributes, e.g. {"region": "eu", "device": "ios"}.',
        ),
        Column(
            "inputs",
            "VARCHAR",
            True,
            "JSON object feature name -> value (numbers or strings) the model saw.",
        ),
        Column("predicted_label", "VARCHAR", True, "Label the model predicted."),
        Column("predicted_score", "DOUBLE", True, "Confidence of the predicted label, in [0, 1]."),
        Column(
            "probabilities",
            "VARCHAR",
            False,
            "JSON object label -> probability over all labels (nullable).",
        ),
        Column(
            "output_text", "VARCHAR", False, "Generated text, for generative models (nullable)."
        ),
    ),
)

FEEDBACK_EVENTS = RawTable(
    name="feedback_events",
    description=(
        "Feedback Payload Schema: every feedback signal about a prediction, as it arrived. "
        "Corrections "
        "and retractions are new events; raw rows are never edited."
    ),
    loaded_at_field="received_at",
    columns=(
        Column(
            "event_id", "VARCHAR", True, "Unique id of the event; a repeat of an id is a duplicate."
        ),
        Column("inference_id", "VARCHAR", True, "The prediction the feedback is about."),
        Column(
            "event_type",
            "VARCHAR",
            True,
            "label | correction | rating | thumbs | click | dwell_seconds | conversion | reward "
            "| retraction "
            "(see seeds/feedback_event_types.csv for value ranges).",
        ),
        Column(
            "value",
            "VARCHAR",
            False,
            "The signal as text: a label for label/correction, 1-5 for rating, -1/1 for thumbs, "
            "0/1 for click and conversion, seconds for dwell_seconds, -1..1 for reward, the "
            "retracted event_id for retraction.",
        ),
        Column(
            "payload", "VARCHAR", False, "Raw JSON payload as the client sent it (kept verbatim)."
        ),
        Column(
            "occurred_at",
            "TIMESTAMP",
            True,
            "When the user or environment gave the feedback (UTC).",
        ),
        Column(
            "received_at",
            "TIMESTAMP",
            True,
            "When the feedback reached the logging system (UTC); batch windows are over it.",
        ),
        Column(
            "source",
            "VARCHAR",
            False,
            "Where it came from, e.g. annotation_tool, web_client, labeling_vendor.",
        ),
        Column(
            "schema_version",
            "VARCHAR",
            True,
            "Version of the payload schema the client used "
            "(supported: var supported_schema_versions).",
        ),
    ),
)

PREFERENCE_EVENTS = RawTable(
    name="preference_events",
    description=(
        "Preference Pair Logging: a judgement of which of two outputs for the same context "
        "is better."
    ),
    loaded_at_field="received_at",
    columns=(
        Column("preference_id", "VARCHAR", True, "Unique id of the judgement."),
        Column("context_id", "VARCHAR", True, "The prompt or context both outputs answered."),
        Column("inference_id_a", "VARCHAR", True, "The output shown first."),
        Column("inference_id_b", "VARCHAR", True, "The output shown second."),
        Column("preferred", "VARCHAR", True, "a | b | tie."),
        Column("annotator_id", "VARCHAR", False, "Who judged (pseudonymous)."),
        Column("source", "VARCHAR", True, "human | ai_judge | reward_model."),
        Column("occurred_at", "TIMESTAMP", True, "When the judgement was made (UTC)."),
        Column("received_at", "TIMESTAMP", True, "When it reached the logging system (UTC)."),
    ),
)

MODEL_DEPLOYMENTS = RawTable(
    name="model_deployments",
    description=(
        "The model registry as events: which version served from when to when, trained by "
        "which run."
    ),
    loaded_at_field="deployed_at",
    columns=(
        Column("model_name", "VARCHAR", True, "Name of the model."),
        Column("model_version", "VARCHAR", True, "Version deployed."),
        Column("deployed_at", "TIMESTAMP", True, "When the version started serving (UTC)."),
        Column(
            "retired_at", "TIMESTAMP", False, "When it stopped serving (UTC); null while serving."
        ),
        Column(
            "training_run_id",
            "VARCHAR",
            False,
            "The training run that produced it (nullable for the first).",
        ),
    ),
)

RAW_TABLES: dict[str, RawTable] = {
    table.name: table
    for table in (INFERENCE_LOG, FEEDBACK_EVENTS, PREFERENCE_EVENTS, MODEL_DEPLOYMENTS)
}


def get_table(name: str) -> RawTable:
    """The raw table called ``name``, or a ValueError listing the tables that exist."""
    try:
        return RAW_TABLES[name]
    except KeyError:
        raise ValueError(
            f"unknown raw table {name!r}; choose one of: {', '.join(RAW_TABLES)}"
        ) from None


LOAD_LEDGER_COLUMNS: tuple[tuple[str, str, str], ...] = (
    (
        "load_id",
        "varchar",
        "<table>-<first 16 hex of the content sha256>: the same bytes load once.",
    ),
    ("table_name", "varchar", "Raw table the file was appended to."),
    ("file_path", "varchar", "Absolute path of the file when it was loaded."),
    ("file_name", "varchar", "File name without its folder."),
    ("file_format", "varchar", "parquet, csv or jsonl."),
    ("content_sha256", "varchar", "sha256 of the file's bytes."),
    ("row_count", "bigint", "Rows appended from the file."),
    ("loaded_at", "timestamp", "When the file was loaded (UTC)."),
)


def dbt_sources_yaml() -> str:
    """``models/staging/raw/_raw__sources.yml``, rendered from this contract.

    Regenerate with ``flywheel contract --format dbt-sources`` (redirected into that file);
    a test fails when the file and the contract disagree.
    """
    import yaml

    def freshness() -> dict:
        """Raw files arrive daily: a table (or the ledger) that saw no row for a day is late."""
        return {
            "warn_after": {"count": 1, "period": "day"},
            "error_after": {"count": 3, "period": "day"},
        }

    tables: list[dict] = []
    for table in RAW_TABLES.values():
        columns = []
        for column in table.columns:
            flag = "Required." if column.required else "Optional."
            columns.append(
                {
                    "name": column.name,
                    "description": f"{column.description} {flag}",
                    "data_type": column.type.lower(),
                }
            )
        for column in BOOKKEEPING_COLUMNS:
            entry: dict = {
                "name": column.name,
                "description": column.description,
                "data_type": column.type.lower(),
            }
            if column.name == "_load_id":
                entry["data_tests"] = [
                    "not_null",
                    {
                        "relationships": {
                            "arguments": {"to": "source('raw', 'load_ledger')", "field": "load_id"}
                        }
                    },
                ]
            columns.append(entry)
        tables.append(
            {
                "name": table.name,
                "description": table.description,
                "config": {"loaded_at_field": table.loaded_at_field, "freshness": freshness()},
                "columns": columns,
            }
        )
    tables.append(
        {
            "name": "load_ledger",
            "description": (
                "One row per file ingest appended to a raw table (written by `flywheel ingest`)."
            ),
            "config": {"loaded_at_field": "loaded_at", "freshness": freshness()},
            "columns": [
                {"name": name, "description": description, "data_type": data_type}
                | ({"data_tests": ["unique", "not_null"]} if name == "load_id" else {})
                for name, data_type, description in LOAD_LEDGER_COLUMNS
            ],
        }
    )
    document = {
        "version": 2,
        "sources": [
            {
                "name": "raw",
                "schema": "raw",
                "description": (
                    "Raw, append-only tables exactly as users log them, loaded by `flywheel "
                    "ingest`. Nothing in the project updates or deletes these rows; every row ends "
                    "accepted or quarantined downstream."
                ),
                "tables": tables,
            }
        ],
    }
    header = (
        "# Generated from feedback_flywheel/contract.py; do not edit by hand. Regenerate with\n"
        "#   flywheel contract --format dbt-sources > models/staging/raw/_raw__sources.yml\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False, width=100, allow_unicode=True)

"""What a batch should not do silently: its warnings, one line each, with what to do.

- a monitored feature (var ``drift_features``) with no value in the current window of a model:
  its drift tests have no data (the key is not in ``inputs``, or never a usable value);
- a segment attribute (var ``segment_attributes``) absent from ``context``: the bias and
  concept-drift breakdowns by it say nothing;
- a feedback file with more than var ``warn_quarantine_share`` of its rows quarantined for one
  reason (logs written with an unsupported ``schema_version``, a dropped required field);
- a feedback signal whose agreement with the rating or with ground truth dropped significantly
  against its own history (``rpt_feedback_fidelity_alerts``: a broken tracking pixel looks like
  this).

The CLI prints them after each batch, the batch's Prefect artifact lists them, and the dashboard's
overview shows them; all three read them here, from the reports the build wrote
(``rpt_batch_coverage``, ``rpt_file_quarantine``, ``rpt_feedback_fidelity_alerts``).
"""

from __future__ import annotations

import duckdb

from feedback_flywheel.publish.queries import relation_exists, rows
from feedback_flywheel.warehouse.catalogue import (
    RPT_BATCH_COVERAGE,
    RPT_FEEDBACK_FIDELITY_ALERTS,
    RPT_FILE_QUARANTINE,
)


def _coverage_warnings(con: duckdb.DuckDBPyConnection, batch_id: str) -> list[str]:
    if not relation_exists(con, RPT_BATCH_COVERAGE):
        return []
    found = rows(
        con,
        f"""
        select model_name, payload, key_name, window_rows
        from {RPT_BATCH_COVERAGE}
        where batch_id = ? and window_rows > 0 and valued_rows = 0
        order by payload desc, key_name, model_name
        """,
        [batch_id],
    )
    lines = []
    for model, payload, key, window_rows in found:
        if payload == "inputs":
            lines.append(
                f"monitored feature {key!r} has no value in {window_rows:,} predictions of "
                f"{model} in the current window: its drift is not measured. It is not a key of "
                "`inputs` (or never a usable value): fix drift_features in the configuration "
                "file, or run `flywheel config discover` to see the keys the logs carry"
            )
        else:
            lines.append(
                f"segment attribute {key!r} is absent from the context of {window_rows:,} "
                f"predictions of {model}: nothing is broken down by it. Fix segment_attributes "
                "in the configuration file (`flywheel config discover` lists the context keys)"
            )
    return lines


def _file_warnings(con: duckdb.DuckDBPyConnection, batch_id: str, warn_share: float) -> list[str]:
    if not relation_exists(con, RPT_FILE_QUARANTINE):
        return []
    found = rows(
        con,
        f"""
        select file_name, reason_code, quarantined_rows, file_rows, quarantined_share, what_to_do
        from {RPT_FILE_QUARANTINE}
        where last_batch_id = ? and quarantined_share > ?
        order by quarantined_share desc, file_name, reason_code
        """,
        [batch_id, warn_share],
    )
    return [
        f"file {name}: {share:.0%} of its {total:,} rows ({count:,}) were quarantined as "
        f"{reason}. {what or ''}".rstrip()
        for name, reason, count, total, share, what in found
    ]


def batch_warnings(
    con: duckdb.DuckDBPyConnection, batch_id: str, warn_share: float = 0.5
) -> list[str]:
    """The batch's warnings (see the module docstring), most important first."""
    return (
        _coverage_warnings(con, batch_id)
        + _fidelity_warnings(con, batch_id)
        + _file_warnings(con, batch_id, warn_share)
    )


def _fidelity_warnings(con: duckdb.DuckDBPyConnection, batch_id: str) -> list[str]:
    if not relation_exists(con, RPT_FEEDBACK_FIDELITY_ALERTS):
        return []
    found = rows(
        con,
        f"""
        select model_name, signal_name, reference_name, history_agreement_rate,
            current_agreement_rate, current_count, p_value
        from {RPT_FEEDBACK_FIDELITY_ALERTS}
        where batch_id = ? and is_flagged
        order by model_name, signal_name, reference_name
        """,
        [batch_id],
    )
    return [
        f"signal {signal!r} of {model} agrees with {reference} on {current:.0%} of the "
        f"{count:,} latest predictions against {history:.0%} before (p = {p:.1e}): is its "
        "tracking broken? Until it is fixed, do not let it stand in for labels"
        for model, signal, reference, history, current, count, p in found
    ]

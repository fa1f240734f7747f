"""Hostile rows, end to end: timestamps in the year 2999, at +/-infinity, in 1900 or missing;
empty and blank ids; a held event re-sent with a valid inference id. Each crafted record is sent
twice, once in a JSON-lines file and once in a CSV file (beside a world of Parquet files), and
the batches then run as a user runs them. What must hold:

- every batch builds (a JSON-lines file no longer breaks the load ledger's test);
- every raw row ends in exactly one place: accepted or quarantined, with the documented reason
  code, and the summary's counts add up to the raw row counts;
- the same record gets the same outcome whatever format it came in;
- a 1900 timestamp does not plan thousands of daily batches;
- the re-sent event is accepted once;
- no subject id (a personal id) appears in any published table, here or in the serving copy."""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from feedback_flywheel import batches, ingest, warehouse
from feedback_flywheel.config.paths import serving_path_beside
from feedback_flywheel.warehouse.contract import RAW_TABLES
from tests.python.helpers import project_vars, run_windows, settings_for
from tests.python.own_world import MODEL, write_world

DAYS = 6
PER_DAY = 60
VALID_FEEDBACK = {
    "event_type": "thumbs",
    "value": "1",
    "payload": None,
    "occurred_at": "2026-03-04T01:00:00",
    "received_at": "2026-03-04T01:05:00",
    "source": "web_client",
    "schema_version": "1.1",
}
#: case -> (changes to a valid thumbs event about inference cs-02-NNNN, expected reason code)
FEEDBACK_CASES: dict[str, tuple[dict[str, Any], str | None]] = {
    "valid": ({}, None),
    "padded_inference_id": ({"inference_id": "  cs-02-0011  "}, None),
    "received_in_2999": ({"received_at": "2999-01-01T00:00:00"}, "timestamp_after_load"),
    "received_at_infinity": ({"received_at": "infinity"}, "timestamp_not_finite"),
    "occurred_at_minus_infinity": ({"occurred_at": "-infinity"}, "timestamp_not_finite"),
    "occurred_in_1900": ({"occurred_at": "1900-01-01T00:00:00"}, "timestamp_before_floor"),
    "received_in_1900": (
        {"occurred_at": "1900-01-01T00:00:00", "received_at": "1900-01-01T00:05:00"},
        "timestamp_before_floor",
    ),
    "received_missing": ({"received_at": None}, "missing_required_field"),
    "event_id_empty": ({"event_id": ""}, "missing_required_field"),
    "event_id_blank": ({"event_id": "   "}, "missing_required_field"),
    "inference_id_blank": ({"inference_id": " \t "}, "missing_required_field"),
}
#: case -> (changes to a valid inference row, expected reason code)
INFERENCE_CASES: dict[str, tuple[dict[str, Any], str]] = {
    "logged_in_2999": ({"logged_at": "2999-06-01T00:00:00"}, "timestamp_after_load"),
    "logged_at_infinity": ({"logged_at": "infinity"}, "timestamp_not_finite"),
    "logged_in_1900": ({"logged_at": "1900-01-01T00:00:00"}, "timestamp_before_floor"),
    "inference_id_blank": ({"inference_id": "  "}, "missing_required_field"),
}
FORMATS = ("jsonl", "csv")


def _feedback_rows(prefix: str) -> list[dict[str, Any]]:
    rows = []
    for number, (case, (changes, _)) in enumerate(sorted(FEEDBACK_CASES.items())):
        row = {"event_id": f"{prefix}-{case}", "inference_id": f"cs-02-{number:04d}"}
        rows.append(row | VALID_FEEDBACK | changes)
    # The first copy of an event names an inference that does not exist (held) ...
    rows.append(
        {"event_id": f"{prefix}-resent", "inference_id": "no-such-inference"} | VALID_FEEDBACK
    )
    return rows


def _resent_rows(prefix: str) -> list[dict[str, Any]]:
    # ... and its re-send a day later names the right one.
    return [
        {"event_id": f"{prefix}-resent", "inference_id": "cs-02-0050"}
        | VALID_FEEDBACK
        | {"occurred_at": "2026-03-05T01:00:00", "received_at": "2026-03-05T01:05:00"}
    ]


def _inference_rows(prefix: str) -> list[dict[str, Any]]:
    rows = []
    for case, (changes, _) in sorted(INFERENCE_CASES.items()):
        row = {
            "inference_id": f"{prefix}-inf-{case}",
            "logged_at": "2026-03-03T10:00:00",
            "model_name": MODEL,
            "model_version": "2026.03",
            "subject_id": f"{prefix}-subject-{case}",
            "context": json.dumps({"zipcode_band": "A", "elevel": "low"}),
            "inputs": json.dumps({"age": 30, "income": 1000.0}),
            "predicted_label": "approve",
            "predicted_score": 0.9,
            "probabilities": json.dumps({"approve": 0.9, "deny": 0.1}),
        }
        rows.append(row | changes)
    return rows


def _write(path: Path, table: str, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    names = [column.name for column in RAW_TABLES[table].columns]
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps({n: row.get(n) for n in names}) + "\n" for row in rows))
        return path

    def cell(value: Any) -> str:
        return "" if value is None else '"' + str(value).replace('"', '""') + '"'

    lines = [",".join(names)] + [",".join(cell(row.get(n)) for n in names) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def _format_of(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """load_id -> the format of the crafted file it loaded (``hostile.<format>``)."""
    return {
        load_id: Path(name).suffix.lstrip(".") if Path(name).stem == "hostile" else name
        for load_id, name in con.execute(
            "select load_id, file_name from raw.load_ledger"
        ).fetchall()
    }


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("hostile")
    world = write_world(root, days=DAYS, per_day=PER_DAY)
    files = root / "exports"
    for fmt in FORMATS:
        _write(files / "feedback_events" / f"hostile.{fmt}", "feedback_events", _feedback_rows(fmt))
        _write(files / "resent" / f"resent.{fmt}", "feedback_events", _resent_rows(fmt))
        _write(files / "inference_log" / f"hostile.{fmt}", "inference_log", _inference_rows(fmt))
    db_path = root / "w.duckdb"
    with warehouse.connect(db_path) as con:
        warehouse.init_warehouse(con)
        for table, folder in (
            ("model_deployments", "model_deployments"),
            ("inference_log", "inference_log"),
            ("feedback_events", "feedback_events"),
            ("feedback_events", "resent"),
        ):
            results = ingest.ingest_files(con, table, [files / folder])
            assert all(result.ok for result in results), [r.message for r in results]
    settings = settings_for(db_path)
    with warehouse.connect(db_path, read_only=True) as con:
        daily = batches.plan_windows(
            con,
            world.end,
            daily=True,
            floor=settings.vars.floor,
            clock_skew_seconds=settings.vars.clock_skew_seconds,
        )
    lookback = timedelta(days=project_vars().lookback_days + 1)
    # Rows whose own time is not plausible are placed at their load time (today): the last batch
    # reaches past it, as the next real batch after a load would.
    tomorrow = batches.utc_now().replace(hour=0, minute=0, second=0, microsecond=0)
    tomorrow += timedelta(days=1)
    boundaries = [world.start, world.start + timedelta(days=3), world.end, world.end + lookback]
    boundaries.append(tomorrow)
    windows = [batches.window(a, b) for a, b in itertools.pairwise(boundaries)]
    run_windows(db_path, windows)
    return {"db_path": db_path, "world": world, "daily": daily}


def test_a_1900_timestamp_plans_the_days_of_the_data_not_a_century(
    hostile: dict[str, Any],
) -> None:
    daily = hostile["daily"]
    # The world spans DAYS days; the floor (var timestamp_floor, 2000-01-01) keeps 1900 out, and
    # the rows placed at their load time (today) stretch the plan only up to the world's end.
    assert daily[0].window_start == hostile["world"].start
    assert len(daily) == DAYS


def test_a_plan_longer_than_the_guard_is_refused_with_a_way_out(tmp_path: Path) -> None:
    with warehouse.connect(tmp_path / "w.duckdb") as con:
        warehouse.init_warehouse(con)
        con.execute(
            "insert into raw.inference_log (inference_id, logged_at, model_name, model_version, "
            "_load_id, _file_row, _loaded_at) values "
            "('a', timestamp '2000-01-02 00:00:00', 'm', 'v', 'l', 1, timestamp '2026-01-01')"
        )
        with pytest.raises(batches.BatchError, match="--until"):
            batches.plan_windows(con, datetime(2026, 1, 1), daily=True)


def test_every_raw_row_is_accepted_or_quarantined_exactly_once(hostile: dict[str, Any]) -> None:
    with warehouse.connect(hostile["db_path"], read_only=True) as con:
        raw = dict(
            con.execute(
                "select 'feedback_events', count(*) from raw.feedback_events union all "
                "select 'inference_log', count(*) from raw.inference_log"
            ).fetchall()
        )
        accounted = dict(
            con.execute(
                "select raw_table, sum(row_count) from marts.rpt_raw_reconciliation "
                "where raw_table in ('feedback_events', 'inference_log') group by 1"
            ).fetchall()
        )
        statuses = {
            status
            for (status,) in con.execute(
                "select distinct status from marts.rpt_raw_reconciliation"
            ).fetchall()
        }
        accepted = con.execute(
            "select count(*), count(distinct feedback_row_id) from marts.fct_feedback"
        ).fetchone()
        quarantined = con.execute(
            "select count(*), count(distinct feedback_row_id) from marts.fct_feedback_quarantine"
        ).fetchone()
        both = con.execute(
            "select count(*) from marts.fct_feedback inner join marts.fct_feedback_quarantine "
            "using (feedback_row_id)"
        ).fetchone()[0]
        batch_counts = con.execute(
            "select sum(feedback_in), sum(feedback_accepted + feedback_quarantined), "
            "sum(feedback_held) from marts.rpt_batch_reconciliation"
        ).fetchone()
    assert accounted == raw
    assert statuses <= {"accepted", "quarantined", "refused"}  # nothing unclassified or held
    assert accepted[0] == accepted[1] and quarantined[0] == quarantined[1] and both == 0
    assert accepted[0] + quarantined[0] == raw["feedback_events"]
    # what arrived in the batches was decided in them (the last batch holds nothing)
    assert batch_counts[0] == batch_counts[1] and batch_counts[0] == raw["feedback_events"]


def test_each_crafted_record_has_its_reason_and_the_same_outcome_in_both_formats(
    hostile: dict[str, Any],
) -> None:
    with warehouse.connect(hostile["db_path"], read_only=True) as con:
        formats = _format_of(con)
        outcomes: dict[tuple[str, str], list[str | None]] = {}
        for load_id, file_row, reason in con.execute(
            "select load_id, file_row, reason_code from marts.fct_feedback_quarantine"
        ).fetchall():
            outcomes.setdefault((formats[load_id], int(file_row)), []).append(reason)
        accepted_rows = con.execute(
            """
            select feedback.load_id, raw._file_row
            from marts.fct_feedback as feedback
            inner join raw.feedback_events as raw
                on feedback.load_id = raw._load_id and feedback.event_id = trim(raw.event_id)
            """
        ).fetchall()
    for load_id, file_row in accepted_rows:
        outcomes.setdefault((formats[load_id], int(file_row)), []).append(None)
    for fmt in FORMATS:
        for row_number, (case, (_, reason)) in enumerate(sorted(FEEDBACK_CASES.items()), start=1):
            assert outcomes.get((fmt, row_number)) == [reason], (
                fmt,
                case,
                outcomes.get((fmt, row_number)),
            )


def test_hostile_inference_rows_are_refused_with_their_reason(hostile: dict[str, Any]) -> None:
    with warehouse.connect(hostile["db_path"], read_only=True) as con:
        refused = dict(
            con.execute(
                "select reason_code, row_count from marts.rpt_raw_reconciliation "
                "where raw_table = 'inference_log' and status = 'refused'"
            ).fetchall()
        )
    expected: dict[str, int] = {}
    for _, reason in INFERENCE_CASES.values():
        expected[reason] = expected.get(reason, 0) + len(FORMATS)
    assert refused == expected


def test_a_held_event_re_sent_with_a_valid_inference_is_accepted_once(
    hostile: dict[str, Any],
) -> None:
    with warehouse.connect(hostile["db_path"], read_only=True) as con:
        for fmt in FORMATS:
            accepted = con.execute(
                "select inference_id from marts.fct_feedback where event_id = ?", [f"{fmt}-resent"]
            ).fetchall()
            assert accepted == [("cs-02-0050",)], fmt
            (other,) = con.execute(
                "select reason_code from marts.fct_feedback_quarantine where event_id = ?",
                [f"{fmt}-resent"],
            ).fetchall()
            assert other == ("duplicate_event_id",)


def _varchar_values(path: Path, schemas: tuple[str, ...]) -> set[str]:
    values: set[str] = set()
    with duckdb.connect(str(path), read_only=True) as con:
        columns = con.execute(
            "select table_schema, table_name, column_name from information_schema.columns "
            "where data_type = 'VARCHAR' and table_schema in "
            f"({', '.join('?' for _ in schemas)})",
            list(schemas),
        ).fetchall()
        for schema, table, column in columns:
            values.update(
                value
                for (value,) in con.execute(
                    f'select distinct "{column}" from "{schema}"."{table}" '
                    f'where "{column}" is not null'
                ).fetchall()
            )
    return values


def test_no_subject_id_reaches_a_published_table_or_the_serving_copy(
    hostile: dict[str, Any],
) -> None:
    db_path = hostile["db_path"]
    with warehouse.connect(db_path, read_only=True) as con:
        subjects = {
            value
            for (value,) in con.execute(
                "select distinct trim(subject_id) from raw.inference_log "
                "where subject_id is not null"
            ).fetchall()
        }
        pseudonyms = {
            value
            for (value,) in con.execute(
                "select distinct subject_id from marts.fct_feedback where subject_id is not null"
            ).fetchall()
        }
    assert len(subjects) >= DAYS * PER_DAY
    published = _varchar_values(db_path, ("marts", "snapshots"))
    served = _varchar_values(serving_path_beside(db_path), ("marts", "ml"))
    for values in (published, served):
        leaked = {value for value in values if any(subject in value for subject in subjects)}
        assert not leaked, sorted(leaked)[:5]
    # The pseudonyms are keyed hashes: stable per subject, not the subject itself.
    assert pseudonyms and all(p.startswith("p_") and len(p) == 34 for p in pseudonyms)

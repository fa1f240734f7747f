"""Damaged files, generated: hypothesis cuts, flips, inserts and repeats bytes and lines of valid
feedback files in each format (CSV, JSON lines, Parquet) and ingests them. Whatever the damage,
ingest either loads the file whole (the rows it reports are the rows raw gained, under one
ledger entry) or refuses it with a message naming the file, and then raw and the ledger are
exactly as they were: no exception escapes, no file is half loaded, nothing is counted twice."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedback_flywheel import batches, ingest, warehouse
from feedback_flywheel.demo import contract_schema
from feedback_flywheel.warehouse.contract import RAW_TABLES
from tests.python.helpers import run_windows

EXAMPLES = 60  # per table and format
AT = datetime(2026, 3, 4, 1, 0, 0)


def _rows(table: str, count: int = 6) -> list[dict]:
    """Valid rows of ``table`` (feedback about, and preferences between, the inferences)."""
    if table == "inference_log":
        return [
            {
                "inference_id": f"i-{i}",
                "logged_at": AT - timedelta(hours=1, minutes=i),
                "model_name": "m",
                "model_version": "v1",
                "subject_id": f"s-{i}",
                "session_id": f"sess-{i // 3}",
                "step_index": i % 3,
                "context": json.dumps({"region": "eu", "device": "ios"}),
                "inputs": json.dumps({"x": i * 1.5, "channel": "web"}),
                "predicted_label": "a",
                "predicted_score": 0.5 + i / 20,
                "probabilities": json.dumps({"a": 0.6, "b": 0.4}),
                "output_text": f'answer {i}, with a comma and a "quote"',
            }
            for i in range(count)
        ]
    if table == "preference_events":
        return [
            {
                "preference_id": f"p-{i}",
                "context_id": f"c-{i}",
                "inference_id_a": f"i-{i}",
                "inference_id_b": f"i-{i + 1}",
                "preferred": "a",
                "annotator_id": f"ann-{i}",
                "source": "human",
                "occurred_at": AT + timedelta(minutes=i),
                "received_at": AT + timedelta(minutes=i, seconds=30),
            }
            for i in range(count)
        ]
    return [
        {
            "event_id": f"e-{i}",
            "inference_id": f"i-{i}",
            "event_type": "rating",
            "value": str(1 + i % 5),
            "payload": json.dumps({"note": f"n{i}"}),
            "occurred_at": AT + timedelta(minutes=i),
            "received_at": AT + timedelta(minutes=i, seconds=30),
            "source": "web_client",
            "schema_version": "1.1",
        }
        for i in range(count)
    ]


def _valid(table: str, fmt: str) -> bytes:
    rows = _rows(table)
    names = [column.name for column in RAW_TABLES[table].columns]
    if fmt == "jsonl":
        return "".join(json.dumps(row, default=str) + "\n" for row in rows).encode()
    if fmt == "csv":
        lines = [",".join(names)]
        for row in rows:
            lines.append(",".join('"' + str(row[n]).replace('"', '""') + '"' for n in names))
        return ("\n".join(lines) + "\n").encode()
    buffer = io.BytesIO()
    schema = contract_schema(RAW_TABLES[table])
    pq.write_table(
        pa.table({n: [row[n] for row in rows] for n in schema.names}, schema=schema), buffer
    )
    return buffer.getvalue()


TABLES = ("feedback_events", "inference_log", "preference_events")
FORMATS = ("csv", "jsonl", "parquet")
VALID = {(table, fmt): _valid(table, fmt) for table in TABLES for fmt in FORMATS}
#: what every case did, for the reconciliation test and the note: (table, fmt) -> status counts
SEEN: dict[tuple[str, str], dict[str, int]] = {}


@st.composite
def damaged(draw: st.DrawFn, table: str, fmt: str) -> bytes:
    """A valid file of ``table`` in ``fmt`` with one to three kinds of damage."""
    data = bytearray(VALID[(table, fmt)])
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(
            st.sampled_from(["cut", "flip", "insert", "repeat_line", "drop_line", "nul", "latin1"])
        )
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "cut":
            del data[at:]
        elif kind == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=12))
        elif kind == "nul":
            data[at:at] = b"\x00"
        elif kind == "latin1":
            data[at:at] = "é".encode("latin-1")
        else:
            lines = bytes(data).split(b"\n")
            index = draw(st.integers(0, len(lines) - 1))
            if kind == "repeat_line":
                lines.insert(index, lines[index])
            else:
                del lines[index]
            data = bytearray(b"\n".join(lines))
    return bytes(data)


def _state(con: duckdb.DuckDBPyConnection, table: str) -> tuple[int, int]:
    return (
        con.execute(f"select count(*) from raw.{table}").fetchone()[0],
        con.execute("select count(*) from raw.load_ledger").fetchone()[0],
    )


@pytest.fixture(scope="module")
def db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("damaged") / "w.duckdb"
    with warehouse.connect(path) as connection:
        warehouse.init_warehouse(connection)
    return path


@pytest.mark.parametrize(("table", "fmt"), [(t, f) for t in TABLES for f in FORMATS])
def test_a_damaged_file_is_loaded_whole_or_refused_by_name_and_leaves_nothing_behind(
    db_path: Path, tmp_path_factory: pytest.TempPathFactory, table: str, fmt: str
) -> None:
    folder = tmp_path_factory.mktemp(f"files-{table}-{fmt}")
    seen = SEEN.setdefault((table, fmt), {"loaded": 0, "refused": 0, "already_loaded": 0})

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(content=damaged(table, fmt))
    def check(content: bytes) -> None:
        path = folder / f"f{sum(seen.values())}.{fmt}"
        path.write_bytes(content)
        with warehouse.connect(db_path) as con:
            before = _state(con, table)
            (result,) = ingest.ingest_files(con, table, [path])
            after = _state(con, table)
            seen[result.status] += 1
            if result.status == "loaded":
                assert after == (before[0] + result.rows, before[1] + 1)
                (count,) = con.execute(
                    f"select count(*) from raw.{table} where _load_id = ?", [result.load_id]
                ).fetchone()
                assert count == result.rows
            else:
                assert after == before, result.message
                assert str(path) in result.message or path.name in result.message, result.message
            # Ingesting the same bytes again never adds anything.
            (again,) = ingest.ingest_files(con, table, [path])
            assert _state(con, table) == after
        assert again.status == ("already_loaded" if result.status != "refused" else "refused")

    check()
    print(f"{table} {fmt}: {seen}")
    assert seen["refused"] > 0 and seen["loaded"] + seen["already_loaded"] > 0, seen


def test_every_row_of_the_damaged_files_that_loaded_is_accounted_for_by_a_batch(
    db_path: Path,
) -> None:
    """One batch over everything the generated cases loaded: it builds, and every raw row of
    the three tables is accepted, quarantined/refused or held, once."""
    assert len(SEEN) == len(TABLES) * len(FORMATS), "run with the generating tests"
    tomorrow = batches.utc_now().replace(hour=0, minute=0, second=0, microsecond=0)
    run_windows(db_path, [batches.window(datetime(2000, 1, 1), tomorrow + timedelta(days=1))])
    with warehouse.connect(db_path, read_only=True) as con:
        raw = dict(
            con.execute(
                " union all ".join(
                    f"select '{table}', count(*) from raw.{table}" for table in TABLES
                )
            ).fetchall()
        )
        accounted = dict(
            con.execute(
                "select raw_table, sum(row_count) from marts.rpt_raw_reconciliation "
                "where status <> 'unclassified' group by 1"
            ).fetchall()
        )
    assert all(raw[table] > 0 for table in TABLES), raw
    assert {table: accounted.get(table, 0) for table in TABLES} == raw

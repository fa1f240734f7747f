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

from feedback_flywheel import ingest, warehouse
from feedback_flywheel.demo import contract_schema
from feedback_flywheel.warehouse.contract import RAW_TABLES

TABLE = "feedback_events"
NAMES = [column.name for column in RAW_TABLES[TABLE].columns]
EXAMPLES = 120  # per format


def _rows(count: int = 6) -> list[dict]:
    at = datetime(2026, 3, 4, 1, 0, 0)
    return [
        {
            "event_id": f"e-{i}",
            "inference_id": f"i-{i}",
            "event_type": "rating",
            "value": str(1 + i % 5),
            "payload": json.dumps({"note": f"n{i}"}),
            "occurred_at": at + timedelta(minutes=i),
            "received_at": at + timedelta(minutes=i, seconds=30),
            "source": "web_client",
            "schema_version": "1.1",
        }
        for i in range(count)
    ]


def _valid(fmt: str) -> bytes:
    rows = _rows()
    if fmt == "jsonl":
        return "".join(json.dumps(row, default=str) + "\n" for row in rows).encode()
    if fmt == "csv":
        lines = [",".join(NAMES)]
        for row in rows:
            lines.append(",".join('"' + str(row[n]).replace('"', '""') + '"' for n in NAMES))
        return ("\n".join(lines) + "\n").encode()
    buffer = io.BytesIO()
    schema = contract_schema(RAW_TABLES[TABLE])
    pq.write_table(
        pa.table({n: [row[n] for row in rows] for n in schema.names}, schema=schema), buffer
    )
    return buffer.getvalue()


VALID = {fmt: _valid(fmt) for fmt in ("csv", "jsonl", "parquet")}


@st.composite
def damaged(draw: st.DrawFn, fmt: str) -> bytes:
    """A valid file of ``fmt`` with one to three kinds of damage."""
    data = bytearray(VALID[fmt])
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


def _state(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    return (
        con.execute(f"select count(*) from raw.{TABLE}").fetchone()[0],
        con.execute("select count(*) from raw.load_ledger").fetchone()[0],
    )


@pytest.fixture(scope="module")
def con(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("damaged") / "w.duckdb"
    with warehouse.connect(path) as connection:
        warehouse.init_warehouse(connection)
        yield connection


@pytest.mark.parametrize("fmt", sorted(VALID))
def test_a_damaged_file_is_loaded_whole_or_refused_by_name_and_leaves_nothing_behind(
    con: duckdb.DuckDBPyConnection, tmp_path_factory: pytest.TempPathFactory, fmt: str
) -> None:
    folder = tmp_path_factory.mktemp(f"files-{fmt}")
    seen = {"loaded": 0, "refused": 0, "already_loaded": 0}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(content=damaged(fmt))
    def check(content: bytes) -> None:
        path = folder / f"f{sum(seen.values())}.{fmt}"
        path.write_bytes(content)
        before = _state(con)
        (result,) = ingest.ingest_files(con, TABLE, [path])
        after = _state(con)
        seen[result.status] += 1
        if result.status == "loaded":
            assert after == (before[0] + result.rows, before[1] + 1)
            (count,) = con.execute(
                f"select count(*) from raw.{TABLE} where _load_id = ?", [result.load_id]
            ).fetchone()
            assert count == result.rows
        else:
            assert after == before, result.message
            assert str(path) in result.message or path.name in result.message, result.message
        # Ingesting the same bytes again never adds anything.
        (again,) = ingest.ingest_files(con, TABLE, [path])
        assert _state(con) == after
        assert again.status == ("already_loaded" if result.status != "refused" else "refused")

    check()
    print(f"{fmt}: {seen}")
    assert seen["refused"] > 0 and seen["loaded"] + seen["already_loaded"] > 0, seen

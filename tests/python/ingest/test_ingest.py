"""Ingest: files in, contract-typed rows out, once per content, all or nothing.

Every test uses its own DuckDB file under tmp_path and small files written here, so the suite is
fast and needs no demo world.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from feedback_flywheel.ingest import LoadResult, ingest_file, ingest_files, loader

LOADED_AT = datetime(2024, 6, 1, 12, 0, 0)

CSV_HEADER = (
    "inference_id,logged_at,model_name,model_version,subject_id,session_id,step_index,"
    "context,inputs,predicted_label,predicted_score,probabilities,output_text"
)


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A fresh warehouse file per test."""
    connection = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    try:
        yield connection
    finally:
        connection.close()


def count(con: duckdb.DuckDBPyConnection, table: str = "inference_log") -> int:
    """Rows in a raw table."""
    found = con.execute(f"select count(*) from raw.{table}").fetchone()
    assert found is not None
    return int(found[0])


def ledger_count(con: duckdb.DuckDBPyConnection) -> int:
    """Rows in the load ledger."""
    found = con.execute("select count(*) from raw.load_ledger").fetchone()
    assert found is not None
    return int(found[0])


def inference_frame(n: int, start: int = 0) -> pd.DataFrame:
    """``n`` valid inference_log rows, ids ``inf-<start>`` onwards, tz-aware logged_at."""
    ids = range(start, start + n)
    return pd.DataFrame(
        {
            "inference_id": [f"inf-{i}" for i in ids],
            "logged_at": pd.to_datetime(
                [datetime(2024, 5, 1, 10, tzinfo=UTC) + timedelta(minutes=i) for i in ids]
            ),
            "model_name": "churn",
            "model_version": "v1",
            "subject_id": [f"user-{i % 7}" for i in ids],
            "session_id": [f"s-{i // 3}" for i in ids],
            "step_index": [i % 3 for i in ids],
            "context": '{"region": "eu"}',
            "inputs": [json.dumps({"tenure": i}) for i in ids],
            "predicted_label": "stay",
            "predicted_score": [0.5 + (i % 5) / 10 for i in ids],
            "probabilities": '{"stay": 0.7, "churn": 0.3}',
            "output_text": None,
        }
    ).astype({"output_text": "string"})


def csv_row(i: int, *, logged_at: str = "2024-05-01T10:00:00Z", score: str = "0.9") -> str:
    """One CSV line of inference_log (header ``CSV_HEADER``)."""
    return (
        f'inf-{i},{logged_at},churn,v1,user-{i},s-1,{i},"{{""region"": ""eu""}}",'
        f'"{{""tenure"": {i}}}",stay,{score},,'
    )


def write_csv(path: Path, rows: list[str], header: str = CSV_HEADER) -> Path:
    """Write a CSV file from a header and pre-formatted lines."""
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def fetch(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    """All rows of a query."""
    return con.execute(sql).fetchall()


# --- formats ------------------------------------------------------------------------------------


def test_parquet_loads_with_contract_types(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    path = tmp_path / "day1.parquet"
    inference_frame(5).to_parquet(path)

    result = ingest_file(con, "inference_log", path, loaded_at=LOADED_AT)

    assert result.status == "loaded" and result.ok
    assert result.rows == 5
    assert result.load_id == f"inference_log-{result.content_sha256[:16]}"  # type: ignore[index]
    assert result.message.startswith(f"inference_log: loaded 5 rows from {path} as inference_log-")
    row = fetch(
        con,
        "select inference_id, logged_at, step_index, predicted_score, output_text, _load_id, "
        "_file_row, _loaded_at from raw.inference_log where inference_id = 'inf-2'",
    )
    assert row == [
        ("inf-2", datetime(2024, 5, 1, 10, 2), 2, 0.7, None, result.load_id, 3, LOADED_AT)
    ]
    ledger = fetch(
        con, "select load_id, table_name, file_name, file_format, row_count from raw.load_ledger"
    )
    assert ledger == [(result.load_id, "inference_log", "day1.parquet", "parquet", 5)]


def test_csv_loads_with_contract_types(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    header = CSV_HEADER.removesuffix(",probabilities,output_text")
    lines = [
        'inf-1,2024-05-01T10:00:00Z,churn,v1,u1,,,"{""region"": ""eu""}","{}",stay,0.25',
        'inf-2,2024-05-01 11:30:00,churn,v1,u2,s-9,3,"{""region"": ""us""}","{}",churn, 1 ',
    ]
    path = write_csv(tmp_path / "day1.csv", lines, header=header)

    result = ingest_file(con, "inference_log", path, loaded_at=LOADED_AT)

    assert result.status == "loaded", result.message
    assert result.rows == 2
    assert "optional columns not in the file, filled with NULL: `probabilities`, `output_text`" in (
        result.message
    )
    rows = fetch(
        con,
        "select inference_id, logged_at, session_id, step_index, context, predicted_score, "
        "probabilities, _file_row from raw.inference_log order by _file_row",
    )
    assert rows == [
        ("inf-1", datetime(2024, 5, 1, 10), None, None, '{"region": "eu"}', 0.25, None, 1),
        ("inf-2", datetime(2024, 5, 1, 11, 30), "s-9", 3, '{"region": "us"}', 1.0, None, 2),
    ]
    assert fetch(con, "select file_format from raw.load_ledger") == [("csv",)]


def test_jsonl_loads_nested_values_as_json_text(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    records = [
        {
            "inference_id": f"inf-{i}",
            "logged_at": "2024-05-01T10:00:00+00:00",
            "model_name": "churn",
            "model_version": "v1",
            "subject_id": "u",
            "step_index": i,
            "context": {"region": "eu", "device": "ios"},
            "inputs": {"tenure": i, "plan": "pro"},
            "predicted_label": "stay",
            "predicted_score": 0.75,
            "output_text": None,
        }
        for i in range(3)
    ]
    path = tmp_path / "day1.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")

    result = ingest_file(con, "inference_log", path)

    assert result.status == "loaded", result.message
    assert result.rows == 3
    rows = fetch(
        con,
        "select step_index, context, inputs, predicted_score, output_text, session_id "
        "from raw.inference_log order by _file_row",
    )
    context, inputs = '{"region":"eu","device":"ios"}', '{"tenure":1,"plan":"pro"}'
    assert rows[1] == (1, context, inputs, 0.75, None, None)
    assert json.loads(rows[2][2]) == {"tenure": 2, "plan": "pro"}


def test_json_array_and_ndjson_extensions(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    event = {
        "event_id": "e1",
        "inference_id": "inf-1",
        "event_type": "rating",
        "value": 5,
        "occurred_at": "2024-05-01T10:00:00Z",
        "received_at": "2024-05-01T10:00:05Z",
        "schema_version": "1",
    }
    (tmp_path / "a.json").write_text(json.dumps([event, {**event, "event_id": "e2"}]))
    (tmp_path / "b.ndjson").write_text(json.dumps({**event, "event_id": "e3"}) + "\n")

    results = ingest_files(con, "feedback_events", [tmp_path / "a.json", tmp_path / "b.ndjson"])

    assert [r.status for r in results] == ["loaded", "loaded"]
    assert fetch(con, "select event_id, value from raw.feedback_events order by event_id") == [
        ("e1", "5"),
        ("e2", "5"),
        ("e3", "5"),
    ]


def test_csv_dialect_is_fixed_not_sniffed(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    # A value starting with `#` is data, not a comment line to skip.
    hashed = write_csv(tmp_path / "hash.csv", [csv_row(1).replace("inf-1", "#inf-1", 1)])
    assert ingest_file(con, "inference_log", hashed).status == "loaded"
    assert fetch(con, "select inference_id from raw.inference_log") == [("#inf-1",)]

    ragged = write_csv(tmp_path / "ragged.csv", [csv_row(2), csv_row(3) + ",surplus"])
    result = ingest_file(con, "inference_log", ragged)

    assert result.status == "refused"
    assert result.message == (
        f"{ragged}: could not be read as CSV: Invalid Input Error: CSV Error on Line: 3; "
        "Expected Number of Columns: 13 Found: 14; nothing loaded"
    )
    assert count(con) == 1


def test_csv_that_is_not_utf8_is_refused(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(
        (CSV_HEADER + "\n" + csv_row(1).replace("stay", "séjour") + "\n").encode("latin-1")
    )

    result = ingest_file(con, "inference_log", path)

    assert result.status == "refused"
    assert "CSV Error on Line: 2" in result.message
    assert "not utf-8 encoded" in result.message
    assert ledger_count(con) == 0


def test_duplicate_and_case_variant_headers(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    duplicated = write_csv(
        tmp_path / "dup.csv", [csv_row(1) + ",x"], header=CSV_HEADER + ", model_name"
    )
    result = ingest_file(con, "inference_log", duplicated)
    assert result.status == "refused"
    assert "column `model_name` appears more than once" in result.message

    # `Model_Name` next to `model_name` is a different (extra) column, not a clash.
    variant = write_csv(
        tmp_path / "variant.csv", [csv_row(2) + ",x"], header=CSV_HEADER + ",Model_Name"
    )
    allowed = ingest_file(con, "inference_log", variant, allow_extra_columns=True)
    assert allowed.status == "loaded", allowed.message
    assert "dropped extra columns `Model_Name`" in allowed.message
    assert fetch(con, "select model_name from raw.inference_log") == [("churn",)]


def test_json_keys_are_stripped_and_case_sensitive(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    record = {
        " model_name ": "m",
        "model_version": "v1",
        "deployed_at": "2024-01-01T00:00:00+01:00",
        "Retired_At": "2024-02-01",
    }
    path = tmp_path / "deploys.jsonl"
    path.write_text(json.dumps(record) + "\n")

    refused = ingest_file(con, "model_deployments", path)
    loaded = ingest_file(con, "model_deployments", path, allow_extra_columns=True)

    assert "extra column `Retired_At` not in the model_deployments contract" in refused.message
    assert loaded.status == "loaded"
    assert fetch(con, "select model_name, deployed_at, retired_at from raw.model_deployments") == [
        ("m", datetime(2023, 12, 31, 23), None)
    ]


# --- once per content ---------------------------------------------------------------------------


def test_same_file_twice_adds_nothing(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    path = tmp_path / "day1.parquet"
    inference_frame(1234).to_parquet(path)
    first = ingest_file(con, "inference_log", path, loaded_at=LOADED_AT)

    again = ingest_file(con, "inference_log", path)

    assert again.status == "already_loaded" and again.ok
    assert again.rows == 0
    assert again.load_id == first.load_id
    assert again.message == (
        f"inference_log: {path} already loaded on 2024-06-01 12:00:00 UTC as {first.load_id} "
        "(1,234 rows); nothing added"
    )
    assert count(con) == 1234
    assert ledger_count(con) == 1


def test_renamed_copy_of_same_bytes_adds_nothing(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    path = tmp_path / "day1.parquet"
    inference_frame(10).to_parquet(path)
    copy = tmp_path / "other" / "day1_copy.parquet"
    copy.parent.mkdir()
    copy.write_bytes(path.read_bytes())
    first = ingest_file(con, "inference_log", path)

    again = ingest_file(con, "inference_log", copy)

    assert again.status == "already_loaded"
    assert again.load_id == first.load_id
    assert "(10 rows; same bytes as day1.parquet); nothing added" in again.message
    assert count(con) == 10
    assert ledger_count(con) == 1


def test_same_bytes_into_another_table_is_a_separate_load(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    path = tmp_path / "nothing.csv"
    path.write_bytes(b"")  # a zero-byte file fits every table

    first = ingest_file(con, "model_deployments", path)
    other = ingest_file(con, "inference_log", path)

    assert (first.status, other.status) == ("loaded", "loaded")
    assert first.load_id != other.load_id
    assert ledger_count(con) == 2


# --- schema check -------------------------------------------------------------------------------


def test_missing_required_column_is_refused_and_adds_nothing(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    good = tmp_path / "good.parquet"
    inference_frame(3).to_parquet(good)
    assert ingest_file(con, "inference_log", good).status == "loaded"
    bad = tmp_path / "bad.parquet"
    inference_frame(3, start=10).drop(columns=["inference_id"]).to_parquet(bad)

    result = ingest_file(con, "inference_log", bad)

    assert result.status == "refused" and not result.ok
    assert result.rows == 0 and result.load_id is None
    assert result.message.startswith(
        f"{bad}: missing required column `inference_id` (VARCHAR) for table inference_log; "
    )
    assert result.message.endswith(
        "nothing loaded (`flywheel contract` lists the expected columns)"
    )
    assert count(con) == 3
    assert ledger_count(con) == 1


def test_missing_optional_column_is_null(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    path = tmp_path / "day1.parquet"
    inference_frame(2).drop(columns=["session_id", "step_index"]).to_parquet(path)

    result = ingest_file(con, "inference_log", path)

    assert result.status == "loaded"
    assert "filled with NULL: `session_id`, `step_index`" in result.message
    assert fetch(con, "select distinct session_id, step_index from raw.inference_log") == [
        (None, None)
    ]


def test_column_names_are_case_sensitive_after_stripping(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    padded = write_csv(tmp_path / "padded.csv", [csv_row(1)], header=CSV_HEADER.replace(",", " , "))
    assert ingest_file(con, "inference_log", padded).status == "loaded"

    shouting = write_csv(
        tmp_path / "shouting.csv",
        [csv_row(2)],
        header=CSV_HEADER.replace("inference_id", "Inference_ID"),
    )
    result = ingest_file(con, "inference_log", shouting)

    assert result.status == "refused"
    assert "missing required column `inference_id` (VARCHAR)" in result.message
    assert "(the file has `Inference_ID` for `inference_id`; names are case-sensitive)" in (
        result.message
    )
    assert count(con) == 1


def test_extra_column_refused_unless_allowed(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    path = tmp_path / "extra.parquet"
    inference_frame(4).assign(debug_note="x", shard=1).to_parquet(path)

    refused = ingest_file(con, "inference_log", path)

    assert refused.status == "refused"
    assert (
        f"{path}: extra columns `debug_note`, `shard` not in the inference_log contract; "
        "pass `--allow-extra-columns` to drop them"
    ) in refused.message
    assert count(con) == 0 and ledger_count(con) == 0

    allowed = ingest_file(con, "inference_log", path, allow_extra_columns=True)

    assert allowed.status == "loaded"
    assert "dropped extra columns `debug_note`, `shard` (--allow-extra-columns)" in allowed.message
    assert count(con) == 4


# --- value check --------------------------------------------------------------------------------


def test_mistyped_csv_value_is_refused_with_row_and_value(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    rows = [csv_row(i) for i in range(1, 21)]
    rows[16] = csv_row(17, score="high")
    rows[18] = csv_row(19, score="n/a")
    path = write_csv(tmp_path / "scores.csv", rows)

    result = ingest_file(con, "inference_log", path)

    assert result.status == "refused"
    assert result.message == (
        f"{path}: column `predicted_score` expects DOUBLE, row 17 has 'high' (and 1 more row); "
        "nothing loaded"
    )
    assert count(con) == 0 and ledger_count(con) == 0


def test_non_integral_bigint_and_bad_timestamp_are_refused(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    rows = [csv_row(1), csv_row(2, logged_at="yesterday"), csv_row(3).replace(",3,", ",2.5,", 1)]
    path = write_csv(tmp_path / "bad.csv", rows)

    result = ingest_file(con, "inference_log", path)

    assert result.status == "refused"
    assert "column `logged_at` expects TIMESTAMP, row 2 has 'yesterday'" in result.message
    assert "column `step_index` expects BIGINT, row 3 has '2.5'" in result.message
    assert count(con) == 0


def test_parquet_with_other_physical_types_is_converted_or_refused(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    ok = tmp_path / "floats.parquet"
    frame = inference_frame(2).astype({"step_index": "float64", "predicted_score": "float32"})
    frame.to_parquet(ok)
    assert ingest_file(con, "inference_log", ok).status == "loaded"
    assert fetch(con, "select step_index from raw.inference_log order by _file_row") == [(0,), (1,)]

    bad = tmp_path / "strings.parquet"
    frame = inference_frame(3, start=5).astype({"predicted_score": "string"})
    frame.loc[1, "predicted_score"] = "high"
    frame.to_parquet(bad)
    result = ingest_file(con, "inference_log", bad)

    assert result.status == "refused"
    assert "column `predicted_score` expects DOUBLE, row 2 has 'high'" in result.message
    assert count(con) == 2


def test_empty_values_in_non_text_columns_are_null(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "blanks.csv", [csv_row(1, score="")])

    result = ingest_file(con, "inference_log", path)

    # Nulls in required columns are left for the staging models to quarantine.
    assert result.status == "loaded"
    assert fetch(con, "select predicted_score from raw.inference_log") == [(None,)]


# --- timestamps ---------------------------------------------------------------------------------


def test_timestamps_end_as_naive_utc_whatever_the_session_zone(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    con.execute("set TimeZone = 'America/New_York'")
    stamps = [
        "2024-05-01T10:00:00Z",
        "2024-05-01T12:00:00+02:00",
        "2024-05-01 05:30:00-04:30",
        "2024-05-01 10:00:00",
        "2024-05-01T10:00:00.250+00:00",
    ]
    rows = [csv_row(i, logged_at=stamp) for i, stamp in enumerate(stamps)]
    path = write_csv(tmp_path / "zones.csv", rows)

    result = ingest_file(con, "inference_log", path)

    assert result.status == "loaded", result.message
    got = [r[0] for r in fetch(con, "select logged_at from raw.inference_log order by _file_row")]
    ten = datetime(2024, 5, 1, 10)
    assert got == [ten, ten, ten, ten, ten + timedelta(milliseconds=250)]
    assert fetch(con, "select current_setting('TimeZone')") == [("America/New_York",)]


def test_parquet_zoned_and_naive_timestamps(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    con.execute("set TimeZone = 'Asia/Tokyo'")
    plus_two = timezone(timedelta(hours=2))
    frame = inference_frame(1)
    frame["logged_at"] = pd.to_datetime([datetime(2024, 5, 1, 12, tzinfo=plus_two)])
    zoned = tmp_path / "zoned.parquet"
    frame.to_parquet(zoned)
    naive = tmp_path / "naive.parquet"
    frame.assign(inference_id="inf-naive", logged_at=[datetime(2024, 5, 1, 10)]).to_parquet(naive)

    results = ingest_files(con, "inference_log", [zoned, naive])

    assert [r.status for r in results] == ["loaded", "loaded"]
    assert fetch(con, "select distinct logged_at from raw.inference_log") == [
        (datetime(2024, 5, 1, 10),)
    ]


def test_loaded_at_is_stored_as_naive_utc(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "one.csv", [csv_row(1)])
    aware = datetime(2024, 6, 1, 14, tzinfo=timezone(timedelta(hours=2)))

    ingest_file(con, "inference_log", path, loaded_at=aware)

    assert fetch(con, "select _loaded_at from raw.inference_log") == [(LOADED_AT,)]
    assert fetch(con, "select loaded_at from raw.load_ledger") == [(LOADED_AT,)]


# --- row order ----------------------------------------------------------------------------------


def test_file_row_follows_file_order(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    n = 5000
    ids = [f"id-{(i * 7919) % n:05d}" for i in range(n)]  # a shuffled, non-sorted order
    pq.write_table(
        pa.Table.from_pandas(inference_frame(n).assign(inference_id=ids), preserve_index=False),
        tmp_path / "groups.parquet",
        row_group_size=700,
    )
    write_csv(tmp_path / "rows.csv", [csv_row(0).replace("inf-0", x, 1) for x in ids])
    event = {
        "event_id": "",
        "inference_id": "i",
        "event_type": "click",
        "occurred_at": "2024-05-01T10:00:00Z",
        "received_at": "2024-05-01T10:00:00Z",
        "schema_version": "1",
    }
    (tmp_path / "events.jsonl").write_text(
        "".join(json.dumps({**event, "event_id": x}) + "\n" for x in ids)
    )

    results = [
        ingest_file(con, "inference_log", tmp_path / "groups.parquet"),
        ingest_file(con, "inference_log", tmp_path / "rows.csv"),
        ingest_file(con, "feedback_events", tmp_path / "events.jsonl"),
    ]

    assert [r.status for r in results] == ["loaded"] * 3, [r.message for r in results]
    for table, id_column, load_id in [
        ("inference_log", "inference_id", results[0].load_id),
        ("inference_log", "inference_id", results[1].load_id),
        ("feedback_events", "event_id", results[2].load_id),
    ]:
        got = fetch(
            con,
            f"select {id_column} from raw.{table} where _load_id = '{load_id}' order by _file_row",
        )
        assert [r[0] for r in got] == ids
        bounds = f"select min(_file_row), max(_file_row) from raw.{table} where _load_id = ?"
        assert con.execute(bounds, [load_id]).fetchall() == [(1, n)]


def test_jsonl_blank_lines_are_not_counted(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    line = json.dumps(
        {
            "model_name": "m",
            "model_version": "v{}",
            "deployed_at": "2024-01-01T00:00:00Z",
        }
    )
    path = tmp_path / "deploys.jsonl"
    path.write_text(line.replace("{}", "1") + "\n\n" + line.replace("{}", "2") + "\n")

    result = ingest_file(con, "model_deployments", path)

    assert result.status == "loaded"
    assert fetch(con, "select model_version, _file_row from raw.model_deployments order by 2") == [
        ("v1", 1),
        ("v2", 2),
    ]


# --- all or nothing -----------------------------------------------------------------------------


def test_failure_after_insert_leaves_nothing_behind(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "day1.parquet"
    inference_frame(50).to_parquet(path)

    seen_inside: list[int] = []

    def broken_ledger(connection: duckdb.DuckDBPyConnection, *args: object) -> None:
        seen_inside.append(count(connection))  # the rows are in, uncommitted
        raise duckdb.IOException("disk full (simulated)")

    monkeypatch.setattr(loader, "_record_ledger", broken_ledger)
    result = ingest_file(con, "inference_log", path)

    assert result.status == "refused"
    assert result.message == (f"{path}: could not be loaded: disk full (simulated); nothing loaded")
    assert seen_inside == [50]
    assert count(con) == 0 and ledger_count(con) == 0

    monkeypatch.undo()
    assert ingest_file(con, "inference_log", path).status == "loaded"
    assert count(con) == 50 and ledger_count(con) == 1


def test_unexpected_error_is_rolled_back_and_raised(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "day1.parquet"
    inference_frame(5).to_parquet(path)
    con.execute("set TimeZone = 'Europe/Paris'")

    def bug(*args: object, **kwargs: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(loader, "_record_ledger", bug)
    with pytest.raises(RuntimeError, match="bug"):
        ingest_file(con, "inference_log", path)

    assert count(con) == 0 and ledger_count(con) == 0
    assert fetch(con, "select current_setting('TimeZone')") == [("Europe/Paris",)]
    con.execute("begin transaction")  # no transaction was left open
    con.execute("rollback")


# --- files, directories and edge cases ----------------------------------------------------------


def test_directory_expansion_keeps_going_after_a_refusal(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    write_csv(inbox / "b_day2.csv", [csv_row(2)])
    write_csv(inbox / "a_day1.csv", [csv_row(1)])
    write_csv(inbox / "c_broken.csv", [csv_row(3, score="high")])
    (inbox / "notes.txt").write_text("not a log")
    write_csv(inbox / ".partial.csv", [csv_row(4)])
    (inbox / "nested").mkdir()
    write_csv(inbox / "nested" / "d.csv", [csv_row(5)])
    single = write_csv(tmp_path / "z.csv", [csv_row(6)])

    results = ingest_files(con, "inference_log", [inbox, single])

    assert [(r.file.name, r.status) for r in results] == [
        ("a_day1.csv", "loaded"),
        ("b_day2.csv", "loaded"),
        ("c_broken.csv", "refused"),
        ("z.csv", "loaded"),
    ]
    assert all(isinstance(r, LoadResult) for r in results)
    assert count(con) == 3 and ledger_count(con) == 3
    assert ingest_files(con, "inference_log", [inbox / "nested" / "empty_dir"]) == [
        LoadResult(
            "inference_log",
            inbox / "nested" / "empty_dir",
            "refused",
            0,
            None,
            f"{inbox / 'nested' / 'empty_dir'}: no such file; nothing loaded",
            None,
        )
    ]
    (inbox / "empty").mkdir()
    assert ingest_files(con, "inference_log", [inbox / "empty"]) == []


def test_unsupported_extension_is_refused(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    path.write_text("hello")

    result = ingest_file(con, "inference_log", path)

    assert result.status == "refused"
    assert result.message == (
        f"{path}: unsupported file type ('.txt'); supported: .parquet, .csv, .jsonl, .ndjson, "
        ".json; nothing loaded"
    )


def test_header_only_csv_loads_zero_rows_once(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "empty.csv", [])

    first = ingest_file(con, "inference_log", path)
    again = ingest_file(con, "inference_log", path)

    assert (first.status, first.rows) == ("loaded", 0)
    assert "the file has no data rows (recorded so it is not retried)" in first.message
    assert again.status == "already_loaded"
    assert count(con) == 0 and ledger_count(con) == 1


def test_empty_jsonl_loads_zero_rows_but_empty_objects_are_refused(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    objects = tmp_path / "objects.jsonl"
    objects.write_text("{}\n{}\n")

    assert ingest_file(con, "feedback_events", empty).status == "loaded"
    refused = ingest_file(con, "feedback_events", objects)

    assert refused.status == "refused"
    assert "missing required columns `event_id` (VARCHAR)" in refused.message
    assert count(con, "feedback_events") == 0


def test_unreadable_json_is_refused(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"event_id": "e1"}\n{"event_id": \n')
    arrays = tmp_path / "arrays.jsonl"
    arrays.write_text('{"event_id": "e1"}\n[1, 2]\n')

    broken_result = ingest_file(con, "feedback_events", broken)
    arrays_result = ingest_file(con, "feedback_events", arrays)

    assert broken_result.message.startswith(f"{broken}: could not be read as JSON lines: ")
    assert arrays_result.message.startswith(f"{arrays}: record 2 is not a JSON object")
    assert ledger_count(con) == 0


def test_unknown_table_is_a_caller_error(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown raw table 'inference_logs'"):
        ingest_file(con, "inference_logs", tmp_path / "x.csv")

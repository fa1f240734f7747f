"""Reading a file into the stage: a connection-local temporary table DuckDB fills from the
Parquet, CSV or JSON-lines file, with each record's 1-based position in the file (see
:mod:`.loader` for the rules)."""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb

from feedback_flywheel.ingest.conversion import (
    _JSON,
    _JSON_STAGE_NAME,
    _ROW,
    _STAGE,
    _STAGE_NAME,
    _VALUES,
    _error_reason,
    _literal,
    _quote,
    _Refusal,
    _SourceColumn,
)

#: the longest CSV line or JSON record a file may hold (DuckDB's default is 2 MB, too little for
#: long output_text or payloads); a longer one refuses the file with DuckDB's message and line
MAX_RECORD_BYTES = 256 * 1024 * 1024


def _stage(
    con: duckdb.DuckDBPyConnection, path: Path, file_format: str
) -> tuple[list[_SourceColumn], str]:
    """Read the file into the temporary stage table; return its columns and the row-number SQL.

    Parquet row numbers come from ``read_parquet(file_row_number = true)``. CSV and JSON readers
    have no such column, so their row number is ``rowid + 1`` of the stage: with
    ``preserve_insertion_order`` on (ingest_file sets it), DuckDB appends the rows of a
    ``create table as select`` in scan order, also when the scan is parallel. That holds only for
    committed rows, which is why this runs outside the load transaction.
    """
    try:
        if file_format == "parquet":
            con.execute(
                f"create or replace temp table {_STAGE_NAME} as "
                f"select * exclude (file_row_number), file_row_number + 1 as {_ROW} "
                "from read_parquet(?, file_row_number = true)",
                [str(path)],
            )
            return _described_columns(con, exclude={_ROW}), _ROW
        if file_format == "csv":
            if path.stat().st_size == 0:
                return _empty_stage(con), "rowid + 1"
            header = _csv_header(path)
            # A fixed dialect instead of DuckDB's sniffer: the sniffer may pick another delimiter,
            # skip leading rows or treat `#` lines as comments when rows are ragged, and its
            # errors do not say which line is wrong. Stage columns are positional (c0, c1, ...)
            # so that header names DuckDB would reject or merge (case-insensitive duplicates,
            # quotes, blanks) reach the contract check exactly as written.
            columns = ", ".join(f"'c{index}': 'VARCHAR'" for index in range(len(header)))
            con.execute(
                f"create or replace temp table {_STAGE_NAME} as select * from read_csv(?, "
                f"columns = {{{columns}}}, header = true, auto_detect = false, delim = ',', "
                "quote = '\"', escape = '\"', comment = '', skip = 0, strict_mode = true, "
                f"max_line_size = {MAX_RECORD_BYTES})",
                [str(path)],
            )
            sources = [
                _SourceColumn(name, f"c{index}", "VARCHAR") for index, name in enumerate(header)
            ]
            return sources, "rowid + 1"
        reader_format = "auto" if path.suffix.lower() == ".json" else "newline_delimited"
        con.execute(
            f"create or replace temp table {_JSON_STAGE_NAME} as "
            f"select json as {_JSON} from read_json_objects(?, format = '{reader_format}', "
            f"maximum_object_size = {MAX_RECORD_BYTES})",
            [str(path)],
        )
        return _json_columns(con, path), _ROW
    except duckdb.Error as error:
        kind = {"parquet": "Parquet", "csv": "CSV"}.get(file_format, "JSON lines")
        raise _Refusal(
            f"{path}: could not be read as {kind}: {_error_reason(error)}; nothing loaded"
        ) from error


def _csv_header(path: Path) -> list[str]:
    """The names in the CSV header row (the first record; a UTF-8 byte order mark is ignored)."""
    # Decoding errors are replaced, not raised: the text layer decodes ahead of the header, and
    # a bad byte further down is DuckDB's to report, with its line number.
    try:
        with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
            header = next(csv.reader(handle), [])
    except csv.Error as error:
        raise _Refusal(
            f"{path}: could not be read as CSV: bad header row ({error}); nothing loaded"
        ) from error
    if any("\ufffd" in name for name in header):
        raise _Refusal(
            f"{path}: could not be read as CSV: the header row is not UTF-8 text; nothing loaded"
        )
    if not any(name.strip() for name in header):
        raise _Refusal(
            f"{path}: could not be read as CSV: the first line must be a header row naming the "
            "columns; nothing loaded"
        )
    return header


def _empty_stage(con: duckdb.DuckDBPyConnection) -> list[_SourceColumn]:
    """A zero-row stage for a zero-byte file: no columns to check, nothing to insert."""
    con.execute(f"create or replace temp table {_STAGE_NAME} ({_ROW} bigint)")
    return []


def _described_columns(con: duckdb.DuckDBPyConnection, exclude: set[str]) -> list[_SourceColumn]:
    """The stage's columns (Parquet/CSV) as source columns referencing themselves."""
    described = con.execute(f"describe {_STAGE}").fetchall()
    return [
        _SourceColumn(name, _quote(name), str(type_).upper())
        for name, type_, *_ in described
        if name not in exclude
    ]


def _json_columns(con: duckdb.DuckDBPyConnection, path: Path) -> list[_SourceColumn]:
    """Turn the staged JSON records into the stage table: row number plus one list of values.

    Refuses records that are not objects. The columns are the union of the records' keys (in
    first-seen order); a key a record lacks is NULL there. Values are extracted in one
    ``json_extract_string(record, [paths])`` call per record, so each record is parsed once:
    strings unquoted, numbers and booleans as their JSON text, nested objects/arrays as JSON text,
    JSON null as NULL.
    """
    json_stage = f"temp.main.{_JSON_STAGE_NAME}"
    bad = con.execute(
        f"select min(rowid) + 1, count(*) from {json_stage} where json_type({_JSON}) <> 'OBJECT'"
    ).fetchone()
    if bad and bad[1]:
        more = f" (and {bad[1] - 1:,} more)" if bad[1] > 1 else ""
        raise _Refusal(
            f"{path}: record {bad[0]} is not a JSON object{more}; each line must be one object "
            "of column -> value; nothing loaded"
        )
    keys = [
        str(key)
        for (key,) in con.execute(
            f"select key from (select rowid as r, unnest(json_keys({_JSON})) as key "
            f"from {json_stage}) group by key order by min(r), key"
        ).fetchall()
    ]
    paths = ", ".join(
        _literal('$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"') for key in keys
    )
    values = f", json_extract_string({_JSON}, [{paths}]) as {_VALUES}" if keys else ""
    con.execute(
        f"create or replace temp table {_STAGE_NAME} as "
        f"select rowid + 1 as {_ROW}{values} from {json_stage}"
    )
    con.execute(f"drop table {json_stage}")
    return [
        _SourceColumn(key, f"{_VALUES}[{index}]", "VARCHAR")
        for index, key in enumerate(keys, start=1)
    ]


def _stage_is_empty(con: duckdb.DuckDBPyConnection) -> bool:
    """True when the stage table has no rows."""
    found = con.execute(f"select exists (select 1 from {_STAGE})").fetchone()
    return not (found and found[0])

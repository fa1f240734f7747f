"""Ingest: append users' log files to the raw tables, checked against the contract, once each.

This is the product's ingest contract. A file is read by DuckDB (never row by row in Python),
checked against :mod:`feedback_flywheel.contract`, converted to the contract types and appended to
``raw.<table>`` together with one ``raw.load_ledger`` row, in a single transaction: a file either
loads completely or leaves nothing behind. Raw tables are append-only; this module only INSERTs.

Rules, in the order they are applied to one file:

* **Format by extension** (case-insensitive): ``.parquet``; ``.csv`` (UTF-8, comma-separated,
  ``"``-quoted, header row required; the dialect is fixed, not sniffed, and every column is read
  as VARCHAR and converted here); ``.jsonl`` / ``.ndjson`` (JSON lines, one object per line) and
  ``.json`` (JSON lines, or one top-level array of objects). Anything else is refused.
* **Once per content**: the file's bytes are hashed (sha256, streamed). ``load_id`` is
  ``"<table>-<first 16 hex digits>"``. If the same bytes were already loaded into the same table,
  under any file name, nothing is added and the result is ``already_loaded``.
* **Columns** match the contract by name, case-sensitively, after stripping surrounding
  whitespace. A missing required column refuses the file; a missing optional column is filled with
  NULL; a column that is not in the contract refuses the file unless ``allow_extra_columns`` (then
  it is dropped and the message says so).
* **Types**: every value must convert to the contract type or the file is refused, naming the
  column, the type and the first offending row. The check uses ``try_cast`` in SQL. Empty strings
  count as NULL for non-VARCHAR columns. BIGINT accepts integral values only ("3" and "3.0", not
  "2.5", which DuckDB would otherwise round). Parquet columns already of the contract type are not
  checked. Nested Parquet/JSON values going into VARCHAR columns (``context``, ``inputs``, ...) are
  stored as JSON text. NULLs in required columns are *not* refused here: they are row-level problems
  that the staging models quarantine, pointing at ``_file_row``.
* **Timestamps** end as naive UTC ``TIMESTAMP``: ISO 8601 strings with an offset or ``Z`` are
  converted to UTC, naive strings are taken as UTC, Parquet ``TIMESTAMP WITH TIME ZONE`` is
  converted to UTC and naive Parquet timestamps are kept as they are. The connection's ``TimeZone``
  is set to UTC while a file loads (and restored afterwards), because DuckDB parses naive strings
  in the session time zone, and casting a string straight to TIMESTAMP silently drops its offset.
* **Bookkeeping columns**: ``_load_id``; ``_file_row``, the 1-based record number inside the file
  (Parquet: ``read_parquet(file_row_number=true)``; CSV: data rows, the header is not counted;
  JSON: records, blank lines are not counted; for CSV and JSON the file is copied into a temporary
  table with ``preserve_insertion_order`` on, whose ``rowid`` then follows the file order); and
  ``_loaded_at`` (the ``loaded_at`` argument, or now, in UTC).
* **Empty files**: a file whose columns pass the check but that has zero rows (a header-only CSV, a
  zero-row Parquet file, an empty JSON-lines file, a zero-byte CSV) loads as 0 rows *with* a ledger
  row, so it is recorded and not retried.

Errors that are about the file (unreadable, wrong schema, bad values, or a DuckDB error while
loading) come back as a ``refused`` :class:`LoadResult`; anything else is rolled back and re-raised.
:func:`ingest_file` opens its own transaction, so it must not be called inside one.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal

import duckdb

from feedback_flywheel.warehouse import schema
from feedback_flywheel.warehouse.contract import RawTable, get_table

__all__ = [
    "ALREADY_LOADED",
    "LOADED",
    "REFUSED",
    "SUPPORTED_EXTENSIONS",
    "LoadResult",
    "LoadStatus",
    "expand_paths",
    "file_sha256",
    "ingest_file",
    "ingest_files",
]

LoadStatus = Literal["loaded", "already_loaded", "refused"]
LOADED: Final = "loaded"
ALREADY_LOADED: Final = "already_loaded"
REFUSED: Final = "refused"

#: File extension -> format name recorded in ``raw.load_ledger.file_format``.
SUPPORTED_EXTENSIONS: Final[dict[str, str]] = {
    ".parquet": "parquet",
    ".csv": "csv",
    ".jsonl": "json",
    ".ndjson": "json",
    ".json": "json",
}
_SUPPORTED_LIST = ", ".join(SUPPORTED_EXTENSIONS)

_STAGE_NAME = "_flywheel_ingest_stage"  # the temporary table a file is read into
_STAGE = f"temp.main.{_STAGE_NAME}"
_ROW = "__flywheel_file_row"  # stage column holding the 1-based row number (not for CSV)
_JSON_STAGE_NAME = "_flywheel_ingest_json"  # JSON records, before their values are extracted
_JSON = "__flywheel_json"  # column of that table holding one JSON record
_VALUES = "__flywheel_values"  # stage column holding a JSON record's values (JSON only)
_HASH_CHUNK = 1 << 20
_MAX_SHOWN_VALUE = 80
_MAX_LISTED_COLUMNS = 25

_SAFE_BIGINT_SOURCES = {
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
}
_WIDE_INT_SOURCES = {"UBIGINT", "HUGEINT", "UHUGEINT"}
_FLOAT_SOURCES = {"FLOAT", "DOUBLE", "REAL"}
_STRING_SOURCES = {"VARCHAR", "JSON"}
_NAIVE_TIME_SOURCES = {"TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S", "DATE"}
_TZ_TIME_SOURCES = {"TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ"}


@dataclass(frozen=True)
class LoadResult:
    """What happened to one file.

    ``rows`` is the number of rows this call appended (0 unless ``status == "loaded"``; the
    earlier load's count is in the message of an ``already_loaded`` result). ``load_id`` is the
    ledger id the rows are under (for ``already_loaded``: the earlier load's id), None if refused.
    ``content_sha256`` is None only when the file could not be hashed (missing, wrong type).
    """

    table: str
    file: Path
    status: LoadStatus
    rows: int
    load_id: str | None
    message: str
    content_sha256: str | None

    @property
    def ok(self) -> bool:
        """True unless the file was refused (an already-loaded file is fine)."""
        return self.status != REFUSED


@dataclass(frozen=True)
class _SourceColumn:
    """One column as the file has it: its name, a SQL expression over the stage, its DuckDB type."""

    name: str  # as in the file
    expr: str
    type: str


@dataclass(frozen=True)
class _Conversion:
    """How a source column becomes a contract column.

    ``present`` is the SQL expression that is non-null when the file has a value; a row is bad when
    ``present`` is not null but ``expr`` is. None means the conversion cannot fail (no check).
    """

    expr: str
    present: str | None


class _Refusal(Exception):
    """The file breaks the contract; the message is the user-facing sentence."""


def file_sha256(path: Path) -> str:
    """Hex sha256 of the file's bytes, read in 1 MiB chunks so big files are not held in memory."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def expand_paths(paths: Iterable[Path | str]) -> list[Path]:
    """Files to ingest: each file as given, each directory replaced by its supported files.

    Directories are not searched recursively; inside them, hidden files (``.name``, e.g. partial
    uploads) and files with other extensions are skipped, and the rest are sorted by name so that
    loads happen in a predictable (e.g. date-stamped) order. Paths that do not exist are kept, so
    that :func:`ingest_file` can refuse them with a message.
    """
    expanded: list[Path] = []
    for raw_path in paths:
        path = Path(raw_path)
        if path.is_dir():
            expanded.extend(
                sorted(
                    child
                    for child in path.iterdir()
                    if child.is_file()
                    and not child.name.startswith(".")
                    and child.suffix.lower() in SUPPORTED_EXTENSIONS
                )
            )
        else:
            expanded.append(path)
    return expanded


def ingest_files(
    con: duckdb.DuckDBPyConnection,
    table: str,
    paths: Iterable[Path | str],
    *,
    allow_extra_columns: bool = False,
    loaded_at: datetime | None = None,
) -> list[LoadResult]:
    """Ingest many files (directories expanded by :func:`expand_paths`), one transaction each.

    A refused file does not stop the others: every file gets a result and the caller decides what a
    refusal means (e.g. a non-zero exit code). A directory with no supported files contributes no
    results, so an empty inbox is an empty list rather than an error.
    """
    get_table(table)
    return [
        ingest_file(con, table, path, allow_extra_columns=allow_extra_columns, loaded_at=loaded_at)
        for path in expand_paths(paths)
    ]


def ingest_file(
    con: duckdb.DuckDBPyConnection,
    table: str,
    path: Path | str,
    *,
    allow_extra_columns: bool = False,
    loaded_at: datetime | None = None,
) -> LoadResult:
    """Append one file to ``raw.<table>`` and record it in ``raw.load_ledger``, all or nothing.

    Returns ``loaded``, ``already_loaded`` (same bytes already in this table; nothing added) or
    ``refused`` (nothing added; the message says why, naming the file). Raises ValueError for an
    unknown table name, since that is the caller's mistake, not the file's.
    """
    raw_table = get_table(table)
    path = Path(path)
    stamp = _utc_naive(loaded_at)
    schema.init_warehouse(con)

    def refused(message: str, sha: str | None = None) -> LoadResult:
        return LoadResult(table, path, REFUSED, 0, None, message, sha)

    file_format = SUPPORTED_EXTENSIONS.get(path.suffix.lower())
    if not path.exists():
        return refused(f"{path}: no such file; nothing loaded")
    if path.is_dir():
        return refused(f"{path}: is a directory; pass its files (or use ingest_files)")
    if file_format is None:
        suffix = f"'{path.suffix}'" if path.suffix else "no extension"
        return refused(
            f"{path}: unsupported file type ({suffix}); supported: {_SUPPORTED_LIST}; "
            "nothing loaded"
        )
    try:
        sha = file_sha256(path)
    except OSError as error:
        return refused(f"{path}: could not be read ({error}); nothing loaded")
    load_id = f"{table}-{sha[:16]}"

    def already_loaded(previous: tuple[str, str, int, datetime]) -> LoadResult:
        prev_id, prev_name, prev_rows, prev_at = previous
        same = "" if prev_name == path.name else f"; same bytes as {prev_name}"
        message = (
            f"{table}: {path} already loaded on {prev_at:%Y-%m-%d %H:%M:%S} UTC as {prev_id} "
            f"({_rows(prev_rows)}{same}); nothing added"
        )
        return LoadResult(table, path, ALREADY_LOADED, 0, prev_id, message, sha)

    previous = _previous_load(con, table, sha)  # cheap early exit before reading the file
    if previous is not None:
        return already_loaded(previous)

    settings = _override_settings(con, {"TimeZone": "UTC", "preserve_insertion_order": "true"})
    try:
        # The stage is a connection-local temporary table, filled *before* the transaction: rows
        # inserted inside a transaction get provisional rowids, and CSV/JSON row numbers are the
        # stage's committed rowids (see _stage).
        try:
            sources, row_expr = _stage(con, path, file_format)
        except _Refusal as refusal:
            return refused(str(refusal), sha)
        con.execute("begin transaction")
        try:
            previous = _previous_load(con, table, sha)
            if previous is not None:
                con.execute("rollback")
                return already_loaded(previous)
            rows, notes = _load(
                con, raw_table, path, sources, row_expr, load_id, stamp, allow_extra_columns
            )
            _record_ledger(con, load_id, table, path, file_format, sha, rows, stamp)
            con.execute("commit")
        except _Refusal as refusal:
            _rollback(con)
            return refused(str(refusal), sha)
        except duckdb.Error as error:
            _rollback(con)
            reason = _error_reason(error)
            return refused(f"{path}: could not be loaded: {reason}; nothing loaded", sha)
        except BaseException:
            _rollback(con)
            raise
    finally:
        for stage_name in (_STAGE_NAME, _JSON_STAGE_NAME):
            with contextlib.suppress(duckdb.Error):
                con.execute(f"drop table if exists temp.main.{stage_name}")
        _restore_settings(con, settings)

    message = f"{table}: loaded {_rows(rows)} from {path} as {load_id}"
    return LoadResult(table, path, LOADED, rows, load_id, "; ".join([message, *notes]), sha)


# --- one file: stage, then check and insert inside the transaction ---------------------------


def _load(
    con: duckdb.DuckDBPyConnection,
    table: RawTable,
    path: Path,
    sources: list[_SourceColumn],
    row_expr: str,
    load_id: str,
    loaded_at: datetime,
    allow_extra_columns: bool,
) -> tuple[int, list[str]]:
    """Check, convert and insert the staged file; return (rows inserted, notes for the message)."""
    # Only a file without any rows may also be without columns (zero-byte CSV, empty JSON lines):
    # there is nothing to check and nothing to insert. JSON records of `{}` are still refused.
    no_columns_ok = not sources and _stage_is_empty(con)
    by_name, notes = _match_columns(table, path, sources, allow_extra_columns, no_columns_ok)

    conversions: dict[str, _Conversion] = {}
    for column in table.columns:
        source = by_name.get(column.name)
        if source is None:
            conversions[column.name] = _Conversion(f"cast(null as {column.type})", None)
        else:
            conversions[column.name] = _convert(source.expr, source.type, column.type)
    _check_values(con, table, path, by_name, conversions, row_expr)

    target = ", ".join(_quote(name) for name in [*table.column_names, *_BOOKKEEPING_NAMES])
    select = ", ".join(conversions[name].expr for name in table.column_names)
    inserted = con.execute(
        f"insert into {schema.RAW_SCHEMA}.{table.name} ({target}) "
        f"select {select}, ?, {row_expr}, ? from {_STAGE}",
        [load_id, loaded_at],
    ).fetchone()
    rows = int(inserted[0]) if inserted else 0
    if rows == 0:
        notes.insert(0, "the file has no data rows (recorded so it is not retried)")
    return rows, notes


_BOOKKEEPING_NAMES = ("_load_id", "_file_row", "_loaded_at")


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
                "quote = '\"', escape = '\"', comment = '', skip = 0, strict_mode = true)",
                [str(path)],
            )
            sources = [
                _SourceColumn(name, f"c{index}", "VARCHAR") for index, name in enumerate(header)
            ]
            return sources, "rowid + 1"
        reader_format = "auto" if path.suffix.lower() == ".json" else "newline_delimited"
        con.execute(
            f"create or replace temp table {_JSON_STAGE_NAME} as "
            f"select json as {_JSON} from read_json_objects(?, format = '{reader_format}')",
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


def _match_columns(
    table: RawTable,
    path: Path,
    sources: list[_SourceColumn],
    allow_extra_columns: bool,
    no_columns_ok: bool,
) -> tuple[dict[str, _SourceColumn], list[str]]:
    """Map contract column names to the file's columns; refuse missing/extra/duplicate columns.

    Returns the mapping and notes for the success message (dropped extras, NULL-filled optionals).
    ``no_columns_ok``: the file has neither rows nor columns, so there is nothing to check.
    """
    by_name: dict[str, _SourceColumn] = {}
    duplicates: list[str] = []
    extras: list[str] = []
    for source in sources:
        name = source.name.strip()
        if name in by_name:
            duplicates.append(name)
        elif name in table.column_names:
            by_name[name] = source
        else:
            extras.append(source.name)
    if no_columns_ok:
        return by_name, []

    problems = []
    missing = [c for c in table.columns if c.required and c.name not in by_name]
    if missing:
        listed = ", ".join(f"`{c.name}` ({c.type})" for c in missing)
        plural = "s" if len(missing) > 1 else ""
        problem = f"missing required column{plural} {listed} for table {table.name}"
        near = [
            f"`{extra}` for `{c.name}`"
            for c in missing
            for extra in extras
            if extra.strip().casefold() == c.name.casefold()
        ]
        if near:
            problem += f" (the file has {', '.join(near)}; names are case-sensitive)"
        problems.append(problem)
    if duplicates:
        problems.append(
            f"{'columns' if len(duplicates) > 1 else 'column'} {_names(duplicates)} "
            f"{'appear' if len(duplicates) > 1 else 'appears'} more than once"
        )
    if extras and not allow_extra_columns:
        plural = "s" if len(extras) > 1 else ""
        problems.append(
            f"extra column{plural} {_names(extras)} not in the {table.name} contract; "
            "pass `--allow-extra-columns` to drop " + ("them" if plural else "it")
        )
    if problems:
        has = _names([s.name for s in sources])
        raise _Refusal(
            f"{path}: " + "; ".join(problems) + f"; the file has columns {has}; nothing loaded "
            "(`flywheel contract` lists the expected columns)"
        )

    notes = []
    if extras:
        notes.append(f"dropped extra columns {_names(extras)} (--allow-extra-columns)")
    absent = [c.name for c in table.columns if not c.required and c.name not in by_name]
    if absent:
        notes.append(f"optional columns not in the file, filled with NULL: {_names(absent)}")
    return by_name, notes


def _convert(expr: str, source_type: str, target: str) -> _Conversion:
    """SQL that turns a source column into the contract type, and whether that can fail.

    Conversions that cannot fail (same type, widening, anything to VARCHAR, zoned or naive
    timestamps to TIMESTAMP) get no check. Everything else goes through the value's trimmed text
    and ``try_cast``, so a bad value becomes NULL and can be found by :func:`_check_values`.
    """
    source = source_type.upper()
    target = target.upper()
    if source == target:
        return _Conversion(expr, None)
    if target == "VARCHAR":
        if source.startswith(("STRUCT", "MAP", "UNION")) or source.endswith("]"):
            return _Conversion(f"cast(to_json({expr}) as VARCHAR)", None)
        return _Conversion(f"cast({expr} as VARCHAR)", None)

    is_decimal = source.startswith("DECIMAL")
    text = (
        f"nullif(trim({expr}), '')"
        if source in _STRING_SOURCES
        else f"nullif(trim(cast({expr} as VARCHAR)), '')"
    )
    if target == "DOUBLE":
        if source in _SAFE_BIGINT_SOURCES | _WIDE_INT_SOURCES | _FLOAT_SOURCES or is_decimal:
            return _Conversion(f"cast({expr} as DOUBLE)", None)
        return _Conversion(f"try_cast({text} as DOUBLE)", text)
    if target == "BIGINT":
        if source in _SAFE_BIGINT_SOURCES:
            return _Conversion(f"cast({expr} as BIGINT)", None)
        if source in _WIDE_INT_SOURCES:
            return _Conversion(f"try_cast({expr} as BIGINT)", expr)
        if source in _FLOAT_SOURCES or is_decimal:
            return _Conversion(
                f"case when {expr} = trunc({expr}) then try_cast({expr} as BIGINT) end", expr
            )
        # DuckDB rounds '2.5' to 3 when casting text to BIGINT; accept only integral text.
        integral = f"regexp_extract({text}, '^([+-]?[0-9]+)(\\.0*)?$', 1)"
        return _Conversion(f"try_cast({integral} as BIGINT)", text)
    if target == "TIMESTAMP":
        if source in _NAIVE_TIME_SOURCES:
            return _Conversion(f"cast({expr} as TIMESTAMP)", None)
        if source in _TZ_TIME_SOURCES:
            return _Conversion(f"timezone('UTC', {expr})", None)
        # Through TIMESTAMPTZ so that offsets are applied; naive text is read in the session time
        # zone, which ingest_file has set to UTC.
        return _Conversion(f"timezone('UTC', try_cast({text} as TIMESTAMPTZ))", text)
    return _Conversion(f"try_cast({text} as {target})", text)


def _check_values(
    con: duckdb.DuckDBPyConnection,
    table: RawTable,
    path: Path,
    by_name: dict[str, _SourceColumn],
    conversions: dict[str, _Conversion],
    row_expr: str,
) -> None:
    """Refuse the file if any value does not convert, naming column, type, first row and value.

    One aggregate query finds, per checked column, the first bad row and how many there are.
    """
    checked = [name for name in table.column_names if conversions[name].present is not None]
    if not checked:
        return
    aggregates = []
    for name in checked:
        conversion = conversions[name]
        bad = f"({conversion.present}) is not null and ({conversion.expr}) is null"
        aggregates.append(f"min({row_expr}) filter (where {bad})")
        aggregates.append(f"count(*) filter (where {bad})")
    found = con.execute(f"select {', '.join(aggregates)} from {_STAGE}").fetchone()
    assert found is not None
    problems = []
    for index, name in enumerate(checked):
        first_row, count = found[2 * index], found[2 * index + 1]
        if not count:
            continue
        value_row = con.execute(
            f"select cast({by_name[name].expr} as VARCHAR) from {_STAGE} where {row_expr} = ?",
            [first_row],
        ).fetchone()
        value = _show(value_row[0] if value_row else None)
        more = f" (and {count - 1:,} more row{'s' if count > 2 else ''})" if count > 1 else ""
        expected = table.column(name).type
        problems.append(f"column `{name}` expects {expected}, row {first_row} has {value}{more}")
    if problems:
        raise _Refusal(f"{path}: " + "; ".join(problems) + "; nothing loaded")


def _record_ledger(
    con: duckdb.DuckDBPyConnection,
    load_id: str,
    table: str,
    path: Path,
    file_format: str,
    sha: str,
    rows: int,
    loaded_at: datetime,
) -> None:
    """Insert the ledger row, in the same transaction as the data (a separate step for tests)."""
    con.execute(
        f"insert into {schema.RAW_SCHEMA}.load_ledger (load_id, table_name, file_path, "
        "file_name, file_format, content_sha256, row_count, loaded_at) "
        "values (?, ?, ?, ?, ?, ?, ?, ?)",
        [load_id, table, str(path.resolve()), path.name, file_format, sha, rows, loaded_at],
    )


def _previous_load(
    con: duckdb.DuckDBPyConnection, table: str, sha: str
) -> tuple[str, str, int, datetime] | None:
    """The earlier ledger row for these bytes in this table, if any."""
    row = con.execute(
        f"select load_id, file_name, row_count, loaded_at from {schema.RAW_SCHEMA}.load_ledger "
        "where table_name = ? and content_sha256 = ? order by loaded_at limit 1",
        [table, sha],
    ).fetchone()
    return (str(row[0]), str(row[1]), int(row[2]), row[3]) if row else None


# --- small helpers ----------------------------------------------------------------------------


def _override_settings(con: duckdb.DuckDBPyConnection, values: dict[str, str]) -> dict[str, str]:
    """Set session settings (not transactional in DuckDB) and return the old values to restore."""
    old = {}
    for name, value in values.items():
        current = con.execute("select current_setting(?)", [name]).fetchone()
        old[name] = str(current[0]) if current else value
        con.execute(f"set {name} = {_literal(value)}")
    return old


def _restore_settings(con: duckdb.DuckDBPyConnection, old: dict[str, str]) -> None:
    """Put back settings changed by :func:`_override_settings`."""
    for name, value in old.items():
        con.execute(f"set {name} = {_literal(value)}")


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back, tolerating a transaction DuckDB already aborted."""
    with contextlib.suppress(duckdb.Error):
        con.execute("rollback")


def _utc_naive(moment: datetime | None) -> datetime:
    """``moment`` (naive taken as UTC, aware converted) or now, as naive UTC."""
    if moment is None:
        return datetime.now(UTC).replace(tzinfo=None)
    if moment.tzinfo is not None:
        return moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def _quote(identifier: str) -> str:
    """A double-quoted SQL identifier."""
    return '"' + identifier.replace('"', '""') + '"'


def _literal(value: str) -> str:
    """A single-quoted SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def _rows(count: int) -> str:
    """``"1 row"``, ``"1,234 rows"``."""
    return f"{count:,} row" + ("" if count == 1 else "s")


def _names(names: list[str]) -> str:
    """Backticked, comma-separated column names, shortened when there are very many."""
    shown = ", ".join(f"`{name}`" for name in names[:_MAX_LISTED_COLUMNS])
    if len(names) > _MAX_LISTED_COLUMNS:
        shown += f" and {len(names) - _MAX_LISTED_COLUMNS} more"
    return shown


def _show(value: object) -> str:
    """A bad value for a message: quoted, shortened when long."""
    if value is None:
        return "NULL"
    text = str(value)
    if len(text) > _MAX_SHOWN_VALUE:
        text = text[: _MAX_SHOWN_VALUE - 3] + "..."
    return f"'{text}'"


def _error_reason(error: BaseException) -> str:
    """The useful part of a DuckDB error: its lines up to the generic advice, joined.

    DuckDB's CSV errors span many lines ("CSV Error on Line: 3", the original line, the cause, then
    "Possible fixes" and the reader options); the first line alone would drop the cause. The echoed
    original line is left out: it can be long, and the line number already points at it.
    """
    kept = []
    for raw_line in str(error).splitlines():
        line = raw_line.strip()
        if line.startswith(("Possible fix", "Possible Solution", "LINE ", "* ", "file = ")):
            break
        if line and not line.startswith("Original Line:"):
            kept.append(line)
    return "; ".join(kept) if kept else type(error).__name__

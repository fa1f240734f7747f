"""Ingest: append users' log files to the raw tables, checked against the contract, once each.

This is the product's ingest contract. A file is read by DuckDB (never row by row in Python),
checked against :mod:`feedback_flywheel.warehouse.contract`, converted to the contract types and
appended to ``raw.<table>`` together with one ``raw.load_ledger`` row, in a single transaction: a
file either loads completely or leaves nothing behind. Raw tables are append-only; this module
only INSERTs.

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
* **Warnings** (:mod:`feedback_flywheel.ingest.checks`) do not refuse a file: one that would be
  quarantined mostly for one reason loads, and the result says why and what to change.

Errors that are about the file (unreadable, wrong schema, bad values, or a DuckDB error while
loading) come back as a ``refused`` :class:`LoadResult`; anything else is rolled back and re-raised.
:func:`ingest_file` opens its own transaction, so it must not be called inside one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal

import duckdb

from feedback_flywheel.ingest.checks import LoadChecks, load_warnings
from feedback_flywheel.ingest.conversion import (
    _JSON_STAGE_NAME,
    _STAGE,
    _STAGE_NAME,
    _check_values,
    _Conversion,
    _convert,
    _error_reason,
    _literal,
    _match_columns,
    _quote,
    _Refusal,
    _rows,
    _SourceColumn,
)
from feedback_flywheel.ingest.files import (
    _SUPPORTED_LIST,
    SUPPORTED_EXTENSIONS,
    expand_paths,
    file_sha256,
)
from feedback_flywheel.ingest.staging import _stage, _stage_is_empty
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
    #: reasons the next batch will quarantine most of the file's rows for (see :mod:`.checks`)
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True unless the file was refused (an already-loaded file is fine)."""
        return self.status != REFUSED


def ingest_files(
    con: duckdb.DuckDBPyConnection,
    table: str,
    paths: Iterable[Path | str],
    *,
    allow_extra_columns: bool = False,
    loaded_at: datetime | None = None,
    checks: LoadChecks | None = None,
) -> list[LoadResult]:
    """Ingest many files (directories expanded by :func:`expand_paths`), one transaction each.

    A refused file does not stop the others: every file gets a result and the caller decides what a
    refusal means (e.g. a non-zero exit code). A directory with no supported files contributes no
    results, so an empty inbox is an empty list rather than an error.
    """
    get_table(table)
    return [
        ingest_file(
            con,
            table,
            path,
            allow_extra_columns=allow_extra_columns,
            loaded_at=loaded_at,
            checks=checks,
        )
        for path in expand_paths(paths)
    ]


def _check_file(path: Path) -> tuple[str, str] | str:
    """(file format, sha256) of a readable file of a supported type, else why it is refused."""
    file_format = SUPPORTED_EXTENSIONS.get(path.suffix.lower())
    if not path.exists():
        return f"{path}: no such file; nothing loaded"
    if path.is_dir():
        return f"{path}: is a directory; pass its files (or use ingest_files)"
    if file_format is None:
        suffix = f"'{path.suffix}'" if path.suffix else "no extension"
        return (
            f"{path}: unsupported file type ({suffix}); supported: {_SUPPORTED_LIST}; "
            "nothing loaded"
        )
    try:
        return file_format, file_sha256(path)
    except OSError as error:
        return f"{path}: could not be read ({error}); nothing loaded"


def _already_loaded(
    table: str, path: Path, sha: str, previous: tuple[str, str, int, datetime]
) -> LoadResult:
    prev_id, prev_name, prev_rows, prev_at = previous
    same = "" if prev_name == path.name else f"; same bytes as {prev_name}"
    message = (
        f"{table}: {path} already loaded on {prev_at:%Y-%m-%d %H:%M:%S} UTC as {prev_id} "
        f"({_rows(prev_rows)}{same}); nothing added"
    )
    return LoadResult(table, path, ALREADY_LOADED, 0, prev_id, message, sha)


def ingest_file(
    con: duckdb.DuckDBPyConnection,
    table: str,
    path: Path | str,
    *,
    allow_extra_columns: bool = False,
    loaded_at: datetime | None = None,
    checks: LoadChecks | None = None,
) -> LoadResult:
    """Append one file to ``raw.<table>`` and record it in ``raw.load_ledger``, all or nothing.

    Returns ``loaded``, ``already_loaded`` (same bytes already in this table; nothing added) or
    ``refused`` (nothing added; the message says why, naming the file). Raises ValueError for an
    unknown table name, since that is the caller's mistake, not the file's. With ``checks`` a
    loaded file's rows are looked at once more: reasons the batch will quarantine most of them
    for come back as ``warnings`` (:mod:`.checks`).
    """
    raw_table = get_table(table)
    path = Path(path)
    schema.init_warehouse(con)
    checked = _check_file(path)
    if isinstance(checked, str):
        return LoadResult(table, path, REFUSED, 0, None, checked, None)
    file_format, sha = checked
    previous = _previous_load(con, table, sha)  # cheap early exit before reading the file
    if previous is not None:
        return _already_loaded(table, path, sha, previous)
    load = _Load(raw_table, path, file_format, sha, _utc_naive(loaded_at), allow_extra_columns)
    settings = _override_settings(con, {"TimeZone": "UTC", "preserve_insertion_order": "true"})
    try:
        return load.run(con, checks)
    finally:
        for stage_name in (_STAGE_NAME, _JSON_STAGE_NAME):
            with contextlib.suppress(duckdb.Error):
                con.execute(f"drop table if exists temp.main.{stage_name}")
        _restore_settings(con, settings)


@dataclass(frozen=True)
class _Load:
    """One file on its way into a raw table."""

    table: RawTable
    path: Path
    file_format: str
    sha: str
    loaded_at: datetime
    allow_extra_columns: bool

    @property
    def load_id(self) -> str:
        return f"{self.table.name}-{self.sha[:16]}"

    def refused(self, message: str) -> LoadResult:
        return LoadResult(self.table.name, self.path, REFUSED, 0, None, message, self.sha)

    def run(self, con: duckdb.DuckDBPyConnection, checks: LoadChecks | None) -> LoadResult:
        # The stage is a connection-local temporary table, filled *before* the transaction: rows
        # inserted inside a transaction get provisional rowids, and CSV/JSON row numbers are the
        # stage's committed rowids (see _stage).
        try:
            sources, row_expr = _stage(con, self.path, self.file_format)
        except _Refusal as refusal:
            return self.refused(str(refusal))
        con.execute("begin transaction")
        try:
            previous = _previous_load(con, self.table.name, self.sha)
            if previous is not None:
                con.execute("rollback")
                return _already_loaded(self.table.name, self.path, self.sha, previous)
            rows, notes = _load(
                con,
                self.table,
                self.path,
                sources,
                row_expr,
                self.load_id,
                self.loaded_at,
                self.allow_extra_columns,
            )
            warnings = load_warnings(con, self.table.name, self.load_id, checks) if checks else []
            _record_ledger(
                con,
                self.load_id,
                self.table.name,
                self.path,
                self.file_format,
                self.sha,
                rows,
                self.loaded_at,
            )
            con.execute("commit")
        except _Refusal as refusal:
            _rollback(con)
            return self.refused(str(refusal))
        except duckdb.Error as error:
            _rollback(con)
            return self.refused(
                f"{self.path}: could not be loaded: {_error_reason(error)}; nothing loaded"
            )
        except BaseException:
            _rollback(con)
            raise
        message = f"{self.table.name}: loaded {_rows(rows)} from {self.path} as {self.load_id}"
        return LoadResult(
            self.table.name,
            self.path,
            LOADED,
            rows,
            self.load_id,
            "; ".join([message, *notes]),
            self.sha,
            tuple(f"{self.path.name}: {warning}" for warning in warnings),
        )


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

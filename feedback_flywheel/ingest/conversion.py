"""Checking a staged file against the contract: matching its columns to the contract's, the
conversion of every source type to the contract type, and the value checks that refuse a file
naming the column, the type and the first offending row (see :mod:`.loader` for the rules)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from feedback_flywheel.warehouse.contract import RawTable

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

_STAGE_NAME = "_flywheel_ingest_stage"  # the temporary table a file is read into
_STAGE = f"temp.main.{_STAGE_NAME}"
_ROW = "__flywheel_file_row"  # stage column holding the 1-based row number (not for CSV)
_JSON_STAGE_NAME = "_flywheel_ingest_json"  # JSON records, before their values are extracted
_JSON = "__flywheel_json"  # column of that table holding one JSON record
_VALUES = "__flywheel_values"  # stage column holding a JSON record's values (JSON only)


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

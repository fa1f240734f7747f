"""Bringing the published tables into a new serving copy (:mod:`.serving`): copied whole from
the attached warehouse, or synced in a copy of the previous snapshot.

Syncing a table: both sides' rows are counted per content hash (DuckDB's 64-bit ``hash`` of the
whole row); for every hash whose count differs (rows deleted, added or changed, or a row that
occurs more often on one side), the copy's rows with that hash are deleted and the warehouse's
inserted. A table whose columns (names, types, order) changed is copied whole, and so is a
synced table whose row count then differs from the warehouse's. What a sync cannot see is a
change that keeps every hash's count, i.e. one row replaced by a different row with the same
64-bit hash (about 1 in 10^19 per changed row), or a change between values DuckDB hashes alike
(-0.0 and 0.0, two NaNs); every ``serving.MAX_SYNCS``-th publish is a full copy, which also
gives back the space deleted rows leave in the file. A sync that fails (any DuckDB error) is
thrown away and the copy built from scratch instead (:func:`.serving.publish`).
"""

from __future__ import annotations

import duckdb

#: the attached warehouse, read-only, in the connection to the new copy
SOURCE_ALIAS = "flywheel_source"


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def copy_relations(
    con: duckdb.DuckDBPyConnection, relations: list[tuple[str, str]]
) -> dict[str, int]:
    """Copy every relation from the attached warehouse in one consistent read; row counts."""
    row_counts: dict[str, int] = {}
    con.execute("begin transaction")
    for schema, name in relations:
        con.execute(f"create schema if not exists {quote(schema)}")
        _copy_whole(con, schema, name)
        row_counts[f"{schema}.{name}"] = _count(con, f"{quote(schema)}.{quote(name)}")
    con.execute("commit")
    return row_counts


def _copy_whole(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> None:
    qualified = f"{quote(schema)}.{quote(name)}"
    con.execute(f"drop table if exists {qualified}")
    con.execute(f"create table {qualified} as select * from {SOURCE_ALIAS}.{qualified}")


def _count(con: duckdb.DuckDBPyConnection, relation: str) -> int:
    return int(con.execute(f"select count(*) from {relation}").fetchall()[0][0])


def _columns(con: duckdb.DuckDBPyConnection, database: str) -> dict[tuple[str, str], list]:
    """(schema, table) → [(column, type), ...] in column order, for the tables of ``database``."""
    rows = con.execute(
        """
        select schema_name, table_name, column_name, data_type from duckdb_columns()
        where database_name = ? order by schema_name, table_name, column_index
        """,
        [database],
    ).fetchall()
    columns: dict[tuple[str, str], list] = {}
    for schema, table, column, data_type in rows:
        columns.setdefault((schema, table), []).append((column, data_type))
    return columns


#: the alias a table's rows are hashed under (a row as one value): a name no column should have
ROW = "flywheel_publish_row"


def _sync_rows(con: duckdb.DuckDBPyConnection, qualified: str) -> int:
    """Bring the copy's table ``qualified`` to the warehouse's rows by row content, as multisets:
    per row hash, the rows of each side are counted, and for every hash whose count differs the
    copy's rows with that hash are deleted and the warehouse's inserted (so a row that occurs
    twice on one side and once on the other is put right too). Returns the rows written
    (deleted + inserted)."""
    source = f"{SOURCE_ALIAS}.{qualified}"
    counted = "select hash({row}) as h, count(*) as n from {table} as {row} group by 1"
    con.execute(
        "create temp table publish_changed as "
        f"with theirs as ({counted.format(row=ROW, table=source)}), "
        f"ours as ({counted.format(row=ROW, table=qualified)}) "
        "select coalesce(theirs.h, ours.h) as h from theirs full outer join ours using (h) "
        "where theirs.n is distinct from ours.n"
    )
    deleted = con.execute(
        f"delete from {qualified} as {ROW} "
        f"where hash({ROW}) in (select publish_changed.h from publish_changed)"
    ).fetchall()[0][0]
    inserted = con.execute(
        f"insert into {qualified} select {ROW}.* from {source} as {ROW} "
        f"where hash({ROW}) in (select publish_changed.h from publish_changed)"
    ).fetchall()[0][0]
    con.execute("drop table publish_changed")
    return int(deleted) + int(inserted)


def sync_relations(
    con: duckdb.DuckDBPyConnection, relations: list[tuple[str, str]], meta_schema: str
) -> tuple[dict[str, int], int]:
    """Bring the copy (the previous snapshot) to the attached warehouse's content, in one
    transaction: tables synced row by content, copied whole when new or when their columns
    changed (or when a synced table's row count disagrees), tables no longer published dropped.
    Returns the row counts and the rows written."""
    theirs = _columns(con, SOURCE_ALIAS)
    ours = _columns(con, _current_database(con))
    written = 0
    row_counts: dict[str, int] = {}
    con.execute("begin transaction")
    con.execute(f"drop schema if exists {quote(meta_schema)} cascade")  # written again after
    for schema, name in sorted(set(ours) - set(relations)):
        if schema == meta_schema:
            continue
        con.execute(f"drop table {quote(schema)}.{quote(name)}")
    for schema, name in relations:
        qualified = f"{quote(schema)}.{quote(name)}"
        expected = _count(con, f"{SOURCE_ALIAS}.{qualified}")
        synced = None
        if ours.get((schema, name)) == theirs.get((schema, name)):
            synced = _sync_rows(con, qualified)
        if synced is None or _count(con, qualified) != expected:
            con.execute(f"create schema if not exists {quote(schema)}")
            _copy_whole(con, schema, name)
            synced = expected
        written += synced
        row_counts[f"{schema}.{name}"] = expected
    con.execute("commit")
    return row_counts, written


def _current_database(con: duckdb.DuckDBPyConnection) -> str:
    return str(con.execute("select current_database()").fetchall()[0][0])

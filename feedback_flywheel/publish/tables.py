"""Bringing the published tables into a new serving copy (:mod:`.serving`): copied whole from
the attached warehouse, or synced in a copy of the previous snapshot.

Syncing a table: the rows of the copy whose content (DuckDB's 64-bit ``hash`` of the whole row)
no longer occurs in the warehouse are deleted, and the warehouse's rows whose content does not
occur in the copy are inserted; a table whose columns changed is copied whole. Each synced table
is then checked: its row count must equal the warehouse's, else it is copied whole (duplicate
rows, or two different rows with one hash, would show there). What a sync cannot see is one row
replaced by another with the same 64-bit hash, about 1 in 10^19 per changed row; every
``serving.MAX_SYNCS``-th publish is a full copy, which also gives back the space deleted rows
leave in the file.
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


def _sync_rows(con: duckdb.DuckDBPyConnection, qualified: str) -> int:
    """Bring the copy's table ``qualified`` to the warehouse's rows by row content: delete the
    rows whose hash the warehouse no longer has, insert the warehouse's rows whose hash the copy
    lacks. Returns the rows written (deleted + inserted)."""
    source = f"{SOURCE_ALIAS}.{qualified}"
    con.execute(f"create temp table publish_new as select hash(s) as h from {source} as s")
    con.execute(
        f"create temp table publish_old as select hash(t) as h, t.rowid as r from {qualified} as t"
    )
    deleted = con.execute(
        f"""
        delete from {qualified} where rowid in (
            select publish_old.r from publish_old anti join publish_new using (h)
        )
        """
    ).fetchall()[0][0]
    inserted = con.execute(
        f"""
        insert into {qualified} select s.* from {source} as s
        where hash(s) in (select publish_new.h from publish_new anti join publish_old using (h))
        """
    ).fetchall()[0][0]
    con.execute("drop table publish_new")
    con.execute("drop table publish_old")
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
        if ours.get((schema, name)) == theirs.get((schema, name)):
            written += _sync_rows(con, qualified)
        if ours.get((schema, name)) != theirs.get((schema, name)) or _count(con, qualified) != (
            expected
        ):
            con.execute(f"create schema if not exists {quote(schema)}")
            _copy_whole(con, schema, name)
            written += expected
        row_counts[f"{schema}.{name}"] = expected
    con.execute("commit")
    return row_counts, written


def _current_database(con: duckdb.DuckDBPyConnection) -> str:
    return str(con.execute("select current_database()").fetchall()[0][0])

"""The serving snapshot: a read-only copy of the marts that dashboards and BI tools read.

DuckDB allows one writer process, or many read-only processes, never both: a dashboard reading
the warehouse would block the next ``dbt build``, and a running build would lock the dashboard
out. So after each successful batch the flow *publishes* a separate DuckDB file:

1. a new file is built next to the published one, under a temporary name in the same folder:
   a byte copy of the published one when it came from the same warehouse and DuckDB version
   (and has been synced fewer than ``MAX_SYNCS`` times since it was last built from scratch),
   else an empty file;
2. the warehouse is attached to it ``READ_ONLY`` and every table of the ``marts`` schema (the
   marts and reports; views stay in the warehouse) and the ``ml`` tables declared as published
   in ``warehouse/ml_tables.py`` are brought to the warehouse's content: into an empty file
   with ``CREATE TABLE ... AS SELECT``; into the copy by *syncing* each table, which
   writes only the rows a batch changed instead of every row of the history;
3. a metadata table ``meta.snapshot`` records when, from which warehouse and batch, and how many
   rows each table holds;
4. the file is checkpointed, closed, flushed to disk and moved onto the published name with
   ``os.replace`` — an atomic rename on the same file system.

A reader therefore sees either the complete old copy or the complete new one, never a half-built
file; a reader that opened the old copy keeps reading it (the rename does not touch an open
file) until it closes. Readers open the copy ``read_only`` per query and close it again
(:func:`open_snapshot`). ``COPY FROM DATABASE`` would copy the whole warehouse (raw data and
views that point at it) instead of the marts, which is why each table is copied on its own.

How a table is synced, and what a sync cannot see: :mod:`.tables`.

Where: ``$FLYWHEEL_SERVING_DUCKDB`` if set, else ``<warehouse stem>.serving.duckdb`` next to the
warehouse (``data/flywheel.serving.duckdb`` by default).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from feedback_flywheel.config.faults import fault_point
from feedback_flywheel.config.paths import SERVING_ENV
from feedback_flywheel.publish.tables import (
    SOURCE_ALIAS,
    copy_relations,
    sync_relations,
)
from feedback_flywheel.warehouse.catalogue import BATCH_RUNS
from feedback_flywheel.warehouse.schema import PUBLISHED_ML_TABLES

#: publishes in a row that sync the previous copy in place; the next one builds from scratch
MAX_SYNCS = 20

#: every table of these schemas is published (dbt's marts and reports; views stay behind)
PUBLISHED_SCHEMAS = ("marts",)
#: and these tables, when the warehouse has them: the ml tables declared as published in
#: feedback_flywheel/warehouse/schema.py (every one but the per-output reward scores)
PUBLISHED_RELATIONS: tuple[tuple[str, str], ...] = tuple(
    tuple(name.split(".", 1))
    for name in PUBLISHED_ML_TABLES  # type: ignore[misc]
)

META_SCHEMA = "meta"
META_TABLE = f"{META_SCHEMA}.snapshot"
META_DDL = f"""
create table {META_TABLE} (
    snapshot_id varchar not null,
    batch_id varchar,
    source_db varchar not null,
    table_schema varchar not null,
    table_name varchar not null,
    row_count bigint not null,
    duckdb_version varchar not null,
    published_at timestamp not null,
    synced_publishes integer not null,
    primary key (table_schema, table_name)
)
"""


class SnapshotMissingError(FileNotFoundError):
    """No serving snapshot has been published at the path yet."""


class PublishError(RuntimeError):
    """The snapshot could not be published (the message says why and what to do)."""


@dataclass(frozen=True)
class PublishResult:
    path: Path
    source_db: Path
    batch_id: str | None
    published_at: datetime
    seconds: float
    row_counts: dict[str, int] = field(default_factory=dict)
    #: "full" (built from scratch) or "synced" (the previous copy brought up to date)
    mode: str = "full"
    #: rows deleted and inserted by a sync, over all tables (a full build inserts them all)
    rows_written: int = 0

    def describe(self) -> str:
        rows = sum(self.row_counts.values())
        how = (
            f"synced the previous copy ({self.rows_written:,} rows written)"
            if self.mode == "synced"
            else "built from scratch"
        )
        return (
            f"published {len(self.row_counts)} tables ({rows:,} rows) of batch "
            f"{self.batch_id or '(none)'} to {self.path} in {self.seconds:.1f} s; {how}"
        )


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _source_relations(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """(schema, name) of every relation to publish that exists in the attached warehouse: the
    tables of the published schemas (their views — lineage over every raw row, features of
    every output — are cheap to query in the warehouse and can be as large as raw, so they stay
    there) and the published ml tables."""
    found = con.execute(
        "select schema_name, table_name from duckdb_tables() where database_name = ?",
        [SOURCE_ALIAS],
    ).fetchall()
    existing = {(schema, name) for schema, name in found}
    selected = sorted(rel for rel in existing if rel[0] in PUBLISHED_SCHEMAS)
    selected += [rel for rel in PUBLISHED_RELATIONS if rel in existing and rel not in selected]
    return selected


def _latest_batch(con: duckdb.DuckDBPyConnection, relations: list[tuple[str, str]]) -> str | None:
    if (BATCH_RUNS.schema, BATCH_RUNS.name) not in relations:
        return None
    row = con.execute(
        f"""
        select batch_id from {SOURCE_ALIAS}.{BATCH_RUNS} where status = 'success'
        order by window_end desc, finished_at desc limit 1
        """
    ).fetchone()
    return row[0] if row else None


def _remove(path: Path) -> None:
    for candidate in (path, path.with_name(path.name + ".wal")):
        with contextlib.suppress(FileNotFoundError):
            candidate.unlink()


def _attach_source(con: duckdb.DuckDBPyConnection, source: Path) -> None:
    try:
        con.execute(f"attach {_literal(str(source))} as {SOURCE_ALIAS} (read_only)")
    except duckdb.IOException as error:
        if "lock" in str(error).lower():
            raise PublishError(
                f"{source} is open for writing in another process (a build is running?): "
                "publish after it finishes, e.g. `flywheel publish` — the batch cycle "
                "publishes by itself after each successful batch"
            ) from error
        raise


def _check_paths(source: Path, target: Path) -> None:
    if not source.exists():
        raise FileNotFoundError(
            f"no warehouse at {source}: run `flywheel run` (or `make run`) first, "
            "or point FLYWHEEL_DUCKDB / --db at an existing file"
        )
    if target == source:
        raise PublishError(
            f"the serving copy {target} would overwrite the warehouse itself: set "
            f"{SERVING_ENV} to another file"
        )


def remove_stale_copies(target: Path) -> list[Path]:
    """Remove half-built copies a killed publish left beside ``target`` (``.<name>.*.building``
    and their ``.wal``); returns what was removed. Publishers hold the run lock, so none of them
    belongs to a publish still running."""
    removed = []
    for leftover in sorted(Path(target).parent.glob(f".{Path(target).name}.*.building*")):
        _remove(leftover)
        removed.append(leftover)
    return removed


def _temporary_beside(target: Path) -> Path:
    """A fresh temporary name in the target's folder, so os.replace is a rename on one file
    system (the file itself is not created: DuckDB creates it, an empty file is no database)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary_name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".building", dir=target.parent
    )
    os.close(handle)
    temporary = Path(temporary_name)
    temporary.unlink()
    return temporary


def _previous_syncs(target: Path, source: Path) -> int | None:
    """How often the published copy at ``target`` has been synced since it was built from
    scratch, when it can be synced again (it came from ``source`` with this DuckDB version and
    has been synced fewer than MAX_SYNCS times); else None (build from scratch)."""
    if not target.exists():
        return None
    try:
        with duckdb.connect(str(target), read_only=True) as con:
            rows = con.execute(
                f"select distinct source_db, duckdb_version, synced_publishes from {META_TABLE}"
            ).fetchall()
    except duckdb.Error:  # an older copy without the column, or not a snapshot at all
        return None
    if len(rows) != 1:
        return None
    source_db, version, synced = rows[0]
    if source_db != str(source) or version != duckdb.__version__ or synced >= MAX_SYNCS:
        return None
    return int(synced)


def _write_meta(
    con: duckdb.DuckDBPyConnection,
    source: Path,
    batch_id: str | None,
    published_at: datetime,
    row_counts: dict[str, int],
    synced_publishes: int = 0,
) -> None:
    con.execute(f"create schema {META_SCHEMA}")
    con.execute(META_DDL)
    snapshot_id = f"{batch_id or 'none'}@{published_at:%Y%m%dT%H%M%S.%f}"
    con.executemany(
        f"insert into {META_TABLE} values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            [
                snapshot_id,
                batch_id,
                str(source),
                *relation.split(".", 1),
                count,
                duckdb.__version__,
                published_at,
                synced_publishes,
            ]
            for relation, count in row_counts.items()
        ],
    )


def _swap_in(temporary: Path, target: Path) -> None:
    """Flush the new copy to disk and rename it onto the published name, durably."""
    with open(temporary, "rb+") as written:  # the bytes are on disk before the rename
        os.fsync(written.fileno())
    _remove(target.with_name(target.name + ".wal"))  # never replay a stale log onto it
    os.replace(temporary, target)
    with contextlib.suppress(OSError):  # make the rename itself durable
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def publish(
    db_path: Path, target: Path, *, batch_id: str | None = None, full: bool = False
) -> PublishResult:
    """Copy the marts (and the ml tables dashboards read) of the warehouse ``db_path`` into a
    new DuckDB file and atomically move it onto ``target`` (the run's ``serving_path``).

    ``batch_id`` is recorded in the metadata; by default the latest successful batch of
    ``ml.batch_runs``. Nothing at ``target`` changes unless the whole copy succeeded. The
    previous copy is synced rather than rebuilt when it can be (see the module's docs), and
    built from scratch when the sync fails; ``full`` always builds from scratch.
    """
    started = time.perf_counter()
    source, target = Path(db_path).resolve(), Path(target).resolve()
    _check_paths(source, target)
    remove_stale_copies(target)
    temporary = _temporary_beside(target)
    published_at = datetime.now(UTC).replace(tzinfo=None)
    syncs = None if full else _previous_syncs(target, source)
    written = 0
    try:
        if syncs is not None:
            shutil.copyfile(target, temporary)
        con = duckdb.connect(str(temporary))
        try:
            _attach_source(con, source)
            relations = _source_relations(con)
            if not any(schema in PUBLISHED_SCHEMAS for schema, _ in relations):
                raise PublishError(f"{source} has no marts yet: build it first with `flywheel run`")
            batch_id = batch_id or _latest_batch(con, relations)
            if syncs is None:
                row_counts = copy_relations(con, relations)
                written = sum(row_counts.values())
            else:
                row_counts, written = sync_relations(con, relations, META_SCHEMA)
            con.execute(f"detach {SOURCE_ALIAS}")
            synced = 0 if syncs is None else syncs + 1
            _write_meta(con, source, batch_id, published_at, row_counts, synced)
            con.execute("checkpoint")
        finally:
            con.close()
        fault_point("publish:building")
        _swap_in(temporary, target)
    except duckdb.Error:
        _remove(temporary)
        if syncs is None:
            raise
        # a sync that failed (e.g. a view someone made in the copy) is thrown away: build the
        # copy from scratch instead; an error there is the warehouse's and is raised
        return publish(db_path, target, batch_id=batch_id, full=True)
    except BaseException:
        _remove(temporary)
        raise
    return PublishResult(
        path=target,
        source_db=source,
        batch_id=batch_id,
        published_at=published_at,
        seconds=time.perf_counter() - started,
        row_counts=row_counts,
        mode="full" if syncs is None else "synced",
        rows_written=written,
    )


@contextlib.contextmanager
def open_snapshot(path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the published copy read-only, and close it on exit.

    Open per read and close again: within one process DuckDB reuses an open database, so a
    connection kept open would go on serving the old copy after a new one is published.
    """
    path = Path(path)
    if not path.exists():
        raise SnapshotMissingError(
            f"no serving snapshot at {path} yet: run a batch (`flywheel run`, `make run`) or "
            "publish the warehouse you have with `flywheel publish`"
        )
    con = duckdb.connect(str(path), read_only=True)
    try:
        yield con
    finally:
        con.close()

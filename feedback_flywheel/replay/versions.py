"""Buffer versions: one per batch, named ``rb-<batch_id>``, identified by the hash of the
transitions it holds. A version is rebuildable exactly from the buffer and its eviction log:
it holds what was inserted at or before its batch and not evicted at or before it."""

from __future__ import annotations

import hashlib
from typing import Any

import duckdb

from feedback_flywheel.warehouse.catalogue import REPLAY_BUFFER, REPLAY_EVICTIONS, REPLAY_VERSIONS

#: what the audit row of a version records
AUDIT_FIELDS = (
    "batch_id",
    "buffer_version",
    "size",
    "capacity",
    "inserted",
    "evicted",
    "evictions_json",
    "membership_hash",
    "policy_version",
)


def buffer_version(batch_id: str) -> str:
    return f"rb-{batch_id}"


def audit_payload(record: dict[str, Any]) -> dict[str, Any]:
    return {name: record[name] for name in AUDIT_FIELDS}


def _hash(ids: list[str]) -> str:
    digest = hashlib.sha256()
    for transition_id in ids:
        digest.update(transition_id.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def live_membership_hash(con: duckdb.DuckDBPyConnection) -> str:
    """SHA-256 over the sorted transition ids the buffer holds now (one per line)."""
    ids = [
        row[0]
        for row in con.execute(
            f"select transition_id from {REPLAY_BUFFER} order by transition_id"
        ).fetchall()
    ]
    return _hash(ids)


def members_at(con: duckdb.DuckDBPyConnection, batch_id: str) -> list[str]:
    """The transition ids version ``rb-<batch_id>`` held, rebuilt from the buffer and the
    eviction log, sorted."""
    rows = con.execute(
        f"""
        select transition_id from {REPLAY_BUFFER} where inserted_batch_id <= ?
        union all
        select transition_id from {REPLAY_EVICTIONS}
        where inserted_batch_id <= ? and batch_id > ?
        order by transition_id
        """,
        [batch_id, batch_id, batch_id],
    ).fetchall()
    return [row[0] for row in rows]


def rebuilt_hash(con: duckdb.DuckDBPyConnection, batch_id: str) -> str:
    return _hash(members_at(con, batch_id))


def verify(con: duckdb.DuckDBPyConnection) -> list[tuple[str, bool]]:
    """Per recorded version: whether rebuilding it gives the membership hash it recorded."""
    return [
        (batch_id, rebuilt_hash(con, batch_id) == recorded)
        for batch_id, recorded in con.execute(
            f"select batch_id, membership_hash from {REPLAY_VERSIONS} order by batch_id"
        ).fetchall()
    ]

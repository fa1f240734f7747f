"""Verifying the audit trail (``flywheel audit verify``): three checks, the first failure named.

1. **The chain.** Walk ``ml.audit_log`` in ``seq`` order: no gap in the sequence, every
   ``prev_hash`` equals the previous row's hash, every ``row_hash`` equals the HMAC recomputed
   from the row's content under the audit key. A row edited, deleted, re-ordered, or forged
   without the key breaks it.
2. **The heads.** Every successful batch recorded the chain's head (seq and hash) when it closed
   (``ml.batch_runs.audit_head_seq`` / ``audit_head_hash``, also in the batch's Prefect artifact
   and the serving copy); each must still be in the chain at that seq, and a head noted by hand
   (``--head HASH``, with ``--count N``) too. Rows cut off the end of the chain, or a chain
   rewritten from scratch, fail here.
3. **The tables** (:mod:`.crosscheck`): every audited table agrees with its chain rows, so an
   edit of ``ml.retraining_decisions`` (or any audited table) alone is caught.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import duckdb

from feedback_flywheel.audit.chain import (
    AUDIT_COLUMNS,
    AUDIT_TABLE,
    GENESIS_HASH,
    compute_row_hash,
    table_exists,
)
from feedback_flywheel.audit.crosscheck import crosscheck
from feedback_flywheel.warehouse.catalogue import BATCH_RUNS


@dataclasses.dataclass(frozen=True)
class BrokenLink:
    """The first place where the trail does not hold."""

    seq: int
    #: gap | prev_hash_mismatch | content_hash_mismatch | head_not_found | table_mismatch
    problem: str
    detail: str


@dataclasses.dataclass(frozen=True)
class VerifyResult:
    count: int
    head_hash: str | None
    broken: BrokenLink | None
    tables_checked: int = 0

    @property
    def ok(self) -> bool:
        return self.broken is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "count": self.count,
            "head_hash": self.head_hash,
            "tables_checked": self.tables_checked,
            "broken": None if self.broken is None else dataclasses.asdict(self.broken),
        }


def _walk(key: bytes, rows: list[tuple]) -> BrokenLink | None:
    """The first broken link of the chain ``rows`` (in seq order), or None."""
    expected_seq, prev_hash = 1, GENESIS_HASH
    for seq, kind, subject_id, batch_id, payload_json, stored_prev, row_hash, recorded_at in rows:
        if seq != expected_seq:
            what = "missing" if seq > expected_seq else "repeated or out of order"
            return BrokenLink(
                expected_seq,
                "gap",
                f"expected seq {expected_seq}, found seq {seq} (row {expected_seq} {what})",
            )
        if stored_prev != prev_hash:
            return BrokenLink(
                seq,
                "prev_hash_mismatch",
                f"prev_hash is {stored_prev}, but the row before it hashes to {prev_hash}",
            )
        recomputed = compute_row_hash(
            key=key,
            seq=seq,
            recorded_at=recorded_at,
            kind=kind,
            subject_id=subject_id,
            batch_id=batch_id,
            payload_json=payload_json,
            prev_hash=stored_prev,
        )
        if recomputed != row_hash:
            return BrokenLink(
                seq,
                "content_hash_mismatch",
                f"row_hash of this row ({kind} {subject_id}) does not match its content under "
                "the audit key: a column was changed, or the row was written without the key",
            )
        expected_seq, prev_hash = seq + 1, row_hash
    return None


def _recorded_heads(con: duckdb.DuckDBPyConnection) -> list[tuple[str, int, str]]:
    """(batch, seq, hash) of the head every successful batch recorded when it closed (none when
    the warehouse has no batch runs table, e.g. a bare copy of the log)."""
    (present,) = con.execute(
        "select count(*) from information_schema.columns "
        "where table_schema = ? and table_name = ? and column_name = 'audit_head_hash'",
        [BATCH_RUNS.schema, BATCH_RUNS.name],
    ).fetchone()
    if not present:
        return []
    return con.execute(
        f"""
        select batch_id, audit_head_seq, audit_head_hash from {BATCH_RUNS}
        where status = 'success' and audit_head_seq is not null
        order by audit_head_seq, batch_id
        """
    ).fetchall()


def serving_heads(serving_path: Path) -> list[tuple[str, int, str]]:
    """The heads the serving copy holds (its copy of ml.batch_runs), as (source, seq, hash): a
    second, separate record of every batch's head. Empty when there is no copy (or an old one
    without heads)."""
    if not Path(serving_path).exists():
        return []
    try:
        with duckdb.connect(str(serving_path), read_only=True) as con:
            found = _recorded_heads(con)
    except duckdb.Error:
        return []
    return [(f"the serving copy's batch {batch}", seq, value) for batch, seq, value in found]


def _check_heads(
    rows: list[tuple],
    heads: list[tuple[str, int, str]],
) -> BrokenLink | None:
    hashes = {int(row[0]): str(row[6]) for row in rows}
    for source, seq, expected in heads:
        if hashes.get(int(seq)) != expected:
            return BrokenLink(
                int(seq),
                "head_not_found",
                f"{source} noted head {expected} at seq {seq}, but the chain "
                + (
                    f"has {len(rows)} rows"
                    if int(seq) > len(rows)
                    else f"holds {hashes.get(int(seq))} there"
                )
                + ": rows were removed from its end, or the chain was rewritten",
            )
    return None


def verify(
    con: duckdb.DuckDBPyConnection,
    *,
    key: bytes,
    expected_head: str | None = None,
    expected_count: int | None = None,
    extra_heads: list[tuple[str, int, str]] | None = None,
    tables: bool = True,
) -> VerifyResult:
    """Verify the chain, the recorded heads and (with ``tables``) every audited table.

    ``expected_head`` is a head hash noted earlier; with ``expected_count`` it must be the row at
    that seq, without it anywhere in the chain. ``extra_heads`` are (source, seq, hash) recorded
    elsewhere (:func:`serving_heads`: the serving copy's batch runs).
    """
    rows = (
        con.execute(f"select {', '.join(AUDIT_COLUMNS)} from {AUDIT_TABLE} order by seq").fetchall()
        if table_exists(con)
        else []
    )
    head = str(rows[-1][6]) if rows else None
    broken = _walk(key, rows)
    if broken is None:
        heads = [(f"batch {batch}", seq, value) for batch, seq, value in _recorded_heads(con)]
        heads += extra_heads or []
        if expected_head is not None and expected_count is not None:
            heads.append(("the noted head", expected_count, expected_head))
        broken = _check_heads(rows, heads)
    if (
        broken is None
        and expected_head is not None
        and expected_count is None
        and expected_head not in {str(row[6]) for row in rows}
    ):
        broken = BrokenLink(
            len(rows) + 1,
            "head_not_found",
            f"the noted head {expected_head} is not in the chain: rows were removed from "
            "its end, or the chain was rewritten",
        )
    checked = 0
    if broken is None and tables:
        problems, checked = crosscheck(con, rows)
        if problems:
            broken = BrokenLink(problems[0][0], "table_mismatch", problems[0][1])
    return VerifyResult(len(rows), head, broken, checked)

"""The audit trail: an append-only, hash-chained log of everything the flywheel decided or made.

Every retraining decision, dataset version, training run, deployment, reward model and replay
buffer change appends one row to ``ml.audit_log`` through :func:`record`. Each row carries the
SHA-256 of the previous row (``prev_hash``) and its own ``row_hash`` over a canonical
serialisation of ``(seq, recorded_at, kind, subject_id, batch_id, payload_json, prev_hash)``, so
editing, deleting or re-ordering any row breaks the chain at that row; :func:`verify` (``flywheel
audit verify``) recomputes it and names the first broken link.

Rules:

- **Append-only.** Nothing in the package updates or deletes ``ml.audit_log``.
- **Gap-free sequence.** ``seq`` runs 1..n; the first row's ``prev_hash`` is 64 zeros.
- **Canonical payloads.** ``payload_json`` is ``json.dumps(sort_keys=True, separators=(",",
  ":"))`` of the payload after normalisation: datetimes and dates as ISO 8601 text, numpy and
  pandas scalars as plain numbers, NaN/NaT/NA as null, tuples and sets as lists (sets sorted).
  Equal content therefore always gives the same text and the same hash.
- **Idempotency.** A row is appended unless the *latest* row with the same ``(kind,
  subject_id)`` already has the same ``batch_id`` and ``payload_json``; then nothing is written
  and that row's hash is returned. Re-running a batch (which reproduces the same facts) does not
  grow the log, while a real change — even back to an earlier state (A → B → A) — is recorded.
- **Atomic.** Reading the head (last ``seq`` and hash) and inserting happen in one transaction.
  When the caller already has a transaction open on ``con`` (to write the audited thing and its
  audit row together), :func:`record` joins it and the caller's commit or rollback covers both.

The chain proves that the rows still agree with each other. It cannot, on its own, notice that
the *newest* rows were cut off or that someone rewrote the whole chain: note the head hash
``flywheel audit verify`` prints (e.g. in the batch's Prefect artifact or a ticket) and check it
later with ``flywheel audit verify --head HASH``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import UTC, date, datetime
from datetime import time as time_of_day
from decimal import Decimal
from typing import Any

import duckdb

from feedback_flywheel.warehouse.catalogue import AUDIT_LOG
from feedback_flywheel.warehouse.schema import AUDIT_LOG as AUDIT_LOG_TABLE

AUDIT_TABLE = AUDIT_LOG
GENESIS_HASH = "0" * 64
APPEND_ATTEMPTS = 20

#: Kinds written by the package. Others may be used (e.g. by extensions); they must be non-empty.
KNOWN_KINDS = (
    "decision",
    "dataset_version",
    "training_run",
    "deployment",
    "reward_model",
    "replay_buffer",
)

#: the columns of ml.audit_log, in order
AUDIT_COLUMNS = AUDIT_LOG_TABLE.column_names


def ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    """Create ``ml.audit_log`` (and the ``ml`` schema) if missing (``flywheel init`` creates it
    with every other table; a bare connection in a test or an extension may not have). Safe to
    repeat."""
    con.execute("create schema if not exists ml")
    con.execute(AUDIT_LOG_TABLE.ddl())


# --- canonical serialisation -------------------------------------------------------------------


def _normalise(value: Any) -> Any:
    """Turn a payload into plain JSON types, deterministically (see the module docstring)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, Decimal):
        return _normalise(float(value)) if value != value.to_integral_value() else int(value)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat()
    if isinstance(value, (date, time_of_day)):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(key): _normalise(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalise(item) for item in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_normalise(item) for item in value), key=canonical_json)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _normalise(dataclasses.asdict(value))
    # numpy / pandas scalars, pandas NaT / NA, without importing them here.
    if type(value).__name__ in {"NaTType", "NAType"}:
        return None
    if hasattr(value, "to_pydatetime"):
        return _normalise(value.to_pydatetime())
    if hasattr(value, "item"):
        return _normalise(value.item())
    if hasattr(value, "tolist"):
        return _normalise(value.tolist())
    raise TypeError(
        f"audit payload value {value!r} of type {type(value).__name__} is not JSON-serialisable; "
        "pass numbers, strings, booleans, datetimes, lists or dicts"
    )


def canonical_json(value: Any) -> str:
    """The one text form of a payload: normalised, keys sorted, no whitespace."""
    return json.dumps(
        _normalise(value),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )


def _timestamp_text(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f")


def compute_row_hash(
    *,
    seq: int,
    recorded_at: datetime,
    kind: str,
    subject_id: str,
    batch_id: str | None,
    payload_json: str,
    prev_hash: str,
) -> str:
    """SHA-256 (hex) over the canonical JSON array of the row's content and the previous hash."""
    content = [
        int(seq),
        _timestamp_text(recorded_at),
        kind,
        subject_id,
        batch_id,
        payload_json,
        prev_hash,
    ]
    text = json.dumps(content, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _utc_now() -> datetime:
    # Microsecond precision: what a DuckDB timestamp keeps, so the hash survives a round trip.
    return datetime.now(UTC).replace(tzinfo=None)


def _in_transaction(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether ``con`` has an explicit transaction open (autocommit gives every statement a new
    transaction id; inside ``begin`` they share one). Probing with ``begin`` would abort it."""
    (first,) = con.execute("select txid_current()").fetchone()
    (second,) = con.execute("select txid_current()").fetchone()
    return first == second


# --- writing -----------------------------------------------------------------------------------


@contextmanager
def atomic(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """A transaction around the audited write and its :func:`record`: begun here unless ``con``
    already has one open (then the caller's commit or rollback decides)."""
    if _in_transaction(con):
        yield con
        return
    con.execute("begin transaction")
    try:
        yield con
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")


def _append(
    con: duckdb.DuckDBPyConnection,
    kind: str,
    subject_id: str,
    batch_id: str | None,
    payload_json: str,
) -> str:
    latest = con.execute(
        f"""
        select batch_id, payload_json, row_hash from {AUDIT_TABLE}
        where kind = ? and subject_id = ? order by seq desc limit 1
        """,
        [kind, subject_id],
    ).fetchone()
    if latest is not None and latest[0] == batch_id and latest[1] == payload_json:
        return str(latest[2])
    head = con.execute(
        f"select seq, row_hash from {AUDIT_TABLE} order by seq desc limit 1"
    ).fetchone()
    seq, prev_hash = (int(head[0]) + 1, str(head[1])) if head else (1, GENESIS_HASH)
    recorded_at = _utc_now()
    row_hash = compute_row_hash(
        seq=seq,
        recorded_at=recorded_at,
        kind=kind,
        subject_id=subject_id,
        batch_id=batch_id,
        payload_json=payload_json,
        prev_hash=prev_hash,
    )
    con.execute(
        f"insert into {AUDIT_TABLE} ({', '.join(AUDIT_COLUMNS)}) values (?, ?, ?, ?, ?, ?, ?, ?)",
        [seq, kind, subject_id, batch_id, payload_json, prev_hash, row_hash, recorded_at],
    )
    return row_hash


def record(
    con: duckdb.DuckDBPyConnection,
    *,
    kind: str,
    subject_id: str,
    payload: dict,
    batch_id: str | None = None,
) -> str:
    """Append one audit row (unless the latest row of ``(kind, subject_id)`` already says the
    same) and return its ``row_hash``.

    ``kind`` names what happened (``decision``, ``dataset_version``, ``training_run``,
    ``deployment``, ``reward_model``, ``replay_buffer``, …), ``subject_id`` the id of the thing it
    happened to (decision_id, dataset_version, training_run_id, …), ``payload`` its content
    (anything :func:`canonical_json` accepts). If ``con`` has a transaction open, the row joins it;
    otherwise the read-head-and-insert runs in its own transaction.
    """
    if not kind or not isinstance(kind, str):
        raise ValueError(f"audit kind must be a non-empty string (e.g. {', '.join(KNOWN_KINDS)})")
    if not subject_id or not isinstance(subject_id, str):
        raise ValueError(f"audit subject_id must be a non-empty string; got {subject_id!r}")
    if not isinstance(payload, Mapping):
        raise TypeError(f"audit payload must be a dict; got {type(payload).__name__}")
    payload_json = canonical_json(payload)
    if _in_transaction(con):
        ensure_table(con)
        return _append(con, kind, subject_id, batch_id, payload_json)
    ensure_table(con)
    for attempt in range(APPEND_ATTEMPTS):
        con.execute("begin transaction")
        try:
            row_hash = _append(con, kind, subject_id, batch_id, payload_json)
            con.execute("commit")
            return row_hash
        except (duckdb.TransactionException, duckdb.ConstraintException):
            # Another connection of this process appended the same seq first (the primary key on
            # seq refuses a fork of the chain): read the new head and try again.
            _rollback_quietly(con)
            if attempt == APPEND_ATTEMPTS - 1:
                raise
            time.sleep(0.01 * (attempt + 1))
        except BaseException:
            _rollback_quietly(con)
            raise
    raise AssertionError("unreachable")


def _rollback_quietly(con: duckdb.DuckDBPyConnection) -> None:
    with suppress(duckdb.TransactionException):  # nothing open any more
        con.execute("rollback")


# --- what the package records ------------------------------------------------------------------


# --- verifying ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BrokenLink:
    """The first place where the chain does not hold."""

    seq: int
    problem: str  # gap | prev_hash_mismatch | content_hash_mismatch | head_not_found
    detail: str


@dataclasses.dataclass(frozen=True)
class VerifyResult:
    count: int
    head_hash: str | None
    broken: BrokenLink | None

    @property
    def ok(self) -> bool:
        return self.broken is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "count": self.count,
            "head_hash": self.head_hash,
            "broken": None if self.broken is None else dataclasses.asdict(self.broken),
        }


def table_exists(con: duckdb.DuckDBPyConnection) -> bool:
    (found,) = con.execute(
        "select count(*) from information_schema.tables "
        "where table_schema = 'ml' and table_name = 'audit_log'"
    ).fetchone()
    return bool(found)


def verify(con: duckdb.DuckDBPyConnection, *, expected_head: str | None = None) -> VerifyResult:
    """Recompute the chain in ``seq`` order and return the first broken link, if any.

    Checked per row, in this order: the sequence has no gap (``seq`` = previous + 1, starting at
    1), ``prev_hash`` equals the previous row's ``row_hash`` (64 zeros for the first), and
    ``row_hash`` equals the hash recomputed from the row's content. With ``expected_head`` (a
    head hash noted earlier) the chain must also still contain that hash, which catches rows cut
    off the end.
    """
    if not table_exists(con):
        rows: list[tuple] = []
    else:
        rows = con.execute(
            f"select {', '.join(AUDIT_COLUMNS)} from {AUDIT_TABLE} order by seq"
        ).fetchall()
    expected_seq, prev_hash = 1, GENESIS_HASH
    seen_expected = expected_head is None
    head = str(rows[-1][6]) if rows else None
    for seq, kind, subject_id, batch_id, payload_json, stored_prev, row_hash, recorded_at in rows:
        if seq != expected_seq:
            what = "missing" if seq > expected_seq else "repeated or out of order"
            return VerifyResult(
                len(rows),
                head,
                BrokenLink(
                    expected_seq,
                    "gap",
                    f"expected seq {expected_seq}, found seq {seq} (row {expected_seq} {what})",
                ),
            )
        if stored_prev != prev_hash:
            return VerifyResult(
                len(rows),
                head,
                BrokenLink(
                    seq,
                    "prev_hash_mismatch",
                    f"prev_hash is {stored_prev}, but the row before it hashes to {prev_hash}",
                ),
            )
        recomputed = compute_row_hash(
            seq=seq,
            recorded_at=recorded_at,
            kind=kind,
            subject_id=subject_id,
            batch_id=batch_id,
            payload_json=payload_json,
            prev_hash=stored_prev,
        )
        if recomputed != row_hash:
            return VerifyResult(
                len(rows),
                head,
                BrokenLink(
                    seq,
                    "content_hash_mismatch",
                    f"row_hash is {row_hash}, but the row's content ({kind} {subject_id}) "
                    f"hashes to {recomputed}: a column of this row was changed",
                ),
            )
        seen_expected = seen_expected or row_hash == expected_head
        expected_seq, prev_hash = seq + 1, row_hash
    if not seen_expected:
        return VerifyResult(
            len(rows),
            head,
            BrokenLink(
                len(rows) + 1,
                "head_not_found",
                f"the noted head {expected_head} is not in the chain: rows were removed from "
                "its end, or the chain was rewritten",
            ),
        )
    return VerifyResult(len(rows), head, None)

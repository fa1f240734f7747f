"""The audit trail: an append-only, keyed hash chain of everything the flywheel decided or made.

Every retraining decision (and the outcome of its trigger), dataset version, training run,
deployment, reward model and replay buffer change appends one row to ``ml.audit_log`` through
:func:`record`. Each row carries the previous row's hash (``prev_hash``) and its own
``row_hash``: HMAC-SHA256, under the run's audit key (:mod:`feedback_flywheel.config.secrets`),
of a canonical serialisation of ``(seq, recorded_at, kind, subject_id, batch_id, payload_json,
prev_hash)``. Editing, deleting or re-ordering any row breaks the chain at that row, and a row
forged without the key does not verify even when its hash was computed by the rule.
:mod:`.verify` (``flywheel audit verify``) recomputes the chain, checks it against the heads each
batch recorded, and cross-checks every audited table against its rows.

Rules:

- **Append-only.** Nothing in the package updates or deletes ``ml.audit_log``.
- **Gap-free sequence.** ``seq`` runs 1..n; the first row's ``prev_hash`` is 64 zeros.
- **Canonical payloads** (:mod:`.canonical`): datetimes and dates as ISO 8601 text, numpy and
  pandas scalars as plain numbers, NaN/NaT/NA as null, tuples and sets as lists (sets sorted).
- **Idempotency.** A row is appended unless the *latest* row with the same ``(kind,
  subject_id)`` already has the same ``batch_id`` and ``payload_json``; then nothing is written
  and that row's hash is returned. Re-running a batch (which reproduces the same facts) does not
  grow the log, while a real change — even back to an earlier state (A → B → A) — is recorded.
- **Atomic.** Reading the head (last ``seq`` and hash) and inserting happen in one transaction.
  When the caller already has a transaction open on ``con`` (to write the audited thing and its
  audit row together), :func:`record` joins it and the caller's commit or rollback covers both.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import UTC, datetime

import duckdb

from feedback_flywheel.audit.canonical import canonical_json
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


def table_exists(con: duckdb.DuckDBPyConnection) -> bool:
    (found,) = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [AUDIT_TABLE.schema, AUDIT_TABLE.name],
    ).fetchone()
    return bool(found)


def _timestamp_text(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f")


def compute_row_hash(
    *,
    key: bytes,
    seq: int,
    recorded_at: datetime,
    kind: str,
    subject_id: str,
    batch_id: str | None,
    payload_json: str,
    prev_hash: str,
) -> str:
    """HMAC-SHA256 (hex) under ``key`` of the canonical JSON array of the row's content and the
    previous row's hash."""
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
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def _utc_now() -> datetime:
    # Microsecond precision: what a DuckDB timestamp keeps, so the hash survives a round trip.
    return datetime.now(UTC).replace(tzinfo=None)


def _in_transaction(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether ``con`` has an explicit transaction open (autocommit gives every statement a new
    transaction id; inside ``begin`` they share one). Probing with ``begin`` would abort it."""
    (first,) = con.execute("select txid_current()").fetchone()
    (second,) = con.execute("select txid_current()").fetchone()
    return first == second


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
    key: bytes,
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
    ).fetchall()
    if latest and latest[0][0] == batch_id and latest[0][1] == payload_json:
        return str(latest[0][2])
    head = con.execute(
        f"select seq, row_hash from {AUDIT_TABLE} order by seq desc limit 1"
    ).fetchall()
    seq, prev_hash = (int(head[0][0]) + 1, str(head[0][1])) if head else (1, GENESIS_HASH)
    recorded_at = _utc_now()
    row_hash = compute_row_hash(
        key=key,
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
    key: bytes,
    kind: str,
    subject_id: str,
    payload: dict,
    batch_id: str | None = None,
) -> str:
    """Append one audit row hashed under ``key`` (unless the latest row of ``(kind,
    subject_id)`` already says the same) and return its ``row_hash``.

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
    if not isinstance(key, bytes) or not key:
        raise ValueError("audit key must be non-empty bytes (Settings.secret.audit_key)")
    payload_json = canonical_json(payload)
    ensure_table(con)
    if _in_transaction(con):
        return _append(con, key, kind, subject_id, batch_id, payload_json)
    for attempt in range(APPEND_ATTEMPTS):
        con.execute("begin transaction")
        try:
            row_hash = _append(con, key, kind, subject_id, batch_id, payload_json)
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


def head(con: duckdb.DuckDBPyConnection) -> tuple[int, str] | None:
    """(seq, row_hash) of the chain's last row, or None for an empty chain."""
    if not table_exists(con):
        return None
    rows = con.execute(
        f"select seq, row_hash from {AUDIT_TABLE} order by seq desc limit 1"
    ).fetchall()
    return (int(rows[0][0]), str(rows[0][1])) if rows else None


def _rollback_quietly(con: duckdb.DuckDBPyConnection) -> None:
    with suppress(duckdb.TransactionException):  # nothing open any more
        con.execute("rollback")

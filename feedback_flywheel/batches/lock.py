"""One run at a time: a file lock beside the warehouse.

DuckDB's own lock only guards one connection at a time, and the batch cycle opens and closes the
database between its steps (dbt needs it in a subprocess), so two ``flywheel run`` could plan the
same batch and interleave. The run lock is held for a whole run — planning, every batch, the
publish — on ``<warehouse>.lock`` (``flock``, released by the kernel when the process dies, so a
killed run never leaves a stale lock behind). A second run waits up to its timeout for the lock,
then refuses with :class:`RunLockBusy`; it never touches the warehouse before it holds the lock.

The lock is re-entrant within a process: the CLI takes it around a run, and the flow (which may
also be started by a Prefect deployment) takes it again without blocking itself.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: how often a waiting run retries the lock
POLL_SECONDS = 0.2

_held: dict[Path, tuple[int, int]] = {}  # lock file -> (file descriptor, depth)
_guard = threading.Lock()


class RunLockBusy(RuntimeError):
    """Another run holds the warehouse's run lock; the message says which file and what to do."""


def lock_path(db_path: Path) -> Path:
    """``<warehouse>.lock`` beside the warehouse file."""
    db_path = Path(db_path).resolve()
    return db_path.with_name(db_path.name + ".lock")


def _acquire(path: Path, wait_seconds: float) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + max(wait_seconds, 0.0)
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if time.monotonic() >= deadline:
                holder = _holder(descriptor)
                os.close(descriptor)
                raise RunLockBusy(
                    f"another flywheel run holds {path}{holder}; waited {wait_seconds:g} s. "
                    "Wait for it to finish (`flywheel batches` shows it running), or pass "
                    "--wait SECONDS to wait longer."
                ) from None
            time.sleep(POLL_SECONDS)
            continue
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        return descriptor


def _holder(descriptor: int) -> str:
    try:
        text = os.pread(descriptor, 64, 0).decode().strip()
    except OSError:
        return ""
    return f" (process {text})" if text.isdigit() else ""


@contextmanager
def run_lock(db_path: Path, *, wait_seconds: float = 0.0) -> Iterator[Path]:
    """Hold the run lock of the warehouse ``db_path`` for the block (re-entrant in-process)."""
    path = lock_path(db_path)
    with _guard:
        held = _held.get(path)
        if held is not None:
            _held[path] = (held[0], held[1] + 1)
    if held is None:
        descriptor = _acquire(path, wait_seconds)
        with _guard:
            _held[path] = (descriptor, 1)
    try:
        yield path
    finally:
        with _guard:
            descriptor, depth = _held[path]
            if depth > 1:
                _held[path] = (descriptor, depth - 1)
            else:
                del _held[path]
                fcntl.flock(descriptor, fcntl.LOCK_UN)
                os.close(descriptor)


def holds_lock(db_path: Path) -> bool:
    """Whether this process holds the run lock of ``db_path``."""
    with _guard:
        return lock_path(db_path) in _held

"""Which failures a task retries: the transient ones only.

A database another process holds (DuckDB's one-writer lock), a write conflict, a file system
hiccup: retried after 2, 10 and 30 s. Everything else — an unknown batch id, a bad setting, a
missing mart, a bug — fails at once with its message, because trying again cannot change it.
"""

from typing import Any

import duckdb

from feedback_flywheel.warehouse import WarehouseUnavailable

TRANSIENT = (WarehouseUnavailable, duckdb.IOException, duckdb.TransactionException)


def is_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect's retry_condition_fn: retry only when the task failed with a transient error."""
    try:
        state.result()
    except TRANSIENT:
        return True
    except BaseException:
        return False
    return False


#: the retry policy of every task that touches the warehouse
IO_RETRIES: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": [2, 10, 30],
    "retry_condition_fn": is_transient,
}

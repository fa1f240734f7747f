"""Writing a batch's results to an ``ml`` table: the batch's rows are replaced, so re-running a
batch leaves one set of rows, and other batches' rows are never touched."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb
import pandas as pd

from feedback_flywheel.warehouse.catalogue import Relation


def write_batch_rows(
    con: duckdb.DuckDBPyConnection,
    table: Relation,
    batch_id: str,
    frame: pd.DataFrame,
    columns: Sequence[str],
    computed_at: Any,
) -> None:
    """Replace the batch's rows of an ml table with ``frame`` (a re-run replaces only its own)."""
    con.execute(f"delete from {table} where batch_id = ?", [batch_id])
    if frame.empty:
        return
    data = frame.loc[:, list(columns)].copy()
    data["computed_at"] = computed_at
    con.register("incoming_rows", data)
    try:
        names = ", ".join([*columns, "computed_at"])
        con.execute(f"insert into {table} ({names}) select {names} from incoming_rows")
    finally:
        con.unregister("incoming_rows")

"""The replay buffer: its versions (size, inserts, evictions by reason, priorities, samples per
insert, warnings) and the composition of each version."""

from __future__ import annotations

import json

import duckdb
import pandas as pd

from feedback_flywheel.dashboard.queries.common import has_table
from feedback_flywheel.replay import report
from feedback_flywheel.warehouse.catalogue import (
    REPLAY_COMPOSITION,
    REPLAY_SAMPLES,
    REPLAY_VERSIONS,
)


def replay_versions(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """One row per buffer version, oldest first, with the draws made on it and its samples per
    insert (:func:`feedback_flywheel.replay.report.versions_frame`, what `flywheel replay
    status` prints)."""
    if not (has_table(con, REPLAY_VERSIONS) and has_table(con, REPLAY_SAMPLES)):
        return pd.DataFrame()
    return report.versions_frame(con).sort_values("batch_id").reset_index(drop=True)


def replay_evictions(versions: pd.DataFrame) -> pd.DataFrame:
    """Evictions per version and reason code, long, from the versions' evictions_json."""
    rows = [
        {"batch_id": row.batch_id, "reason_code": reason, "evicted": count}
        for row in versions.itertuples(index=False)
        for reason, count in json.loads(row.evictions_json).items()
        if count
    ]
    return pd.DataFrame(rows, columns=["batch_id", "reason_code", "evicted"])


def replay_composition(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every version's composition: dimension, bucket, transitions, share."""
    if not has_table(con, REPLAY_COMPOSITION):
        return pd.DataFrame()
    return con.execute(
        f"select batch_id, dimension, bucket, transitions, share from {REPLAY_COMPOSITION} "
        "order by batch_id, dimension, bucket"
    ).df()

"""The replay buffer: its versions (size, inserts, evictions by reason, priorities, samples per
insert, warnings) and the composition of each version."""

from __future__ import annotations

import json

import duckdb
import pandas as pd

from feedback_flywheel.dashboard.queries.common import has_table
from feedback_flywheel.warehouse.catalogue import (
    REPLAY_COMPOSITION,
    REPLAY_SAMPLES,
    REPLAY_VERSIONS,
)


def replay_versions(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """One row per buffer version, oldest first, with the draws made on it and its samples per
    insert (draws on the version / its inserts)."""
    if not has_table(con, REPLAY_VERSIONS):
        return pd.DataFrame()
    samples = (
        f"select buffer_batch_id, sum(draws) as draws from {REPLAY_SAMPLES} group by 1"
        if has_table(con, REPLAY_SAMPLES)
        else "select null as buffer_batch_id, 0 as draws where false"
    )
    return con.execute(
        f"""
        with drawn as ({samples})
        select
            v.batch_id, v.buffer_version, v.computed_at, v.size, v.capacity, v.inserted,
            v.evicted, v.evictions_json, v.priority_min, v.priority_mean, v.priority_max,
            v.reward_mean, v.membership_hash, v.warnings,
            cast(coalesce(drawn.draws, 0) as bigint) as draws,
            coalesce(drawn.draws, 0) / nullif(v.inserted, 0) as samples_per_insert
        from {REPLAY_VERSIONS} as v
        left join drawn on v.batch_id = drawn.buffer_batch_id
        order by v.batch_id
        """
    ).df()


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

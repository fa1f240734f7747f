"""What the buffer's history says, for the CLI and the dashboard: the versions (size, inserts,
evictions by reason, priorities, warnings) with the samples-per-insert ratio of each batch."""

from __future__ import annotations

import duckdb
import pandas as pd

from feedback_flywheel.warehouse.catalogue import REPLAY_SAMPLES, REPLAY_VERSIONS


def versions_frame(con: duckdb.DuckDBPyConnection, limit: int | None = None) -> pd.DataFrame:
    """Per version, newest first: size, capacity, inserted, evicted (and by reason, JSON), the
    priorities, the warnings, and the draws made on it with their samples per insert (that
    version's draws / its inserts; and all draws so far / all inserts so far)."""
    frame = con.execute(
        f"""
        with drawn as (
            select buffer_batch_id as batch_id, sum(draws) as draws, count(*) as samples
            from {REPLAY_SAMPLES}
            group by 1
        ),
        joined as (
            select
                v.*,
                coalesce(drawn.samples, 0) as samples,
                cast(coalesce(drawn.draws, 0) as bigint) as draws
            from {REPLAY_VERSIONS} as v
            left join drawn on v.batch_id = drawn.batch_id
        )
        select
            *,
            draws / nullif(inserted, 0) as samples_per_insert,
            sum(draws) over (order by batch_id) / nullif(
                sum(inserted) over (order by batch_id), 0
            ) as cumulative_samples_per_insert
        from joined
        order by batch_id desc
        {"limit ?" if limit else ""}
        """,
        [limit] if limit else [],
    ).df()
    return frame

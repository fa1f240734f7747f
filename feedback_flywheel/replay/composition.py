"""What a buffer version holds, by age, reward, priority, source policy version and segment,
and the warnings a reader needs: a buffer dominated by its model's newest policy version (the
older experience is gone: a catastrophic-forgetting risk) or by one segment."""

from __future__ import annotations

import itertools
from datetime import datetime

import duckdb
import pandas as pd

from feedback_flywheel.config.replay_policy import CompositionPolicy
from feedback_flywheel.warehouse.catalogue import (
    DIM_MODEL_VERSIONS,
    FCT_INFERENCE_SEGMENTS,
    FCT_REPLAY_TRANSITIONS,
    REPLAY_BUFFER,
    REPLAY_COMPOSITION,
)

#: priority bucket edges (log-spaced: priorities span |TD errors| and reward gaps)
PRIORITY_EDGES = [0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0]


def _bucket_case(expression: str, edges: list[float], unit: str) -> str:
    """A SQL case naming the bucket of ``expression`` between ascending ``edges`` (numbers
    validated by the policy, so they reach SQL as numbers)."""
    parts = [f"when {expression} < {edges[0]!r} then '< {edges[0]:g}{unit}'"]
    for low, high in itertools.pairwise(edges):
        parts.append(f"when {expression} < {high!r} then '[{low:g}, {high:g}){unit}'")
    parts.append(f"when {expression} is not null then '>= {edges[-1]:g}{unit}'")
    return "case " + " ".join(parts) + " else '(unknown)' end"


def compose(
    con: duckdb.DuckDBPyConnection,
    *,
    batch_id: str,
    watermark: datetime,
    policy: CompositionPolicy,
    segment_attribute: str,
) -> pd.DataFrame:
    """Write and return the batch's ml.replay_composition rows (dimension, bucket, transitions,
    share of the buffer)."""
    age = _bucket_case(
        "age_days",
        [float(edge) for edge in policy.age_buckets_days],
        " d",
    )
    reward = _bucket_case("reward", [float(edge) for edge in policy.reward_buckets], "")
    priority = _bucket_case("priority", PRIORITY_EDGES, "")
    con.execute(
        f"""
        insert into {REPLAY_COMPOSITION} (batch_id, dimension, bucket, transitions, share)
        with measured as (
            select
                date_diff('second', b.logged_at, cast(? as timestamp)) / 86400.0 as age_days,
                t.reward,
                b.priority,
                b.model_name || ':' || b.policy_version as policy_bucket,
                coalesce(s.segment_value, '(none)') as segment_bucket
            from {REPLAY_BUFFER} as b
            left join {FCT_REPLAY_TRANSITIONS} as t on b.transition_id = t.transition_id
            left join {FCT_INFERENCE_SEGMENTS} as s
                on b.transition_id = s.inference_id and s.segment_attribute = ?
        ),
        described as (
            select
                {age} as age_bucket,
                {reward} as reward_bucket,
                {priority} as priority_bucket,
                policy_bucket,
                segment_bucket
            from measured
        ),
        counted as (
            select 'age' as dimension, age_bucket as bucket, count(*) as transitions
            from described group by 1, 2
            union all
            select 'reward', reward_bucket, count(*) from described group by 1, 2
            union all
            select 'priority', priority_bucket, count(*) from described group by 1, 2
            union all
            select 'policy_version', policy_bucket, count(*) from described group by 1, 2
            union all
            select 'segment:' || ?, segment_bucket, count(*) from described group by 1, 2
        )
        select ?, dimension, bucket, transitions, transitions / sum(transitions) over (
            partition by dimension
        )
        from counted
        """,
        [watermark, segment_attribute, segment_attribute, batch_id],
    )
    return con.execute(
        f"select dimension, bucket, transitions, share from {REPLAY_COMPOSITION} "
        "where batch_id = ? order by dimension, bucket",
        [batch_id],
    ).df()


def warnings(
    con: duckdb.DuckDBPyConnection,
    rows: pd.DataFrame,
    watermark: datetime,
    policy: CompositionPolicy,
) -> list[str]:
    """The version's warnings: one policy version that is its model's newest of several
    deployed, or one segment, holding more than ``dominant_share`` of the buffer."""
    if rows.empty:
        return []
    found = []
    share = policy.dominant_share
    newest = {
        f"{model}:{version}"
        for model, version in con.execute(
            f"""
            select model_name, model_version from (
                select
                    model_name,
                    model_version,
                    row_number() over (
                        partition by model_name order by deployed_at desc, model_version desc
                    ) as recency,
                    count(*) over (partition by model_name) as deployed_versions
                from {DIM_MODEL_VERSIONS}
                where deployed_at < ?
            ) as ranked
            where recency = 1 and deployed_versions > 1
            """,
            [watermark],
        ).fetchall()
    }
    for row in rows.itertuples(index=False):
        if row.share <= share:
            continue
        if row.dimension == "policy_version" and row.bucket in newest:
            found.append(
                f"dominated by the newest policy {row.bucket} ({row.share:.0%} > {share:.0%}): "
                "older experience is gone, a catastrophic-forgetting risk"
            )
        elif row.dimension.startswith("segment:") and row.bucket != "(none)":
            attribute = row.dimension.removeprefix("segment:")
            found.append(
                f"dominated by one segment, {attribute}={row.bucket} "
                f"({row.share:.0%} > {share:.0%})"
            )
    return found

"""The replay buffer's refresh, once per batch: insert the transitions that entered, give them
the buffer's maximum priority (as in PER), refresh the reward proxy, evict with a reason code,
hold the capacity, and record the version (its membership hash, composition and audit row).

Every step is SQL over the warehouse (the mart ``fct_replay_transitions`` and the ``ml.replay_*``
tables); Python passes parameters and reads counts. The whole refresh is one transaction, and a
batch that already has its version is left as it is, so a re-run (or a run after a crash at any
point) leaves the buffer identical.

Evictions, each transition once, by the first reason that applies:
``feedback_retracted`` (feedback its return used was withdrawn), ``source_quarantined`` (its step
is no longer an entered transition of the mart, e.g. its inference was quarantined),
``stale_age`` (served more than ``max_age_days`` before the watermark), ``stale_policy`` (acted
by a version more than ``max_policy_lag`` deployments behind its model's newest),
``max_times_sampled``, then ``over_capacity`` (lowest priority first or FIFO). A duplicate step
(a second copy of a session step) is logged as ``duplicate`` without ever entering.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import duckdb

from feedback_flywheel.audit import chain
from feedback_flywheel.config.replay_policy import ReplayPolicy
from feedback_flywheel.replay import composition, versions
from feedback_flywheel.warehouse.catalogue import (
    DIM_MODEL_VERSIONS,
    FCT_REPLAY_TRANSITIONS,
    REPLAY_BUFFER,
    REPLAY_EVICTIONS,
    REPLAY_VERSIONS,
)

#: the eviction reason codes, in the order they are applied
REASON_CODES = (
    "feedback_retracted",
    "source_quarantined",
    "duplicate",
    "stale_age",
    "stale_policy",
    "max_times_sampled",
    "over_capacity",
)
#: the priority of the first transitions of an empty buffer
INITIAL_PRIORITY = 1.0


@dataclass(frozen=True)
class RefreshOutcome:
    """What one batch's refresh did (also its ml.replay_versions row)."""

    batch_id: str
    size: int
    capacity: int
    inserted: int
    evicted: dict[str, int] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    already_done: bool = False

    def summary(self) -> str:
        removed = ", ".join(f"{reason} {count}" for reason, count in self.evicted.items() if count)
        head = "already refreshed: " if self.already_done else ""
        return (
            f"{head}replay buffer rb-{self.batch_id}: {self.size:,} transitions "
            f"(capacity {self.capacity:,}), {self.inserted:,} inserted, "
            f"{sum(self.evicted.values()):,} evicted" + (f" ({removed})" if removed else "")
        )


def refresh(
    con: duckdb.DuckDBPyConnection,
    *,
    batch_id: str,
    watermark: datetime,
    policy: ReplayPolicy,
    segment_attribute: str,
    audit_key: bytes,
    now: datetime,
) -> RefreshOutcome:
    """Refresh the buffer for ``batch_id`` (see the module doc); a batch refreshed before is
    returned as it was recorded."""
    earlier = _recorded(con, batch_id)
    if earlier is not None:
        return earlier
    with chain.atomic(con):
        inserted = _insert_entered(con, batch_id, now)
        _log_duplicates(con, batch_id, now)
        _refresh_proxy(con, batch_id, policy.priority.epsilon)
        _evict_by_rule(con, batch_id, watermark, policy, now)
        _evict_over_capacity(con, batch_id, policy, now)
        counts = _eviction_counts(con, batch_id)
        rows = composition.compose(
            con,
            batch_id=batch_id,
            watermark=watermark,
            policy=policy.composition,
            segment_attribute=segment_attribute,
        )
        warnings = composition.warnings(con, rows, watermark, policy.composition)
        record = _version_row(con, batch_id, policy, inserted, counts, warnings, now)
        chain.record(
            con,
            key=audit_key,
            kind="replay_buffer",
            subject_id=record["buffer_version"],
            batch_id=batch_id,
            payload=versions.audit_payload(record),
        )
    return RefreshOutcome(
        batch_id=batch_id,
        size=record["size"],
        capacity=record["capacity"],
        inserted=inserted,
        evicted=counts,
        warnings=tuple(warnings),
    )


def _recorded(con: duckdb.DuckDBPyConnection, batch_id: str) -> RefreshOutcome | None:
    rows = con.execute(
        f"select size, capacity, inserted, evictions_json, warnings from {REPLAY_VERSIONS} "
        "where batch_id = ?",
        [batch_id],
    ).fetchall()
    if not rows:
        return None
    size, capacity, inserted, evictions_json, warnings = rows[0]
    return RefreshOutcome(
        batch_id=batch_id,
        size=int(size),
        capacity=int(capacity),
        inserted=int(inserted),
        evicted=json.loads(evictions_json),
        warnings=tuple(warnings.split("; ")) if warnings else (),
        already_done=True,
    )


def _insert_entered(con: duckdb.DuckDBPyConnection, batch_id: str, now: datetime) -> int:
    """Insert the mart's entered transitions the buffer never held, at the buffer's maximum
    priority (1.0 for an empty buffer), in serving order."""
    (count,) = con.execute(
        f"""
        insert into {REPLAY_BUFFER} (
            transition_id, model_name, session_id, policy_version, priority, priority_source,
            td_error, td_training_run_id, times_sampled, insert_seq, inserted_batch_id,
            logged_at, inserted_at, last_sampled_at
        )
        with state as (
            select
                coalesce(max(priority), {INITIAL_PRIORITY}) as max_priority,
                coalesce(max(insert_seq), 0) as last_seq
            from {REPLAY_BUFFER}
        )
        select
            t.transition_id, t.model_name, t.session_id, t.policy_version,
            state.max_priority, 'new_max', null, null, 0,
            state.last_seq + row_number() over (order by t.logged_at, t.transition_id),
            ?, t.logged_at, ?, null
        from {FCT_REPLAY_TRANSITIONS} as t
        cross join state
        where
            t.is_entered
            and not exists (
                select 1 from {REPLAY_BUFFER} as b where b.transition_id = t.transition_id
            )
            and not exists (
                select 1 from {REPLAY_EVICTIONS} as e where e.transition_id = t.transition_id
            )
        """,
        [batch_id, now],
    ).fetchall()[0]
    return int(count)


def _log_duplicates(con: duckdb.DuckDBPyConnection, batch_id: str, now: datetime) -> None:
    """A second copy of a session step never enters: it is logged as a duplicate, once."""
    con.execute(
        f"""
        insert into {REPLAY_EVICTIONS} (
            transition_id, batch_id, reason_code, detail, inserted_batch_id, priority,
            times_sampled, policy_version, evicted_at
        )
        select
            t.transition_id, ?, 'duplicate',
            'another copy of step ' || cast(t.step_index as varchar) || ' of its session',
            null, null, null, t.policy_version, ?
        from {FCT_REPLAY_TRANSITIONS} as t
        where
            t.entry_status = 'duplicate_step'
            and not exists (
                select 1 from {REPLAY_EVICTIONS} as e where e.transition_id = t.transition_id
            )
            and not exists (
                select 1 from {REPLAY_BUFFER} as b where b.transition_id = t.transition_id
            )
        """,
        [batch_id, now],
    )


def _refresh_proxy(con: duckdb.DuckDBPyConnection, batch_id: str, epsilon: float) -> None:
    """Transitions without a reported TD error, inserted before this batch: priority =
    |reward - mean reward of the buffer| + epsilon."""
    con.execute(
        f"""
        update {REPLAY_BUFFER} as b
        set priority = abs(t.reward - stats.mean_reward) + ?, priority_source = 'reward_proxy'
        from {FCT_REPLAY_TRANSITIONS} as t, (
            select avg(t2.reward) as mean_reward
            from {REPLAY_BUFFER} as b2
            inner join {FCT_REPLAY_TRANSITIONS} as t2 on b2.transition_id = t2.transition_id
        ) as stats
        where
            b.transition_id = t.transition_id
            and t.reward is not null
            and b.priority_source <> 'td_error'
            and b.inserted_batch_id <> ?
        """,
        [epsilon, batch_id],
    )


_RULE_EVICTIONS = f"""
        insert into {REPLAY_EVICTIONS} (
            transition_id, batch_id, reason_code, detail, inserted_batch_id, priority,
            times_sampled, policy_version, evicted_at
        )
        with deployed as (
            select
                model_name,
                model_version,
                row_number() over (
                    partition by model_name order by deployed_at, model_version
                ) as deployment_rank
            from {DIM_MODEL_VERSIONS}
            where deployed_at < ?
        ),
        newest as (
            select model_name, max(deployment_rank) as newest_rank
            from deployed
            group by model_name
        ),
        judged as (
            select
                b.*,
                t.entry_status,
                newest.newest_rank - deployed.deployment_rank as policy_lag,
                date_diff('second', b.logged_at, cast(? as timestamp)) / 86400.0 as age_days
            from {REPLAY_BUFFER} as b
            left join {FCT_REPLAY_TRANSITIONS} as t on b.transition_id = t.transition_id
            left join deployed
                on b.model_name = deployed.model_name
                and b.policy_version = deployed.model_version
            left join newest on b.model_name = newest.model_name
        ),
        reasons as (
            select
                judged.*,
                case
                    when entry_status = 'feedback_retracted' then 'feedback_retracted'
                    when entry_status is distinct from 'entered' then 'source_quarantined'
                    when cast(? as timestamp) is not null and logged_at < cast(? as timestamp)
                        then 'stale_age'
                    when cast(? as bigint) is not null and policy_lag > cast(? as bigint)
                        then 'stale_policy'
                    when cast(? as bigint) is not null and times_sampled >= cast(? as bigint)
                        then 'max_times_sampled'
                end as reason_code
            from judged
        )
        select
            transition_id, ?, reason_code,
            case reason_code
                when 'feedback_retracted' then 'feedback its return used was retracted'
                when 'source_quarantined'
                    then 'no longer an entered transition ('
                        || coalesce(entry_status, 'gone') || ')'
                when 'stale_age'
                    then 'age ' || cast(round(age_days, 1) as varchar) || ' d > max_age_days '
                        || cast(? as varchar)
                when 'stale_policy'
                    then policy_version || ' is ' || cast(policy_lag as varchar)
                        || ' deployments behind its model''s newest (max_policy_lag '
                        || cast(? as varchar) || ')'
                when 'max_times_sampled'
                    then 'sampled ' || cast(times_sampled as varchar) || ' times'
            end,
            inserted_batch_id, priority, times_sampled, policy_version, ?
        from reasons
        where reason_code is not null
"""


def _evict_by_rule(
    con: duckdb.DuckDBPyConnection,
    batch_id: str,
    watermark: datetime,
    policy: ReplayPolicy,
    now: datetime,
) -> None:
    """Retracted, quarantined, stale (age, policy lag) and over-sampled transitions: logged with
    their reason, then removed."""
    rules = policy.buffer
    max_age = rules.max_age_days
    cutoff = watermark - timedelta(days=max_age) if max_age is not None else None
    con.execute(
        _RULE_EVICTIONS,
        [
            watermark,
            watermark,
            cutoff,
            cutoff,
            rules.max_policy_lag,
            rules.max_policy_lag,
            rules.max_times_sampled,
            rules.max_times_sampled,
            batch_id,
            max_age,
            rules.max_policy_lag,
            now,
        ],
    )
    _remove_evicted(con, batch_id)


def _evict_over_capacity(
    con: duckdb.DuckDBPyConnection, batch_id: str, policy: ReplayPolicy, now: datetime
) -> None:
    """Over capacity: the remover's order (lowest priority, then oldest; or oldest inserted)
    decides who goes, until the buffer holds exactly the capacity."""
    capacity = policy.buffer.capacity
    order = "priority, insert_seq" if policy.buffer.remover == "lowest_priority" else "insert_seq"
    detail = (
        "lowest priority first" if policy.buffer.remover == "lowest_priority" else "fifo"
    ) + f" over capacity {capacity}"
    con.execute(
        f"""
        insert into {REPLAY_EVICTIONS} (
            transition_id, batch_id, reason_code, detail, inserted_batch_id, priority,
            times_sampled, policy_version, evicted_at
        )
        select
            transition_id, ?, 'over_capacity', ?, inserted_batch_id, priority, times_sampled,
            policy_version, ?
        from (
            select *, row_number() over (order by {order}) as removal_rank
            from {REPLAY_BUFFER}
        ) as ranked
        where removal_rank <= (select count(*) from {REPLAY_BUFFER}) - ?
        """,
        [batch_id, detail, now, capacity],
    )
    _remove_evicted(con, batch_id)


def _remove_evicted(con: duckdb.DuckDBPyConnection, batch_id: str) -> None:
    con.execute(
        f"""
        delete from {REPLAY_BUFFER}
        where transition_id in (
            select transition_id from {REPLAY_EVICTIONS} where batch_id = ?
        )
        """,
        [batch_id],
    )


def _eviction_counts(con: duckdb.DuckDBPyConnection, batch_id: str) -> dict[str, int]:
    found = dict(
        con.execute(
            f"select reason_code, count(*) from {REPLAY_EVICTIONS} where batch_id = ? group by 1",
            [batch_id],
        ).fetchall()
    )
    return {reason: int(found.get(reason, 0)) for reason in REASON_CODES}


def _version_row(
    con: duckdb.DuckDBPyConnection,
    batch_id: str,
    policy: ReplayPolicy,
    inserted: int,
    counts: dict[str, int],
    warnings: list[str],
    now: datetime,
) -> dict[str, Any]:
    size, p_min, p_mean, p_max, reward_mean = con.execute(
        f"""
        select count(*), min(b.priority), avg(b.priority), max(b.priority), avg(t.reward)
        from {REPLAY_BUFFER} as b
        left join {FCT_REPLAY_TRANSITIONS} as t on b.transition_id = t.transition_id
        """
    ).fetchall()[0]
    record = {
        "batch_id": batch_id,
        "buffer_version": versions.buffer_version(batch_id),
        "size": int(size),
        "capacity": policy.buffer.capacity,
        "inserted": inserted,
        "evicted": sum(counts.values()),
        "evictions_json": json.dumps(counts, sort_keys=True),
        "priority_min": p_min,
        "priority_mean": p_mean,
        "priority_max": p_max,
        "reward_mean": reward_mean,
        "membership_hash": versions.live_membership_hash(con),
        "warnings": "; ".join(warnings) or None,
        "policy_version": policy.policy_version,
        "computed_at": now,
    }
    columns = list(record)
    con.execute(
        f"insert into {REPLAY_VERSIONS} ({', '.join(columns)}) "
        f"values ({', '.join('?' for _ in columns)})",
        list(record.values()),
    )
    return record

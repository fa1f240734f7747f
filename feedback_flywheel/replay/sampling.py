"""Sampling the replay buffer, in the warehouse.

Three samplers, all with replacement (as prioritized replay draws):

- ``prioritized``: P(i) = p_i^alpha / sum_k p_k^alpha over the eligible transitions;
- ``uniform``: P(i) = 1 / N (prioritized with alpha = 0);
- ``recent``: uniform over the ``recent_window`` newest inserted transitions (a FIFO window).

A draw is a uniform u in [0, 1) scaled by the total weight, matched to the transition whose slice
[cumulative weight before it, cumulative weight through it) holds it, in insertion order: an ASOF
join over the cumulative sums in SQL, so the buffer never leaves the warehouse; only the n uniforms
(from numpy's generator seeded with ``seed``) go in. The same seed on the same buffer version gives
the same rows. Each row comes with its probability and its importance weight w_i = (N P(i))^-beta /
max_k (N P(k))^-beta (normalised by the largest weight of any eligible transition, the one with the
smallest probability). A transition drawn ``max_times_sampled`` times is not eligible.

Every sample is recorded (``ml.replay_samples``, its rows in ``ml.replay_sample_draws``) and
counts the draws of each transition. The samples-per-insert limiter (Reverb's
SampleToInsertRatio) refuses when the draws so far over the transitions inserted so far would
pass ``max_samples_per_insert``; :func:`sample_when_allowed` (what the CLI runs) waits for the
next batch instead when the policy says ``on_limit: wait``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import duckdb
import numpy as np
import pandas as pd

from feedback_flywheel.audit import chain
from feedback_flywheel.batches import run_lock
from feedback_flywheel.config.replay_policy import ReplayPolicy
from feedback_flywheel.warehouse import connect
from feedback_flywheel.warehouse.catalogue import (
    FCT_REPLAY_TRANSITIONS,
    REPLAY_BUFFER,
    REPLAY_SAMPLE_DRAWS,
    REPLAY_SAMPLES,
    REPLAY_VERSIONS,
)

Sampler = Literal["uniform", "prioritized", "recent"]
SAMPLERS: tuple[str, ...] = ("uniform", "prioritized", "recent")
#: the most rows one sample may draw
MAX_DRAWS = 10_000_000
WAIT_POLL_SECONDS = 2.0

#: the transition columns a sample returns beside its probability and weight
TRANSITION_COLUMNS = (
    "session_id",
    "step_index",
    "model_name",
    "policy_version",
    "state_inputs_json",
    "state_context_json",
    "action_label",
    "action_score",
    "reward",
    "n_step_return",
    "n_step_count",
    "bootstrap_transition_id",
    "bootstrap_discount",
    "next_transition_id",
    "next_state_inputs_json",
    "next_state_context_json",
    "is_terminal",
    "is_reward_expired",
    "reward_sources",
)


class ReplayError(ValueError):
    """The sample cannot be drawn as asked; the message says why and what to do."""


class RateLimited(ReplayError):
    """The samples-per-insert limit would be passed."""


@dataclass(frozen=True)
class Sample:
    """One recorded sample: its id, the version drawn from, its parameters, and its rows."""

    sample_id: str
    buffer_batch_id: str
    sampler: str
    alpha: float
    beta: float
    seed: int
    eligible: int
    samples_per_insert: float
    rows: pd.DataFrame


def annealed_beta(con: duckdb.DuckDBPyConnection, policy: ReplayPolicy) -> float:
    """beta_start + (1 - beta_start) * min(1, versions before the latest / beta_anneal_batches)."""
    (versions,) = con.execute(f"select count(*) from {REPLAY_VERSIONS}").fetchall()[0]
    rules = policy.priority
    progress = min(1.0, max(0, int(versions) - 1) / rules.beta_anneal_batches)
    return rules.beta_start + (1.0 - rules.beta_start) * progress


def _check_arguments(n: int, sampler: str, alpha: float, beta: float, window: int | None) -> None:
    if not isinstance(n, int) or not 1 <= n <= MAX_DRAWS:
        raise ReplayError(f"n must be a whole number from 1 to {MAX_DRAWS:,}; got {n!r}")
    if sampler not in SAMPLERS:
        raise ReplayError(f"sampler must be one of {', '.join(SAMPLERS)}; got {sampler!r}")
    if not (np.isfinite(alpha) and 0 <= alpha <= 10):
        raise ReplayError(f"alpha must be a number from 0 to 10; got {alpha!r}")
    if not (np.isfinite(beta) and 0 <= beta <= 1):
        raise ReplayError(f"beta must be a number from 0 to 1; got {beta!r}")
    if sampler == "recent" and (window is None or window < 1):
        raise ReplayError("the recent sampler needs recent_window >= 1 (--window N)")


def _latest_version(con: duckdb.DuckDBPyConnection) -> str:
    rows = con.execute(f"select max(batch_id) from {REPLAY_VERSIONS}").fetchall()
    if not rows or rows[0][0] is None:
        raise ReplayError(
            "the replay buffer has no version yet: run a batch (flywheel run) to fill it"
        )
    return str(rows[0][0])


def _ratio(con: duckdb.DuckDBPyConnection, more_draws: int) -> float:
    (draws,) = con.execute(f"select coalesce(sum(draws), 0) from {REPLAY_SAMPLES}").fetchall()[0]
    (inserted,) = con.execute(
        f"select coalesce(sum(inserted), 0) from {REPLAY_VERSIONS}"
    ).fetchall()[0]
    return (int(draws) + more_draws) / max(int(inserted), 1)


def _within_limit(con: duckdb.DuckDBPyConnection, n: int, policy: ReplayPolicy) -> None:
    """Refuse when n more draws pass max_samples_per_insert (waiting is
    :func:`sample_when_allowed`'s: it must let go of the warehouse so a batch can insert)."""
    limit = policy.rate_limit.max_samples_per_insert
    if limit is None:
        return
    ratio = _ratio(con, n)
    if ratio > limit:
        raise RateLimited(
            f"samples per insert would reach {ratio:.2f} > max_samples_per_insert {limit:g} "
            "(policies/replay.yml rate_limit): the buffer needs new transitions (the next "
            "batch) before more draws, or a smaller --n"
        )


def sample_when_allowed(
    db_path: Path, *, policy: ReplayPolicy, lock_wait_seconds: float = 120.0, **kwargs: Any
) -> Sample:
    """:func:`sample` on the warehouse at ``db_path`` under its run lock. When the
    samples-per-insert limit refuses and the policy says ``on_limit: wait``, let go of the
    warehouse (so a batch can run and insert), and try again every ``WAIT_POLL_SECONDS`` until
    ``wait_seconds`` have passed; then refuse."""
    rules = policy.rate_limit
    deadline = time.monotonic() + (rules.wait_seconds if rules.on_limit == "wait" else 0.0)
    while True:
        with run_lock(db_path, wait_seconds=lock_wait_seconds), connect(db_path) as con:
            try:
                return sample(con, policy=policy, **kwargs)
            except RateLimited:
                if time.monotonic() >= deadline:
                    raise
        time.sleep(WAIT_POLL_SECONDS)


def _eligible_sql(
    policy: ReplayPolicy, sampler: str, window: int | None, model_name: str | None = None
) -> tuple[str, list]:
    """The eligible transitions as SQL: below max_times_sampled, of ``model_name`` when given;
    recent: the newest window of them."""
    limit = policy.buffer.max_times_sampled
    conditions, params = [], []
    if limit is not None:
        conditions.append("times_sampled < ?")
        params.append(limit)
    if model_name is not None:
        conditions.append("model_name = ?")
        params.append(model_name)
    where = ("where " + " and ".join(conditions)) if conditions else ""
    sql = f"select transition_id, priority, insert_seq from {REPLAY_BUFFER} {where}"
    if sampler == "recent":
        sql += " order by insert_seq desc limit ?"
        params.append(window)
    return sql, params


def draw(
    con: duckdb.DuckDBPyConnection,
    *,
    n: int,
    seed: int,
    alpha: float,
    beta: float,
    eligible_sql: str,
    eligible_params: list,
) -> tuple[pd.DataFrame, int]:
    """(draws, N): n draws with replacement from the eligible rows, P(i) proportional to
    priority^alpha, each with its probability and normalised importance weight, in draw order."""
    uniforms = pd.DataFrame(
        {"draw": np.arange(n, dtype=np.int64), "u": np.random.default_rng(seed).random(n)}
    )
    con.register("replay_uniforms", uniforms)
    try:
        frame = con.execute(
            f"""
            with eligible as ({eligible_sql}),
            weighted as (
                select transition_id, insert_seq, power(priority, ?) as weight from eligible
            ),
            cdf as (
                select
                    transition_id,
                    weight,
                    sum(weight) over (order by insert_seq rows unbounded preceding) - weight
                        as lower_edge,
                    sum(weight) over () as total,
                    min(weight) over () as min_weight,
                    count(*) over () as eligible
                from weighted
            ),
            totals as (select max(total) as total from cdf),
            scaled as (
                select u.draw, u.u * totals.total as position
                from replay_uniforms as u cross join totals
            )
            select
                scaled.draw,
                cdf.transition_id,
                cdf.weight / cdf.total as probability,
                power(cdf.eligible * cdf.weight / cdf.total, -?)
                    / power(cdf.eligible * cdf.min_weight / cdf.total, -?) as weight,
                cdf.eligible
            from scaled
            asof join cdf on scaled.position >= cdf.lower_edge
            order by scaled.draw
            """,
            [*eligible_params, alpha, beta, beta],
        ).df()
    finally:
        con.unregister("replay_uniforms")
    eligible = int(frame["eligible"].iloc[0]) if not frame.empty else 0
    return frame.drop(columns="eligible"), eligible


def sample(
    con: duckdb.DuckDBPyConnection,
    *,
    n: int,
    policy: ReplayPolicy,
    seed: int,
    sampler: Sampler = "prioritized",
    alpha: float | None = None,
    beta: float | None = None,
    recent_window: int | None = None,
    model_name: str | None = None,
    now: datetime,
) -> Sample:
    """Draw, record and return one sample from the latest buffer version (see the module doc),
    from the transitions of ``model_name`` when given (else of every model). ``alpha`` defaults
    to the policy's (uniform and recent draw with alpha 0), ``beta`` to the annealed one. Raises
    :class:`ReplayError` (:class:`RateLimited`) saying what to do."""
    if sampler == "prioritized":
        alpha = policy.priority.alpha if alpha is None else float(alpha)
    elif alpha not in (None, 0, 0.0):
        raise ReplayError(f"the {sampler} sampler draws uniformly: leave alpha out (it is 0)")
    else:
        alpha = 0.0
    beta = annealed_beta(con, policy) if beta is None else float(beta)
    _check_arguments(n, sampler, alpha, beta, recent_window)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ReplayError(f"seed must be a whole number >= 0; got {seed!r}")
    version = _latest_version(con)
    _within_limit(con, n, policy)
    eligible_sql, params = _eligible_sql(policy, sampler, recent_window, model_name)
    (available,) = con.execute(f"select count(*) from ({eligible_sql})", params).fetchall()[0]
    if int(available) < policy.buffer.min_size_to_sample:
        raise ReplayError(
            f"the buffer has {int(available):,} transitions"
            + (f" of model {model_name!r}" if model_name is not None else "")
            + " to draw from, fewer than "
            f"min_size_to_sample {policy.buffer.min_size_to_sample:,} (policies/replay.yml): "
            "wait for more batches or lower it"
        )
    with chain.atomic(con):
        frame, eligible = draw(
            con,
            n=n,
            seed=seed,
            alpha=alpha,
            beta=beta,
            eligible_sql=eligible_sql,
            eligible_params=params,
        )
        parameters = {
            "sampler": sampler,
            "draws": n,
            "alpha": alpha,
            "beta": beta,
            "seed": seed,
            "recent_window": recent_window,
            "model_name": model_name,
            "eligible": eligible,
        }
        sample_id = _record(con, version, frame, parameters, now)
        ratio = _ratio(con, 0)
        con.execute(
            f"update {REPLAY_SAMPLES} set samples_per_insert = ? where sample_id = ?",
            [ratio, sample_id],
        )
    return Sample(
        sample_id=sample_id,
        buffer_batch_id=version,
        sampler=sampler,
        alpha=alpha,
        beta=beta,
        seed=seed,
        eligible=eligible,
        samples_per_insert=ratio,
        rows=sample_rows(con, sample_id),
    )


def _record(
    con: duckdb.DuckDBPyConnection,
    version: str,
    frame: pd.DataFrame,
    parameters: dict[str, object],
    now: datetime,
) -> str:
    """Record the sample (``parameters``: its ml.replay_samples columns) and its draws, and
    count the draws of each transition."""
    (earlier,) = con.execute(
        f"select count(*) from {REPLAY_SAMPLES} where buffer_batch_id = ?", [version]
    ).fetchall()[0]
    sample_id = f"rs-{version}-{int(earlier) + 1:06d}"
    row = {"sample_id": sample_id, "buffer_batch_id": version, **parameters, "drawn_at": now}
    con.execute(
        f"insert into {REPLAY_SAMPLES} ({', '.join(row)}) values ({', '.join('?' for _ in row)})",
        list(row.values()),
    )
    con.register("replay_drawn", frame)
    try:
        con.execute(
            f"""
            insert into {REPLAY_SAMPLE_DRAWS} (sample_id, draw, transition_id, probability, weight)
            select ?, draw, transition_id, probability, weight from replay_drawn
            """,
            [sample_id],
        )
    finally:
        con.unregister("replay_drawn")
    con.execute(
        f"""
        update {REPLAY_BUFFER} as b
        set times_sampled = b.times_sampled + drawn.draws, last_sampled_at = ?
        from (
            select transition_id, count(*) as draws from {REPLAY_SAMPLE_DRAWS}
            where sample_id = ? group by transition_id
        ) as drawn
        where b.transition_id = drawn.transition_id
        """,
        [now, sample_id],
    )
    return sample_id


def sample_rows(con: duckdb.DuckDBPyConnection, sample_id: str) -> pd.DataFrame:
    """A recorded sample's rows in draw order: draw, transition_id, probability, weight and the
    transition (state, action, reward, n-step return, next state, ...)."""
    columns = ", ".join(f"t.{name}" for name in TRANSITION_COLUMNS)
    return con.execute(
        f"""
        select d.draw, d.transition_id, d.probability, d.weight, {columns}
        from {REPLAY_SAMPLE_DRAWS} as d
        left join {FCT_REPLAY_TRANSITIONS} as t on d.transition_id = t.transition_id
        where d.sample_id = ?
        order by d.draw
        """,
        [sample_id],
    ).df()

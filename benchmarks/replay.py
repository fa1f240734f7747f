"""Benchmark the replay buffer: ``python -m benchmarks.replay`` (``make benchmark-replay``).

What is measured, on a synthetic buffer of ``--transitions`` transitions (sessions of 8 steps,
rewards in [-1, 1], priorities drawn log-uniformly over [0.01, 10] as TD errors would leave
them):

* **refresh, fill**: :func:`feedback_flywheel.replay.refresh` of a first batch that inserts
  every transition of the mart into an empty buffer (capacity = ``--transitions``): insert at
  the maximum priority, the eviction rules, the composition, the version row and its audit row.
* **refresh, daily**: the next batch, ``--daily`` new transitions on top of the full buffer: the
  proxy priorities of every held transition are refreshed and the lowest-priority ``--daily``
  go over capacity.
* **draw, SQL**: :func:`feedback_flywheel.replay.sampling.draw`: ``--draws`` prioritized draws
  (alpha 0.6, beta 0.4) with probabilities and importance weights, in DuckDB (cumulative sums
  and an ASOF join against the sorted uniforms).
* **sample, recorded**: :func:`feedback_flywheel.replay.sample`, what ``flywheel replay sample``
  does: the draw, recording it (``ml.replay_samples``, ``ml.replay_sample_draws``), counting
  times sampled, and returning the rows joined to their transitions.
* **draw, numpy**: the same draw in memory, as a trainer's in-process buffer does it (a sum
  tree's answer, computed exactly): priorities ** alpha, cumulative sum, ``searchsorted`` of the
  same uniforms, probabilities and weights. The priorities are already in memory (their load
  from the warehouse is timed on its own line, **load priorities into numpy**).

Every repeat checks that the SQL and numpy draws agree (the same transitions for the same
uniforms, probabilities and weights within 1e-9 relative) and exits 1 if they do not.
Medians over ``--repeat``; wall seconds and this process's CPU seconds (DuckDB's threads
included). Progress goes to stderr, the table to stdout.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from feedback_flywheel import replay
from feedback_flywheel.config.paths import PACKAGE_PROJECT_DIR
from feedback_flywheel.config.replay_policy import default_replay_policy_path, load_replay_policy
from feedback_flywheel.replay import sampling
from feedback_flywheel.warehouse.schema import init_warehouse

WATERMARK = datetime(2026, 3, 1)
KEY = b"benchmark-key"


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(function: Callable[[], Any]) -> tuple[float, float, Any]:
    wall, cpu = time.perf_counter(), _cpu()
    result = function()
    return time.perf_counter() - wall, _cpu() - cpu, result


def build_mart(con: duckdb.DuckDBPyConnection, first: int, count: int) -> None:
    """Append ``count`` transitions (ids ``first`` ...) to a synthetic fct_replay_transitions,
    with the registry and segment rows the refresh reads."""
    con.execute(
        """
        insert into marts.fct_replay_transitions
        select
            printf('t%09d', i) as transition_id,
            printf('s%08d', i // 8) as session_id,
            'm' as model_name,
            'v1' as policy_version,
            'a' as action_label,
            '{}' as state_inputs_json,
            '{}' as state_context_json,
            case when i % 8 = 7 then null else printf('t%09d', i + 1) end as next_transition_id,
            null as next_state_inputs_json,
            null as next_state_context_json,
            null as bootstrap_transition_id,
            'known' as reward_status,
            'reward' as reward_sources,
            'entered' as entry_status,
            'b20260301T000000' as batch_id,
            i % 8 as step_index,
            1 as reward_event_count,
            1 as n_step_count,
            0.5 as action_score,
            (hash(i) % 2000) / 1000.0 - 1.0 as reward,
            (hash(i) % 2000) / 1000.0 - 1.0 as n_step_return,
            0.0 as bootstrap_discount,
            i % 8 = 7 as is_terminal,
            false as is_reward_expired,
            false as has_retracted_feedback,
            true as is_entered,
            cast(? as timestamp) - to_seconds(cast(? - i as bigint)) as logged_at,
            null as reward_received_at
        from range(?, ?) as r(i)
        """,
        [WATERMARK, first + count, first, first + count],
    )
    con.execute(
        """
        insert into marts.fct_inference_segments
        select printf('t%09d', i), 'region', 'm', ['na', 'eu', 'apac', 'latam'][1 + i % 4],
            null, null, null
        from range(?, ?) as r(i)
        """,
        [first, first + count],
    )


def setup(path: Path, transitions: int) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path))
    init_warehouse(con)
    con.execute("create schema if not exists marts")
    con.execute(
        """
        create table marts.fct_replay_transitions (
            transition_id varchar, session_id varchar, model_name varchar,
            policy_version varchar, action_label varchar, state_inputs_json varchar,
            state_context_json varchar, next_transition_id varchar,
            next_state_inputs_json varchar, next_state_context_json varchar,
            bootstrap_transition_id varchar, reward_status varchar, reward_sources varchar,
            entry_status varchar, batch_id varchar, step_index bigint,
            reward_event_count bigint, n_step_count bigint, action_score double,
            reward double, n_step_return double, bootstrap_discount double,
            is_terminal boolean, is_reward_expired boolean, has_retracted_feedback boolean,
            is_entered boolean, logged_at timestamp, reward_received_at timestamp
        )
        """
    )
    con.execute(
        """
        create table marts.fct_inference_segments (
            inference_id varchar, segment_attribute varchar, model_name varchar,
            segment_value varchar, served_date date, logged_at timestamp, loaded_at timestamp
        )
        """
    )
    con.execute(
        """
        create table marts.dim_model_versions as
        select 'm:v1' as model_version_key, 'm' as model_name, 'v1' as model_version,
            cast('2026-01-01' as timestamp) as deployed_at
        """
    )
    build_mart(con, 0, transitions)
    return con


def _policy(transitions: int):
    policy = load_replay_policy(default_replay_policy_path(PACKAGE_PROJECT_DIR))
    buffer = policy.buffer.model_copy(
        update={"capacity": transitions, "max_age_days": None, "max_times_sampled": None}
    )
    rate = policy.rate_limit.model_copy(update={"max_samples_per_insert": None})
    return policy.model_copy(update={"buffer": buffer, "rate_limit": rate})


def numpy_draw(priorities: np.ndarray, n: int, seed: int, alpha: float, beta: float):
    weights = priorities**alpha
    cumulative = np.cumsum(weights)
    total = cumulative[-1]
    position = np.random.default_rng(seed).random(n) * total
    index = np.searchsorted(cumulative, position, side="right")
    probability = weights[index] / total
    importance = (len(priorities) * probability) ** -beta
    importance /= (len(priorities) * weights.min() / total) ** -beta
    return index, probability, importance


def run_once(workdir: Path, args: argparse.Namespace, repeat: int) -> dict[str, tuple]:
    path = workdir / f"replay-{repeat}.duckdb"
    path.unlink(missing_ok=True)
    con = setup(path, args.transitions)
    policy = _policy(args.transitions)
    out: dict[str, tuple] = {}

    def refresh(batch_id: str, watermark: datetime):
        return replay.refresh(
            con,
            batch_id=batch_id,
            watermark=watermark,
            policy=policy,
            segment_attribute="region",
            audit_key=KEY,
            now=datetime(2026, 3, 2),
        )

    wall, cpu, outcome = timed(lambda: refresh("b20260301T000000", WATERMARK))
    out["refresh, fill"] = (wall, cpu, f"{outcome.inserted:,} inserted")
    # a trainer's TD errors leave uneven priorities
    rng = np.random.default_rng(repeat)
    con.execute(
        "update ml.replay_buffer set priority = exp(ln(0.01) + (hash(transition_id) % 1000000) "
        "/ 1000000.0 * (ln(10) - ln(0.01))), priority_source = 'td_error'"
    )
    build_mart(con, args.transitions, args.daily)
    wall, cpu, outcome = timed(lambda: refresh("b20260302T000000", WATERMARK + timedelta(days=1)))
    out["refresh, daily"] = (
        wall,
        cpu,
        f"{outcome.inserted:,} in, {outcome.evicted.get('over_capacity', 0):,} over capacity",
    )
    sql, params = sampling._eligible_sql(policy, "prioritized", None)
    seed = int(rng.integers(0, 2**31))
    wall, cpu, (frame, eligible) = timed(
        lambda: sampling.draw(
            con,
            n=args.draws,
            seed=seed,
            alpha=0.6,
            beta=0.4,
            eligible_sql=sql,
            eligible_params=params,
        )
    )
    out["draw, SQL"] = (wall, cpu, f"{args.draws:,} from {eligible:,}")
    wall, cpu, drawn = timed(
        lambda: replay.sample(
            con,
            n=args.draws,
            policy=policy,
            seed=seed,
            alpha=0.6,
            beta=0.4,
            now=datetime(2026, 3, 2),
        )
    )
    out["sample, recorded"] = (wall, cpu, f"{len(drawn.rows):,} rows with their transitions")
    wall, cpu, loaded = timed(
        lambda: con.execute(
            "select transition_id, priority from ml.replay_buffer order by insert_seq"
        ).fetchnumpy()
    )
    out["load priorities into numpy"] = (wall, cpu, f"{len(loaded['priority']):,} priorities")
    priorities = np.asarray(loaded["priority"], dtype=float)
    wall, cpu, (index, probability, importance) = timed(
        lambda: numpy_draw(priorities, args.draws, seed, 0.6, 0.4)
    )
    out["draw, numpy"] = (wall, cpu, f"{args.draws:,} from {len(priorities):,}")
    ids = np.asarray(loaded["transition_id"])[index]
    agree = float(np.mean(ids == frame.transition_id.to_numpy()))
    close = np.allclose(frame.probability, probability, rtol=1e-9) and np.allclose(
        frame.weight, importance, rtol=1e-9
    )
    if agree < 0.9999 or not close:
        _say(f"SQL and numpy draws disagree: {agree:.4%} same transitions, values close {close}")
        raise SystemExit(1)
    con.close()
    path.unlink(missing_ok=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transitions", type=int, default=1_000_000)
    parser.add_argument("--daily", type=int, default=33_334, help="New transitions, 2nd batch.")
    parser.add_argument("--draws", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="flywheel-replay-"))
    workdir.mkdir(parents=True, exist_ok=True)
    runs = []
    for repeat in range(args.repeat):
        _say(f"repeat {repeat + 1}/{args.repeat}: {args.transitions:,} transitions")
        runs.append(run_once(workdir, args, repeat))
    print(
        f"replay buffer, {args.transitions:,} transitions, {args.draws:,} draws; "
        f"medians of {args.repeat}\n"
    )
    print("| step | wall s | CPU s | what |\n|---|---:|---:|---|")
    for step in runs[0]:
        wall = statistics.median(run[step][0] for run in runs)
        cpu = statistics.median(run[step][1] for run in runs)
        print(f"| {step} | {wall:.3f} | {cpu:.3f} | {runs[0][step][2]} |")
    sql = statistics.median(run["draw, SQL"][0] for run in runs)
    recorded = statistics.median(run["sample, recorded"][0] for run in runs)
    memory = statistics.median(run["draw, numpy"][0] for run in runs)
    load = statistics.median(run["load priorities into numpy"][0] for run in runs)
    print(
        f"\ndraw, SQL / draw, numpy: {sql / memory:.1f}x wall; sample, recorded / draw, numpy: "
        f"{recorded / memory:.1f}x; load + numpy draw: {load + memory:.3f} s. SQL and numpy "
        "drew the same transitions with the same probabilities and weights in every repeat."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The buffer's refresh on a synthetic warehouse (the benchmark's: transitions with known ids,
rewards and serving times): over capacity the remover takes exactly the lowest priorities (or the
oldest, FIFO), new transitions enter at the maximum priority, the reward proxy is |reward - mean
reward of the buffer| + epsilon, stale policies and quarantined sources go with their reason, the
composition adds up, and a refreshed batch is never refreshed again. Expected values come from
numpy / pandas on the same rows."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from benchmarks.replay import WATERMARK, build_mart, setup
from feedback_flywheel.config.replay_policy import default_replay_policy_path, load_replay_policy
from feedback_flywheel.replay import refresh, versions
from tests.python.helpers import PROJECT_DIR

KEY = b"test-key"
NOW = datetime(2026, 3, 2)
FIRST, SECOND = "b20260301T000000", "b20260302T000000"


def _policy(**buffer):
    policy = load_replay_policy(default_replay_policy_path(PROJECT_DIR))
    update = {"max_age_days": None, "max_times_sampled": None, "max_policy_lag": None, **buffer}
    return policy.model_copy(update={"buffer": policy.buffer.model_copy(update=update)})


def _refresh(con, batch_id, policy, watermark=WATERMARK):
    return refresh(
        con,
        batch_id=batch_id,
        watermark=watermark,
        policy=policy,
        segment_attribute="region",
        audit_key=KEY,
        now=NOW,
    )


@pytest.fixture()
def con(tmp_path: Path):
    connection = setup(tmp_path / "w.duckdb", 200)
    yield connection
    connection.close()


def _held(con) -> set[str]:
    return {row[0] for row in con.execute("select transition_id from ml.replay_buffer").fetchall()}


def _evicted(con, batch_id: str, reason: str) -> set[str]:
    return {
        row[0]
        for row in con.execute(
            "select transition_id from ml.replay_evictions where batch_id = ? and reason_code = ?",
            [batch_id, reason],
        ).fetchall()
    }


def _give_priorities(con) -> dict[str, float]:
    """Distinct priorities (as reported TD errors would leave them), returned by id."""
    con.execute(
        "update ml.replay_buffer set priority = 0.01 + (hash(transition_id) % 100000) / 1000.0, "
        "priority_source = 'td_error'"
    )
    return dict(con.execute("select transition_id, priority from ml.replay_buffer").fetchall())


def test_over_capacity_the_lowest_priorities_go_and_new_ones_enter_at_the_maximum(con) -> None:
    policy = _policy(capacity=150, remover="lowest_priority")
    first = _refresh(con, FIRST, policy)
    assert (first.inserted, first.size, first.evicted["over_capacity"]) == (200, 150, 50)
    # all at the initial priority: the ties go oldest first
    assert _evicted(con, FIRST, "over_capacity") == {f"t{i:09d}" for i in range(50)}
    priorities = _give_priorities(con)
    build_mart(con, 200, 30)
    second = _refresh(con, SECOND, policy, WATERMARK + timedelta(days=1))
    assert (second.inserted, second.size) == (30, 150)
    lowest = sorted(priorities, key=lambda key: (priorities[key], key))[:30]
    assert _evicted(con, SECOND, "over_capacity") == set(lowest)
    new = {f"t{i:09d}" for i in range(200, 230)}
    assert new <= _held(con)
    (entered_at,) = con.execute(
        "select distinct priority from ml.replay_buffer where inserted_batch_id = ?", [SECOND]
    ).fetchall()
    assert entered_at[0] == pytest.approx(max(priorities.values()))


def test_fifo_removes_the_oldest_inserted(con) -> None:
    policy = _policy(capacity=150, remover="fifo")
    _refresh(con, FIRST, policy)
    _give_priorities(con)
    build_mart(con, 200, 30)
    _refresh(con, SECOND, policy, WATERMARK + timedelta(days=1))
    assert _evicted(con, SECOND, "over_capacity") == {f"t{i:09d}" for i in range(50, 80)}


def test_the_reward_proxy_is_the_distance_to_the_buffers_mean_reward(con) -> None:
    policy = _policy(capacity=1000)
    _refresh(con, FIRST, policy)
    build_mart(con, 200, 30)
    _refresh(con, SECOND, policy, WATERMARK + timedelta(days=1))
    rows = con.execute(
        """
        select b.transition_id, b.priority, b.priority_source, t.reward
        from ml.replay_buffer as b join marts.fct_replay_transitions as t using (transition_id)
        """
    ).df()
    mean = rows.reward.mean()  # every transition held when the proxy was refreshed
    proxy = rows[rows.priority_source == "reward_proxy"]
    assert len(proxy) == 200
    np.testing.assert_allclose(
        proxy.priority, np.abs(proxy.reward - mean) + policy.priority.epsilon, rtol=1e-12
    )
    assert (rows[rows.priority_source == "new_max"].transition_id >= "t000000200").all()


def test_stale_policy_and_quarantined_sources_go_with_their_reason(con) -> None:
    con.execute("insert into marts.dim_model_versions values ('m:v2', 'm', 'v2', '2026-02-01')")
    con.execute(
        "update marts.fct_replay_transitions set policy_version = 'v2' where step_index >= 4"
    )
    con.execute(
        "update marts.fct_replay_transitions set entry_status = 'pending_reward', "
        "is_entered = false where transition_id = 't000000005'"
    )
    _refresh(con, FIRST, _policy(capacity=1000))  # t5 (v2) never enters: not entered yet
    assert "t000000005" not in _held(con)
    con.execute(
        "update marts.fct_replay_transitions set entry_status = 'duplicate_step', "
        "is_entered = false where transition_id = 't000000006'"
    )
    _refresh(con, SECOND, _policy(capacity=1000, max_policy_lag=0), WATERMARK + timedelta(days=1))
    stale = _evicted(con, SECOND, "stale_policy")
    steps = con.execute(
        "select transition_id from marts.fct_replay_transitions where policy_version = 'v1'"
    ).fetchall()
    assert stale == {row[0] for row in steps}
    assert _evicted(con, SECOND, "source_quarantined") == {"t000000006"}
    (detail,) = con.execute(
        "select detail from ml.replay_evictions where reason_code = 'stale_policy' limit 1"
    ).fetchall()[0]
    assert "v1 is 1 deployments behind" in detail


def test_composition_adds_up_and_warns_on_a_dominant_segment(con) -> None:
    policy = _policy(capacity=1000)
    policy = policy.model_copy(
        update={"composition": policy.composition.model_copy(update={"dominant_share": 0.2})}
    )
    outcome = _refresh(con, FIRST, policy)
    rows = con.execute("select * from ml.replay_composition where batch_id = ?", [FIRST]).df()
    sums = rows.groupby("dimension").share.sum()
    np.testing.assert_allclose(sums, 1.0)
    assert set(rows.dimension) == {"age", "reward", "priority", "policy_version", "segment:region"}
    regions = rows[rows.dimension == "segment:region"].set_index("bucket").transitions
    assert regions.to_dict() == {"na": 50, "eu": 50, "apac": 50, "latam": 50}
    assert sum("dominated by one segment, region=" in w for w in outcome.warnings) == 4
    rewards = con.execute("select reward from marts.fct_replay_transitions").df().reward
    below = int((rewards < -0.5).sum())
    assert rows[(rows.dimension == "reward") & (rows.bucket == "< -0.5")].transitions.sum() == below


def test_a_refreshed_batch_is_left_as_it_is(con) -> None:
    policy = _policy(capacity=150)
    first = _refresh(con, FIRST, policy)
    before = con.execute("select * from ml.replay_buffer order by transition_id").df()
    build_mart(con, 200, 30)  # new transitions the re-run must not take
    again = _refresh(con, FIRST, policy)
    after = con.execute("select * from ml.replay_buffer order by transition_id").df()
    assert again.already_done and (again.size, again.inserted) == (first.size, first.inserted)
    assert before.equals(after)
    assert all(ok for _, ok in versions.verify(con))
    (audited,) = con.execute(
        "select count(*) from ml.audit_log where kind = 'replay_buffer'"
    ).fetchall()[0]
    assert audited == 1

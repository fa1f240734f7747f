"""The samplers on a buffer with known priorities: empirical frequencies over many seeded draws
match P(i) = p_i^alpha / sum_k p_k^alpha (chi-square goodness of fit), the importance weights
equal (N P(i))^-beta / max_k w_k, and draws are reproducible from the seed. The expected values
are computed here with numpy; the draws are the warehouse's (SQL)."""

from __future__ import annotations

import time
import types
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import pytest
from scipy import stats

from feedback_flywheel.config.replay_policy import default_replay_policy_path, load_replay_policy
from feedback_flywheel.replay import sampling
from feedback_flywheel.replay.sampling import RateLimited, ReplayError
from feedback_flywheel.warehouse.schema import init_warehouse
from tests.python.helpers import PROJECT_DIR

NOW = datetime(2026, 3, 1)
#: known priorities, deliberately uneven (one tiny, one large)
PRIORITIES = np.array([0.01, 0.2, 0.5, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 7.5, 0.05, 10.0])


def _policy(**changes):
    policy = load_replay_policy(default_replay_policy_path(PROJECT_DIR))
    buffer = policy.buffer.model_copy(
        update={"min_size_to_sample": 1, "max_times_sampled": None, **changes.pop("buffer", {})}
    )
    rate = policy.rate_limit.model_copy(
        update={"max_samples_per_insert": None, **changes.pop("rate_limit", {})}
    )
    return policy.model_copy(update={"buffer": buffer, "rate_limit": rate})


@pytest.fixture()
def con(tmp_path: Path):
    """A warehouse whose buffer holds len(PRIORITIES) transitions with those priorities, one
    version recorded, and the transitions mart they come from."""
    connection = duckdb.connect(str(tmp_path / "w.duckdb"))
    init_warehouse(connection)
    connection.execute("create schema marts")
    connection.execute(
        """
        create table marts.fct_replay_transitions as
        select
            printf('t%03d', i) as transition_id, 's1' as session_id, i as step_index,
            'm' as model_name, 'v1' as policy_version, '{}' as state_inputs_json,
            '{}' as state_context_json, 'a' as action_label, 0.5 as action_score,
            i / 10.0 as reward, i / 10.0 as n_step_return, 1 as n_step_count,
            null as bootstrap_transition_id, 0.0 as bootstrap_discount,
            null as next_transition_id, null as next_state_inputs_json,
            null as next_state_context_json, true as is_terminal, false as is_reward_expired,
            'reward' as reward_sources
        from range(?) as r(i)
        """,
        [len(PRIORITIES)],
    )
    for i, priority in enumerate(PRIORITIES):
        connection.execute(
            """
            insert into ml.replay_buffer values
                (?, 'm', 's1', 'v1', ?, 'td_error', null, null, 0, ?, 'b20260301T000000',
                 ?, ?, null)
            """,
            [f"t{i:03d}", float(priority), i + 1, NOW, NOW],
        )
    connection.execute(
        """
        insert into ml.replay_versions (batch_id, buffer_version, size, capacity, inserted,
            evicted, evictions_json, membership_hash, policy_version, computed_at)
        values ('b20260301T000000', 'rb-b20260301T000000', ?, 100, ?, 0, '{}', 'x', 'x1', ?)
        """,
        [len(PRIORITIES), len(PRIORITIES), NOW],
    )
    yield connection
    connection.close()


def _expected(alpha: float) -> np.ndarray:
    weights = PRIORITIES**alpha
    return weights / weights.sum()


def _frequencies(con, alpha: float, seeds: range, n: int) -> np.ndarray:
    sql, params = sampling._eligible_sql(_policy(), "prioritized", None)
    counts = np.zeros(len(PRIORITIES))
    for seed in seeds:
        frame, _ = sampling.draw(
            con, n=n, seed=seed, alpha=alpha, beta=0.4, eligible_sql=sql, eligible_params=params
        )
        index = frame.transition_id.str[1:].astype(int).to_numpy()
        counts += np.bincount(index, minlength=len(PRIORITIES))
    return counts


@pytest.mark.parametrize("alpha", [0.0, 0.6, 1.0])
def test_empirical_frequencies_match_p_alpha_over_sum(con, alpha: float) -> None:
    counts = _frequencies(con, alpha, range(40), 2_000)
    expected = _expected(alpha) * counts.sum()
    assert expected.min() > 5  # chi-square needs enough expected counts per cell
    result = stats.chisquare(counts, expected)
    assert result.pvalue > 0.01, (alpha, counts, expected)


def test_chi_square_would_reject_the_wrong_exponent(con) -> None:
    """The goodness-of-fit test has power: the same draws against alpha=1 fail at alpha=0.6."""
    counts = _frequencies(con, 0.6, range(40), 2_000)
    wrong = _expected(1.0) * counts.sum()
    assert stats.chisquare(counts, wrong).pvalue < 1e-6


@pytest.mark.parametrize("alpha, beta", [(0.6, 0.4), (1.0, 1.0), (0.3, 0.0)])
def test_probabilities_and_weights_equal_the_formula(con, alpha: float, beta: float) -> None:
    sql, params = sampling._eligible_sql(_policy(), "prioritized", None)
    frame, eligible = sampling.draw(
        con, n=5_000, seed=7, alpha=alpha, beta=beta, eligible_sql=sql, eligible_params=params
    )
    assert eligible == len(PRIORITIES)
    probability = _expected(alpha)
    weight = (len(PRIORITIES) * probability) ** -beta
    weight /= weight.max()
    index = frame.transition_id.str[1:].astype(int).to_numpy()
    np.testing.assert_allclose(frame.probability, probability[index], rtol=1e-12)
    np.testing.assert_allclose(frame.weight, weight[index], rtol=1e-12)
    assert frame.weight.max() <= 1.0 + 1e-12


def test_the_same_seed_draws_the_same_rows_and_another_seed_does_not(con) -> None:
    first = sampling.sample(con, n=300, policy=_policy(), seed=11, now=NOW, alpha=0.6, beta=0.5)
    again = sampling.sample(con, n=300, policy=_policy(), seed=11, now=NOW, alpha=0.6, beta=0.5)
    other = sampling.sample(con, n=300, policy=_policy(), seed=12, now=NOW, alpha=0.6, beta=0.5)
    assert first.rows.transition_id.tolist() == again.rows.transition_id.tolist()
    assert first.rows.transition_id.tolist() != other.rows.transition_id.tolist()
    assert first.sample_id != again.sample_id  # each draw is recorded on its own


def test_times_sampled_counts_every_draw(con) -> None:
    drawn = sampling.sample(con, n=500, policy=_policy(), seed=3, now=NOW)
    counted = dict(
        con.execute("select transition_id, times_sampled from ml.replay_buffer").fetchall()
    )
    expected = drawn.rows.transition_id.value_counts().to_dict()
    assert {k: v for k, v in counted.items() if v} == expected
    recorded = con.execute(
        "select count(*) from ml.replay_sample_draws where sample_id = ?", [drawn.sample_id]
    ).fetchall()[0][0]
    assert recorded == 500


def test_recent_sampler_draws_uniformly_from_the_newest_window(con) -> None:
    drawn = sampling.sample(
        con, n=6_000, policy=_policy(), seed=5, now=NOW, sampler="recent", recent_window=4
    )
    newest = {f"t{i:03d}" for i in range(len(PRIORITIES) - 4, len(PRIORITIES))}
    assert set(drawn.rows.transition_id) == newest
    counts = drawn.rows.transition_id.value_counts().to_numpy()
    assert stats.chisquare(counts).pvalue > 0.01
    np.testing.assert_allclose(drawn.rows.probability, 0.25, rtol=1e-12)
    np.testing.assert_allclose(drawn.rows.weight, 1.0, rtol=1e-12)


def test_uniform_sampler_gives_one_over_n(con) -> None:
    drawn = sampling.sample(con, n=100, policy=_policy(), seed=5, now=NOW, sampler="uniform")
    np.testing.assert_allclose(drawn.rows.probability, 1 / len(PRIORITIES), rtol=1e-12)
    with pytest.raises(ReplayError, match="leave alpha out"):
        sampling.sample(con, n=10, policy=_policy(), seed=5, now=NOW, sampler="uniform", alpha=1)


def test_a_transition_at_max_times_sampled_is_not_drawn(con) -> None:
    con.execute("update ml.replay_buffer set times_sampled = 3 where transition_id = 't011'")
    policy = _policy(buffer={"max_times_sampled": 3})
    drawn = sampling.sample(con, n=2_000, policy=policy, seed=1, now=NOW)
    assert "t011" not in set(drawn.rows.transition_id)  # the largest priority: else drawn most
    assert drawn.eligible == len(PRIORITIES) - 1


def test_samples_per_insert_limit_refuses_clearly(con) -> None:
    policy = _policy(rate_limit={"max_samples_per_insert": 10.0, "on_limit": "refuse"})
    sampling.sample(con, n=100, policy=policy, seed=1, now=NOW)  # 100 / 12 inserts = 8.3
    with pytest.raises(RateLimited, match=r"samples per insert would reach 16\.67 > .* 10"):
        sampling.sample(con, n=100, policy=policy, seed=2, now=NOW)
    (samples,) = con.execute("select count(*) from ml.replay_samples").fetchall()[0]
    assert samples == 1  # the refused sample left nothing behind


def test_samples_per_insert_limit_can_wait_for_the_next_batch(
    con, tmp_path: Path, monkeypatch
) -> None:
    """on_limit: wait lets go of the warehouse and tries again until wait_seconds pass (then
    refuses), or until a batch's inserts lift the ratio (then draws)."""
    monkeypatch.setattr(sampling, "WAIT_POLL_SECONDS", 0.05)
    policy = _policy(
        rate_limit={"max_samples_per_insert": 10.0, "on_limit": "wait", "wait_seconds": 0.3}
    )
    sampling.sample(con, n=100, policy=policy, seed=1, now=NOW)
    con.close()  # the trainer's own connection is gone: it samples through the path now
    db_path = tmp_path / "w.duckdb"
    started = time.monotonic()
    with pytest.raises(RateLimited):
        sampling.sample_when_allowed(db_path, policy=policy, n=100, seed=2, now=NOW)
    assert time.monotonic() - started >= 0.3
    polls = []

    def next_batch(seconds: float) -> None:
        """A batch runs while the sampler waits (it can: the sampler let go) and inserts 12."""
        polls.append(seconds)
        with duckdb.connect(str(db_path)) as batch:
            batch.execute(
                "update ml.replay_versions set inserted = inserted + 12 where batch_id = ?",
                ["b20260301T000000"],
            )

    monkeypatch.setattr(
        sampling, "time", types.SimpleNamespace(monotonic=time.monotonic, sleep=next_batch)
    )
    drawn = sampling.sample_when_allowed(db_path, policy=policy, n=100, seed=2, now=NOW)
    assert polls and drawn.samples_per_insert == pytest.approx(200 / 24)


def test_a_model_filter_draws_only_that_models_transitions(con) -> None:
    for i in range(3):
        con.execute(
            """
            insert into ml.replay_buffer values
                (?, 'other', 's9', 'v1', 50.0, 'td_error', null, null, 0, ?, 'b20260301T000000',
                 ?, ?, null)
            """,
            [f"o{i:03d}", 100 + i, NOW, NOW],
        )
    drawn = sampling.sample(con, n=2_000, policy=_policy(), seed=4, now=NOW, model_name="m")
    assert drawn.eligible == len(PRIORITIES)
    assert not drawn.rows.transition_id.str.startswith("o").any()
    index = drawn.rows.transition_id.str[1:].astype(int).to_numpy()
    alpha = drawn.alpha
    np.testing.assert_allclose(drawn.rows.probability, _expected(alpha)[index], rtol=1e-12)
    (recorded,) = con.execute(
        "select model_name from ml.replay_samples where sample_id = ?", [drawn.sample_id]
    ).fetchall()[0]
    assert recorded == "m"
    with pytest.raises(ReplayError, match="of model 'nobody'"):
        sampling.sample(con, n=5, policy=_policy(), seed=4, now=NOW, model_name="nobody")


def test_bad_arguments_are_refused_by_name(con) -> None:
    policy = _policy()
    for kwargs, message in [
        ({"n": 0}, "n must be"),
        ({"n": 5, "alpha": -1.0}, "alpha must be"),
        ({"n": 5, "beta": 2.0}, "beta must be"),
        ({"n": 5, "seed": -3}, "seed must be"),
        ({"n": 5, "sampler": "recent"}, "recent_window"),
        ({"n": 5, "sampler": "lifo"}, "sampler must be"),
    ]:
        arguments = {"seed": 1, **kwargs}
        with pytest.raises(ReplayError, match=message):
            sampling.sample(con, policy=policy, now=NOW, **arguments)
    small = _policy(buffer={"min_size_to_sample": 100})
    with pytest.raises(ReplayError, match="min_size_to_sample"):
        sampling.sample(con, n=5, policy=small, seed=1, now=NOW)

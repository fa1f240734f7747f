"""The Exp3 bandit over the query policies, without the batch cycle.

Rounds are checked against Exp3 as Auer et al. (2002) write it, computed here the plain way
(weights multiplied, never logged or shifted, the draw by numpy's searchsorted on the cumulative
probabilities); the draw's frequencies against its probabilities by scipy's chi-square test; and
the store's rounds across evaluations against the same recursion, read back from the ml table.
"""

from __future__ import annotations

import math
from datetime import datetime

import duckdb
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from feedback_flywheel.calibration import bandit, store
from feedback_flywheel.calibration.policies import POLICIES
from feedback_flywheel.config.vars import load_vars
from feedback_flywheel.warehouse import schema
from tests.python.calibration.exp3_reference import reference_exp3
from tests.python.helpers import PROJECT_DIR


@settings(max_examples=60, deadline=None)
@given(
    gamma=st.floats(0.01, 1.0),
    rounds=st.lists(
        st.tuples(
            st.lists(st.floats(0.0, 1.0), min_size=len(POLICIES), max_size=len(POLICIES)),
            st.floats(0.0, 0.999999),
        ),
        min_size=1,
        max_size=25,
    ),
)
def test_each_round_is_exp3_as_published(
    gamma: float, rounds: list[tuple[list[float], float]]
) -> None:
    names = sorted(POLICIES)
    rewards = [dict(zip(names, values, strict=True)) for values, _ in rounds]
    keys = [key for _, key in rounds]
    expected = reference_exp3(names, rewards, keys, gamma)
    previous = None
    for reward, key, (probabilities, drawn, credited) in zip(rewards, keys, expected, strict=True):
        played = bandit.exp3_round(names, reward, previous, gamma, key)
        assert played.policies == tuple(names)
        assert played.probabilities == pytest.approx(probabilities, rel=1e-9, abs=1e-12)
        assert math.fsum(played.probabilities) == pytest.approx(1.0, abs=1e-12)
        assert min(played.probabilities) >= gamma / len(names) - 1e-12
        assert max(played.log_weights) == 0.0
        assert played.drawn == drawn
        assert played.reward == credited
        assert played.credited == (None if credited is None else previous.drawn)
        previous = bandit.PreviousRound(
            dict(zip(played.policies, played.log_weights, strict=True)),
            dict(zip(played.policies, played.probabilities, strict=True)),
            played.drawn,
        )


def test_the_draws_follow_the_probabilities() -> None:
    names = sorted(POLICIES)
    previous = bandit.PreviousRound(
        {name: -0.4 * index for index, name in enumerate(names)},
        dict.fromkeys(names, 1 / len(names)),
        names[0],
    )
    counts = dict.fromkeys(names, 0)
    probabilities = None
    for batch in range(12000):
        key = bandit.draw_key("router", f"b{batch:05d}", 42)
        played = bandit.exp3_round(names, dict.fromkeys(names, 0.5), previous, 0.3, key)
        probabilities = played.probabilities  # the same every time: the same update
        counts[played.drawn] += 1
    observed = np.array([counts[name] for name in names])
    expected = np.array(probabilities) * observed.sum()
    assert stats.chisquare(observed, expected).pvalue > 0.001


def test_a_round_refuses_a_gamma_or_key_out_of_range() -> None:
    with pytest.raises(ValueError, match="gamma"):
        bandit.exp3_round(["random"], {"random": 0.5}, None, 0.0, 0.5)
    with pytest.raises(ValueError, match="draw key"):
        bandit.exp3_round(["random"], {"random": 0.5}, None, 0.5, 1.0)


def _scores(batch: str, aulc: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "policy": list(aulc),
            "aulc_mean": list(aulc.values()),
            "aulc_lower": None,
            "aulc_upper": None,
            "gain_mean": [value - aulc["random"] for value in aulc.values()],
            "gain_lower": None,
            "gain_upper": None,
            "seeds": 3,
            "batch_id": batch,
            "model_name": "router",
            "first_train_batch_id": "b0",
            "last_test_batch_id": batch,
            "pairs": 1,
            "computed_at": datetime(2026, 1, 1),
        }
    )


def test_the_store_plays_one_round_per_evaluation_from_the_one_before(tmp_path) -> None:
    settings_ = load_vars(PROJECT_DIR, {"sampling_policy_exp3_gamma": 0.3, "sampling_seed": 7})
    rng = np.random.default_rng(5)
    batches = [f"b2026010{day}T000000" for day in range(1, 8)]
    names = sorted(POLICIES)
    rewards = [dict(zip(names, rng.uniform(0.5, 0.9, len(names)), strict=True)) for _ in batches]
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        schema.init_warehouse(con)
        for batch, reward in zip(batches, rewards, strict=True):
            played = store.with_bandit_round(
                con, _scores(batch, reward), batch, "router", settings_
            )
            schema.insert_frame(con, store.SCORES_TABLE, played)
        stored = con.execute(
            f"select * from {store.SAMPLING_POLICY_SCORES} order by batch_id, policy"
        ).df()
    keys = [bandit.draw_key("router", batch, 7) for batch in batches]
    expected = reference_exp3(names, rewards, keys, 0.3)
    for batch, (probabilities, drawn, credited) in zip(batches, expected, strict=True):
        rows = stored[stored.batch_id == batch].set_index("policy").loc[names]
        assert rows.exp3_probability.tolist() == pytest.approx(probabilities, rel=1e-9)
        assert rows.index[rows.is_exp3_draw].tolist() == [drawn]
        assert (rows.exp3_gamma == 0.3).all()
        if credited is None:
            assert rows.exp3_reward.isna().all()  # the first round credits nothing
        else:
            (reward_row,) = rows[rows.exp3_reward.notna()].itertuples()
            assert reward_row.exp3_reward == pytest.approx(credited)

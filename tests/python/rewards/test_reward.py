"""The reward model and the preference dataset: the Bradley–Terry fits against independent
solvers written here, the reward model against the demo world's hidden latent quality, the
preference marts against crafted raw rows, and the batch semantics (idempotent re-run, too few new
pairs) on private copies of the demo warehouse."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import optimize, stats

from feedback_flywheel import batches, demo, ingest, warehouse
from feedback_flywheel.config.policies import (
    RewardPolicy,
    RewardPolicyError,
    default_reward_policy_path,
    load_reward_policy,
)
from feedback_flywheel.config.vars import BATCH_VARS
from feedback_flywheel.rewards import bradley_terry, leaderboard, model, store, training
from feedback_flywheel.rewards import stage as reward
from feedback_flywheel.warehouse.contract import RAW_TABLES
from tests.python.helpers import (
    PROJECT_DIR,
    DemoWarehouse,
    dbt,
    default_reward_policy,
    project_vars,
    settings_for,
)

# --- independent references ------------------------------------------------------------------


def log_sigmoid(x: np.ndarray) -> np.ndarray:
    return -np.log1p(np.exp(-x))


def reference_bt_loss(w: np.ndarray, xa: np.ndarray, xb: np.ndarray, y: np.ndarray, l2: float):
    """Plain Bradley–Terry written from the definition: P(a beats b) = π_a / (π_a + π_b),
    π = exp(x · w); y = 1 when a won."""
    pi_a, pi_b = np.exp(xa @ w), np.exp(xb @ w)
    p = pi_a / (pi_a + pi_b)
    return -np.sum(y * np.log(p) + (1 - y) * np.log(1 - p)) + 0.5 * l2 * w @ w


def reference_davidson_loss(theta, xa, xb, outcome, l2):
    """Davidson (1970) from the definition: P(a) = π_a / D, P(b) = π_b / D,
    P(tie) = ν √(π_a π_b) / D, D = π_a + π_b + ν √(π_a π_b); theta = (w, log ν)."""
    w, nu = theta[:-1], np.exp(theta[-1])
    pi_a, pi_b = np.exp(xa @ w), np.exp(xb @ w)
    tie = nu * np.sqrt(pi_a * pi_b)
    denominator = pi_a + pi_b + tie
    p = np.select([outcome == 0, outcome == 1], [pi_a, pi_b], tie) / denominator
    return -np.sum(np.log(p)) + 0.5 * l2 * w @ w


def reference_rao_kupper_loss(theta, xa, xb, outcome, l2):
    """Rao–Kupper (1967) from the definition with θ ≥ 1: P(a) = π_a / (π_a + θ π_b),
    P(tie) = (θ² − 1) π_a π_b / ((π_a + θ π_b)(π_b + θ π_a)); theta = (w, log log θ)."""
    w, big_theta = theta[:-1], np.exp(np.exp(theta[-1]))
    pi_a, pi_b = np.exp(xa @ w), np.exp(xb @ w)
    p_a = pi_a / (pi_a + big_theta * pi_b)
    p_b = pi_b / (pi_b + big_theta * pi_a)
    p_tie = (
        (big_theta**2 - 1) * pi_a * pi_b / ((pi_a + big_theta * pi_b) * (pi_b + big_theta * pi_a))
    )
    p = np.select([outcome == 0, outcome == 1], [p_a, p_b], p_tie)
    return -np.sum(np.log(p)) + 0.5 * l2 * w @ w


def minorise_maximise(n_items: int, winners: np.ndarray, losers: np.ndarray) -> np.ndarray:
    """Hunter's (2004) MM iteration for the item-level Bradley–Terry MLE (no ties):
    π_i ← W_i / Σ_j n_ij / (π_i + π_j); returns log π centred to mean zero."""
    wins = np.bincount(winners, minlength=n_items).astype(float)
    games = np.zeros((n_items, n_items))
    np.add.at(games, (winners, losers), 1.0)
    games = games + games.T
    pi = np.ones(n_items)
    for _ in range(20_000):
        denominator = (games / (pi[:, None] + pi[None, :])).sum(axis=1)
        updated = wins / denominator
        updated /= np.exp(np.mean(np.log(updated)))
        if np.max(np.abs(np.log(updated) - np.log(pi))) < 1e-12:
            pi = updated
            break
        pi = updated
    log_pi = np.log(pi)
    return log_pi - log_pi.mean()


def split_of(context_id: str, seed: int, share: float) -> str:
    """The split written independently: first 8 hex digits of md5('<context_id>:<seed>') / 2^32."""
    digest = hashlib.md5(f"{context_id}:{seed}".encode()).hexdigest()
    return "validation" if int(digest[:8], 16) / 4294967296.0 < share else "train"


# --- the demo world as the reward stage left it ------------------------------------------------


@pytest.fixture(scope="module")
def world(demo_warehouse: DemoWarehouse) -> dict[str, Any]:
    """What the batch cycle wrote for the demo world, and the hidden truth beside it."""
    with demo_warehouse.connect() as con:
        pairs = con.execute("select * from marts.fct_preference_pairs").df()
        models = con.execute("select * from ml.reward_models order by batch_id").df()
        scores = con.execute("select * from ml.reward_scores").df()
        board = con.execute("select * from ml.reward_leaderboard").df()
        features = con.execute("select * from marts.fct_output_features").df()
        audit_rows = con.execute(
            "select subject_id, batch_id, payload_json from ml.audit_log "
            "where kind = 'reward_model'"
        ).df()
        batch_ids = [
            row[0]
            for row in con.execute(
                "select distinct batch_id from ml.batch_runs where status = 'success' order by 1"
            ).fetchall()
        ]
    latent = pd.read_parquet(demo_warehouse.demo_dir / "latent_quality.parquet")
    return {
        "pairs": pairs,
        "models": models,
        "scores": scores,
        "board": board,
        "features": features.set_index("inference_id"),
        "audit": audit_rows,
        "batch_ids": batch_ids,
        "latent": latent.set_index("inference_id").latent_quality,
    }


def current_parameters(world: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    promoted = world["models"][world["models"].is_promoted]
    assert not promoted.empty, "no reward model was promoted on the demo world"
    latest = promoted.iloc[-1]
    return latest.reward_model_version, json.loads(latest.parameters_json)


def scores_written_here(params: dict[str, Any], features: pd.DataFrame, ids) -> np.ndarray:
    """r(x) recomputed from the stored parameters: Σ w_k (x_k − mean_k) / scale_k."""
    values = features.loc[list(ids), params["feature_names"]].to_numpy(dtype=float)
    return ((values - np.array(params["means"])) / np.array(params["scales"])) @ np.array(
        params["weights"]
    )


def test_every_batch_has_one_reward_row_with_a_reason_and_an_audit_entry(world):
    models = world["models"]
    assert list(models.batch_id) == world["batch_ids"]
    assert models.reason.str.len().gt(10).all()
    assert set(models.status) <= {"trained", "skipped"}
    assert models.is_promoted.any()
    # promoted rows are trained; the current version after a batch is the latest promoted so far
    assert not (models.is_promoted & (models.status != "trained")).any()
    current = None
    for row in models.itertuples():
        current = row.reward_model_version if row.is_promoted else current
        assert row.current_version == current
    audited = world["audit"]
    assert len(audited) == len(models)
    assert set(audited.batch_id) == set(models.batch_id)


def test_heldout_accuracy_is_within_a_few_points_of_the_latent_quality(world):
    """On the held-out (validation) decisive pairs, the current reward model orders the two outputs
    about as well as the hidden quality that generated the judgements."""
    version, params = current_parameters(world)
    pairs = world["pairs"]
    held_out = pairs[(pairs.split == "validation") & ~pairs.is_tie]
    won = (held_out.preferred_output == "low").to_numpy()
    latent = world["latent"]
    dq = (
        latent.loc[held_out.inference_id_low].to_numpy()
        - latent.loc[held_out.inference_id_high].to_numpy()
    )
    dr = scores_written_here(params, world["features"], held_out.inference_id_low) - (
        scores_written_here(params, world["features"], held_out.inference_id_high)
    )
    latent_accuracy = np.mean((dq > 0) == won)
    model_accuracy = np.mean(np.where(dr == 0, 0.5, (dr > 0) == won))
    print(
        f"\n{version}: held-out accuracy {model_accuracy:.3f} vs latent quality "
        f"{latent_accuracy:.3f} on {len(held_out)} pairs"
    )
    assert len(held_out) >= 40
    assert latent_accuracy > 0.55  # the judgements do carry the latent signal
    assert abs(model_accuracy - latent_accuracy) <= 0.06


def test_scores_rank_outputs_like_the_latent_quality(world):
    version, params = current_parameters(world)
    scores = world["scores"]
    mine = scores[scores.reward_model_version == version].set_index("inference_id")
    common = mine.index.intersection(world["latent"].index)
    assert len(common) >= 200
    rho, p_value = stats.spearmanr(mine.score.loc[common], world["latent"].loc[common])
    print(f"\nSpearman(score, latent quality) of {version} on {len(common)} outputs: {rho:.3f}")
    assert rho > 0.7 and p_value < 1e-6
    # every stored score is r(x) of the stored parameters, and its input hash traces the input
    recomputed = scores_written_here(params, world["features"], mine.index)
    np.testing.assert_allclose(mine.score.to_numpy(), recomputed, rtol=1e-9, atol=1e-9)
    first = mine.index[0]
    row = world["features"].loc[first, params["feature_names"]].to_numpy(dtype=float)
    text = json.dumps(
        [[name, repr(float(v))] for name, v in zip(params["feature_names"], row, strict=True)]
    )
    assert mine.input_hash.loc[first] == hashlib.md5(text.encode()).hexdigest()


def test_stored_heldout_metrics_equal_a_direct_computation(world):
    """Accuracy, log loss and calibration error of every trained version, recomputed with numpy on
    the validation pairs it was evaluated on (the pairs completed by its batch)."""
    pairs = world["pairs"]
    trained = world["models"][world["models"].status == "trained"]
    assert not trained.empty
    for row in trained.itertuples():
        params = json.loads(row.parameters_json)
        held_out = pairs[(pairs.split == "validation") & ~pairs.is_tie]
        held_out = held_out[
            (held_out.batch_id <= row.batch_id) & (held_out.pair_source != "reward_model")
        ]
        won = (held_out.preferred_output == "low").to_numpy().astype(float)
        dr = scores_written_here(params, world["features"], held_out.inference_id_low) - (
            scores_written_here(params, world["features"], held_out.inference_id_high)
        )
        p = 1.0 / (1.0 + np.exp(-dr))
        assert row.heldout_pairs == len(held_out)
        assert row.heldout_accuracy == pytest.approx(np.mean((dr > 0) == (won == 1)), abs=1e-12)
        log_loss = -np.mean(won * np.log(p) + (1 - won) * np.log(1 - p))
        assert row.heldout_log_loss == pytest.approx(log_loss, rel=1e-9)
        bins = np.minimum((p * 10).astype(int), 9)
        ece = sum(
            (bins == b).mean() * abs(p[bins == b].mean() - won[bins == b].mean())
            for b in range(10)
            if (bins == b).any()
        )
        assert row.heldout_calibration_error == pytest.approx(ece, rel=1e-9)


def test_split_is_by_context_and_rebuilds_from_the_hash(world):
    pairs = world["pairs"]
    assert pairs.groupby("context_id").split.nunique().max() == 1
    settings = project_vars()
    expected = [
        split_of(context, settings.sampling_seed, settings.preference_validation_share)
        for context in pairs.context_id
    ]
    assert list(pairs.split) == expected
    assert 0.1 < (pairs.drop_duplicates("context_id").split == "validation").mean() < 0.3


def test_rating_pairs_equal_a_pandas_derivation(demo_warehouse, world):
    """feedback_rating pairs: two outputs of one context whose current ratings differ."""
    with demo_warehouse.connect() as con:
        ratings = con.execute(
            """
            select event_id, inference_id, value_numeric as rating, occurred_at, received_at
            from marts.fct_feedback where event_type = 'rating' and not is_retracted
            """
        ).df()
        contexts = con.execute(
            "select inference_id, context_id from intermediate.int_inferences_validated "
            "where is_accepted and context_id is not null"
        ).df()
    current = (
        ratings.sort_values(["occurred_at", "received_at", "event_id"])
        .groupby("inference_id")
        .tail(1)
        .merge(contexts, on="inference_id")
    )
    expected = set()
    for context, group in current.groupby("context_id"):
        rows = group.sort_values("inference_id").to_dict("records")
        for i, low in enumerate(rows):
            for high in rows[i + 1 :]:
                if low["rating"] != high["rating"]:
                    side = "low" if low["rating"] > high["rating"] else "high"
                    margin = abs(low["rating"] - high["rating"])
                    expected.add((context, low["inference_id"], high["inference_id"], side, margin))
    pairs = world["pairs"]
    derived = pairs[pairs.pair_source == "feedback_rating"]
    got = set(
        derived[
            ["context_id", "inference_id_low", "inference_id_high", "preferred_output", "margin"]
        ].itertuples(index=False, name=None)
    )
    assert expected and got == expected
    assert (
        derived.pair_weight == project_vars().preference_source_weights["feedback_rating"]
    ).all()


def test_the_leaderboard_recovers_the_demo_version_order(world, demo_warehouse):
    """After v2's deployment the demo keeps v1 answering in shadow for a share of the tickets
    answered twice, and v2's replies are better by a known latent offset: the item-level fit
    ranks the versions as the truth does, with bootstrap intervals that do not overlap, and the
    win / loss counts it reports equal a direct count of the cross-version pairs."""
    truth = demo_warehouse.truth["preference"]
    pairs = world["pairs"]
    cross = pairs[pairs.model_version_low != pairs.model_version_high]
    assert len(cross) > 30, "the demo world should compare versions"
    board = world["board"]
    latest = board[board.batch_id == board.batch_id.max()].sort_values("rank")
    assert latest.is_identified.all()
    assert list(latest.model_version) == truth["version_order"]
    best, worst = latest.iloc[0], latest.iloc[-1]
    assert best.strength_lower > worst.strength_upper
    # wins and losses against a direct count on the same pairs (ties kept apart)
    for row in latest.itertuples(index=False):
        mine = cross[
            (cross.model_version_low == row.model_version)
            | (cross.model_version_high == row.model_version)
        ]
        is_low = mine.model_version_low == row.model_version
        won = (is_low & (mine.preferred_output == "low")) | (
            ~is_low & (mine.preferred_output == "high")
        )
        tied = mine.preferred_output == "tie"
        assert row.cross_version_comparisons == len(mine)
        assert row.wins == int(won.sum())
        assert row.ties == int(tied.sum())
        assert row.losses == len(mine) - int(won.sum()) - int(tied.sum())


# --- the fits against independent solvers -----------------------------------------------------


@pytest.fixture(scope="module")
def train_pairs(world) -> dict[str, np.ndarray]:
    """The demo's train-split pairs as standardised feature matrices (a = low, b = high)."""
    pairs = world["pairs"]
    train = pairs[pairs.split == "train"]
    names = [c for c in world["features"].columns if c not in store.NON_FEATURE_COLUMNS]
    xa = world["features"].loc[train.inference_id_low, names].to_numpy(dtype=float)
    xb = world["features"].loc[train.inference_id_high, names].to_numpy(dtype=float)
    stacked = np.vstack([xa, xb])
    mean, scale = stacked.mean(axis=0), stacked.std(axis=0)
    scale[scale == 0] = 1.0
    outcome = train.preferred_output.map({"low": 0, "high": 1, "tie": 2}).to_numpy()
    return {"xa": (xa - mean) / scale, "xb": (xb - mean) / scale, "outcome": outcome}


def test_bradley_terry_fit_equals_a_direct_likelihood_minimisation(train_pairs):
    decisive = train_pairs["outcome"] != 2
    xa, xb = train_pairs["xa"][decisive], train_pairs["xb"][decisive]
    y = (train_pairs["outcome"][decisive] == 0).astype(float)
    ours = bradley_terry.fit_bradley_terry(
        xa - xb, train_pairs["outcome"][decisive], l2=1.0, ties="exclude"
    )
    reference = optimize.minimize(
        reference_bt_loss,
        np.zeros(xa.shape[1]),
        args=(xa, xb, y, 1.0),
        method="BFGS",
        options={"gtol": 1e-8},
    )
    np.testing.assert_allclose(ours.weights, reference.x, atol=2e-4)
    assert ours.objective == pytest.approx(reference.fun, rel=1e-7)


@pytest.mark.parametrize("ties", ["davidson", "rao_kupper"])
def test_tie_models_equal_a_direct_likelihood_minimisation(train_pairs, ties):
    xa, xb, outcome = train_pairs["xa"], train_pairs["xb"], train_pairs["outcome"]
    assert (outcome == 2).sum() >= 5
    ours = bradley_terry.fit_bradley_terry(xa - xb, outcome, l2=1.0, ties=ties)
    loss = reference_davidson_loss if ties == "davidson" else reference_rao_kupper_loss
    start = np.append(np.zeros(xa.shape[1]), np.log(0.2))
    reference = optimize.minimize(
        loss, start, args=(xa, xb, outcome, 1.0), method="BFGS", options={"gtol": 1e-8}
    )
    np.testing.assert_allclose(ours.weights, reference.x[:-1], atol=5e-4)
    tie_parameter = np.exp(reference.x[-1])  # Davidson ν, Rao–Kupper η = log θ
    assert ours.tie_parameter == pytest.approx(tie_parameter, rel=5e-3)
    assert ours.objective == pytest.approx(reference.fun, rel=1e-7)


def leaderboard_policy(l2: float, samples: int) -> RewardPolicy:
    policy = default_reward_policy()
    board = policy.leaderboard.model_copy(update={"l2": l2, "bootstrap_samples": samples})
    return policy.model_copy(update={"leaderboard": board})


def arena(truth: dict[str, Any], n_contexts: int, seed: int) -> tuple[pd.DataFrame, dict]:
    """Cross-version pairs between model versions whose preference strengths follow the truth's
    version accuracies (logit of each), plus a third, weaker version: one pair per context."""
    accuracy = truth["accuracy"]
    planted = {v: float(np.log(a / (1 - a))) for v, a in accuracy.items() if v.startswith("v")}
    planted["v0"] = min(planted.values()) - 0.7
    versions = sorted(planted)
    rng = np.random.default_rng(seed)
    rows = []
    for number in range(n_contexts):
        first, second = rng.choice(len(versions), size=2, replace=False)
        low, high = versions[min(first, second)], versions[max(first, second)]
        p_low = 1.0 / (1.0 + np.exp(-(planted[low] - planted[high])))
        rows.append(
            {
                "context_id": f"ctx-{number:05d}",
                "model_name": truth["model_name"],
                "model_version_low": low,
                "model_version_high": high,
                "preferred_output": "low" if rng.random() < p_low else "high",
                "pair_weight": 1.0,
            }
        )
    return pd.DataFrame(rows), planted


def test_item_level_fit_equals_minorisation_maximisation_and_recovers_the_order(demo_warehouse):
    pairs, planted = arena(demo_warehouse.truth, 1500, seed=3)
    board = leaderboard.fit_leaderboard(pairs, leaderboard_policy(1e-9, 60), ties="exclude")
    board = board.set_index("model_version")
    # the MLE by an independent algorithm on the same pairs
    versions = sorted(planted)
    index = {v: i for i, v in enumerate(versions)}
    low = pairs.model_version_low.map(index).to_numpy()
    high = pairs.model_version_high.map(index).to_numpy()
    low_won = (pairs.preferred_output == "low").to_numpy()
    mm = minorise_maximise(
        len(versions), np.where(low_won, low, high), np.where(low_won, high, low)
    )
    np.testing.assert_allclose(board.loc[versions, "strength"].to_numpy(), mm, atol=1e-4)
    # the order of the planted strengths (v2 > v1 as in truth.json, then v0)
    assert list(board.sort_values("rank").index) == sorted(planted, key=planted.get, reverse=True)
    centred = {v: s - np.mean(list(planted.values())) for v, s in planted.items()}
    inside = [
        board.loc[v, "strength_lower"] <= centred[v] <= board.loc[v, "strength_upper"]
        for v in versions
    ]
    assert sum(inside) >= len(versions) - 1
    assert board.is_identified.all()
    assert (board.strength_lower < board.strength).all() and (
        board.strength < board.strength_upper
    ).all()


def test_the_echo_cap_limits_reward_model_pairs():
    pairs = pd.DataFrame(
        {
            "pair_source": ["human"] * 4 + ["feedback_rating"] * 2 + ["reward_model"] * 10,
            "pair_weight": [1.0] * 4 + [0.5] * 2 + [0.25] * 10,
        }
    )
    weight = training.capped_weights(pairs, max_share=0.2)
    others = 4 * 1.0 + 2 * 0.5
    assert weight[pairs.pair_source != "reward_model"].tolist() == [1.0] * 4 + [0.5] * 2
    assert weight[pairs.pair_source == "reward_model"].sum() == pytest.approx(0.2 * others)
    # below the cap nothing changes
    few = pairs.iloc[:8]
    assert training.capped_weights(few, 0.2).tolist() == few.pair_weight.tolist()


# --- batch semantics on private copies ----------------------------------------------------------


def snapshot(db: Path) -> dict[str, pd.DataFrame]:
    with warehouse.connect(db, read_only=True) as con:
        return {
            table: con.execute(f"select * from {table} order by all").df()
            for table in (
                "ml.reward_models",
                "ml.reward_scores",
                "ml.reward_leaderboard",
                "ml.audit_log",
            )
        }


def test_rerunning_a_batch_changes_no_model_or_score(demo_warehouse, tmp_path):
    db = demo_warehouse.copy_to(tmp_path / "rerun.duckdb")
    before = snapshot(db)
    latest = demo_warehouse.windows[-1]
    with warehouse.connect(db) as con:
        outcome = reward.run_batch(
            con,
            batch_id=latest.batch_id,
            window_start=latest.window_start,
            window_end=latest.window_end,
            policy=default_reward_policy(),
            audit_key=settings_for(db).secret.audit_key,
        )
    assert outcome.status == "already_done"
    assert "nothing changed" in outcome.reason
    after = snapshot(db)
    for table, frame in before.items():
        pd.testing.assert_frame_equal(frame, after[table], obj=table)


def test_too_few_new_pairs_keeps_the_model_and_says_why(demo_warehouse, tmp_path):
    db = demo_warehouse.copy_to(tmp_path / "quiet.duckdb")
    last = demo_warehouse.windows[-1]
    quiet = batches.window(last.window_end, last.window_end + timedelta(days=1))
    with warehouse.connect(db) as con:
        current = store.current_model(con)
        outcome = reward.run_batch(
            con,
            batch_id=quiet.batch_id,
            window_start=quiet.window_start,
            window_end=quiet.window_end,
            policy=default_reward_policy(),
            audit_key=settings_for(db).secret.audit_key,
        )
        row = con.execute(
            "select status, is_promoted, current_version, reason, n_pairs_new "
            "from ml.reward_models where batch_id = ?",
            [quiet.batch_id],
        ).fetchall()[0]
    assert current is not None
    assert outcome.status == "skipped" and not outcome.is_promoted
    assert row[0] == "skipped" and row[1] is False and row[2] == current.version
    assert row[4] == 0
    policy = default_reward_policy()
    assert "too few new pairs: 0" in row[3]
    assert f"min_new_pairs {policy.training.min_new_pairs}" in row[3]
    assert f"keeping {current.version}" in row[3]


def test_an_invalid_reward_policy_names_the_key(tmp_path):
    text = (
        default_reward_policy_path(PROJECT_DIR).read_text().replace("ties: davidson", "ties: maybe")
    )
    bad = tmp_path / "reward.yml"
    bad.write_text(text)
    with pytest.raises(RewardPolicyError, match=r"training\.ties"):
        load_reward_policy(bad)


# --- the preference marts against crafted raw rows ---------------------------------------------


def test_crafted_preference_rows_are_deduplicated_quarantined_or_held(demo_warehouse, tmp_path):
    """A reversed re-judgement by the same annotator merges into the original pair; bad rows are
    quarantined with their reason; a row whose output has not arrived is held. The build's own
    data tests (every raw row accepted, quarantined or held exactly once) must pass."""
    db = demo_warehouse.copy_to(tmp_path / "crafted.duckdb")
    last = demo_warehouse.windows[-1]
    batch = batches.window(last.window_end, last.window_end + timedelta(days=1))
    with warehouse.connect(db, read_only=True) as con:
        original = (
            con.execute(
                """
            select * from intermediate.int_preference_events_classified
            where status = 'accepted' and preferred <> 'tie' and annotator_id is not null
            order by preference_id limit 1
            """
            )
            .df()
            .iloc[0]
        )
        other_context = con.execute(
            "select context_id from marts.fct_preference_pairs where context_id <> ? limit 1",
            [original.context_id],
        ).fetchall()[0][0]
        pairs_before = con.execute("select count(*) from marts.fct_preference_pairs").fetchall()[0][
            0
        ]
        # annotator ids are pseudonymised in staging: a re-judgement arrives with the raw id
        (raw_annotator,) = con.execute(
            "select annotator_id from raw.preference_events where preference_id = ? limit 1",
            [original.preference_id],
        ).fetchone()
    lookback = project_vars().lookback_days
    recent = batch.window_start + timedelta(hours=2)
    old = batch.window_end - timedelta(days=lookback + 1)
    flipped = {"a": "b", "b": "a"}[original.preferred]

    def row(preference_id, context, a, b, preferred, received, annotator=raw_annotator):
        return {
            "preference_id": preference_id,
            "context_id": context,
            "inference_id_a": a,
            "inference_id_b": b,
            "preferred": preferred,
            "annotator_id": annotator,
            "source": original.preference_source,
            "occurred_at": received - timedelta(minutes=5),
            "received_at": received,
        }

    a, b, ctx = original.inference_id_a, original.inference_id_b, original.context_id
    rows = [
        row("pref-crafted-reversed", ctx, b, a, flipped, recent),  # same judgement, other order
        row(original.preference_id, ctx, a, b, original.preferred, recent),  # re-sent id
        row("pref-crafted-old-unknown", ctx, a, "inf-999999998", "a", old),
        row("pref-crafted-recent-unknown", ctx, a, "inf-999999999", "a", recent),
        row("pref-crafted-same", ctx, a, a, "a", recent),
        row("pref-crafted-invalid", ctx, a, b, "maybe", recent),
        row("pref-crafted-mismatch", other_context, a, b, "a", recent),
    ]
    frame = pd.DataFrame(rows)
    table = pa.Table.from_pandas(frame, preserve_index=False).cast(
        demo.contract_schema(RAW_TABLES["preference_events"])
    )
    path = tmp_path / "crafted_preferences.parquet"
    pq.write_table(table, path)
    with warehouse.connect(db) as con:
        results = ingest.ingest_files(con, "preference_events", [path])
        assert all(result.ok for result in results), [r.message for r in results]
    settings = project_vars({"preference_reward_model_pairs": True})
    constant_vars = {k: v for k, v in settings.dbt_vars().items() if k not in BATCH_VARS}
    dbt(
        [
            "build",
            "--select",
            "int_preference_events_classified+",
            "--exclude-resource-type",
            "unit_test",
        ],
        dbt_vars=constant_vars,
        db_path=db,
        target_path=tmp_path / "target",
        extra_env=batch.dbt_env(),
    )
    with warehouse.connect(db, read_only=True) as con:
        quarantined = dict(
            con.execute(
                """
                select preference_id, reason_code from marts.fct_preference_quarantine
                where batch_id = ?
                """,
                [batch.batch_id],
            ).fetchall()
        )
        held = [
            r[0]
            for r in con.execute(
                "select preference_id from intermediate.int_preference_events_classified "
                "where status = 'held'"
            ).fetchall()
        ]
        merged = con.execute(
            """
            select count(*), max(copies_merged), any_value(preferred_output),
                any_value(first_shown_inference_id)
            from marts.fct_preference_pairs
            where context_id = ? and inference_id_low = ? and inference_id_high = ?
                and annotator_id = ?
            """,
            [ctx, min(a, b), max(a, b), original.annotator_id],
        ).fetchall()[0]
        pairs_after = con.execute(
            "select count(*) from marts.fct_preference_pairs where pair_source <> 'reward_model'"
        ).fetchall()[0][0]
        echo = con.execute(
            "select * from marts.fct_preference_pairs where pair_source = 'reward_model'"
        ).df()
        judged = {
            r[0]
            for r in con.execute(
                "select context_id from marts.fct_preference_pairs "
                "where pair_source <> 'reward_model'"
            ).fetchall()
        }
        latest_scores = (
            con.execute(
                """
                select inference_id, score, reward_model_version from ml.reward_scores
                qualify row_number() over (
                    partition by inference_id order by scored_at desc, reward_model_version desc
                ) = 1
                """
            )
            .df()
            .set_index("inference_id")
        )
        quality = con.execute(
            "select quarantined_rows, held_rows from marts.rpt_preference_quality "
            "where pair_source = 'all'"
        ).fetchall()[0]
    assert quarantined == {
        original.preference_id: "preference_duplicate_id",
        "pref-crafted-old-unknown": "preference_unknown_inference",
        "pref-crafted-same": "preference_same_output",
        "pref-crafted-invalid": "preference_invalid_value",
        "pref-crafted-mismatch": "preference_context_mismatch",
    }
    assert held == ["pref-crafted-recent-unknown"]
    # the reversed judgement is the same pair, judged once: the first judgement (shown a first)
    expected_side = "low" if (original.preferred == "a") == (a < b) else "high"
    assert merged == (1, 2, expected_side, a)
    assert pairs_after == pairs_before
    assert quality == (5, 1)
    # with var preference_reward_model_pairs, the model's own scores come back as marked,
    # down-weighted pairs, only for contexts no one else judged and only with a clear margin
    assert len(echo) > 0
    assert not set(echo.context_id) & judged
    assert (echo.pair_weight == settings.preference_source_weights["reward_model"]).all()
    low = latest_scores.loc[echo.inference_id_low]
    high = latest_scores.loc[echo.inference_id_high]
    difference = low.score.to_numpy() - high.score.to_numpy()
    np.testing.assert_allclose(echo.margin, np.abs(difference), rtol=1e-12)
    assert (np.abs(difference) >= settings.reward_model_pair_min_margin).all()
    assert list(echo.preferred_output) == ["low" if d > 0 else "high" for d in difference]
    assert list(echo.annotator_id) == list(low.reward_model_version)


def test_a_candidate_is_promoted_only_when_it_beats_the_current_version(world):
    """Over the demo's batches both outcomes happen, and each follows the policy's rule on the
    stored metrics of the candidate and of the current version on the same validation pairs."""
    rules = default_reward_policy().promotion
    models = world["models"]
    previous_current = models.current_version.shift(1)
    contested = models[(models.status == "trained") & previous_current.notna()]
    assert contested.is_promoted.any() and not contested.is_promoted.all()
    for row, incumbent in zip(
        contested.itertuples(), previous_current[contested.index], strict=True
    ):
        if rules.metric == "log_loss":
            gain = row.current_heldout_log_loss - row.heldout_log_loss
        else:
            gain = row.heldout_accuracy - row.current_heldout_accuracy
        assert row.is_promoted == (gain > rules.min_improvement), row.reason
        assert row.previous_version == incumbent
        assert row.current_version == (row.reward_model_version if row.is_promoted else incumbent)
        assert incumbent in row.reason
        # iterative refinement: each candidate starts from the version it has to beat
        assert row.warm_started_from == incumbent


@pytest.mark.parametrize("metric", ["log_loss", "accuracy"])
def test_promotion_rule_refuses_a_worse_candidate_and_takes_a_better_one(metric):
    policy = default_reward_policy()
    policy = policy.model_copy(
        update={
            "promotion": policy.promotion.model_copy(
                update={"metric": metric, "min_improvement": 0.01}
            )
        }
    )
    incumbent = model.RewardModel(
        version="rm-old",
        feature_names=["x"],
        means=np.zeros(1),
        scales=np.ones(1),
        weights=np.ones(1),
        position_bias=0.0,
        tie_parameter=0.0,
        ties="exclude",
        extra={},
    )
    current = {"pairs": 200, "accuracy": 0.70, "log_loss": 0.60}
    worse = {"pairs": 200, "accuracy": 0.705, "log_loss": 0.595}  # better, but not by 0.01
    better = {"pairs": 200, "accuracy": 0.75, "log_loss": 0.55}
    promoted, reason = reward._promotion(worse, current, incumbent, policy)
    assert not promoted and "keeping rm-old" in reason
    promoted, reason = reward._promotion(better, current, incumbent, policy)
    assert promoted and "beats rm-old" in reason
    first, reason = reward._promotion(better, None, None, policy)
    assert first and "first reward model" in reason
    coin = {"pairs": 200, "accuracy": policy.promotion.min_accuracy, "log_loss": 0.69}
    assert not reward._promotion(coin, None, None, policy)[0]

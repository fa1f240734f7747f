"""The replay buffer on a demo world, built through the batch cycle (a history batch, then daily
batches, a trainer sampling between them): sessions become correct transitions, a retracted
reward removes its transition with its reason, capacity holds across batches, every transition
is accounted for, versions rebuild exactly and are audited, a re-run of a batch leaves the
buffer identical, and a trainer's TD-error write-back changes the next sample's probabilities
as the formula says. Expected values are computed here from the logs (pandas), not read from
the mart."""

from __future__ import annotations

import importlib.util
import itertools
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from feedback_flywheel import batches, demo, ingest, replay, warehouse
from feedback_flywheel.config.replay_policy import load_replay_policy
from feedback_flywheel.replay import priorities, versions
from feedback_flywheel.warehouse.contract import RAW_TABLES
from tests.python.helpers import PROJECT_DIR, copy_warehouse, dbt, ingest_demo

CAPACITY = 60
MAX_TIMES_SAMPLED = 3
MAX_AGE_DAYS = 4
DRAWS_PER_BATCH = 150
REPLAY_TABLES = (
    "ml.replay_buffer",
    "ml.replay_evictions",
    "ml.replay_versions",
    "ml.replay_composition",
    "ml.replay_samples",
    "ml.replay_sample_draws",
    "ml.replay_td_errors",
)


def _policy_file(path: Path) -> Path:
    policy = yaml.safe_load((PROJECT_DIR / "policies" / "replay.yml").read_text())
    policy["buffer"] |= {
        "capacity": CAPACITY,
        "max_times_sampled": MAX_TIMES_SAMPLED,
        "max_age_days": MAX_AGE_DAYS,
        "min_size_to_sample": 10,
    }
    policy["rate_limit"]["max_samples_per_insert"] = None
    path.write_text(yaml.safe_dump(policy))
    return path


def _run(db_path: Path, window: batches.BatchWindow, policy_path: Path) -> None:
    from flows.batch_cycle import batch_cycle

    batch_cycle(
        window_start=window.window_start,
        window_end=window.window_end,
        db_path=str(db_path),
        dry_run=True,
        replay_policy_path=str(policy_path),
    )


def _retract(db_path: Path, directory: Path, at: datetime) -> dict[str, str]:
    """Write and ingest a retraction of the reward of a transition the buffer holds (one that
    stays young enough not to go stale first)."""
    with warehouse.connect(db_path) as con:
        transition_id, event_id = con.execute(
            """
            select b.transition_id, f.event_id
            from ml.replay_buffer as b
            inner join marts.fct_feedback as f
                on b.transition_id = f.inference_id and f.event_type = 'reward'
            order by b.logged_at desc, b.transition_id
            limit 1
            """
        ).fetchall()[0]
    directory.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(
        [
            {
                "event_id": "fe-test-retract-1",
                "inference_id": transition_id,
                "event_type": "retraction",
                "value": event_id,
                "payload": json.dumps({"event_type": "retraction", "value": event_id}),
                "occurred_at": at,
                "received_at": at,
                "source": "web_client",
                "schema_version": "1.1",
            }
        ]
    )
    frame.to_parquet(directory / "retraction.parquet", index=False)
    with warehouse.connect(db_path) as con:
        results = ingest.ingest_files(con, "feedback_events", [directory])
        assert all(result.ok for result in results), [r.message for r in results]
    return {"transition_id": transition_id, "event_id": event_id}


def _duplicate_a_step(db_path: Path, directory: Path, window: batches.BatchWindow) -> str:
    """Log a second copy of a session step served in ``window`` (another inference_id, the same
    session and step_index, a second later) and ingest it."""
    columns = [column.name for column in RAW_TABLES["inference_log"].columns]
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "duplicate.parquet"
    selected = ", ".join(
        "'inf-test-dup-1' as inference_id"
        if name == "inference_id"
        else "logged_at + interval 1 second as logged_at"
        if name == "logged_at"
        else name
        for name in columns
    )
    with warehouse.connect(db_path) as con:
        con.execute(
            f"""
            copy (
                select {selected} from raw.inference_log
                where session_id is not null and logged_at >= ? and logged_at < ?
                order by logged_at, inference_id
                limit 1
            ) to '{target}' (format parquet)
            """,
            [window.window_start, window.window_end - timedelta(hours=2)],
        )
        results = ingest.ingest_files(con, "inference_log", [directory])
        assert all(result.ok for result in results), [r.message for r in results]
    return "inf-test-dup-1"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("replay")
    truth = demo.generate(root / "demo", seed=3, days=8, inferences_per_day=300)
    db_path = root / "flywheel.duckdb"
    ingest_demo(db_path, root / "demo")
    policy_path = _policy_file(root / "replay.yml")
    policy = load_replay_policy(policy_path)
    start = datetime.fromisoformat(truth["start_date"])
    end = datetime.fromisoformat(truth["end_date"])
    boundaries = [start, end - timedelta(days=2), end - timedelta(days=1), end]
    windows = [batches.window(a, b) for a, b in itertools.pairwise(boundaries)]
    retracted = duplicate = None
    for number, window in enumerate(windows):
        if number == len(windows) - 1:
            retracted = _retract(db_path, root / "extra", window.window_start + timedelta(hours=1))
            duplicate = _duplicate_a_step(db_path, root / "duplicate", window)
        _run(db_path, window, policy_path)
        with warehouse.connect(db_path) as con:
            replay.sample(con, n=DRAWS_PER_BATCH, policy=policy, seed=number, now=batches.utc_now())
    return {
        "db_path": db_path,
        "root": root,
        "policy": policy,
        "policy_path": policy_path,
        "windows": windows,
        "retracted": retracted,
        "duplicate": duplicate,
    }


def _query(world: dict[str, Any], sql: str, params: list | None = None) -> pd.DataFrame:
    with warehouse.connect(world["db_path"], read_only=True) as con:
        return con.execute(sql, params or []).df()


def test_sessions_become_correct_transitions(world: dict[str, Any]) -> None:
    steps = _query(
        world,
        """
        select inference_id, session_id, step_index, logged_at, predicted_label
        from intermediate.int_inferences_validated
        where is_accepted and session_id is not null
        order by session_id, step_index, logged_at, inference_id
        """,
    )
    steps = steps.drop_duplicates(["session_id", "step_index"])  # the first copy of a step
    rewards = _query(
        world,
        """
        select inference_id, sum(value_numeric) as reward
        from marts.fct_feedback
        where event_type = 'reward' and not is_retracted
        group by inference_id
        """,
    )
    mart = _query(
        world,
        "select * from marts.fct_replay_transitions where entry_status <> 'duplicate_step'",
    ).set_index("transition_id")
    assert len(mart) == len(steps) > 100
    steps["next_id"] = steps.groupby("session_id").inference_id.shift(-1)
    last_logged = steps.groupby("session_id").logged_at.transform("max")
    watermark = world["windows"][-1].window_end
    over = last_logged + timedelta(minutes=30) <= watermark
    expected_terminal = steps.next_id.isna() & over
    got = mart.loc[steps.inference_id]
    assert got.next_transition_id.fillna("").tolist() == steps.next_id.fillna("").tolist()
    assert got.is_terminal.tolist() == expected_terminal.tolist()
    assert got.action_label.tolist() == steps.predicted_label.tolist()
    assert expected_terminal.sum() >= 10
    assert got[got.is_terminal].next_state_inputs_json.isna().all()
    ongoing = steps.next_id.isna() & ~over
    assert (got[ongoing.to_numpy()].entry_status == "pending_next_state").all()
    known = got.reset_index().merge(
        rewards.rename(columns={"inference_id": "transition_id", "reward": "reward_logged"}),
        on="transition_id",
    )
    np.testing.assert_allclose(known.reward, known.reward_logged, rtol=1e-12)
    assert (known.reward_sources == "reward").all()
    # the next state is the next step's state
    nexts = got[got.next_transition_id.notna()]
    assert (
        nexts.next_state_inputs_json.tolist()
        == mart.loc[nexts.next_transition_id].state_inputs_json.tolist()
    )


def test_a_retracted_reward_removes_its_transition_with_its_reason(world: dict[str, Any]) -> None:
    transition_id = world["retracted"]["transition_id"]
    last_batch = world["windows"][-1].batch_id
    evicted = _query(
        world, "select * from ml.replay_evictions where transition_id = ?", [transition_id]
    )
    assert evicted.reason_code.tolist() == ["feedback_retracted"]
    assert evicted.batch_id.tolist() == [last_batch]
    in_buffer = _query(
        world, "select count(*) as n from ml.replay_buffer where transition_id = ?", [transition_id]
    )
    assert in_buffer.n.iloc[0] == 0
    row = _query(
        world,
        "select entry_status, has_retracted_feedback from marts.fct_replay_transitions "
        "where transition_id = ?",
        [transition_id],
    )
    assert row.entry_status.tolist() == ["feedback_retracted"]


def test_a_second_copy_of_a_step_is_logged_as_a_duplicate(world: dict[str, Any]) -> None:
    duplicate = world["duplicate"]
    row = _query(
        world,
        "select entry_status, is_entered from marts.fct_replay_transitions where transition_id = ?",
        [duplicate],
    )
    assert row.entry_status.tolist() == ["duplicate_step"]
    evicted = _query(
        world, "select * from ml.replay_evictions where transition_id = ?", [duplicate]
    )
    assert evicted.reason_code.tolist() == ["duplicate"]
    assert evicted.inserted_batch_id.isna().all()  # never entered the buffer


def test_capacity_holds_across_batches_and_evictions_give_reasons(world: dict[str, Any]) -> None:
    history = _query(world, "select * from ml.replay_versions order by batch_id")
    assert history.batch_id.tolist() == [window.batch_id for window in world["windows"]]
    assert (history["size"] <= CAPACITY).all()
    reasons = (
        _query(world, "select reason_code, count(*) as n from ml.replay_evictions group by 1")
        .set_index("reason_code")
        .n
    )
    for reason in ("over_capacity", "stale_age", "max_times_sampled", "feedback_retracted"):
        assert reasons.get(reason, 0) > 0, (reason, reasons.to_dict())
    (live,) = _query(world, "select count(*) as n from ml.replay_buffer").n
    assert live == history["size"].iloc[-1]
    evictions = _query(world, "select * from ml.replay_evictions")
    windows = {window.batch_id: window for window in world["windows"]}
    stale = evictions[evictions.reason_code == "stale_age"]
    logged = _query(world, "select transition_id, logged_at from marts.fct_replay_transitions")
    stale = stale.merge(logged, on="transition_id")
    cutoffs = stale.batch_id.map(lambda b: windows[b].window_end - timedelta(days=MAX_AGE_DAYS))
    assert len(stale) and (stale.logged_at < cutoffs).all()
    over = evictions[evictions.reason_code == "max_times_sampled"]
    assert (over.times_sampled >= MAX_TIMES_SAMPLED).all()


def test_every_transition_is_accounted_for(world: dict[str, Any]) -> None:
    entered = set(
        _query(
            world, "select transition_id from marts.fct_replay_transitions where is_entered"
        ).transition_id
    )
    held = set(_query(world, "select transition_id from ml.replay_buffer").transition_id)
    evicted = set(_query(world, "select transition_id from ml.replay_evictions").transition_id)
    assert not held & evicted
    assert entered <= held | evicted
    assert held <= entered  # the buffer holds only what is a transition now


def test_versions_rebuild_exactly_and_are_in_the_audit_trail(world: dict[str, Any]) -> None:
    with warehouse.connect(world["db_path"], read_only=True) as con:
        checks = versions.verify(con)
        audit = con.execute(
            "select subject_id, payload_json from ml.audit_log where kind = 'replay_buffer'"
        ).fetchall()
        recorded = dict(
            con.execute("select buffer_version, membership_hash from ml.replay_versions").fetchall()
        )
        sizes = dict(con.execute("select batch_id, size from ml.replay_versions").fetchall())
        rebuilt = {b: len(versions.members_at(con, b)) for b in sizes}
    assert checks and all(ok for _, ok in checks), checks
    assert rebuilt == sizes
    payloads = {subject: json.loads(payload) for subject, payload in audit}
    assert set(payloads) == set(recorded)
    for subject, payload in payloads.items():
        assert payload["membership_hash"] == recorded[subject]


def _fingerprint(db_path: Path) -> dict[str, Any]:
    spec = importlib.util.spec_from_file_location(
        "warehouse_fingerprint", PROJECT_DIR / "scripts" / "warehouse_fingerprint.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    printed = module.fingerprint(db_path)
    return {name: printed[name] for name in (*REPLAY_TABLES, "marts.fct_replay_transitions")}


def test_a_rerun_of_the_batch_leaves_the_buffer_identical(world: dict[str, Any]) -> None:
    from flows.batch_cycle import batch_cycle

    db_path = copy_warehouse(world["db_path"], world["root"] / "rerun.duckdb")
    before = _fingerprint(db_path)
    batch_cycle(
        batch_id=world["windows"][-1].batch_id,
        db_path=str(db_path),
        dry_run=True,
        replay_policy_path=str(world["policy_path"]),
    )
    assert _fingerprint(db_path) == before


def test_td_error_write_back_changes_the_next_sample_as_the_formula_says(
    world: dict[str, Any], tmp_path: Path
) -> None:
    db_path = copy_warehouse(world["db_path"], tmp_path / "td.duckdb")
    policy, alpha, epsilon = world["policy"], 0.7, world["policy"].priority.epsilon
    limit = policy.buffer.max_times_sampled
    with warehouse.connect(db_path) as con:
        held = con.execute(
            "select transition_id, priority from ml.replay_buffer where times_sampled < ? "
            "order by transition_id",
            [limit],
        ).df()
        reported = held.transition_id.iloc[:3].tolist()
        errors = pd.DataFrame({"transition_id": reported, "td_error": [-4.0, 0.0, 2.5]})
        outcome = replay.report_td_errors(
            con, training_run_id="run-1", errors=errors, epsilon=epsilon, now=batches.utc_now()
        )
        assert outcome.updated == 3
        again = replay.report_td_errors(
            con, training_run_id="run-1", errors=errors, epsilon=epsilon, now=batches.utc_now()
        )
        assert again.replaced_earlier_report
        (rows,) = con.execute("select count(*) from ml.replay_td_errors").fetchall()[0]
        assert rows == 3  # idempotent per training run
        drawn = replay.sample(
            con, n=4_000, policy=policy, seed=99, alpha=alpha, beta=1.0, now=batches.utc_now()
        )
    expected_priority = held.set_index("transition_id").priority.copy()
    expected_priority.loc[reported] = np.abs(errors.td_error.to_numpy()) + epsilon
    probability = expected_priority**alpha / (expected_priority**alpha).sum()
    np.testing.assert_allclose(
        drawn.rows.probability, probability.loc[drawn.rows.transition_id], rtol=1e-9
    )
    assert drawn.eligible == len(held)
    weights = (len(held) * probability) ** -1.0
    np.testing.assert_allclose(
        drawn.rows.weight,
        (weights / weights.max()).loc[drawn.rows.transition_id],
        rtol=1e-9,
    )


def test_the_write_back_refuses_bad_reports_naming_the_row(
    world: dict[str, Any], tmp_path: Path
) -> None:
    db_path = copy_warehouse(world["db_path"], tmp_path / "bad.duckdb")
    with warehouse.connect(db_path) as con:
        (known,) = con.execute("select min(transition_id) from ml.replay_buffer").fetchall()[0]
        cases = [
            (pd.DataFrame({"transition_id": [known]}), "missing column"),
            (pd.DataFrame({"transition_id": [known, known], "td_error": [1, 2]}), "more than once"),
            (pd.DataFrame({"transition_id": [known], "td_error": [float("nan")]}), "row 1"),
            (pd.DataFrame({"transition_id": [known], "td_error": ["x"]}), "not a finite"),
            (pd.DataFrame({"transition_id": ["nope"], "td_error": [1.0]}), "never held"),
        ]
        for frame, message in cases:
            with pytest.raises(priorities.TdErrorReportError, match=message):
                replay.report_td_errors(
                    con, training_run_id="r", errors=frame, epsilon=0.01, now=batches.utc_now()
                )
        with pytest.raises(priorities.TdErrorReportError, match="training run id"):
            replay.report_td_errors(
                con,
                training_run_id="x'; drop table ml.replay_buffer; --",
                errors=pd.DataFrame({"transition_id": [known], "td_error": [1.0]}),
                epsilon=0.01,
                now=batches.utc_now(),
            )
        (rows,) = con.execute("select count(*) from ml.replay_td_errors").fetchall()[0]
    assert rows == 0


def test_n_step_returns_match_a_direct_computation(world: dict[str, Any], tmp_path: Path) -> None:
    n, gamma = 3, 0.9
    db_path = copy_warehouse(world["db_path"], tmp_path / "nstep.duckdb")
    dbt(
        ["run", "--select", "fct_replay_transitions", "--full-refresh"],
        db_path=db_path,
        dbt_vars={
            "replay_n_step": n,
            "replay_gamma": gamma,
            "batch_id": world["windows"][-1].batch_id,
            "batch_start": str(world["windows"][-1].window_start),
            "batch_end": str(world["windows"][-1].window_end),
        },
    )
    with warehouse.connect(db_path, read_only=True) as con:
        mart = con.execute("select * from marts.fct_replay_transitions").df()
        rewards = con.execute(
            "select inference_id, sum(value_numeric) as r from marts.fct_feedback "
            "where event_type = 'reward' and not is_retracted group by 1"
        ).df()
    steps = mart[mart.entry_status != "duplicate_step"].sort_values(["session_id", "step_index"])
    reward = steps.transition_id.map(rewards.set_index("inference_id").r).fillna(0.0)
    expected = []
    for _, group in steps.assign(r=reward.to_numpy()).groupby("session_id", sort=False):
        values = group.r.to_numpy()
        for t in range(len(values)):
            window = values[t : t + n]
            expected.append(sum(gamma**k * value for k, value in enumerate(window)))
    entered = steps.is_entered.to_numpy()
    np.testing.assert_allclose(steps.n_step_return.to_numpy()[entered], np.array(expected)[entered])
    bootstrap = steps.groupby("session_id").transition_id.shift(-n)
    assert steps.bootstrap_transition_id.fillna("").tolist() == bootstrap.fillna("").tolist()
    np.testing.assert_allclose(steps.bootstrap_discount, np.where(bootstrap.notna(), gamma**n, 0.0))
    remaining = steps.groupby("session_id").cumcount(ascending=False) + 1
    assert (steps.n_step_count[entered] == np.minimum(n, remaining[entered])).all()


def test_the_latest_composition_describes_what_the_buffer_holds(world: dict[str, Any]) -> None:
    last_batch = world["windows"][-1].batch_id
    rows = _query(world, "select * from ml.replay_composition where batch_id = ?", [last_batch])
    held = _query(
        world,
        """
        select b.model_name || ':' || b.policy_version as bucket, s.segment_value
        from ml.replay_buffer as b
        left join marts.fct_inference_segments as s
            on b.transition_id = s.inference_id and s.segment_attribute = 'region'
        """,
    )
    policy = rows[rows.dimension == "policy_version"].set_index("bucket").transitions
    assert policy.to_dict() == held.bucket.value_counts().to_dict()
    segment = rows[rows.dimension == "segment:region"].set_index("bucket").transitions
    assert segment.to_dict() == held.segment_value.fillna("(none)").value_counts().to_dict()
    np.testing.assert_allclose(rows.groupby("dimension").share.sum(), 1.0)

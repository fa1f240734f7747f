"""Crashes at any step, and two runs at once.

One warehouse, killed again and again: `flywheel run --daily` (not a dry run, under a policy
that retrains every batch) is started with ``$FLYWHEEL_FAULT_AT`` naming each point of
:data:`feedback_flywheel.config.faults.FAULT_POINTS` in turn; the process dies there as a
``kill -9`` would, and the next run (killed at the next point) has to recover first. A last run
without a fault finishes. Then: every raw row is accepted or quarantined exactly once, every
batch has one successful attempt and its decision, no decision waits for its trigger, no
decision retrained twice, the audit chain verifies, and the serving copy holds the last batch.

While one run holds the warehouse a second one refuses at once (exit 3), one with --wait waits
for it, and the serving copy stays readable throughout.
"""

from __future__ import annotations

import fcntl
import importlib.util
import itertools
import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from feedback_flywheel import batches, demo
from feedback_flywheel.config.faults import FAULT_ENV, FAULT_EXIT_CODE, FAULT_POINTS
from feedback_flywheel.config.paths import serving_path_beside
from tests.python.helpers import (
    PROJECT_DIR,
    copy_warehouse,
    ingest_demo,
    run_windows,
    subprocess_env,
)

FLYWHEEL = str(Path(sys.executable).parent / "flywheel")
EXIT_BUSY = 3


def _eager_policy(path: Path) -> Path:
    """The shipped policy, made to retrain at every batch of a tiny world (small samples count,
    no effect floor, no cooldown)."""
    policy = yaml.safe_load((PROJECT_DIR / "policies" / "retraining.yml").read_text())
    policy["drift"] |= {"alpha": 0.99, "min_samples": 5}
    policy["drift"]["effect_size_floors"] = {
        name: 0 for name in policy["drift"]["effect_size_floors"]
    }
    policy["cooldown_days"] = 0
    policy["retrain_when"] = "any"  # drift alone retrains (the shipped policy wants impact)
    path.write_text(yaml.safe_dump(policy))
    return path


def flywheel(db_path: Path, *args: str, fault: str | None = None, **kwargs: Any):
    env = subprocess_env(FLYWHEEL_DUCKDB=str(db_path))
    env.pop(FAULT_ENV, None)
    if fault is not None:
        env[FAULT_ENV] = fault
    return subprocess.run(
        [FLYWHEEL, *args, "--db", str(db_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        **kwargs,
    )


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny demo world, its history built as one batch (dry run); its last days not yet."""
    root = tmp_path_factory.mktemp("crash")
    truth = demo.generate(root / "demo", seed=5, days=8, inferences_per_day=120)
    db_path = root / "base.duckdb"
    ingest_demo(db_path, root / "demo")
    start = datetime.fromisoformat(truth["start_date"])
    end = datetime.fromisoformat(truth["end_date"])
    run_windows(db_path, [batches.window(start, end - timedelta(days=4))])
    return {"db_path": db_path, "end": end, "root": root}


@pytest.fixture(scope="module")
def crashed(base: dict[str, Any]) -> dict[str, Any]:
    db_path = copy_warehouse(base["db_path"], base["root"] / "crashed.duckdb")
    policy = _eager_policy(base["root"] / "eager.yml")
    until = base["end"].isoformat()
    args = ("run", "--daily", "--until", until, "--policy", str(policy))
    exits = {}
    for point in FAULT_POINTS:
        done = flywheel(db_path, *args, fault=point)
        exits[point] = (done.returncode, done.stderr[-2000:])
    final = flywheel(db_path, *args)
    assert final.returncode == 0, final.stdout + final.stderr
    reference = copy_warehouse(base["db_path"], base["root"] / "reference.duckdb")
    uninterrupted = flywheel(reference, *args)
    assert uninterrupted.returncode == 0, uninterrupted.stdout + uninterrupted.stderr
    return {"db_path": db_path, "exits": exits, "reference": reference}


def test_every_fault_point_was_reached_and_killed_the_run(crashed: dict[str, Any]) -> None:
    for point, (code, stderr) in crashed["exits"].items():
        assert code == FAULT_EXIT_CODE, (point, code, stderr)
        assert f"fault injected at {point}" in stderr


def _fingerprint(db_path: Path) -> dict[str, dict]:
    """scripts/warehouse_fingerprint.py's fingerprint of every mart, report and ml table."""
    spec = importlib.util.spec_from_file_location(
        "warehouse_fingerprint", PROJECT_DIR / "scripts" / "warehouse_fingerprint.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.fingerprint(db_path)


#: what differs between two runs of the same batches by design: the attempts (a crashed run has
#: abandoned ones) and what holds them or the wall-clock moment of a deployment the retraining
#: made (the registry rows it appended carry deployed_at = now, and the audit rows hash it; the
#: loop latency's training_to_deployment stage is measured on that wall clock)
RUN_SPECIFIC = {
    "ml.batch_runs",
    "ml.audit_log",
    "marts.dim_model_versions",
    "marts.fct_feedback_latency",
}


def test_the_crashed_warehouse_equals_an_uninterrupted_run(crashed: dict[str, Any]) -> None:
    crashed_print = _fingerprint(crashed["db_path"])
    reference_print = _fingerprint(crashed["reference"])
    assert set(crashed_print) == set(reference_print)
    differing = sorted(
        name
        for name in reference_print
        if name not in RUN_SPECIFIC and crashed_print[name] != reference_print[name]
    )
    assert differing == [], {
        name: (crashed_print[name]["rows"], reference_print[name]["rows"]) for name in differing
    }
    for name in RUN_SPECIFIC:
        if name != "ml.batch_runs":
            assert crashed_print[name]["rows"] == reference_print[name]["rows"], name
    # the loop latency is the same but for the wall-clock stage (and which stage is slowest)
    with duckdb.connect(str(crashed["db_path"]), read_only=True) as con:
        crashed_catalog = con.execute("select current_database()").fetchone()[0]
        con.execute(f"attach '{crashed['reference']}' as reference (read_only)")
        data_clock = (
            'select * exclude (is_bottleneck) from "{}".marts.fct_feedback_latency '
            "where stage <> 'training_to_deployment'"
        )
        for left, right in ((crashed_catalog, "reference"), ("reference", crashed_catalog)):
            only = con.execute(
                f"select count(*) from ({data_clock.format(left)} except all "
                f"{data_clock.format(right)})"
            ).fetchone()[0]
            assert only == 0, (left, right, only)


def _locked_elsewhere(db_path: Path) -> bool:
    """Whether another process holds the warehouse's run lock (flock, as the flywheel takes it)."""
    descriptor = os.open(batches.lock_path(db_path), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)
    return False


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    return con.execute(sql).fetchone()[0]


def test_after_the_crashes_nothing_is_lost_duplicated_or_left_half_done(
    crashed: dict[str, Any], base: dict[str, Any]
) -> None:
    db_path = crashed["db_path"]
    with duckdb.connect(str(db_path), read_only=True) as con:
        # every raw row accepted or quarantined exactly once
        raw_feedback = _one(con, "select count(*) from raw.feedback_events")
        accepted = _one(con, "select count(distinct feedback_row_id) from marts.fct_feedback")
        quarantined = _one(
            con, "select count(distinct feedback_row_id) from marts.fct_feedback_quarantine"
        )
        assert _one(con, "select count(*) from marts.fct_feedback") == accepted
        held = _one(
            con,
            "select coalesce(sum(row_count), 0) from marts.rpt_raw_reconciliation "
            "where raw_table = 'feedback_events' and status = 'held'",
        )
        assert accepted + quarantined + held == raw_feedback
        # batches: one success per window, windows contiguous up to the end
        windows = con.execute(
            "select batch_id, window_start, window_end, count(*) filter (where status = "
            "'success') from ml.batch_runs group by all order by window_start"
        ).fetchall()
        assert all(successes == 1 for *_, successes in windows), windows
        assert all(a[2] == b[1] for a, b in itertools.pairwise(windows))
        assert windows[-1][2] == base["end"]
        assert _one(con, "select count(*) from ml.batch_runs where status = 'running'") == 0
        assert _one(con, "select count(*) from ml.batch_runs where status = 'abandoned'") >= 9
        # decisions: one per batch and model, none waiting, none retrained twice
        assert (
            _one(
                con,
                "select count(*) from (select batch_id, model_name from ml.retraining_decisions "
                "group by all having count(*) > 1)",
            )
            == 0
        )
        assert (
            _one(
                con, "select count(*) from ml.retraining_decisions where trigger_status = 'pending'"
            )
            == 0
        )
        retrains = _one(
            con, "select count(*) from ml.retraining_decisions where decision = 'retrain'"
        )
        assert retrains >= 1
        runs_per_decision = con.execute(
            "select decision_id, count(distinct training_run_id) from ml.training_runs "
            "group by 1 having count(distinct training_run_id) > 1"
        ).fetchall()
        assert runs_per_decision == []
        deployments = con.execute(
            "select training_run_id, count(*) from raw.model_deployments "
            "where training_run_id is not null group by 1 having count(*) > 1"
        ).fetchall()
        assert deployments == []
        latest = _one(con, "select max(batch_id) from ml.batch_runs where status = 'success'")
        assert (
            _one(
                con,
                f"select count(*) from ml.batch_runs where batch_id = '{latest}' "
                "and status = 'success' and published_at is not null",
            )
            == 1
        )
    # the serving copy holds the last batch, and no half-built copy is left
    serving = serving_path_beside(db_path)
    with duckdb.connect(str(serving), read_only=True) as con:
        assert (
            _one(con, "select max(batch_id) from ml.batch_runs where status = 'success'") == latest
        )
    assert not list(serving.parent.glob(f"{serving.name}.*building*"))
    verified = flywheel(db_path, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


# --- two runs at once -----------------------------------------------------------------------------


def test_a_second_run_refuses_or_waits_and_the_serving_copy_stays_readable(
    base: dict[str, Any],
) -> None:
    db_path = copy_warehouse(base["db_path"], base["root"] / "concurrent.duckdb")
    serving = serving_path_beside(db_path)
    serving.write_bytes(serving_path_beside(base["db_path"]).read_bytes())
    until = (base["end"] - timedelta(days=2)).isoformat()
    env = subprocess_env(FLYWHEEL_DUCKDB=str(db_path))
    env.pop(FAULT_ENV, None)
    first = subprocess.Popen(
        [FLYWHEEL, "run", "--dry-run", "--until", until, "--db", str(db_path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    reads = {"ok": 0, "failed": []}
    stop = threading.Event()

    def read_serving() -> None:
        while not stop.is_set():
            try:
                with duckdb.connect(str(serving), read_only=True) as con:
                    con.execute("select count(*) from marts.rpt_kpi_daily").fetchone()
                reads["ok"] += 1
            except duckdb.Error as error:
                reads["failed"].append(str(error))
            time.sleep(0.05)

    reader = threading.Thread(target=read_serving)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while not _locked_elsewhere(db_path) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _locked_elsewhere(db_path), "the first run never took the run lock"
        refused = flywheel(db_path, "run", "--dry-run", "--until", until)
        assert refused.returncode == EXIT_BUSY, refused.stdout + refused.stderr
        assert "another flywheel run holds" in refused.stderr
        waited = flywheel(db_path, "run", "--dry-run", "--until", until, "--wait", "600")
        assert first.wait(timeout=900) == 0, first.stderr
        assert waited.returncode == 0, waited.stdout + waited.stderr
        assert "already" in (waited.stdout + waited.stderr).lower()
    finally:
        stop.set()
        reader.join()
        if first.poll() is None:
            first.kill()
    assert reads["failed"] == [] and reads["ok"] > 10
    with duckdb.connect(str(db_path), read_only=True) as con:
        assert _one(con, "select count(*) from ml.batch_runs where status = 'success'") == 2

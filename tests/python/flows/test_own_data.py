"""Bring your own data, end to end, as the README's five steps say: a credit-scoring world with
features and segments that are not the demo's, loaded, discovered, built batch by batch and
summarised with the `flywheel` command, without editing a project file. Then the changes a user
makes next: fewer segment attributes on the existing warehouse, and a feature that is not there."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest
import yaml

from tests.python.helpers import PROJECT_DIR
from tests.python.own_world import OwnWorld, write_world

FLYWHEEL = str(Path(sys.executable).parent / "flywheel")
MAX_LINES_PER_BATCH = 40


def flywheel(world: OwnWorld, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["FLYWHEEL_DUCKDB"] = str(world.root / "prod.duckdb")
    env.pop("FLYWHEEL_CONFIG", None)
    done = subprocess.run(
        [FLYWHEEL, *args], cwd=world.root, env=env, capture_output=True, text=True, timeout=900
    )
    if check:
        assert done.returncode == 0, f"flywheel {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done


def query(world: OwnWorld, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(world.root / "prod.duckdb"), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def _project_files() -> dict[str, str]:
    """sha256 of every file a user would otherwise have to edit: the dbt project, its models,
    macros, seeds, policies and the shipped configuration."""
    files = [PROJECT_DIR / "dbt_project.yml", PROJECT_DIR / "flywheel.yml"]
    for folder in ("models", "macros", "seeds", "policies"):
        files.extend(path for path in (PROJECT_DIR / folder).rglob("*") if path.is_file())
    return {
        str(path.relative_to(PROJECT_DIR)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in files
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> OwnWorld:
    """The README's steps 2-4 on the credit world: ingest, discover, history, daily batches."""
    world = write_world(tmp_path_factory.mktemp("own"))
    world.project_files = _project_files()
    for table in ("model_deployments", "inference_log", "feedback_events"):
        flywheel(world, "ingest", table, f"exports/{table}/")
    world.discover_output = flywheel(world, "config", "discover").stdout
    history_end = world.start + timedelta(days=10)
    flywheel(world, "run", "--until", history_end.isoformat())
    daily = flywheel(world, "run", "--daily", "--until", world.end.isoformat())
    world.daily_output = daily.stdout + daily.stderr
    world.summary_output = flywheel(world, "summary").stdout
    return world


def test_discovery_configures_the_worlds_own_features_and_segments(world: OwnWorld):
    config = yaml.safe_load((world.root / "prod.config.yml").read_text())["vars"]
    assert config["drift_features"] == {
        "numeric": ["age", "income"],
        "categorical": ["employment", "has_guarantor"],
    }
    assert config["segment_attributes"] == ["elevel", "zipcode_band"]
    assert (
        "applicant_ref" in world.discover_output and "an id or free text" in world.discover_output
    )
    shown = flywheel(world, "config", "show").stdout
    assert "segment_attributes             discovered" in shown
    assert "lookback_days                  default" in shown
    # no project file was touched
    assert _project_files() == world.project_files


def test_the_drift_of_the_worlds_own_input_is_found_from_its_day_on(world: OwnWorld):
    rows = query(
        world,
        """
        select results.batch_id, results.is_drift
        from ml.drift_results as results
        inner join ml.batch_runs as runs using (batch_id)
        where results.feature_name = 'age' and results.test = 'ks' and runs.status = 'success'
        order by 1
        """,
    )
    flagged = {batch for batch, drift in rows if drift}
    assert flagged, rows
    assert min(flagged) >= f"b{(world.shift_at + timedelta(days=1)):%Y%m%dT%H%M%S}"
    quiet = query(
        world,
        "select count(*) from ml.drift_results where feature_name = 'income' and is_drift",
    )[0][0]
    assert quiet == 0


def test_segments_labels_and_warnings_with_the_default_settings(world: OwnWorld):
    attributes = {
        row[0]
        for row in query(world, "select distinct segment_attribute from marts.rpt_segment_bias")
    }
    assert {"elevel", "zipcode_band"} <= attributes
    assert not attributes & {"region", "device", "age_band", "language"}
    latest = query(world, "select max(batch_id) from ml.batch_runs where status = 'success'")[0][0]
    label = query(
        world,
        "select n_cur, p_value from ml.drift_results "
        "where batch_id = ? and kind = 'label' and test = 'chi2'",
        [latest],
    )
    assert label and label[0][0] > 0 and label[0][1] is not None  # label drift has values
    warnings = query(world, "select warnings from ml.batch_runs where batch_id = ?", [latest])
    assert warnings[0][0] == "[]"


def test_a_run_prints_a_few_lines_per_batch_and_keeps_the_logs_in_a_file(world: OwnWorld):
    batches = world.daily_output.count(" ok in ")
    assert batches >= 5
    assert len(world.daily_output.splitlines()) <= MAX_LINES_PER_BATCH * batches
    assert "logs: " in world.daily_output and "flywheel.log" in world.daily_output
    assert "feedback_flywheel summary" in world.daily_output
    assert "feedback_flywheel summary" in world.summary_output
    assert "credit_scorer" in world.summary_output


def test_changing_the_segments_of_an_existing_warehouse_recounts_every_day(
    world: OwnWorld, tmp_path
):
    copy = OwnWorld(tmp_path, world.start, world.end, world.shift_at)
    shutil.copyfile(world.root / "prod.duckdb", tmp_path / "prod.duckdb")
    config = yaml.safe_load((world.root / "prod.config.yml").read_text())
    config["vars"]["segment_attributes"] = ["elevel"]
    config["vars"]["stratify_by"] = "elevel"
    (tmp_path / "prod.config.yml").write_text(yaml.safe_dump(config))
    flywheel(copy, "run", "--until", (world.end + timedelta(days=1)).isoformat())
    found = query(
        copy,
        "select distinct segment_attribute, segment_config_hash "
        "from marts.fct_segment_outcomes_daily",
    )
    assert {attribute for attribute, _ in found} == {"__overall__", "elevel"}
    assert len({config_hash for _, config_hash in found}) == 1


def test_a_feature_that_is_not_in_the_inputs_is_a_warning_and_a_decision_without_data(
    tmp_path,
):
    small = write_world(tmp_path, days=4, per_day=120)
    for table in ("model_deployments", "inference_log", "feedback_events"):
        flywheel(small, "ingest", table, f"exports/{table}/")
    done = flywheel(
        small,
        "run",
        "--until",
        small.end.isoformat(),
        "--var",
        "drift_features={numeric: [credit_score], categorical: [product_line]}",
    )
    output = done.stdout + done.stderr
    assert "monitored feature 'credit_score' has no value" in output
    assert "monitored feature 'product_line' has no value" in output
    (reason,) = query(
        small, "select reason from ml.retraining_decisions order by watermark_at desc limit 1"
    )[0]
    assert reason.startswith("no data for")
    assert "covariate_drift (features without values: credit_score, product_line)" in reason
    (recorded,) = query(small, "select warnings from ml.batch_runs where status = 'success'")[0]
    assert "credit_score" in recorded and "product_line" in recorded

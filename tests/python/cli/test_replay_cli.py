"""`flywheel replay status | sample | priorities` on a synthetic buffer: what a trainer runs."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from benchmarks.replay import WATERMARK, setup
from feedback_flywheel.cli import main
from feedback_flywheel.config.replay_policy import default_replay_policy_path, load_replay_policy
from feedback_flywheel.replay import refresh
from tests.python.helpers import PROJECT_DIR


@pytest.fixture()
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "w.duckdb"
    con = setup(path, 300)
    refresh(
        con,
        batch_id="b20260301T000000",
        watermark=WATERMARK,
        policy=load_replay_policy(default_replay_policy_path(PROJECT_DIR)),
        segment_attribute="region",
        audit_key=b"k",
        now=datetime(2026, 3, 2),
    )
    con.close()
    return path


def _run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_sample_writes_every_row_with_probability_and_weight(db_path: Path, tmp_path: Path):
    out = tmp_path / "batch.parquet"
    done = _run(
        "replay", "sample", "--n", "64", "--seed", "3", "--out", str(out), "--db", str(db_path)
    )
    assert done.exit_code == 0, done.output
    assert "64 draws from 300 transitions of rb-b20260301T000000" in done.output
    rows = pd.read_parquet(out)
    assert len(rows) == 64
    assert {"transition_id", "probability", "weight", "reward", "next_transition_id"} <= set(rows)
    assert rows.probability.between(0, 1).all() and rows.weight.between(0, 1).all()
    status = _run("replay", "status", "--db", str(db_path))
    assert status.exit_code == 0 and "rb-b20260301T000000" in status.output
    assert "over_capacity" not in status.output  # 300 < capacity


def test_sample_refuses_past_the_samples_per_insert_limit(db_path: Path) -> None:
    done = _run("replay", "sample", "--n", "20000", "--seed", "1", "--db", str(db_path))
    assert done.exit_code == 1
    assert "samples per insert would reach 66.67 > max_samples_per_insert 32" in done.output


def test_sample_on_a_warehouse_without_a_buffer_says_what_to_run(tmp_path: Path) -> None:
    from feedback_flywheel import warehouse

    path = tmp_path / "empty.duckdb"
    with warehouse.connect(path) as con:
        warehouse.init_warehouse(con)
    done = _run("replay", "sample", "--n", "5", "--seed", "1", "--db", str(path))
    assert done.exit_code == 1 and "run a batch (flywheel run)" in done.output


def test_priorities_take_a_report_once_per_run_and_refuse_a_bad_file(
    db_path: Path, tmp_path: Path
) -> None:
    report = tmp_path / "td.csv"
    pd.DataFrame({"transition_id": ["t000000001", "t000000002"], "td_error": [3.0, -0.5]}).to_csv(
        report, index=False
    )
    first = _run(
        "replay", "priorities", "--run", "run-7", "--file", str(report), "--db", str(db_path)
    )
    assert first.exit_code == 0, first.output
    assert "run run-7: 2 priorities set from TD errors" in first.output
    again = _run(
        "replay", "priorities", "--run", "run-7", "--file", str(report), "--db", str(db_path)
    )
    assert "replacing its earlier report" in again.output
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"transition_id": ["t000000001"], "td_err": [1.0]}).to_csv(bad, index=False)
    refused = _run(
        "replay", "priorities", "--run", "run-8", "--file", str(bad), "--db", str(db_path)
    )
    assert refused.exit_code == 2
    assert f"{bad}: missing column(s) td_error" in refused.output


def test_verify_rebuilds_every_version_and_catches_an_edit(db_path: Path) -> None:
    done = _run("replay", "verify", "--db", str(db_path))
    assert done.exit_code == 0 and "OK: 1 buffer version(s) rebuild exactly" in done.output
    import duckdb

    with duckdb.connect(str(db_path)) as con:  # someone removes a transition by hand
        con.execute("delete from ml.replay_buffer where transition_id = 't000000007'")
    broken = CliRunner().invoke(main, ["replay", "verify", "--db", str(db_path)])
    assert broken.exit_code == 1
    assert "rb-b20260301T000000: rebuilding it" in broken.output


@pytest.mark.parametrize("command", ["status", "sample", "priorities", "verify"])
def test_every_replay_command_has_help(command: str) -> None:
    done = _run("replay", command, "--help")
    assert done.exit_code == 0 and "Usage:" in done.output

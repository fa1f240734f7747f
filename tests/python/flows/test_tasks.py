"""The batch cycle's tasks, unit-tested through ``task.fn()`` on a copy of the demo warehouse:
each does what its docstring says, and re-running one on a batch it already ran changes nothing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from prefect.logging import disable_run_logger

from feedback_flywheel import batches, warehouse
from flows import batch_cycle as cycle
from flows import python_stage as stage
from tests.python.helpers import DemoWarehouse, settings_for

IGNORED = ["computed_at"]


@pytest.fixture()
def copy(demo_warehouse: DemoWarehouse, tmp_path: Path) -> Path:
    return demo_warehouse.copy_to(tmp_path / "tasks.duckdb")


def _rows(db_path: Path, table: str, batch_id: str) -> pd.DataFrame:
    """A batch's rows of an ml table, without the time they were written, in a fixed order."""
    with warehouse.connect(db_path, read_only=True) as con:
        frame = con.execute(f"select * from {table} where batch_id = ?", [batch_id]).df()
    frame = frame.drop(columns=IGNORED)
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def test_plan_batch_gives_the_explicit_window_or_the_latest_batch_again(
    demo_warehouse: DemoWarehouse, copy: Path
) -> None:
    settings = settings_for(copy)
    latest = demo_warehouse.windows[-1]
    with disable_run_logger():
        explicit = cycle.plan_batch.fn(settings, latest.window_start, latest.window_end, None)
        again = cycle.plan_batch.fn(settings, None, None, latest.batch_id)
    assert explicit == batches.window(latest.window_start, latest.window_end)
    assert again.batch_id == latest.batch_id
    assert (again.window_start, again.window_end) == (latest.window_start, latest.window_end)


def test_drift_and_performance_tasks_reproduce_the_batch_rows(
    demo_warehouse: DemoWarehouse, copy: Path
) -> None:
    """Re-running the Python stage's tasks on a batch replaces its rows with the same rows."""
    settings = settings_for(copy)
    batch = demo_warehouse.windows[-2]
    before = {
        table: _rows(copy, table, batch.batch_id)
        for table in ("ml.drift_results", "ml.performance_checks")
    }
    assert not before["ml.drift_results"].empty
    with disable_run_logger():
        drifted = stage.test_drift.fn(settings, batch)
        flagged = stage.check_performance.fn(settings, batch)
    for table, frame in before.items():
        pd.testing.assert_frame_equal(frame, _rows(copy, table, batch.batch_id), obj=table)
    assert drifted == int(before["ml.drift_results"].is_drift.sum())
    assert flagged == int(before["ml.performance_checks"].is_flagged.sum())


def test_decide_retraining_keeps_a_batch_that_was_already_decided(
    demo_warehouse: DemoWarehouse, copy: Path
) -> None:
    settings = settings_for(copy)
    batch = demo_warehouse.windows[-1]
    with disable_run_logger():
        assert stage.decide_retraining.fn(settings, batch, dry_run=True) == []


def test_decide_retraining_decides_each_served_model_once_for_a_new_batch(
    demo_warehouse: DemoWarehouse, copy: Path
) -> None:
    settings = settings_for(copy)
    last = demo_warehouse.windows[-1]
    new = batches.window(last.window_end, last.window_end + pd.Timedelta(days=1))
    with disable_run_logger():
        made = stage.decide_retraining.fn(settings, new, dry_run=True)
    assert [decision.model_name for decision in made] == [demo_warehouse.truth["model_name"]]
    assert made[0].batch_id == new.batch_id
    assert made[0].decision in {"retrain", "hold", "insufficient_data"}

"""`flywheel check`: the data tests of a batch read the batch's rows; `--full` reads every row and
catches what a batch-scoped test cannot see."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import duckdb
from click.testing import CliRunner

from feedback_flywheel.cli import main
from tests.python.helpers import DemoWarehouse, project_vars

UNIQUE_EVENT_ID = "test.feedback_flywheel.unique_fct_feedback_event_id"
UNIQUE_SEGMENT = "test.feedback_flywheel.unique_combination_of_columns_fct_inference_segments_"
NOT_NULL_SEGMENT = "test.feedback_flywheel.not_null_columns_fct_inference_segments_"


def _check(db_path: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["check", *args, "--db", str(db_path)])
    return result.exit_code, result.output


def _duplicate_a_feedback_row(db_path: Path, batch_id: str) -> None:
    """Append a second copy of one accepted event of ``batch_id`` (a broken invariant)."""
    with duckdb.connect(str(db_path)) as con:
        inserted = con.execute(
            """
            insert into marts.fct_feedback
            select * from marts.fct_feedback where batch_id = ? order by event_id limit 1
            """,
            [batch_id],
        ).fetchone()[0]
    assert inserted == 1, f"batch {batch_id} accepted no feedback to duplicate"


def test_full_check_passes_on_a_healthy_warehouse(demo_warehouse: DemoWarehouse, tmp_path) -> None:
    db_path = demo_warehouse.copy_to(tmp_path / "flywheel.duckdb")
    code, output = _check(db_path, "--full")
    assert code == 0, output
    assert "data tests over whole tables:" in output and " pass" in output
    assert "fail" not in output.split("data tests over")[-1]


def test_a_duplicate_in_an_old_batch_is_seen_only_by_the_full_check(
    demo_warehouse: DemoWarehouse, tmp_path
) -> None:
    db_path = demo_warehouse.copy_to(tmp_path / "flywheel.duckdb")
    first, latest = demo_warehouse.windows[0], demo_warehouse.windows[-1]
    _duplicate_a_feedback_row(db_path, first.batch_id)

    code, output = _check(db_path)
    assert code == 0, f"the latest batch's rows are fine, its check must pass:\n{output}"
    assert f"batch {latest.batch_id}" in output

    code, output = _check(db_path, "--full")
    assert code == 1, output
    assert UNIQUE_EVENT_ID in output, output


def test_a_duplicate_or_a_null_in_the_latest_batch_fails_the_batch_check(
    demo_warehouse: DemoWarehouse, tmp_path
) -> None:
    """fct_inference_segments is scoped by the time a prediction was served: a duplicate served
    inside the latest batch's window plus its lookback is caught by that batch's own check (the
    latest batch here drains held feedback past the end of the data, so only its lookback days
    served predictions). So is a null in a key column (a model's required columns share one
    not_null_columns test)."""
    db_path = demo_warehouse.copy_to(tmp_path / "flywheel.duckdb")
    latest = demo_warehouse.windows[-1]
    scope_start = latest.window_start - timedelta(days=project_vars().lookback_days)
    with duckdb.connect(str(db_path)) as con:
        (inserted,) = con.execute(
            """
            insert into marts.fct_inference_segments
            select * from marts.fct_inference_segments
            where logged_at >= ? and logged_at < ?
            order by inference_id, segment_attribute limit 1
            """,
            [scope_start, latest.window_end],
        ).fetchone()
    assert inserted == 1, "the latest batch's window served predictions"
    with duckdb.connect(str(db_path)) as con:
        (inserted,) = con.execute(
            """
            insert into marts.fct_inference_segments
            select * replace ('new-' || inference_id as inference_id, null as segment_attribute)
            from marts.fct_inference_segments
            where logged_at >= ? and logged_at < ?
            order by inference_id, segment_attribute limit 1
            """,
            [scope_start, latest.window_end],
        ).fetchone()
    code, output = _check(db_path)
    assert code == 1, output
    assert UNIQUE_SEGMENT in output, output
    assert NOT_NULL_SEGMENT in output, output


def test_check_before_any_batch_says_what_to_do(tmp_path) -> None:
    from feedback_flywheel import warehouse

    db_path = tmp_path / "empty.duckdb"
    with warehouse.connect(db_path) as con:
        warehouse.init_warehouse(con)
    code, output = _check(db_path)
    assert code == 2
    assert "no successful batch" in output and "flywheel run" in output

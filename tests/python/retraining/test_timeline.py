"""The timelines on demo worlds: a backfill is tested on every past day, not only at its
watermark, so the injected covariate drift (truth.json) shows from its own day and the days
before are quiet; a daily batch adds only its watermark's day; the concept drift of one segment
is flagged, and its change point located, from its own day in a 30-day backfill."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pandas as pd
import pytest

from feedback_flywheel import batches, demo
from tests.python.helpers import DemoWarehouse, ingest_demo, run_windows


def _timeline(demo_warehouse: DemoWarehouse) -> pd.DataFrame:
    with demo_warehouse.connect() as con:
        return con.execute("select * from ml.drift_timeline").df()


def test_the_backfill_timeline_flags_the_covariate_drift_from_its_own_day(
    demo_warehouse: DemoWarehouse,
) -> None:
    timeline = _timeline(demo_warehouse)
    history = demo_warehouse.windows[0]
    rows = timeline[timeline.batch_id == history.batch_id].copy()
    rows["day"] = pd.to_datetime(rows.evaluation_date).dt.date
    injected = {
        item["feature"]: date.fromisoformat(item["start_date"])
        for item in demo_warehouse.truth["covariate_drift"]
    }
    onset = min(injected.values())
    last_day = (history.window_end - pd.Timedelta(days=1)).date()
    assert onset < last_day, "the drift starts inside the backfill, before its last day"
    # the past days are there (every day with a reference, up to the day before the watermark)
    past = rows[~rows.is_watermark]
    assert past.day.max() == last_day - pd.Timedelta(days=1)
    assert rows[rows.is_watermark].day.unique().tolist() == [last_day]
    tested = past[past.test.isin(("ks", "chi2")) & (past.n_ref >= 200) & (past.n_cur >= 200)]
    assert {d for d in tested.day if d < onset}, "stable days before the onset were tested"
    drifted = rows[rows.is_drift & rows.test.isin(("ks", "chi2")) & (rows.kind == "covariate")]
    for feature, start in injected.items():
        days = sorted(drifted[drifted.feature_name == feature].day)
        assert days and days[0] == start, f"{feature}: flagged on {days}, injected from {start}"
    early_alarms = drifted[drifted.day < onset]
    assert early_alarms.empty, f"false alarms before the onset:\n{early_alarms}"
    uninjected = set(drifted.feature_name) - set(injected)
    assert not uninjected, f"features that never drifted were flagged: {uninjected}"


def test_a_daily_batch_adds_only_its_watermark_day(demo_warehouse: DemoWarehouse) -> None:
    timeline = _timeline(demo_warehouse)
    for window in demo_warehouse.windows[1:-1]:
        rows = timeline[timeline.batch_id == window.batch_id]
        assert rows.is_watermark.all(), window.batch_id
        with demo_warehouse.connect() as con:
            results = con.execute(
                "select feature_name, test, p_adjusted, is_drift_now from ml.drift_results "
                "where batch_id = ? and kind <> 'label' order by 1, 2",
                [window.batch_id],
            ).df()
        got = rows.sort_values(["feature_name", "test"])
        assert got.feature_name.tolist() == results.feature_name.tolist()
        assert got.is_drift.tolist() == results.is_drift_now.tolist()


@pytest.fixture(scope="module")
def backfill_world(tmp_path_factory: pytest.TempPathFactory) -> DemoWarehouse:
    """30 days of a demo world built as one backfill batch: the concept drift (day 22) lies
    inside it, with days of matured labels after it."""
    root = tmp_path_factory.mktemp("backfill")
    truth = demo.generate(root / "demo", seed=11, days=30, inferences_per_day=1500)
    db_path = root / "flywheel.duckdb"
    ingest_demo(db_path, root / "demo")
    start = datetime.fromisoformat(truth["start_date"])
    end = datetime.fromisoformat(truth["end_date"])
    windows = [batches.window(start, end)]
    run_windows(db_path, windows)
    return DemoWarehouse(db_path, root / "demo", truth, windows)


def test_the_backfill_timeline_flags_the_concept_drift_from_its_own_day(
    backfill_world: DemoWarehouse,
) -> None:
    injected = backfill_world.truth["concept_drift"][0]
    onset = date.fromisoformat(injected["start_date"])
    history = backfill_world.windows[0]
    with backfill_world.connect() as con:
        rows = con.execute(
            "select * from ml.performance_timeline where batch_id = ?", [history.batch_id]
        ).df()
    rows["day"] = pd.to_datetime(rows.evaluation_date).dt.date
    segment = rows[
        (rows.check_name == "segment_concept")
        & (rows.segment_attribute == injected["segment_attribute"])
        & (rows.segment_value == injected["segment_value"])
    ]
    assert {d for d in segment.day if d < onset}, "days before the onset were evaluated"
    flagged = segment[segment.is_flagged].sort_values("day")
    assert not flagged.empty, "the concept drift was never flagged"
    first = flagged.iloc[0]
    assert abs((first.day - onset).days) <= 1, f"first flagged {first.day}, injected {onset}"
    change_point = pd.Timestamp(first.change_point_date).date()
    assert abs((change_point - onset).days) <= 1, change_point
    # the segment's drop is the largest flagged that day
    day = rows[(rows.day == first.day) & (rows.check_name == "segment_concept") & rows.is_flagged]
    assert day.accuracy_change.min() == first.accuracy_change
    # the whole timeline: every day of the backfill with labels has an overall check
    overall = rows[rows.check_name == "accuracy_change"]
    assert overall.day.max() == (history.window_end - timedelta(days=1)).date()
    assert overall.day.nunique() >= 25


def test_the_backfill_drift_timeline_locates_the_covariate_change(
    backfill_world: DemoWarehouse,
) -> None:
    with backfill_world.connect() as con:
        rows = con.execute(
            "select * from ml.drift_timeline where batch_id = ? and change_point_date is not null",
            [backfill_world.windows[0].batch_id],
        ).df()
    for item in backfill_world.truth["covariate_drift"]:
        starts = rows[rows.feature_name == item["feature"]]
        assert pd.to_datetime(starts.change_point_date).dt.date.min() == date.fromisoformat(
            item["start_date"]
        ), starts


def test_evaluation_days_cover_the_window_and_the_label_lookback() -> None:
    from feedback_flywheel.retraining.performance_timeline import evaluation_days

    daily = evaluation_days(datetime(2026, 3, 4), datetime(2026, 3, 5), 120, 7)
    assert daily[0] == date(2026, 2, 25) and daily[-1] == date(2026, 3, 4) and len(daily) == 8
    noon = evaluation_days(datetime(2026, 3, 4, 12), datetime(2026, 3, 5, 12), 120, 0)
    assert noon == [date(2026, 3, 4), date(2026, 3, 5)]
    capped = evaluation_days(datetime(2025, 1, 1), datetime(2026, 3, 5), 10, 0)
    assert capped[0] == date(2026, 2, 22) and len(capped) == 11


def test_flywheel_backtest_replays_the_backfill_against_its_truth(
    backfill_world: DemoWarehouse,
) -> None:
    """`flywheel backtest --changes truth.json` on the backfill: each injected change is
    flagged within a day of its start, the shipped policy retrains on the concept drift and
    not on the covariate drift alone."""
    import json

    from click.testing import CliRunner

    from feedback_flywheel.cli import main

    truth = backfill_world.demo_dir / "truth.json"
    result = CliRunner().invoke(
        main, ["backtest", "--db", str(backfill_world.db_path), "--changes", str(truth), "--json"]
    )
    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.output)["models"].values()
    changes = {change["change"]: change for change in report["changes"]}
    concept = backfill_world.truth["concept_drift"][0]
    name = f"concept {concept['segment_attribute']}={concept['segment_value']}"
    for item in backfill_world.truth["covariate_drift"]:
        assert changes[f"covariate {item['feature']}"]["flag_delay_days"] in (0, 1), changes
    assert changes[name]["flag_delay_days"] in (0, 1), changes
    assert changes[name]["retrain_delay_days"] in (0, 1), changes
    onset = min(item["start_date"] for item in backfill_world.truth["covariate_drift"])
    shifted = [r for r in report["retrainings"] if onset <= r["day"] < concept["start_date"]]
    assert not shifted, f"retrained on the covariate drift alone: {shifted}"
    assert report["decisions"].get("warning", 0) >= 1

"""The drift timeline on the demo world: the history batch (a backfill over the first 12 of 16
days) is tested on every past day, not only at its watermark, so the injected covariate drift
(truth.json) shows from its own day; the days before are quiet; a daily batch adds only its
watermark's day."""

from __future__ import annotations

from datetime import date

import pandas as pd

from tests.python.helpers import DemoWarehouse


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

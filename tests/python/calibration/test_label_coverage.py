"""Label coverage by age (marts.fct_label_coverage) and the label maturation window derived from it
(marts.fct_label_maturation), on a demo world whose labels arrive uniformly 0-10 days after
serving (truth.json's label_delay_days), built with ``label_maturation_days: auto``.

The curves are recomputed here in pandas from the accepted predictions and labels; the measured
label delays are tested against the generator's distribution with scipy's Kolmogorov-Smirnov
test; the derived window is the one that distribution implies; and the performance windows of the
batch (the performance check and concept drift) end that many days before the watermark.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from scipy import stats

from feedback_flywheel import batches, demo, warehouse
from tests.python.helpers import ingest_demo, run_windows

DAYS = 22
#: the test's settings: ages up to 14 days (the oldest still has 8 days of predictions) and a
#: share between the coverage of two whole days (uniform delays: 0.8 at day 8, 0.9 at day 9)
OVERRIDES = {
    "label_maturation_days": "auto",
    "label_maturation_share": 0.85,
    "label_coverage_max_days": 14,
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The history as one batch, then one daily batch, both under ``auto``."""
    root = tmp_path_factory.mktemp("coverage")
    truth = demo.generate(root / "demo", seed=17, days=DAYS, inferences_per_day=800)
    db_path = root / "flywheel.duckdb"
    ingest_demo(db_path, root / "demo")
    start = datetime.fromisoformat(truth["start_date"])
    end = datetime.fromisoformat(truth["end_date"])
    windows = [
        batches.window(start, end - timedelta(days=1)),
        batches.window(end - timedelta(days=1), end),
    ]
    run_windows(db_path, windows, OVERRIDES)
    with warehouse.connect(db_path, read_only=True) as con:
        tables = {
            "coverage": con.execute("select * from marts.fct_label_coverage").df(),
            "maturation": con.execute("select * from marts.fct_label_maturation").df(),
            "performance_windows": con.execute(
                "select * from marts.fct_performance_windows where segment_attribute = '__all__'"
            ).df(),
            "predictions": con.execute(
                "select inference_id, model_name, logged_at "
                "from intermediate.int_inferences_validated where is_accepted"
            ).df(),
            "labels": con.execute(
                "select inference_id, event_type, received_at, feedback_delay_seconds "
                "from marts.fct_feedback where is_ground_truth and not is_retracted"
            ).df(),
            "examples": con.execute(
                "select model_name, model_version, inference_logged_at, is_correct "
                "from marts.fct_training_examples where is_current"
            ).df(),
        }
    return {"truth": truth, "windows": windows} | tables


def _curves(world: dict[str, Any], watermark: datetime) -> pd.DataFrame:
    """Coverage by age per model (overall) and per model and week, from the rows themselves."""
    predictions = world["predictions"]
    labels = world["labels"][world["labels"].received_at < watermark]
    first = labels.groupby("inference_id").received_at.min().rename("label_received_at")
    frame = predictions.join(first, on="inference_id")
    frame = frame[frame.logged_at < watermark]
    age = (watermark - frame.logged_at).dt.total_seconds() / 86400
    delay = (frame.label_received_at - frame.logged_at).dt.total_seconds() / 86400
    frame = frame.assign(
        week=(
            frame.logged_at.dt.normalize() - pd.to_timedelta(frame.logged_at.dt.day_of_week, "D")
        ),
        age=age,
        delay=delay,
    )
    rows = []
    for days in range(1, OVERRIDES["label_coverage_max_days"] + 1):
        old_enough = frame[frame.age >= days]
        labelled = old_enough.delay <= days
        for (model, week), group in old_enough.assign(labelled=labelled).groupby(
            ["model_name", "week"]
        ):
            rows.append((model, "week", week.date(), days, len(group), int(group.labelled.sum())))
        for model, group in old_enough.assign(labelled=labelled).groupby("model_name"):
            rows.append((model, "overall", None, days, len(group), int(group.labelled.sum())))
    return pd.DataFrame(
        rows,
        columns=[
            "model_name",
            "breakdown",
            "served_week_start_date",
            "age_days",
            "eligible_count",
            "labelled_count",
        ],
    )


def test_coverage_by_age_equals_a_recount_of_the_predictions_and_labels(world) -> None:
    expected = _curves(world, world["windows"][-1].window_end)
    measured = world["coverage"].copy()
    measured["served_week_start_date"] = [
        None if pd.isna(day) else pd.Timestamp(day).date()
        for day in measured.served_week_start_date
    ]
    key = ["model_name", "breakdown", "served_week_start_date", "age_days"]
    joined = expected.merge(measured, on=key, how="outer", suffixes=("", "_sql"), indicator=True)
    assert (joined._merge == "both").all(), joined[joined._merge != "both"][key]
    assert (joined.eligible_count == joined.eligible_count_sql).all()
    assert (joined.labelled_count == joined.labelled_count_sql).all()
    for row in measured.sample(n=40, random_state=0).itertuples(index=False):
        interval = stats.binomtest(int(row.labelled_count), int(row.eligible_count)).proportion_ci(
            method="wilson"
        )
        assert row.coverage == pytest.approx(row.labelled_count / row.eligible_count, abs=1e-12)
        assert (row.coverage_lower, row.coverage_upper) == pytest.approx(tuple(interval), abs=1e-9)


def test_label_delays_follow_the_generators_distribution(world) -> None:
    """The warehouse's measured delays (fct_feedback.feedback_delay_seconds) of labels whose
    whole delay range has passed: Kolmogorov-Smirnov against uniform(min, max) days."""
    low, high = world["truth"]["label_delay_days"]["min"], world["truth"]["label_delay_days"]["max"]
    watermark = world["windows"][-1].window_end
    old = world["predictions"][
        world["predictions"].logged_at < watermark - timedelta(days=high, hours=1)
    ]
    labels = world["labels"][
        (world["labels"].event_type == "label")
        & world["labels"].inference_id.isin(old.inference_id)
    ]
    delays = labels.feedback_delay_seconds / 86400
    assert len(delays) > 1000
    result = stats.kstest(delays, "uniform", args=(low, high - low))
    assert result.pvalue > 0.01, result


def test_the_maturation_window_is_derived_from_the_curve_and_the_delay_distribution(world) -> None:
    truth_delay = world["truth"]["label_delay_days"]
    share = OVERRIDES["label_maturation_share"]
    # uniform delays: coverage at age a is (a - min) / (max - min) of the plateau
    implied = math.ceil(truth_delay["min"] + share * (truth_delay["max"] - truth_delay["min"]))
    maturation = world["maturation"]
    assert len(maturation) == len(world["windows"]) * maturation.model_name.nunique()
    assert set(maturation.batch_id) == {window.batch_id for window in world["windows"]}
    assert (maturation.maturation_setting == "auto").all()
    assert (maturation.maturation_source == "derived").all()
    latest = maturation[maturation.batch_id == world["windows"][-1].batch_id]
    coverage = world["coverage"]
    for row in latest.itertuples(index=False):
        curve = coverage[
            (coverage.model_name == row.model_name)
            & (coverage.breakdown == "overall")
            & ~coverage.is_suppressed
        ].set_index("age_days")
        plateau_age = curve.index.max()
        assert row.plateau_age_days == plateau_age
        assert row.plateau_coverage == pytest.approx(curve.coverage[plateau_age], abs=1e-12)
        reached = curve.index[curve.coverage >= share * curve.coverage[plateau_age]]
        assert row.derived_maturation_days == reached.min() == implied
        assert row.maturation_days == implied


def test_the_performance_windows_end_the_maturation_window_before_the_watermark(world) -> None:
    """What the performance check and concept drift read: the current window is the
    performance_current_days that end maturation_days before the watermark, and its labelled
    counts are those of the current training examples served in it."""
    from tests.python.helpers import project_vars

    latest = world["windows"][-1]
    maturation = world["maturation"].set_index(["batch_id", "model_name"]).maturation_days
    windows = world["performance_windows"][world["performance_windows"].batch_id == latest.batch_id]
    examples = world["examples"]
    current = windows[windows.window_side == "current"]
    assert not current.empty
    current_days = project_vars().performance_current_days
    for row in current.itertuples(index=False):
        days = int(maturation[(latest.batch_id, row.model_name)])
        end = latest.window_end - timedelta(days=days)
        assert row.current_end_at == end
        assert row.current_start_at == end - timedelta(days=current_days)
        served = examples[
            (examples.model_name == row.model_name)
            & (examples.model_version == row.model_version)
            & (examples.inference_logged_at >= row.current_start_at)
            & (examples.inference_logged_at < end)
        ]
        assert row.labelled_count == len(served) > 0
        assert row.correct_count == int(served.is_correct.sum())


def test_by_default_the_window_is_the_configured_zero_days(demo_warehouse) -> None:
    """The shipped setting (label_maturation_days: 0) keeps the windows at the watermark, and
    every batch records that it was configured."""
    with demo_warehouse.connect() as con:
        maturation = con.execute("select * from marts.fct_label_maturation").df()
        ends = con.execute(
            "select batch_id, max(current_end_at) from marts.fct_performance_windows group by 1"
        ).fetchall()
    assert set(maturation.maturation_source) == {"configured"}
    assert set(maturation.maturation_days) == {0}
    assert set(maturation.batch_id) == {window.batch_id for window in demo_warehouse.windows}
    by_batch = {window.batch_id: window.window_end for window in demo_warehouse.windows}
    for batch_id, current_end in ends:
        assert current_end == by_batch[batch_id]

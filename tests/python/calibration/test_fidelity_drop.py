"""The fidelity-drop flag (rpt_feedback_fidelity_alerts) on a demo world whose click tracking
breaks on a known day (``demo.generate(broken_tracking=...)``, recorded in truth.json): no
signal is flagged while tracking works, the click is flagged within two daily batches of the
break, the batch's warnings say so, and the numbers behind the flag are the plain counts."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from scipy import stats

from feedback_flywheel import batches, demo, warehouse
from tests.python.helpers import ingest_demo, project_vars, run_windows

BROKEN_DAY = 10


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """History up to the break as one batch, then two daily batches; the alerts after each."""
    root = tmp_path_factory.mktemp("broken")
    truth = demo.generate(
        root / "demo",
        seed=3,
        days=BROKEN_DAY + 2,
        inferences_per_day=1000,
        broken_tracking=("click", BROKEN_DAY),
    )
    db_path = root / "flywheel.duckdb"
    ingest_demo(db_path, root / "demo")
    start = datetime.fromisoformat(truth["start_date"])
    broken = start + timedelta(days=BROKEN_DAY)
    windows = [
        batches.window(start, broken),
        batches.window(broken, broken + timedelta(days=1)),
        batches.window(broken + timedelta(days=1), broken + timedelta(days=2)),
    ]
    alerts, warnings = [], []
    for window in windows:
        run_windows(db_path, [window])
        with warehouse.connect(db_path, read_only=True) as con:
            alerts.append(con.execute("select * from marts.rpt_feedback_fidelity_alerts").df())
            warnings.append(
                con.execute(
                    "select warnings from ml.batch_runs where batch_id = ? and status = 'success'",
                    [window.batch_id],
                ).fetchall()[0][0]
                or ""
            )
    return {"truth": truth, "alerts": alerts, "warnings": warnings, "db_path": db_path}


def test_truth_records_the_broken_signal(world) -> None:
    assert world["truth"]["broken_tracking"] == {
        "signal": "click",
        "from_day": BROKEN_DAY,
        "from_date": (
            datetime.fromisoformat(world["truth"]["start_date"]) + timedelta(days=BROKEN_DAY)
        )
        .date()
        .isoformat(),
        "recorded_value": 0,
    }


def test_nothing_is_flagged_while_tracking_works(world) -> None:
    before = world["alerts"][0]
    assert len(before) >= 9
    assert not before.is_flagged.any(), before[before.is_flagged]
    assert "signal 'click'" not in world["warnings"][0]


def test_the_broken_click_is_flagged_within_two_batches(world) -> None:
    flagged = [set(frame[frame.is_flagged].signal_name) for frame in world["alerts"][1:]]
    assert "click" in flagged[0] | flagged[1], world["alerts"][1:]
    # only the broken signal: every flag names the click
    assert flagged[0] | flagged[1] == {"click"}
    assert any("signal 'click'" in text for text in world["warnings"][1:])
    # the drop persists while the tracking stays broken (significant or not on a quiet day)
    last = world["alerts"][-1]
    click = last[(last.signal_name == "click") & (last.reference_name == "rating")].iloc[0]
    assert click.agreement_drop >= project_vars().fidelity_drop_min_effect, click


def test_the_flag_is_the_plain_two_proportion_test(world) -> None:
    """Recount the current and history windows of the last batch from fct_feedback_signals
    and redo the pooled z-test with scipy's normal distribution."""
    vars_ = project_vars()
    alerts = world["alerts"][-1]
    with warehouse.connect(world["db_path"], read_only=True) as con:
        signals = con.execute("select * from marts.fct_feedback_signals").df()
    row = alerts[(alerts.signal_name == "click") & (alerts.reference_name == "rating")].iloc[0]
    both = signals[signals.click.notna() & signals.rating.notna()]
    agree = (both.click == 1) == (both.rating >= vars_.fidelity_rating_positive_at)
    logged = pd.to_datetime(both.inference_logged_at)
    current = (logged >= row.current_start) & (logged < row.current_end)
    history = (logged >= row.history_start) & (logged < row.current_start)
    n_c, n_h = int(current.sum()), int(history.sum())
    x_c, x_h = int(agree[current].sum()), int(agree[history].sum())
    assert (row.current_count, row.history_count) == (n_c, n_h)
    pooled = (x_c + x_h) / (n_c + n_h)
    z = (x_c / n_c - x_h / n_h) / (pooled * (1 - pooled) * (1 / n_c + 1 / n_h)) ** 0.5
    assert row.z_statistic == pytest.approx(z, abs=1e-9)
    # the SQL p-value uses a Chebyshev erfc (relative error below 1.2e-7)
    assert row.p_value == pytest.approx(stats.norm.cdf(z), rel=1e-6)
    assert row.agreement_drop == pytest.approx(x_h / n_h - x_c / n_c, abs=1e-12)
    assert row.agreement_drop_lower < row.agreement_drop < row.agreement_drop_upper

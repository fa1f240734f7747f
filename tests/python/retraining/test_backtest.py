"""The policy backtest on a timeline written by hand: each stored test is gated again by the
policy replayed (alpha, floors, min_samples, persistence), the verdict and the cooldown are the
decision's, and the report's delays and false alarms are counted against the change log; a bad
change log names its file and entry; ``flywheel backtest`` prints it and exits 2 on bad input."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from feedback_flywheel.cli import main
from feedback_flywheel.retraining import backtest
from feedback_flywheel.warehouse import init_warehouse
from tests.python.helpers import default_policy

START = date(2026, 3, 1)
DAYS = 20
SHIFT, CONCEPT = START + timedelta(days=8), START + timedelta(days=14)


def _drift_row(day: date, feature: str, p_adjusted: float, effect: float, batch: str) -> dict:
    return {
        "batch_id": batch,
        "model_name": "m",
        "evaluation_date": day,
        "feature_name": feature,
        "kind": "covariate",
        "test": "ks",
        "statistic": 0.1,
        "p_value": p_adjusted / 2,
        "p_adjusted": p_adjusted,
        "effect_metric": "wasserstein_norm",
        "effect_size": effect,
        "threshold": 0.1,
        "n_ref": 5000,
        "n_cur": 1000,
        "is_drift": False,  # stored verdict: the backtest gates again and must not read it
        "is_watermark": False,
        "change_point_date": None,
        "policy_version": "p1-x",
        "computed_at": datetime(2026, 4, 1),
    }


def _daily_counts(day: date, segment: tuple[str, str], labelled: int, correct: int) -> dict:
    return {
        "model_name": "m",
        "model_version": "v1",
        "served_date": day,
        "segment_attribute": segment[0],
        "segment_value": segment[1],
        "labelled_count": labelled,
        "correct_count": correct,
    }


@pytest.fixture
def timeline(tmp_path: Path) -> Path:
    """20 days: length shifts from day 8 (significant, large); colour is significant only at
    alpha 0.05 (p_adj 0.02) from day 3; days 0-9 were written by batch b1 and evaluated again
    by b2 (which wins). 2,000 labelled predictions a day at accuracy 0.9, 200 of them in
    region=latam, whose accuracy collapses to 0.3 from day 14 (overall then 0.84)."""
    db_path = tmp_path / "w.duckdb"
    drift, daily = [], []
    for offset in range(DAYS):
        day = START + timedelta(days=offset)
        shifted = day >= SHIFT
        drift.append(
            _drift_row(day, "length", 1e-9 if shifted else 0.6, 0.5 if shifted else 0.01, "b2")
        )
        drift.append(_drift_row(day, "colour", 0.02 if offset >= 3 else 0.5, 0.3, "b2"))
        if offset < 10:  # an older evaluation of the same days says everything drifted
            drift.append(_drift_row(day, "length", 1e-12, 9.0, "b1"))
        latam = 60 if day >= CONCEPT else 180
        daily.append(_daily_counts(day, ("__all__", "__all__"), 2000, 1620 + latam))
        daily.append(_daily_counts(day, ("region", "latam"), 200, latam))
        daily.append(_daily_counts(day, ("region", "emea"), 1800, 1620))
    with duckdb.connect(str(db_path)) as con:
        con.execute("create schema ml")
        init_warehouse(con)
        con.execute("create schema marts")
        con.execute(
            "create table marts.fct_performance_daily (model_name varchar, model_version "
            "varchar, served_date date, segment_attribute varchar, segment_value varchar, "
            "labelled_count bigint, correct_count bigint)"
        )
        for table, rows in (("ml.drift_timeline", drift), ("marts.fct_performance_daily", daily)):
            columns = list(rows[0])
            con.executemany(
                f"insert into {table} ({', '.join(columns)}) values "
                f"({', '.join('?' for _ in columns)})",
                [list(row.values()) for row in rows],
            )
    return db_path


WINDOWS = backtest.Windows(current_days=7, reference_days=28, fast_days=2)
CHANGES = [
    backtest.KnownChange("covariate", SHIFT, feature="length"),
    backtest.KnownChange("concept", CONCEPT, segment_attribute="region", segment_value="latam"),
]


def _replay(db_path: Path, **update) -> list[backtest.DayDecision]:
    policy = default_policy()
    if "drift" in update:
        update["drift"] = policy.drift.model_copy(update=update["drift"])
    with duckdb.connect(str(db_path), read_only=True) as con:
        return backtest.replay(con, policy.model_copy(update=update), WINDOWS)


def test_the_shipped_policy_warns_on_drift_and_retrains_on_the_collapse(timeline: Path) -> None:
    days = _replay(timeline)
    by_day = {d.day: d for d in days}
    assert len(days) == DAYS
    # the newest batch's evaluation wins: b1's "everything drifted" rows are not read
    assert "length" not in by_day[START].drifted
    assert by_day[SHIFT].drifted == ["colour", "length"]
    assert by_day[SHIFT - timedelta(days=1)].drifted == ["colour"]  # p_adj 0.02 < alpha 0.05
    assert by_day[SHIFT].decision == "warning"  # drift without impact
    assert by_day[CONCEPT].decision == "retrain"
    assert set(by_day[CONCEPT].fired) >= {"concept_drift", "fast_performance_drop"}
    assert by_day[CONCEPT].dropped == ["region=latam"]
    cooldown = default_policy().cooldown_days
    after = [d for d in days if d.day > CONCEPT]
    assert after and all(
        d.decision == ("hold (cooldown)" if (d.day - CONCEPT).days < cooldown else "retrain")
        for d in after
    )


def test_the_policy_replayed_gates_again(timeline: Path) -> None:
    strict = _replay(timeline, drift={"alpha": 0.01})
    assert all("colour" not in d.drifted for d in strict)
    persistent = _replay(
        timeline,
        drift={
            "persistence": default_policy().drift.persistence.model_copy(update={"k": 3, "m": 3})
        },
    )
    first = min(d.day for d in persistent if "length" in d.drifted)
    assert first == SHIFT + timedelta(days=2)  # the third day in a row
    eager = _replay(timeline, retrain_when="any", cooldown_days=0)
    assert next(d for d in eager if d.decision == "retrain").day == START + timedelta(days=3)


def test_the_report_counts_delays_and_false_alarms(timeline: Path) -> None:
    report = backtest.report(_replay(timeline, retrain_when="any"), CHANGES)["m"]
    assert report["days"] == DAYS and report["stable_days"] == 8
    # colour drifts (significantly, at alpha 0.05) from day 3 and no change names it
    assert report["false_alarms"]["unnamed_features"] == ["colour"]
    assert report["false_alarms"]["days_with_unnamed_drift"] == DAYS - 3
    assert report["false_alarms"]["retrain"] == 1  # day 3; then the 7-day cooldown
    shift, concept = report["changes"]
    assert (shift["flag_delay_days"], concept["flag_delay_days"]) == (0, 0)
    assert shift["first_retrain"] == (START + timedelta(days=10)).isoformat()  # after cooldown
    assert report["retrainings"][0] == {
        "day": (START + timedelta(days=3)).isoformat(),
        "signals": ["covariate_drift"],
    }


def test_change_logs_read_truth_json_and_lists_and_name_the_bad_entry(tmp_path: Path) -> None:
    truth = tmp_path / "truth.json"
    truth.write_text(
        json.dumps(
            {
                "covariate_drift": [
                    {"feature": "length", "kind": "numeric", "start_date": "2026-03-09"}
                ],
                "concept_drift": [
                    {
                        "segment_attribute": "region",
                        "segment_value": "latam",
                        "start_date": "2026-03-15",
                    }
                ],
                "start_date": "2026-03-01",
            }
        )
    )
    assert backtest.load_changes(truth) == CHANGES
    log = tmp_path / "changes.yml"
    log.write_text(
        "- {kind: concept, start_date: 2026-03-15}\n- {kind: covariate, start_date: 2026-03-09}\n"
    )
    with pytest.raises(
        backtest.ChangeLogError,
        match=r"changes.yml: change 2: a covariate change needs its feature",
    ):
        backtest.load_changes(log)
    log.write_text("- {kind: seasonal, start_date: 2026-03-15}\n")
    with pytest.raises(
        backtest.ChangeLogError, match="change 1: kind must be covariate or concept"
    ):
        backtest.load_changes(log)
    log.write_text("- {kind: concept, start_date: yesterday}\n")
    with pytest.raises(backtest.ChangeLogError, match="start_date must be an ISO date"):
        backtest.load_changes(log)
    log.write_text("- {kind: concept, start_date: 2026-03-15}\n")
    assert backtest.load_changes(log)[0].label == "concept (overall)"


def test_flywheel_backtest_prints_the_report(timeline: Path, tmp_path: Path) -> None:
    log = tmp_path / "changes.yml"
    log.write_text(
        "- {kind: covariate, feature: length, start_date: 2026-03-09}\n"
        "- {kind: concept, segment_attribute: region, segment_value: latam,\n"
        "   start_date: 2026-03-15}\n"
    )
    runner = CliRunner()
    shown = runner.invoke(main, ["backtest", "--db", str(timeline), "--changes", str(log)])
    assert shown.exit_code == 0, shown.output
    assert "retrainings it would trigger: 1" in shown.output
    assert "concept region=latam" in shown.output and "+0d" in shown.output
    as_json = runner.invoke(main, ["backtest", "--db", str(timeline), "--json"])
    assert json.loads(as_json.output)["models"]["m"]["days"] == DAYS
    log.write_text("- {kind: concept, start_date: soon}\n")
    bad = runner.invoke(main, ["backtest", "--db", str(timeline), "--changes", str(log)])
    assert bad.exit_code == 2 and "change 1: start_date must be an ISO date" in bad.output

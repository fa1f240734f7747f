"""The decision weighs impact: under the shipped policy (``retrain_when: impact``) drift alone is
a warning, drift with an estimated drop or any realised drop retrains; the fast signal reads the
newest matured day of the performance timeline at its own significance; the cooldown gives way
when the retraining that started it was not deployed and the impact keeps worsening."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from feedback_flywheel.retraining import decision, signals
from feedback_flywheel.retraining.training_window import MAX_ROWS_AFTER_CHANGE
from feedback_flywheel.warehouse import init_warehouse
from tests.python.helpers import default_policy

T0 = datetime(2026, 2, 1)


@pytest.fixture
def con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(tmp_path / "d.duckdb"))
    con.execute("create schema ml")
    init_warehouse(con)
    return con


def _signals(**values: float | None) -> dict[str, signals.Signal]:
    """Every signal of the shipped policy: those named fire with the value given (a drift
    signal's value is a feature count, an impact signal's an accuracy change), the rest are
    quiet with data."""
    policy = default_policy()
    names = (
        "covariate_drift",
        "prediction_drift",
        "label_drift",
        "performance_drop",
        "concept_drift",
        "estimated_performance_drop",
        "fast_performance_drop",
    )
    out = {}
    for name in names:
        enabled = getattr(policy.signals, name).enabled
        fired = name in values
        value = values.get(name, 0.0)
        out[name] = signals.Signal(name, enabled, True, fired, value, -0.03)
    return out


def _decide(con, batch_id: str, at: datetime, found: dict[str, signals.Signal], policy=None):
    return decision.decide(
        con,
        batch_id=batch_id,
        model_name="m",
        watermark_at=at,
        dataset_version="ds-x",
        signals=found,
        policy=policy or default_policy(),
    )


def test_the_shipped_policy_weighs_impact() -> None:
    assert default_policy().retrain_when == "impact"


def test_drift_without_impact_is_a_warning_not_a_retraining(con) -> None:
    made = _decide(con, "b1", T0, _signals(covariate_drift=2.0))
    assert made.decision == "warning"
    assert made.reason.startswith("drift without performance impact: covariate_drift")
    # the quiet impact signals are named beside it, so a reader sees why it did not retrain
    assert "estimated_performance_drop" in made.reason and "performance_drop" in made.reason
    alone = _decide(con, "b1", T0, _signals(estimated_performance_drop=-0.06))
    assert alone.decision == "warning" and alone.reason.startswith(
        "estimated performance drop without drift"
    )
    any_policy = default_policy().model_copy(update={"retrain_when": "any"})
    assert _decide(con, "b1", T0, _signals(covariate_drift=2.0), any_policy).decision == "retrain"


@pytest.mark.parametrize(
    "fired",
    [
        {"covariate_drift": 1.0, "estimated_performance_drop": -0.05},
        {"performance_drop": -0.08},
        {"concept_drift": -0.2},
        {"fast_performance_drop": -0.3},
        {"covariate_drift": 1.0, "concept_drift": -0.2},
    ],
)
def test_impact_retrains(con, fired: dict[str, float]) -> None:
    made = _decide(con, "b1", T0, _signals(**fired))
    assert made.decision == "retrain", made.reason
    assert all(name in made.reason for name in fired)


def _record(con, made: decision.Decision, run_status: str | None) -> None:
    decision.record_decision(
        con,
        made,
        default_policy(),
        audit_key=b"k" * 32,
        is_dry_run=False,
        trigger_status="triggered",
        triggered_run_id="tr-1",
        decided_at=made.watermark_at,
    )
    if run_status:
        con.execute(
            "insert into ml.training_runs (training_run_id, attempt, decision_id, model_name, "
            "dataset_version, status, started_at) values ('tr-1', 1, ?, 'm', 'ds-x', ?, ?)",
            [made.decision_id, run_status, made.watermark_at],
        )


@pytest.mark.parametrize(
    ("run_status", "now", "expected"),
    [
        ("not_deployed", -0.30, "retrain"),  # not deployed and worse: the cooldown gives way
        ("not_deployed", -0.10, "hold"),  # not deployed but no worse
        ("not_deployed", -0.22, "hold"),  # worse, but by less than the signal's floor (0.03)
        ("deployed", -0.30, "hold"),  # deployed: give the new model its cooldown
        (None, -0.30, "retrain"),  # the run never recorded anything: nothing was deployed
    ],
)
def test_the_cooldown_is_lifted_when_the_retraining_failed_to_help(
    con, run_status: str | None, now: float, expected: str
) -> None:
    first = _decide(con, "b1", T0, _signals(concept_drift=-0.20))
    assert first.decision == "retrain"
    _record(con, first, run_status)
    soon = T0 + timedelta(days=1)
    again = _decide(con, "b2", soon, _signals(concept_drift=now))
    assert again.decision == expected, again.reason
    if expected == "retrain":
        assert "cooldown lifted" in again.reason and first.decision_id in again.reason
    else:
        assert again.reason.startswith("cooldown:")


@pytest.mark.parametrize(
    ("rows_then", "examples_now", "expected"),
    [
        (700, 1_400, "retrain"),
        (700, 1_399, "hold"),
        # it already learned from the most rows a retraining takes: more would not be used
        (MAX_ROWS_AFTER_CHANGE, 2 * MAX_ROWS_AFTER_CHANGE, "hold"),
    ],
)
def test_the_cooldown_is_lifted_when_the_evidence_since_the_change_doubled(
    con, rows_then: int, examples_now: int, expected: str
) -> None:
    """A retraining that learned from N rows since the change and was not deployed (its gain
    was not significant yet) is tried again once 2N labelled rows exist since that day, even
    though the impact did not worsen; rows before the change, unlabelled or superseded rows and
    other models' rows do not count."""
    first = _decide(con, "b1", T0, _signals(concept_drift=-0.20))
    _record(con, first, None)
    window = {"mode": "after_change", "since": "2026-01-28", "rows_after_change": rows_then}
    con.execute(
        "insert into ml.training_runs (training_run_id, attempt, decision_id, model_name, "
        "dataset_version, status, started_at, parameters_json) "
        "values ('tr-1', 1, ?, 'm', 'ds-x', 'not_deployed', ?, ?)",
        [first.decision_id, T0, json.dumps({"inputs": {"training_window": window}})],
    )
    con.execute("create schema marts")
    con.execute(
        "create table marts.fct_training_examples (model_name varchar, label varchar, "
        "superseded_in_batch_id varchar, inference_logged_at timestamp)"
    )
    groups = [
        (examples_now, "'m'", "'a'", "null", "timestamp '2026-01-28 00:00:01'"),
        (900, "'m'", "'a'", "null", "timestamp '2026-01-27 23:59:00'"),  # before the change
        (900, "'m'", "null", "null", "timestamp '2026-01-29'"),  # unlabelled
        (900, "'m'", "'a'", "'b2'", "timestamp '2026-01-29'"),  # superseded
        (900, "'other'", "'a'", "null", "timestamp '2026-01-29'"),  # another model
    ]
    for count, *values in groups:
        select = ", ".join(values)
        con.execute(f"insert into marts.fct_training_examples select {select} from range({count})")
    again = _decide(con, "b2", T0 + timedelta(days=1), _signals(concept_drift=-0.20))
    assert again.decision == expected, again.reason
    if expected == "retrain":
        assert f"grew from {rows_then:,} to {examples_now:,}" in again.reason


def _day(version: str, segment: tuple[str, str], day: date, n: int, change: float, p: float):
    check = "accuracy_change" if segment[0] == "__all__" else "segment_concept"
    return {
        "model_name": "m",
        "model_version": version,
        "evaluation_date": day,
        "check_name": check,
        "segment_attribute": segment[0],
        "segment_value": segment[1],
        "n_ref": 5 * n,
        "n_cur": n,
        "accuracy_change": change,
        "p_value": p / 10 if check == "segment_concept" else p,
        "p_adjusted": p,
    }


def test_the_fast_signal_reads_the_newest_matured_day_at_its_own_alpha() -> None:
    policy = default_policy()
    fast = policy.signals.fast_performance_drop
    d1, d2, d3 = date(2026, 2, 14), date(2026, 2, 15), date(2026, 2, 16)
    latam, overall = ("region", "latam"), ("__all__", "__all__")
    enough, few = fast.min_labelled, fast.min_labelled - 1
    days = pd.DataFrame(
        [
            _day("v1", overall, d1, enough, -0.01, 0.5),
            _day("v1", overall, d2, enough, -0.02, 0.2),
            # the newest day has too few labels yet: the day before is the newest matured one
            _day("v1", overall, d3, few, -0.5, 1e-9),
            _day("v1", latam, d1, enough, -0.01, 0.6),
            _day("v1", latam, d2, enough, -0.30, fast.alpha / 2),
        ]
    )
    found = signals.build_signals("m", *(pd.DataFrame(),) * 3, policy, performance_days=days)
    signal = found["fast_performance_drop"]
    assert signal.fired and signal.has_data
    assert signal.value == pytest.approx(-0.30)
    assert signal.detail["segments"] == ["region=latam (v1) on 2026-02-15: -0.300"]
    signals.attach_drop_starts(found, {("v1", "region", "latam"): "2026-02-15"})
    assert signal.detail["change_points"] == {"region=latam (v1)": "2026-02-15"}
    # at the signal's own alpha: the same drop, not significant enough, does not fire
    days.loc[days.segment_value == "latam", "p_adjusted"] = fast.alpha * 2
    again = signals.build_signals("m", *(pd.DataFrame(),) * 3, policy, performance_days=days)
    assert not again["fast_performance_drop"].fired
    # a drop smaller than min_drop does not fire either, however significant
    days.loc[days.segment_value == "latam", ["p_adjusted", "accuracy_change"]] = [
        1e-12,
        -fast.min_drop / 2,
    ]
    small = signals.build_signals("m", *(pd.DataFrame(),) * 3, policy, performance_days=days)
    assert not small["fast_performance_drop"].fired
    none = signals.build_signals("m", *(pd.DataFrame(),) * 3, policy)
    assert not none["fast_performance_drop"].has_data

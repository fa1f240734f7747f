"""The retraining trigger on the demo world: the injected covariate drift is flagged from its day
on (by name), the injected concept drift is attributed to the concept part for the right
segment, the days before are quiet, the covariate drift alone is a warning (it does not move
the accuracy), and the concept drift triggers exactly one retraining run while the cooldown
holds."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from feedback_flywheel import batches, demo, warehouse
from feedback_flywheel.config.policies import default_policy_path
from tests.python.helpers import PROJECT_DIR, ingest_demo

DAYS = 30


@dataclass(frozen=True)
class DriftWorld:
    db_path: Path
    truth: dict[str, Any]
    windows: list[batches.BatchWindow]

    def connect(self):
        return warehouse.connect(self.db_path, read_only=True)

    def day_of(self, batch_id: str) -> date:
        """The day the batch's drift current window covers (the day before its watermark)."""
        window = next(w for w in self.windows if w.batch_id == batch_id)
        return (window.window_end - timedelta(days=1)).date()


@pytest.fixture(scope="module")
def drift_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DriftWorld]:
    from flows.batch_cycle import batch_cycle

    root = tmp_path_factory.mktemp("drift_world")
    truth = demo.generate(root / "demo", seed=5, days=DAYS, inferences_per_day=1000)
    db_path = root / "flywheel.duckdb"
    ingest_demo(db_path, root / "demo")
    policy = yaml.safe_load(default_policy_path(PROJECT_DIR).read_text())
    policy["cooldown_days"] = DAYS  # one retraining in this world; later batches must hold
    policy_path = root / "policy.yml"
    policy_path.write_text(yaml.safe_dump(policy))
    start = datetime.fromisoformat(truth["start_date"])
    # history up to day 15 (the drift reference needs 14 days), a daily batch before the
    # covariate drift onset (day 17) and two on and after it (the first a two-day catch-up),
    # then batches once the concept drift (day 22) has labels (up to days 26 and 29)
    days = (15, 16, 18, 19, 27, 30)
    boundaries = [start] + [start + timedelta(days=d) for d in days]
    windows = [batches.window(a, b) for a, b in itertools.pairwise(boundaries)]
    for window in windows:
        batch_cycle(
            window_start=window.window_start,
            window_end=window.window_end,
            db_path=str(db_path),
            policy_path=str(policy_path),
        )
    yield DriftWorld(db_path, truth, windows)


def test_covariate_drift_is_flagged_from_its_day_on_and_quiet_before(
    drift_world: DriftWorld,
) -> None:
    injected = {
        item["feature"]: date.fromisoformat(item["start_date"])
        for item in drift_world.truth["covariate_drift"]
    }
    with drift_world.connect() as con:
        flagged = con.execute(
            """
            select batch_id, feature_name from ml.drift_results
            where kind = 'covariate' and is_drift
            """
        ).fetchall()
        tested = {
            row[0]
            for row in con.execute(
                "select distinct batch_id from ml.drift_results where kind = 'covariate'"
            ).fetchall()
        }
    by_day: dict[date, set[str]] = {}
    for batch_id, feature in flagged:
        by_day.setdefault(drift_world.day_of(batch_id), set()).add(feature)
    daily = [w for w in drift_world.windows[1:] if w.batch_id in tested]
    onset = min(injected.values())
    before = [w for w in daily if drift_world.day_of(w.batch_id) < onset]
    after = [w for w in daily if drift_world.day_of(w.batch_id) >= onset]
    assert before and after
    for window in before:
        assert not by_day.get(drift_world.day_of(window.batch_id)), (
            f"false alarm on {drift_world.day_of(window.batch_id)}: "
            f"{by_day.get(drift_world.day_of(window.batch_id))}"
        )
    # while the rolling 14-day reference window is still mostly from before the onset, both
    # injected features must be flagged (later the reference itself has drifted)
    early = [w for w in after if drift_world.day_of(w.batch_id) < onset + timedelta(days=7)]
    assert len(early) >= 2
    for window in early:
        day = drift_world.day_of(window.batch_id)
        assert set(injected) <= by_day.get(day, set()), f"{day}: flagged {by_day.get(day)}"
    uninjected = {f for features in by_day.values() for f in features} - set(injected)
    assert not uninjected, f"features that never drifted were flagged: {uninjected}"


def test_concept_drift_is_attributed_to_the_right_segment(drift_world: DriftWorld) -> None:
    injected = drift_world.truth["concept_drift"][0]
    onset = date.fromisoformat(injected["start_date"])
    with drift_world.connect() as con:
        flagged = con.execute(
            """
            select batch_id, segment_attribute, segment_value, accuracy_change, concept_lower,
                concept_upper
            from ml.performance_checks
            where check_name = 'segment_concept' and is_flagged
            """
        ).fetchall()
        decomposition = con.execute(
            """
            select batch_id, concept_part, covariate_part, concept_upper
            from ml.performance_checks
            where check_name = 'concept_decomposition' and segment_attribute = ?
                and concept_part is not null
            order by batch_id desc, n_cur desc limit 1
            """,
            [injected["segment_attribute"]],
        ).fetchone()
    segments = {(attribute, value) for _, attribute, value, *_ in flagged}
    assert (injected["segment_attribute"], injected["segment_value"]) in segments
    for batch_id, _attribute, _value, change, _lower, upper in flagged:
        assert drift_world.day_of(batch_id) >= onset, f"flagged before the onset: {batch_id}"
        assert change < 0 and upper < 0
    biased = drift_world.truth["biased_segment"]
    assert (biased["attribute"], biased["value"]) not in segments, (
        "a segment that is always worse is bias, not concept drift"
    )
    # the accuracy change by region is the concept part, not the segment mix
    assert decomposition is not None
    assert decomposition[1] < 0, decomposition
    assert abs(decomposition[1]) > abs(decomposition[2]), decomposition


def test_drift_without_impact_warns_and_the_concept_drift_retrains_once(
    drift_world: DriftWorld,
) -> None:
    """Under the shipped policy (retrain_when: impact) the covariate drift alone is a warning;
    the concept drift triggers the one retraining; the cooldown holds after it."""
    covariate = min(
        date.fromisoformat(item["start_date"]) for item in drift_world.truth["covariate_drift"]
    )
    concept = date.fromisoformat(drift_world.truth["concept_drift"][0]["start_date"])
    with drift_world.connect() as con:
        decisions = con.execute(
            """
            select batch_id, decision, trigger_status, triggered_run_id, reason, signals_json,
                policy_version
            from ml.retraining_decisions order by batch_id
            """
        ).fetchall()
        runs = con.execute(
            "select training_run_id, decision_id, dataset_version, status from ml.training_runs "
            "order by started_at"
        ).fetchall()
    assert len(decisions) == len(drift_world.windows)
    shifted = [
        row
        for row in decisions
        if covariate <= drift_world.day_of(row[0]) < concept
        and json.loads(row[5])["covariate_drift"]["fired"]
    ]
    assert shifted, "the covariate drift must fire before the concept drift starts"
    for batch_id, verdict, _, _, reason, _, _ in shifted:
        assert verdict == "warning", (batch_id, reason)
        assert reason.startswith("drift without performance impact: covariate_drift"), reason
    retrains = [row for row in decisions if row[1] == "retrain"]
    assert retrains, "the concept drift must trigger a retraining"
    batch_id, _, status, run_id, reason, signals_json, policy_version = retrains[0]
    assert drift_world.day_of(batch_id) >= concept
    assert status == "triggered" and run_id
    assert "concept_drift" in reason
    assert json.loads(signals_json)["concept_drift"]["fired"]
    assert policy_version.startswith("p1-")
    # after it the cooldown holds, unless that retraining was not deployed and the impact got
    # worse by more than its floor (then the reason says so)
    deployed = {row[1] for row in runs if row[3] in ("deployed", "already_deployed")}
    later = [row for row in decisions if row[0] > batch_id]
    assert later
    for row in later:
        if row[1] == "retrain":
            assert "cooldown lifted" in row[4] and "was not deployed" in row[4], row[4]
            assert f"dec-{batch_id}-support_router" not in deployed
        else:
            assert "cooldown" in row[4], row[4]
    assert len(runs) == len(retrains)
    assert runs[0][1] == f"dec-{batch_id}-support_router"


def test_estimates_made_before_labels_are_recorded_beside_the_realised_accuracy(
    drift_world: DriftWorld,
) -> None:
    with drift_world.connect() as con:
        rows = con.execute(
            """
            select batch_id, model_version, estimated_accuracy, realised_accuracy,
                labelled_share, realised_accuracy_lower, realised_accuracy_upper
            from marts.rpt_performance_estimates
            where estimated_accuracy is not null
            """
        ).fetchall()
        estimates_built = con.execute(
            "select count(*) from marts.fct_performance_estimates "
            "where estimated_accuracy is not null"
        ).fetchone()[0]
    # each batch builds its estimates in its own dbt build: the report holds every one of them
    assert rows and len(rows) == estimates_built
    realised = [row for row in rows if row[3] is not None and row[4] >= 0.2]
    assert realised, "older windows must have matured labels by now"
    errors = [abs(row[2] - row[3]) for row in realised]
    assert sum(errors) / len(errors) < 0.08, errors
    for row in realised:
        assert row[5] <= row[3] <= row[6]

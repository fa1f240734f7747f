"""The closed loop (issue 11): ``flywheel demo --closed-loop`` serves each day by what the
registry deployed before it, so the retraining a concept change triggers is deployed and the
following days recover.

The world: 40 days of 2,000 inferences; the concept of ``region=latam`` changes on day 30
(most of its labels become ``account``); the history up to three days before the end is one
batch (its decision, on its latest day, can trigger), then three daily batches. The recovery is
measured from the raw files (served predictions against the label events), independently of the
warehouse, and the warehouse's daily KPIs are checked to show the same.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from feedback_flywheel.cli import main
from feedback_flywheel.retraining import trainer

DAYS, VOLUME, DAILY = 40, 2000, 3


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("closed-loop")
    out, db_path = root / "world", root / "loop.duckdb"
    args = ["demo", "--closed-loop", "--days", str(DAYS), "--inferences-per-day", str(VOLUME)]
    args += ["--daily-batches", str(DAILY), "--out", str(out), "--db", str(db_path)]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    truth = json.loads((out / "truth.json").read_text())
    with duckdb.connect(str(db_path), read_only=True) as con:
        runs = con.sql(
            "select * from ml.training_runs where status = 'deployed' order by started_at"
        ).df()
        decisions = con.sql("select * from ml.retraining_decisions").df()
        daily = con.sql(
            """
            select served_date, model_version,
                sum(correct_count) / sum(labelled_count) as accuracy
            from marts.fct_performance_daily
            where segment_attribute = 'region' and segment_value = 'latam'
            group by all
            """
        ).df()
    return {
        "out": out,
        "db_path": db_path,
        "truth": truth,
        "runs": runs,
        "decisions": decisions,
        "daily": daily,
        "output": result.output,
    }


def _daily_from(truth: dict[str, Any]) -> date:
    return date.fromisoformat(truth["end_date"]) - timedelta(days=DAILY)


def test_the_world_documents_a_learnable_concept_change_and_who_served_each_day(
    loop: dict[str, Any],
) -> None:
    truth = loop["truth"]
    assert truth["closed_loop"] is True
    (change,) = truth["concept_drift"]
    assert (change["segment_value"], change["relabelled_to"]) == ("latam", "account")
    assert [d["model_version"] for d in truth["deployments"]] == ["v1"]
    served = truth["served"]
    start, end = date.fromisoformat(truth["start_date"]), date.fromisoformat(truth["end_date"])
    assert sorted(served) == [str(start + timedelta(days=i)) for i in range((end - start).days)]
    before = {version for day, version in served.items() if day < str(_daily_from(truth))}
    assert before == {"v1"}


def test_the_concept_change_retrains_on_rows_after_it_and_deploys_a_better_model(
    loop: dict[str, Any],
) -> None:
    truth, runs = loop["truth"], loop["runs"]
    assert len(runs) == 1, runs
    run = runs.iloc[0]
    parameters = json.loads(run["parameters_json"])
    window = parameters["inputs"]["training_window"]
    change_day = date.fromisoformat(truth["concept_drift"][0]["start_date"])
    assert window["mode"] == "after_change"
    assert abs((date.fromisoformat(window["since"]) - change_day).days) <= 1
    assert run["holdout_accuracy"] > run["baseline_accuracy"]
    assert run["accuracy_gain_p_value"] < 0.05
    decision = loop["decisions"].set_index("decision_id").loc[run["decision_id"]]
    signals = json.loads(decision["signals_json"])
    assert signals["concept_drift"]["fired"]
    assert "region=latam" in json.dumps(signals["concept_drift"])
    # from the deployment on, every served day is the deployed version's
    after = {v for d, v in truth["served"].items() if d >= str(_daily_from(truth))}
    assert after == {run["candidate_version"]}


def test_the_served_predictions_are_the_deployed_models(loop: dict[str, Any]) -> None:
    run = loop["runs"].iloc[0]
    parameters = json.loads(run["parameters_json"])
    day = _daily_from(loop["truth"])
    served = duckdb.sql(f"select * from '{loop['out']}/served/inference_log/{day}.parquet'").df()
    assert set(served["model_version"]) == {run["candidate_version"]}
    probabilities = trainer.rescore(parameters, served["inputs"])
    expected = np.asarray(parameters["classes"], dtype=object)[probabilities.argmax(axis=1)]
    assert (served["predicted_label"].to_numpy(dtype=object) == expected).mean() > 0.999
    drawn = duckdb.sql(f"select * from '{loop['out']}/inference_log/{day}.parquet'").df()
    assert drawn["inference_id"].tolist() == served["inference_id"].tolist()
    assert served["probabilities"].isna().tolist() == drawn["probabilities"].isna().tolist()


def _served_file(out: Path, day: date) -> str:
    """The file a day was ingested from: served again by a deployed model, else as drawn."""
    served = out / "served" / "inference_log" / f"{day}.parquet"
    return str(served if served.exists() else out / "inference_log" / f"{day}.parquet")


def _latam_accuracy_from_files(out: Path, since: date, until: date) -> dict[str, float]:
    """Accuracy in region=latam per served version on days [since, until), from the raw files:
    the predictions as ingested against the last label event of each inference."""
    files = [_served_file(out, since + timedelta(days=i)) for i in range((until - since).days)]
    rows = duckdb.sql(
        f"""
        with labels as (
            select inference_id, arg_max(value, received_at) as label
            from read_parquet('{out}/feedback_events/*.parquet')
            where event_type = 'label' and value in ('billing', 'technical', 'account')
            group by inference_id
        )
        select model_version, avg((predicted_label = label)::int) as accuracy
        from read_parquet({files!r}) as inferences
        join labels using (inference_id)
        where json_extract_string(context, '$.region') = 'latam'
        group by model_version
        """
    ).fetchall()
    return dict(rows)


def test_the_deployed_model_recovers_the_changed_segment(loop: dict[str, Any]) -> None:
    truth, out = loop["truth"], loop["out"]
    change_day = date.fromisoformat(truth["concept_drift"][0]["start_date"])
    daily_from, end = _daily_from(truth), date.fromisoformat(truth["end_date"])
    new_version = loop["runs"].iloc[0]["candidate_version"]
    before = _latam_accuracy_from_files(out, change_day - timedelta(days=7), change_day)
    broken = _latam_accuracy_from_files(out, change_day, daily_from)
    recovered = _latam_accuracy_from_files(out, daily_from, end)
    assert set(broken) == {"v1"} and set(recovered) == {new_version}
    assert broken["v1"] < before["v1"] - 0.2  # the change broke v1 there
    assert recovered[new_version] > broken["v1"] + 0.3  # and the new model learned it
    # the warehouse's daily KPIs show the same: every day the new version served beats
    # every day v1 served after the change
    daily = loop["daily"]
    after_change = daily[pd.to_datetime(daily["served_date"]).dt.date >= change_day]
    v1_days = after_change[after_change["model_version"] == "v1"]["accuracy"]
    new_days = after_change[after_change["model_version"] == new_version]["accuracy"]
    assert len(new_days) >= 2 and len(v1_days) >= 5
    assert new_days.min() > v1_days.max()
    assert "the loop, day by day" in loop["output"]


def test_the_loops_latency_counts_the_training_runs_and_their_deployments(
    loop: dict[str, Any],
) -> None:
    """marts.fct_feedback_latency after the last batch, recounted in pandas: examples reach a
    training run (stage 4, on the batch watermarks), deployed runs reach the registry (stage 5,
    on the wall clock)."""
    from feedback_flywheel.config.vars import load_vars
    from tests.python.calibration import latency_reference
    from tests.python.helpers import PROJECT_DIR

    db_path = loop["db_path"]
    with duckdb.connect(str(db_path), read_only=True) as con:
        batch_id, batch_end = con.execute(
            "select batch_id, window_end from ml.batch_runs where status = 'success' "
            "order by window_end desc limit 1"
        ).fetchone()
        days = load_vars(PROJECT_DIR).latency_days
        assert latency_reference.compare(con, batch_id, batch_end, days) > 0
        stages = con.execute(
            "select stage, sum(completed_count), sum(pending_count) "
            "from marts.fct_feedback_latency "
            "where breakdown = 'overall' and event_type = '__labels__' group by stage"
        ).fetchall()
    done = {stage: completed for stage, completed, _ in stages}
    assert done["dataset_to_training"] > 0
    assert done["training_to_deployment"] > 0

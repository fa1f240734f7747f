"""The batch cycle on the demo world: every raw row accounted for, every injected defect found
with its own reason code, re-runs idempotent, samples exact and rebuildable.

Expected numbers come from the demo world's truth.json or from an independent recomputation over
the same rows (pandas / scipy), never from the pipeline's own output.
"""

from __future__ import annotations

import itertools
import json
import math

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from feedback_flywheel import batches, warehouse
from feedback_flywheel.curation import datasets
from tests.python.helpers import PROJECT_DIR, DemoWarehouse, project_vars, settings_for

MART_TABLES = (
    "intermediate.int_inferences_validated",
    "intermediate.int_feedback_events_classified",
    "marts.fct_feedback",
    "marts.fct_feedback_quarantine",
    "marts.fct_training_examples",
    "marts.fct_training_sample",
    "marts.fct_dataset_versions",
    "marts.fct_sampling_policy_curves",
    "marts.fct_sampling_policy_scores",
    "marts.rpt_kpi_daily",
    "marts.fct_drift_numeric",
    "marts.fct_drift_categorical",
    "marts.fct_drift_categorical_summary",
    "marts.fct_drift_reference_bins",
    "marts.fct_performance_windows",
    "marts.fct_segment_outcomes_daily",
    "marts.rpt_kpi_trends_daily",
    "marts.rpt_kpi_trends_weekly",
    "marts.rpt_kpi_weekday_profile",
    "marts.rpt_deployment_impact",
    "marts.rpt_segment_bias",
    "marts.rpt_segment_bias_summary",
    "marts.rpt_feedback_skew",
)


def test_every_injected_bad_kind_lands_in_quarantine_with_its_own_reason(
    demo_warehouse: DemoWarehouse,
) -> None:
    injected = demo_warehouse.truth["bad_feedback"]
    with demo_warehouse.connect() as con:
        found = dict(
            con.execute(
                "select reason_code, count(*) from marts.fct_feedback_quarantine group by 1"
            ).fetchall()
        )
    assert set(injected) <= set(found), f"reason codes never used: {set(injected) - set(found)}"
    for kind, count in injected.items():
        assert found[kind] == count, f"{kind}: injected {count}, quarantined {found[kind]}"
    assert set(found) == set(injected), f"unexpected reasons: {set(found) - set(injected)}"


def test_quarantine_rate_matches_injected_rate(demo_warehouse: DemoWarehouse) -> None:
    rates = demo_warehouse.truth["bad_feedback_rates"]
    with demo_warehouse.connect() as con:
        total = con.execute("select count(*) from raw.feedback_events").fetchone()[0]
        found = dict(
            con.execute(
                "select reason_code, count(*) from marts.fct_feedback_quarantine group by 1"
            ).fetchall()
        )
    for kind, rate in rates.items():
        # binomial sampling noise: within 4 standard deviations of the injected rate
        tolerance = 4 * math.sqrt(rate * (1 - rate) / total)
        assert abs(found[kind] / total - rate) < tolerance + rate * 0.05, kind


def test_every_raw_feedback_row_is_accepted_or_quarantined_exactly_once(
    demo_warehouse: DemoWarehouse,
) -> None:
    with demo_warehouse.connect() as con:
        raw, accepted, quarantined, both, neither, held = con.execute(
            """
            with raw_rows as (
                select _load_id || ':' || cast(_file_row as varchar) as feedback_row_id
                from raw.feedback_events
            ),
            accepted as (select feedback_row_id from marts.fct_feedback),
            quarantined as (select feedback_row_id from marts.fct_feedback_quarantine)
            select
                (select count(*) from raw_rows),
                (select count(*) from accepted),
                (select count(*) from quarantined),
                (select count(*) from accepted inner join quarantined using (feedback_row_id)),
                (select count(*) from raw_rows
                 where feedback_row_id not in (select feedback_row_id from accepted)
                   and feedback_row_id not in (select feedback_row_id from quarantined)),
                (select count(*) from intermediate.int_feedback_events_classified
                 where status = 'held')
            """
        ).fetchone()
    assert held == 0, "the drain batch reaches past the lookback: nothing may still be held"
    assert both == 0
    assert neither == 0
    assert accepted + quarantined == raw


def test_accepted_plus_quarantined_equals_raw_for_every_batch_window(
    demo_warehouse: DemoWarehouse,
) -> None:
    with demo_warehouse.connect() as con:
        for window in demo_warehouse.windows:
            raw_count, decided = con.execute(
                """
                select
                    (select count(*) from raw.feedback_events
                     where received_at >= ? and received_at < ?),
                    (select count(*) from intermediate.int_feedback_events_classified
                     where received_at >= ? and received_at < ?
                       and status in ('accepted', 'quarantined'))
                """,
                [window.window_start, window.window_end] * 2,
            ).fetchone()
            assert raw_count == decided, window.batch_id
            recorded = con.execute(
                "select feedback_in from ml.batch_runs where batch_id = ? and status = 'success'",
                [window.batch_id],
            ).fetchone()[0]
            assert recorded == raw_count, f"ml.batch_runs.feedback_in of {window.batch_id}"


def test_batch_runs_record_each_batch_and_its_counts(demo_warehouse: DemoWarehouse) -> None:
    with demo_warehouse.connect() as con:
        rows = con.execute(
            """
            select batch_id, status, feedback_accepted, feedback_quarantined,
                quarantined_by_reason, window_start, window_end
            from ml.batch_runs order by window_end
            """
        ).fetchall()
        accepted_by_batch = dict(
            con.execute("select batch_id, count(*) from marts.fct_feedback group by 1").fetchall()
        )
    assert [row[0] for row in rows] == [window.batch_id for window in demo_warehouse.windows]
    assert all(row[1] == "success" for row in rows)
    for batch_id, _, accepted, quarantined, by_reason, *_ in rows:
        assert accepted == accepted_by_batch.get(batch_id, 0)
        assert quarantined == sum(json.loads(by_reason).values())
    # windows tile time: each starts where the previous ended
    for previous, current in itertools.pairwise(rows):
        assert current[5] == previous[6]


def test_rerunning_the_latest_batch_leaves_every_mart_identical(
    demo_warehouse: DemoWarehouse, tmp_path
) -> None:
    from flows.batch_cycle import batch_cycle

    before = demo_warehouse.copy_to(tmp_path / "before.duckdb")
    after = demo_warehouse.copy_to(tmp_path / "after.duckdb")
    latest = demo_warehouse.windows[-1]
    batch_cycle(batch_id=latest.batch_id, db_path=str(after))
    con = duckdb.connect(str(after), read_only=True)
    con.execute(f"attach '{before}' as before (read_only)")
    try:
        for table in MART_TABLES:
            schema, name = table.split(".")
            count = con.execute(f"select count(*) from {table}").fetchone()[0]
            assert count > 0, f"{table} is empty: the comparison would prove nothing"
            for left, right in (
                (table, f"before.{schema}.{name}"),
                (f"before.{schema}.{name}", table),
            ):
                diff = con.execute(
                    f"select count(*) from (select * from {left} except all select * from {right})"
                ).fetchone()[0]
                assert diff == 0, f"{table} changed on re-run ({left} minus {right}: {diff})"
        attempts = con.execute(
            "select count(*) from ml.batch_runs where batch_id = ?", [latest.batch_id]
        ).fetchone()[0]
        assert attempts == 2, "the re-run is recorded as a second attempt"
    finally:
        con.close()
    # Every mart, report and ml table, by scripts/warehouse_fingerprint.py (which leaves out only
    # the moments a run happened): identical but for the new attempt in ml.batch_runs.
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "warehouse_fingerprint", PROJECT_DIR / "scripts" / "warehouse_fingerprint.py"
    )
    fingerprint = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fingerprint)
    old, new = fingerprint.fingerprint(before), fingerprint.fingerprint(after)
    assert set(old) == set(new)
    changed = sorted(name for name in old if old[name] != new[name] and name != "ml.batch_runs")
    assert changed == [], changed


def test_rerunning_an_older_batch_is_refused_with_the_way_out(
    demo_warehouse: DemoWarehouse,
) -> None:
    with demo_warehouse.connect() as con, pytest.raises(batches.BatchError, match="rebuild"):
        batches.rerun_window(con, demo_warehouse.windows[1].batch_id)


def test_stratified_quotas_are_met_exactly_where_the_data_allows(
    demo_warehouse: DemoWarehouse,
) -> None:
    settings = project_vars()
    quota = settings.stratified_quota_per_cell
    with demo_warehouse.connect() as con:
        for window in demo_warehouse.windows:
            version = window.batch_id
            available = con.execute(
                f"""
                select coalesce(inferences.context_json->>'{settings.stratify_by}', '__missing__')
                    || '|' || examples.label, count(*)
                from marts.fct_training_examples as examples
                inner join intermediate.int_inferences_validated as inferences
                    using (inference_id)
                where inferences.is_accepted and examples.batch_id <= ?
                    and (examples.superseded_in_batch_id is null
                         or examples.superseded_in_batch_id > ?)
                group by 1
                """,
                [version, version],
            ).fetchall()
            taken = dict(
                con.execute(
                    """
                    select stratum, count(*) from marts.fct_training_sample
                    where batch_id = ? and sampling_strategy = 'stratified' group by 1
                    """,
                    [version],
                ).fetchall()
            )
            assert available, version
            for stratum, count in available:
                assert taken.get(stratum, 0) == min(quota, count), (version, stratum)
            assert any(count > quota for _, count in available), "some cell must be capped"
            assert any(count < quota for _, count in available), "some cell must be short"


def test_uncertainty_sample_is_the_most_uncertain_remainder_by_scipy_entropy(
    demo_warehouse: DemoWarehouse,
) -> None:
    settings = project_vars()
    assert settings.uncertainty_method == "entropy"
    version = demo_warehouse.windows[-1].batch_id
    with demo_warehouse.connect() as con:
        examples = con.execute(
            """
            select e.training_example_id, e.probabilities_json, e.probability_entropy,
                s.sampling_strategy
            from marts.fct_training_examples as e
            left join marts.fct_training_sample as s
                on s.training_example_id = e.training_example_id and s.batch_id = ?
            where e.batch_id <= ? and (e.superseded_in_batch_id is null
                                       or e.superseded_in_batch_id > ?)
            """,
            [version, version, version],
        ).df()
    with_probs = examples[examples["probabilities_json"].notna()].copy()
    with_probs["scipy_entropy"] = [
        stats.entropy(list(json.loads(text).values())) for text in with_probs["probabilities_json"]
    ]
    np.testing.assert_allclose(
        with_probs["probability_entropy"], with_probs["scipy_entropy"], rtol=0, atol=1e-9
    )
    chosen = with_probs[with_probs["sampling_strategy"] == "uncertainty_entropy"]
    remainder = with_probs[with_probs["sampling_strategy"].isna()]
    assert len(chosen) == settings.uncertainty_budget
    assert chosen["scipy_entropy"].min() >= remainder["scipy_entropy"].max() - 1e-12


def test_rebuilding_an_old_dataset_version_gives_the_same_rows(
    demo_warehouse: DemoWarehouse,
) -> None:
    # an early version, rebuilt after later batches added and superseded examples
    version = f"ds-{demo_warehouse.windows[1].batch_id}"
    result = datasets.verify(settings_for(demo_warehouse.db_path), version)
    assert result.stored_rows > 0
    assert result.identical, result
    with demo_warehouse.connect() as con:
        superseded_later = con.execute(
            "select count(*) from marts.fct_training_examples where superseded_in_batch_id > ?",
            [demo_warehouse.windows[1].batch_id],
        ).fetchone()[0]
    assert superseded_later > 0, "later batches must have changed the dataset for this to matter"


def test_training_examples_hold_only_matured_current_labels(
    demo_warehouse: DemoWarehouse,
) -> None:
    settle = project_vars().label_settle_hours
    with demo_warehouse.connect() as con:
        immature, duplicates, retracted = con.execute(
            f"""
            select
                (select count(*) from marts.fct_training_examples as e
                 inner join ml.batch_runs as b on e.batch_id = b.batch_id
                 where e.label_received_at > b.window_end - interval {settle} hour),
                (select count(*) from (
                    select inference_id from marts.fct_training_examples
                    where is_current group by 1 having count(*) > 1)),
                (select count(*) from marts.fct_training_examples as e
                 inner join marts.fct_feedback as f on e.label_event_id = f.event_id
                 where e.is_current and f.is_retracted)
            """
        ).fetchone()
    assert immature == 0
    assert duplicates == 0
    assert retracted == 0


def test_corrections_supersede_labels(demo_warehouse: DemoWarehouse) -> None:
    with demo_warehouse.connect() as con:
        wrong_current = con.execute(
            """
            with latest_truth as (
                select inference_id, arg_max(label_value, occurred_at) as label
                from marts.fct_feedback
                where is_ground_truth and not is_retracted
                group by 1
            )
            select count(*) from marts.fct_training_examples as e
            inner join latest_truth using (inference_id)
            where e.is_current and e.label <> latest_truth.label
            """
        ).fetchone()[0]
        corrections = con.execute(
            "select count(*) from marts.fct_training_examples where label_source = 'correction'"
        ).fetchone()[0]
    assert corrections > 0
    assert wrong_current == 0


def test_retractions_are_applied(demo_warehouse: DemoWarehouse) -> None:
    with demo_warehouse.connect() as con:
        retractions, retracted, orphan = con.execute(
            """
            select
                (select count(*) from marts.fct_feedback where event_type = 'retraction'),
                (select count(*) from marts.fct_feedback where is_retracted),
                (select count(*) from marts.fct_feedback as r
                 left join marts.fct_feedback as t on r.value_text = t.event_id
                 where r.event_type = 'retraction' and not coalesce(t.is_retracted, false))
            """
        ).fetchone()
    assert retractions > 0
    assert retracted == retractions
    assert orphan == 0


def _wilson(successes: int, trials: int) -> tuple[float, float]:
    interval = stats.binomtest(successes, trials).proportion_ci(method="wilson")
    return interval.low, interval.high


def _macro_scores(frame: pd.DataFrame) -> tuple[float, float, float]:
    classes = sorted(set(frame["label"]) | set(frame["predicted_label"]))
    precision, recall, f1 = [], [], []
    for cls in classes:
        tp = int(((frame["label"] == cls) & (frame["predicted_label"] == cls)).sum())
        fp = int(((frame["label"] != cls) & (frame["predicted_label"] == cls)).sum())
        fn = int(((frame["label"] == cls) & (frame["predicted_label"] != cls)).sum())
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        precision.append(p)
        recall.append(r)
        f1.append(2 * p * r / (p + r) if p + r else 0.0)
    return float(np.mean(precision)), float(np.mean(recall)), float(np.mean(f1))


def test_daily_kpis_match_an_independent_computation(demo_warehouse: DemoWarehouse) -> None:
    with demo_warehouse.connect() as con:
        kpis = con.execute("select * from marts.rpt_kpi_daily").df()
        examples = con.execute(
            """
            select model_name, model_version, cast(inference_logged_at as date) as kpi_date,
                label, predicted_label
            from marts.fct_training_examples where is_current
            """
        ).df()
        volume = con.execute(
            """
            select model_name, model_version, cast(logged_at as date) as kpi_date,
                count(*) as inference_count
            from raw.inference_log group by all
            """
        ).df()
        ratings = con.execute(
            """
            select model_name, model_version, cast(inference_logged_at as date) as kpi_date,
                value_numeric
            from marts.fct_feedback where event_type = 'rating' and not is_retracted
            """
        ).df()
    key = ["model_name", "model_version", "kpi_date"]
    merged = kpis.merge(volume, on=key, suffixes=("", "_independent"))
    assert len(merged) == len(kpis) == len(volume)
    assert (merged["inference_count"] == merged["inference_count_independent"]).all()
    checked = 0
    for (name, version, day), group in examples.groupby(key):
        row = kpis[
            (kpis.model_name == name) & (kpis.model_version == version) & (kpis.kpi_date == day)
        ].iloc[0]
        correct = int((group["label"] == group["predicted_label"]).sum())
        assert row.labelled_count == len(group)
        assert row.accuracy == pytest.approx(correct / len(group), abs=1e-12)
        low, high = _wilson(correct, len(group))
        assert row.accuracy_lower == pytest.approx(low, abs=1e-9)
        assert row.accuracy_upper == pytest.approx(high, abs=1e-9)
        share_low, share_high = _wilson(len(group), int(row.inference_count))
        assert row.labelled_share_lower == pytest.approx(share_low, abs=1e-9)
        assert row.labelled_share_upper == pytest.approx(share_high, abs=1e-9)
        precision, recall, f1 = _macro_scores(group)
        assert row.precision_macro == pytest.approx(precision, abs=1e-9)
        assert row.recall_macro == pytest.approx(recall, abs=1e-9)
        assert row.f1_macro == pytest.approx(f1, abs=1e-9)
        day_ratings = ratings[
            (ratings.model_name == name)
            & (ratings.model_version == version)
            & (ratings.kpi_date == day)
        ]["value_numeric"]
        if len(day_ratings) > 1:
            assert row.rating_mean == pytest.approx(day_ratings.mean(), abs=1e-9)
        checked += 1
    assert checked >= 10


def test_the_demo_truth_is_visible_in_the_marts(demo_warehouse: DemoWarehouse) -> None:
    biased = demo_warehouse.truth["biased_segment"]
    with demo_warehouse.connect() as con:
        by_version = dict(
            con.execute(
                """
                select model_version, sum(correct_count) * 1.0 / sum(labelled_count)
                from marts.rpt_kpi_daily group by 1
                """
            ).fetchall()
        )
        segment = dict(
            con.execute(
                """
                select coalesce(segments.segment_value = ?, false), avg(is_correct::int)
                from marts.fct_training_examples as examples
                left join marts.fct_inference_segments as segments
                    on segments.inference_id = examples.inference_id
                    and segments.segment_attribute = ?
                where examples.is_current group by 1
                """,
                [biased["value"], biased["attribute"]],
            ).fetchall()
        )
    assert by_version["v2"] > by_version["v1"]
    assert segment[True] < segment[False] - 0.1


def test_held_feedback_is_accepted_when_its_inference_arrives_late(tmp_path) -> None:
    """Feedback loaded before its inference is held, then accepted in the batch that sees the
    inference; feedback whose inference never comes is quarantined after the lookback."""
    from flows.batch_cycle import batch_cycle

    db_path = tmp_path / "late.duckdb"
    lookback = project_vars().lookback_days
    inferences = pd.DataFrame(
        {
            "inference_id": ["inf-late"],
            "logged_at": ["2026-02-01T10:00:00Z"],
            "model_name": ["m"],
            "model_version": ["v1"],
            "subject_id": ["s1"],
            "context": ['{"region": "eu", "language": "en"}'],
            "inputs": ['{"x": 1.5}'],
            "predicted_label": ["yes"],
            "predicted_score": [0.9],
            "probabilities": ['{"yes": 0.9, "no": 0.1}'],
        }
    )
    feedback = pd.DataFrame(
        {
            "event_id": ["fe-1", "fe-2"],
            "inference_id": ["inf-late", "inf-never"],
            "event_type": ["rating", "rating"],
            "value": ["4", "5"],
            "payload": ['{"value": 4}', '{"value": 5}'],
            "occurred_at": ["2026-02-01T11:00:00Z"] * 2,
            "received_at": ["2026-02-01T12:00:00Z"] * 2,
            "source": ["web"] * 2,
            "schema_version": ["1.0"] * 2,
        }
    )
    feedback.to_csv(tmp_path / "feedback.csv", index=False)
    inferences.to_csv(tmp_path / "inferences.csv", index=False)

    def statuses() -> dict[str, tuple[str, str | None]]:
        with warehouse.connect(db_path, read_only=True) as con:
            return {
                event: (status, reason)
                for event, status, reason in con.execute(
                    "select event_id, status, reason_code "
                    "from intermediate.int_feedback_events_classified"
                ).fetchall()
            }

    with warehouse.connect(db_path) as con:
        ingest_result = __import__("feedback_flywheel.ingest", fromlist=["x"]).ingest_file(
            con, "feedback_events", tmp_path / "feedback.csv"
        )
        assert ingest_result.ok, ingest_result.message
    day = batches.window(
        pd.Timestamp("2026-02-01").to_pydatetime(), pd.Timestamp("2026-02-02").to_pydatetime()
    )
    batch_cycle(window_start=day.window_start, window_end=day.window_end, db_path=str(db_path))
    assert statuses() == {"fe-1": ("held", None), "fe-2": ("held", None)}

    with warehouse.connect(db_path) as con:
        from feedback_flywheel.ingest import ingest_file

        assert ingest_file(con, "inference_log", tmp_path / "inferences.csv").ok
    next_day = batches.window(day.window_end, day.window_end + pd.Timedelta(days=1))
    batch_cycle(
        window_start=next_day.window_start, window_end=next_day.window_end, db_path=str(db_path)
    )
    assert statuses() == {"fe-1": ("accepted", None), "fe-2": ("held", None)}

    past_lookback = batches.window(
        next_day.window_end, next_day.window_end + pd.Timedelta(days=lookback)
    )
    batch_cycle(
        window_start=past_lookback.window_start,
        window_end=past_lookback.window_end,
        db_path=str(db_path),
    )
    assert statuses() == {
        "fe-1": ("accepted", None),
        "fe-2": ("quarantined", "unknown_inference_id"),
    }
    with warehouse.connect(db_path, read_only=True) as con:
        accepted_in = con.execute(
            "select batch_id from marts.fct_feedback where event_id = 'fe-1'"
        ).fetchone()[0]
    assert accepted_in == next_day.batch_id


def test_run_summary_names_the_biased_segment_the_reward_model_and_the_dashboard(
    demo_warehouse: DemoWarehouse,
) -> None:
    """The end-of-run summary a user reads after `make run` points at what the demo planted: the
    worse-off segment with a negative interval, the reward model in use, and where to look next."""
    from feedback_flywheel.config.paths import serving_path_beside
    from feedback_flywheel.publish.summary import run_summary

    biased = demo_warehouse.truth["biased_segment"]
    with demo_warehouse.connect() as con:
        text = run_summary(con, demo_warehouse.db_path, serving_path_beside(demo_warehouse.db_path))
        current, accuracy = con.execute(
            """
            select current_version, (
                select heldout_accuracy from ml.reward_models promoted
                where promoted.is_promoted
                    and promoted.reward_model_version = latest.current_version
            )
            from ml.reward_models latest order by batch_id desc limit 1
            """
        ).fetchone()
    line = next(
        line for line in text.splitlines() if f"{biased['attribute']}={biased['value']} vs" in line
    )
    difference, interval = line.split(": ")[1].split(" ", 1)
    lower, upper = (float(bound) for bound in interval.strip("[]").split(", "))
    assert float(difference) < 0 and upper < 0 and lower < float(difference)
    assert f"reward model: current {current} (held-out pairwise accuracy {accuracy:.3f}" in text
    assert f"reads the serving copy {serving_path_beside(demo_warehouse.db_path)}" in text

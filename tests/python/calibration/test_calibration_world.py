"""The calibration world: a demo world whose labels arrive uniformly 0-10 days after serving
(truth.json's label_delay_days), built as history, then two daily batches, with
``label_maturation_days: auto`` and ``sampling_policy: auto``.

Label coverage by age (marts.fct_label_coverage) and the maturation window derived from it
(marts.fct_label_maturation): the curves are recomputed here in pandas from the accepted
predictions and labels; the measured label delays are tested against the generator's
distribution with scipy's Kolmogorov-Smirnov test; the derived window is the one that
distribution implies; and the performance windows of the batch (the performance check and
concept drift) end that many days before the watermark.

The sampling policy (ml.sampling_policy_*, marts.fct_sampling_policy_*): the second batch's
offline evaluation is recounted here from the examples; the choice follows the documented rule;
the last batch's training sample is the chosen policy's picks (and the SQL picks what the
evaluation picks under every policy); a re-run of the last batch changes nothing.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from feedback_flywheel import batches, demo, warehouse
from feedback_flywheel.calibration import bandit, evaluation, policies
from feedback_flywheel.curation import datasets
from feedback_flywheel.publish.summary import run_summary
from tests.python.calibration import latency_reference, weak_label_reference
from tests.python.calibration.exp3_reference import reference_exp3
from tests.python.helpers import (
    copy_warehouse,
    ingest_demo,
    project_vars,
    run_windows,
    settings_for,
)

DAYS = 22
#: the test's settings: ages up to 14 days (the oldest still has 8 days of predictions) and a
#: share between the coverage of two whole days (uniform delays: 0.8 at day 8, 0.9 at day 9)
OVERRIDES = {
    "sampling_policy": "auto",
    "label_maturation_days": "auto",
    "label_maturation_share": 0.85,
    "label_coverage_max_days": 14,
    "weak_label_signals": ["thumbs", "click"],
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The history as one batch, then two daily batches, under ``auto``; the last batch also
    re-run on a copy."""
    root = tmp_path_factory.mktemp("coverage")
    truth = demo.generate(root / "demo", seed=17, days=DAYS, inferences_per_day=800)
    db_path = root / "flywheel.duckdb"
    ingest_demo(db_path, root / "demo")
    start = datetime.fromisoformat(truth["start_date"])
    end = datetime.fromisoformat(truth["end_date"])
    windows = [
        batches.window(start, end - timedelta(days=2)),
        batches.window(end - timedelta(days=2), end - timedelta(days=1)),
        batches.window(end - timedelta(days=1), end),
    ]
    run_windows(db_path, windows, OVERRIDES)
    before = copy_warehouse(db_path, root / "before-rerun.duckdb")
    rerun = copy_warehouse(db_path, root / "rerun.duckdb")
    from flows.batch_cycle import batch_cycle

    batch_cycle(
        batch_id=windows[-1].batch_id, db_path=str(rerun), dry_run=True, overrides=OVERRIDES
    )
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
    return {
        "truth": truth,
        "windows": windows,
        "db_path": db_path,
        "before_rerun": before,
        "rerun": rerun,
    } | tables


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


def test_by_default_no_signal_stands_in_for_a_label(demo_warehouse) -> None:
    """The shipped weak_label_signals: [] measures every signal and uses none."""
    with demo_warehouse.connect() as con:
        usability = con.execute(
            "select distinct usability from marts.fct_weak_label_fidelity"
        ).fetchall()
        weak = con.execute("select count(*) from marts.fct_weak_label_examples").fetchone()[0]
        strategies = con.execute(
            "select distinct sampling_strategy from marts.fct_training_sample"
        ).fetchall()
        counts = con.execute(
            "select sum(weak_label_count), count(weak_label_signals) "
            "from marts.fct_dataset_versions"
        ).fetchone()
    assert usability == [("not_configured",)]
    assert weak == 0
    assert strategies and ("weak_label",) not in strategies
    assert counts == (0, 0)


# --- the sampling policy ------------------------------------------------------------------------

SAMPLE_SCORES = """
    inference_id, label, features_json, coalesce(sample_weight, 1.0) as sample_weight,
    probability_top1, probability_top2, predicted_score, probability_entropy,
    batch_id, superseded_in_batch_id, model_name
"""


def _examples(db_path) -> pd.DataFrame:
    with warehouse.connect(db_path, read_only=True) as con:
        return con.execute(
            f"select {SAMPLE_SCORES} from marts.fct_training_examples where label is not null"
        ).df()


def _pool_as_of(examples: pd.DataFrame, model_name: str, batch_id: str) -> pd.DataFrame:
    """The model's examples as of a batch, with the three uncertainty scores, in pandas."""
    rows = examples[
        (examples.model_name == model_name)
        & (examples.batch_id <= batch_id)
        & (examples.superseded_in_batch_id.isna() | (examples.superseded_in_batch_id > batch_id))
    ]
    rows = rows.assign(
        least_confidence_score=1 - rows.probability_top1.fillna(rows.predicted_score),
        margin_score=1 - (rows.probability_top1 - rows.probability_top2),
        entropy_score=rows.probability_entropy,
    )
    return rows.sort_values("inference_id").reset_index(drop=True)


def _read_all(db_path, relations: dict[str, str]) -> dict[str, pd.DataFrame]:
    """Each named relation (or a relation with a filter), read whole."""
    with warehouse.connect(db_path, read_only=True) as con:
        return {
            name: con.execute(f"select * from {relation}").df()
            for name, relation in relations.items()
        }


def _marts(db_path) -> dict[str, pd.DataFrame]:
    return _read_all(
        db_path,
        {
            "scores": "marts.fct_sampling_policy_scores",
            "curves": "marts.fct_sampling_policy_curves",
            "ml_curves": "ml.sampling_policy_curves",
            "sample": "marts.fct_training_sample",
            "versions": "marts.fct_dataset_versions",
        },
    )


def test_the_evaluation_is_a_recount_of_the_policies_on_the_labelled_batches(world) -> None:
    """The second batch's curves: every policy, budget and seed picked from the examples as of
    the first batch, fitted, and scored on the labels that entered in the second."""
    first, second = world["windows"][0].batch_id, world["windows"][1].batch_id
    examples = _examples(world["db_path"])
    curves = _marts(world["db_path"])["ml_curves"]
    evaluated = curves[curves.batch_id == second]
    assert set(evaluated.model_name) == set(examples.model_name)
    settings = project_vars(OVERRIDES)
    seeds = [settings.sampling_seed + offset for offset in range(settings.sampling_policy_seeds)]
    for model_name, model_curves in evaluated.groupby("model_name"):
        pool = _pool_as_of(examples, model_name, first)
        test = examples[
            (examples.model_name == model_name)
            & (examples.batch_id == second)
            & ~examples.inference_id.isin(pool.inference_id)
        ].sort_values("inference_id")
        assert len(pool) > 0 and len(test) > 0
        assert set(model_curves.pairs) == {1}
        assert len(model_curves) == len(policies.POLICIES) * len(settings.sampling_policy_budgets)
        for row in model_curves.itertuples():
            accuracies = [
                evaluation.fitted_accuracy(
                    pool, policies.pick(pool, row.policy, row.budget, seed), test
                )
                for seed in seeds
            ]
            assert row.accuracy_mean == pytest.approx(sum(accuracies) / len(seeds), abs=1e-9)
            if len(set(accuracies)) > 1:
                reference = stats.ttest_1samp(accuracies, 0).confidence_interval(0.95)
                assert row.accuracy_lower == pytest.approx(reference.low, abs=1e-9)
            assert row.picked_rows == min(row.budget, len(pool))


def test_the_choice_follows_the_documented_rule(world) -> None:
    marts = _marts(world["db_path"])
    scores, curves = marts["scores"], marts["curves"]
    tolerance = project_vars(OVERRIDES).sampling_budget_tolerance
    assert len(scores) > 0
    # the mart holds the evaluations of the batches before the last build only
    assert set(scores.batch_id) == {world["windows"][1].batch_id}
    for (_, _), group in scores.groupby(["batch_id", "model_name"]):
        candidates = group[(group.policy == "random") | (group.gain_lower > 0)]
        best = candidates.sort_values(["aulc_mean", "policy"], ascending=[False, True]).iloc[0]
        assert group[group.is_chosen].policy.tolist() == [best.policy]
        for row in group.itertuples():
            curve = curves[
                (curves.batch_id == row.batch_id)
                & (curves.model_name == row.model_name)
                & (curves.policy == row.policy)
            ]
            within = curve[curve.accuracy_mean >= curve.accuracy_mean.max() - tolerance]
            assert row.chosen_budget == within.budget.min()
            assert row.policy in row.choice_reason
            verdict = row.choice_reason.split("; ")[1]
            assert verdict.startswith("chosen:" if row.is_chosen else "not chosen:"), verdict


def test_the_chosen_policy_makes_the_next_training_sample(world) -> None:
    marts = _marts(world["db_path"])
    scores, sample = marts["scores"], marts["sample"]
    last, middle = world["windows"][-1].batch_id, world["windows"][1].batch_id
    examples = _examples(world["db_path"])
    chosen = scores[scores.is_chosen & (scores.batch_id < last)]
    assert len(chosen) > 0
    # before any evaluation the configured sample; after, the chosen policy's picks
    assert not sample[sample.batch_id == middle].sampling_strategy.str.startswith("policy_").any()
    seed = project_vars(OVERRIDES).sampling_seed
    for row in chosen.itertuples():
        rows = sample[
            (sample.batch_id == last)
            & (sample.model_name == row.model_name)
            & (sample.sampling_strategy != "weak_label")
        ]
        assert set(rows.sampling_strategy) == {f"policy_{row.policy}"}
        pool = _pool_as_of(examples, row.model_name, last)
        picks = policies.pick(pool, row.policy, row.chosen_budget, seed)
        assert sorted(rows.inference_id) == sorted(pool.inference_id.iloc[picks])
        assert sorted(rows.strategy_rank) == list(range(1, len(picks) + 1))
    version = marts["versions"].set_index("batch_id").loc[last]
    assert version.sampling_policy == "auto"
    assert version.policy_count == version.sample_count - version.weak_label_count > 0


def test_under_every_policy_the_sql_picks_what_the_evaluation_picks(world) -> None:
    """The rebuild SQL of the last dataset version, with the choice replaced by each policy in
    turn: the rows it samples are the rows policies.pick takes."""
    last = world["windows"][-1].batch_id
    sql = datasets.rebuild_sql(settings_for(world["db_path"]), f"ds-{last}")
    relation = re.search(r"\S*fct_sampling_policy_scores\S*", sql).group(0)
    sql = sql.replace(relation, "policy_under_test")
    examples = _examples(world["db_path"])
    seed = project_vars(OVERRIDES).sampling_seed
    with warehouse.connect(world["db_path"], read_only=True) as con:
        models = sorted(examples.model_name.unique())
        for policy in policies.POLICIES:
            for budget in (1, 37, 10**6):
                con.execute(
                    "create or replace temp table policy_under_test as "
                    "select 'b00000000T000000' as batch_id, unnest(?) as model_name, "
                    "? as policy, ? as chosen_budget, true as is_chosen",
                    [models, policy, budget],
                )
                rebuilt = con.execute(
                    f"select * from ({sql}) where sampling_strategy <> 'weak_label'"
                ).df()
                for model_name in models:
                    pool = _pool_as_of(examples, model_name, last)
                    picks = policies.pick(pool, policy, budget, seed)
                    rows = rebuilt[rebuilt.model_name == model_name].sort_values("strategy_rank")
                    assert rows.inference_id.tolist() == pool.inference_id.iloc[picks].tolist(), (
                        policy,
                        budget,
                    )


def test_the_auto_sample_rebuilds_exactly(world) -> None:
    last = world["windows"][-1].batch_id
    result = datasets.verify(settings_for(world["db_path"]), f"ds-{last}")
    assert result.identical, result


def test_a_re_run_of_the_last_batch_changes_nothing(world) -> None:
    con = duckdb.connect(str(world["rerun"]), read_only=True)
    con.execute(f"attach '{world['before_rerun']}' as before (read_only)")
    try:
        for table in (
            "marts.fct_training_sample",
            "marts.fct_dataset_versions",
            "marts.fct_weak_label_fidelity",
            "marts.fct_weak_label_examples",
            "marts.fct_sampling_policy_scores",
            "marts.fct_sampling_policy_curves",
            "ml.sampling_policy_curves",
            "ml.sampling_policy_scores",
        ):
            schema, name = table.split(".")
            assert con.execute(f"select count(*) from {table}").fetchone()[0] > 0, table
            prior = f"before.{schema}.{name}"
            for left, right in ((table, prior), (prior, table)):
                diff = con.execute(
                    f"select count(*) from (select * from {left} except all select * from {right})"
                ).fetchone()[0]
                assert diff == 0, f"{table} changed on re-run ({left} minus {right}: {diff})"
    finally:
        con.close()


# --- weak labels --------------------------------------------------------------------------------


def _weak_tables(db_path) -> dict[str, pd.DataFrame]:
    return _read_all(
        db_path,
        {
            "fidelity": "marts.fct_weak_label_fidelity",
            "weak": "marts.fct_weak_label_examples",
            "signals": "marts.fct_feedback_signals",
            "examples": "marts.fct_training_examples where is_current",
            "sample": "marts.fct_training_sample",
            "versions": "marts.fct_dataset_versions",
        },
    )


def test_the_weak_label_fidelity_is_a_recount_of_the_signals(world) -> None:
    last = world["windows"][-1]
    tables = _weak_tables(world["db_path"])
    settings = project_vars(OVERRIDES)
    expected = weak_label_reference.fidelity(
        tables["signals"],
        tables["examples"],
        batch_end=last.window_end,
        days=settings.weak_label_fidelity_days,
        dwell_at=settings.fidelity_dwell_positive_seconds,
        configured=settings.weak_label_signals,
        min_count=settings.fidelity_min_group_count,
        min_fidelity=settings.weak_label_min_fidelity,
    )
    measured = tables["fidelity"][tables["fidelity"].batch_id == last.batch_id]
    merged = expected.merge(
        measured,
        on=["model_name", "signal_name", "signal_polarity"],
        suffixes=("_expected", ""),
        validate="one_to_one",
    )
    assert len(merged) == len(expected) == len(measured) > 0
    assert merged.usability.tolist() == merged.usability_expected.tolist()
    assert {"usable", "not_configured", "not_two_class"} <= set(merged.usability)
    for column in ("overlap_count", "right_count"):
        assert merged[column].tolist() == merged[f"{column}_expected"].tolist(), column
    for column in ("fidelity_rate", "fidelity_rate_lower", "fidelity_rate_upper"):
        assert np.allclose(
            merged[column].astype(float),
            merged[f"{column}_expected"].astype(float),
            rtol=0,
            atol=1e-9,
            equal_nan=True,
        ), column


def _holds(frame: pd.DataFrame, signals: pd.DataFrame, dwell_at: float) -> pd.Series:
    """Whether each weak-label row's prediction holds its signal with its polarity now, and
    still has no current label."""
    joined = frame.merge(signals, on="inference_id", how="left", suffixes=("", "_signal"))
    holds = pd.Series(False, index=joined.index)
    for signal, rows in joined.groupby("signal_name"):
        is_positive = weak_label_reference.positive(rows, signal, dwell_at)
        polarity_now = np.where(is_positive, "positive", "negative")
        holds[rows.index] = (
            rows[signal].notna() & (polarity_now == rows.signal_polarity) & rows.is_correct.isna()
        )
    return holds.set_axis(frame.index)


def test_weak_labels_stand_in_for_missing_labels_weighted_by_their_fidelity(world) -> None:
    last = world["windows"][-1]
    tables = _weak_tables(world["db_path"])
    settings = project_vars(OVERRIDES)
    dwell_at = settings.fidelity_dwell_positive_seconds
    weak, fidelity, signals = tables["weak"], tables["fidelity"], tables["signals"]
    current = weak[weak.is_current]
    assert len(current) > 0 and (~weak.is_current).any()
    assert not set(current.inference_id) & set(tables["examples"].inference_id)
    assert set(weak.label_source) == {f"weak_{name}" for name in settings.weak_label_signals}
    # each weighs the fidelity its (signal, polarity) measured in the batch it formed in
    merged = weak.merge(
        fidelity, on="weak_label_fidelity_id", suffixes=("", "_measured"), validate="many_to_one"
    )
    assert len(merged) == len(weak)
    for column in ("batch_id", "model_name", "signal_name", "signal_polarity"):
        assert (merged[column] == merged[f"{column}_measured"]).all(), column
    assert merged.is_usable.all()
    assert np.allclose(merged.sample_weight, merged.fidelity_rate_measured, rtol=0, atol=1e-12)
    positive = merged.signal_polarity == "positive"
    assert (merged[positive].label == merged[positive].predicted_label).all()
    # every unlabelled prediction with a usable signal has one, and each still holds its signal
    usable = fidelity[(fidelity.batch_id == last.batch_id) & fidelity.is_usable]
    expected = weak_label_reference.unlabelled_usable(
        signals, usable, batch_end=last.window_end, dwell_at=dwell_at
    )
    assert expected and expected <= set(current.inference_id)
    assert _holds(current, signals, dwell_at).all()
    # what the last batch superseded no longer holds: a label arrived or the signal turned
    superseded = weak[weak.superseded_in_batch_id == last.batch_id]
    assert len(superseded) > 0
    assert not _holds(superseded, signals, dwell_at).any()


def test_each_sample_takes_the_weak_labels_by_hash_up_to_the_budget(world) -> None:
    tables = _weak_tables(world["db_path"])
    settings = project_vars(OVERRIDES)
    weak, sample = tables["weak"], tables["sample"]
    versions = tables["versions"].set_index("batch_id")
    for window in world["windows"]:
        batch_id = window.batch_id
        as_of = weak[
            (weak.batch_id <= batch_id)
            & (weak.superseded_in_batch_id.isna() | (weak.superseded_in_batch_id > batch_id))
        ]
        taken = sample[(sample.batch_id == batch_id) & (sample.sampling_strategy == "weak_label")]
        for model_name, rows in as_of.groupby("model_name"):
            keys = policies.sample_keys(rows.inference_id, settings.sampling_seed)
            order = rows.assign(key=keys).sort_values(["key", "inference_id"])
            expected = order.head(settings.weak_label_budget)
            got = taken[taken.model_name == model_name].sort_values("strategy_rank")
            assert got.training_example_id.tolist() == expected.weak_label_id.tolist()
            assert got.label.tolist() == expected.label.tolist()
            assert np.allclose(got.sample_weight, expected.sample_weight, rtol=0, atol=1e-12)
        assert versions.loc[batch_id].weak_label_count == len(taken) > 0
        assert versions.loc[batch_id].weak_label_signals == "thumbs,click"
    with duckdb.connect(str(world["db_path"]), read_only=True) as con:
        said = run_summary(con, world["db_path"], world["db_path"])
    last = versions.loc[world["windows"][-1].batch_id]
    assert f"{last.weak_label_count:,} weak labels weighted by their signal's fidelity" in said


# --- the loop's latency -------------------------------------------------------------------------


def test_the_latency_of_each_stage_is_a_recount_of_its_rows(world) -> None:
    """Stages 1-3 on the data clock, with what is still pending (a dry run: no training run, so
    every example is pending at stage 4; the closed-loop test covers stages 4 and 5)."""
    latest = world["windows"][-1]
    days = project_vars(OVERRIDES).latency_days
    with warehouse.connect(world["db_path"], read_only=True) as con:
        compared = latency_reference.compare(con, latest.batch_id, latest.window_end, days)
        latency = con.execute("select * from marts.fct_feedback_latency").df()
    assert compared == len(latency) > 0
    overall = latency[(latency.breakdown == "overall") & (latency.event_type == "__labels__")]
    stages = overall.groupby("stage")
    assert stages.pending_count.sum()["received_to_dataset"] > 0  # labels still settling
    assert (stages.pending_share.min()["dataset_to_training"]) == 1.0
    assert overall.is_bottleneck.sum() == overall.model_name.nunique()


def test_each_evaluation_plays_one_exp3_round_from_the_one_before(world) -> None:
    settings = project_vars(OVERRIDES)
    with duckdb.connect(str(world["db_path"]), read_only=True) as con:
        rounds = con.execute(
            "select * from ml.sampling_policy_scores order by model_name, batch_id, policy"
        ).df()
    assert rounds.batch_id.nunique() >= 2  # at least one round credits the one before
    for model_name, played in rounds.groupby("model_name"):
        batches = sorted(played.batch_id.unique())
        names = sorted(played.policy.unique())
        aulc = [
            played[played.batch_id == batch].set_index("policy").aulc_mean.to_dict()
            for batch in batches
        ]
        keys = [bandit.draw_key(model_name, batch, settings.sampling_seed) for batch in batches]
        expected = reference_exp3(names, aulc, keys, settings.sampling_policy_exp3_gamma)
        for batch, (probabilities, drawn, credited) in zip(batches, expected, strict=True):
            rows = played[played.batch_id == batch].set_index("policy").loc[names]
            assert rows.exp3_probability.tolist() == pytest.approx(probabilities, rel=1e-9)
            assert rows.index[rows.is_exp3_draw].tolist() == [drawn]
            assert rows.exp3_reward.dropna().tolist() == ([] if credited is None else [credited])
    # the shipped chooser is the rule: the bandit's draw is beside it, not in force
    scores = _marts(world["db_path"])["scores"]
    assert (scores.chooser == "rule").all()
    assert scores.exp3_probability.notna().all()

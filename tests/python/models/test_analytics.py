"""The analytics marts (models/marts/analytics) on the demo warehouse: the planted worse-off
segment is flagged, the v2 deployment shows as a significant improvement, the weekday profile
recovers the generator's weekday volume pattern, and every number (rates, intervals, disparities,
Fairlearn-style summaries, p-values, Benjamini-Hochberg) equals an independent computation in
plain pandas / scipy on the same prediction-level rows."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from feedback_flywheel.config import SettingsError
from tests.python.helpers import PROJECT_DIR, dbt, project_vars

SEGMENTS = ("region", "device", "age_band", "language")
Z95 = stats.norm.ppf(0.975)


# --------------------------------------------------------------------------------------------
# Independent reference computations
# --------------------------------------------------------------------------------------------


def wilson(successes: float, trials: float) -> tuple[float, float]:
    """95% Wilson interval from scipy."""
    interval = stats.binomtest(int(successes), int(trials)).proportion_ci(
        confidence_level=0.95, method="wilson"
    )
    return interval.low, interval.high


def newcombe(x_a: float, n_a: float, x_b: float, n_b: float) -> tuple[float, float]:
    """Newcombe's hybrid score interval (method 10) for p_a - p_b, from scipy's Wilson bounds."""
    p_a, p_b = x_a / n_a, x_b / n_b
    l_a, u_a = wilson(x_a, n_a)
    l_b, u_b = wilson(x_b, n_b)
    d = p_a - p_b
    return d - np.hypot(p_a - l_a, u_b - p_b), d + np.hypot(u_a - p_a, p_b - l_b)


def pooled_z_p(x_a: float, n_a: float, x_b: float, n_b: float) -> float:
    """Two-sided p-value of the pooled two-proportion z-test, by scipy's normal distribution."""
    pooled = (x_a + x_b) / (n_a + n_b)
    z = (x_a / n_a - x_b / n_b) / np.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    return float(2 * stats.norm.sf(abs(z)))


@pytest.fixture(scope="module")
def rows(demo_warehouse) -> pd.DataFrame:
    """One row per accepted prediction: its segments, prediction, current matured label and
    explicit feedback, read from the prediction-level tables (not from the analytics marts)."""
    with demo_warehouse.connect() as con:
        inferences = con.execute(
            f"""
            select
                inference_id, model_name, model_version, predicted_label,
                {", ".join(f"context_json->>'{name}' as {name}" for name in SEGMENTS)},
                cast(logged_at as date) as served_date
            from intermediate.int_inferences_validated
            where is_accepted
            """
        ).df()
        labels = con.execute(
            "select inference_id, label from marts.fct_training_examples where is_current"
        ).df()
        feedback = con.execute(
            """
            select inference_id, event_type, value_numeric
            from marts.fct_feedback
            where is_explicit and not is_retracted
            """
        ).df()
    frame = inferences.merge(labels, on="inference_id", how="left")
    explicit = feedback.groupby("inference_id").size().rename("explicit_events")
    frame = frame.merge(explicit, on="inference_id", how="left")
    frame["has_explicit"] = frame["explicit_events"].fillna(0) > 0
    frame["served_date"] = pd.to_datetime(frame["served_date"])
    frame["week_start"] = frame["served_date"] - pd.to_timedelta(
        frame["served_date"].dt.day_of_week, unit="D"
    )
    frame["region|device"] = frame["region"] + "|" + frame["device"]
    return frame


@pytest.fixture(scope="module")
def ratings(demo_warehouse) -> pd.DataFrame:
    """Non-retracted ratings (inference_id, value_numeric), from fct_feedback."""
    with demo_warehouse.connect() as con:
        return con.execute(
            """
            select inference_id, value_numeric
            from marts.fct_feedback
            where event_type = 'rating' and not is_retracted
            """
        ).df()


@pytest.fixture(scope="module")
def bias(demo_warehouse) -> pd.DataFrame:
    with demo_warehouse.connect() as con:
        return con.execute("select * from marts.rpt_segment_bias").df()


def group_metrics(frame: pd.DataFrame, ratings: pd.DataFrame, classes: list[str]) -> dict:
    """Fairlearn-MetricFrame-like per-group metrics of one slice of predictions, in plain pandas:
    {metric or (metric, class): (successes, trials)} (rating_mean: (sum, count, values))."""
    labelled = frame[frame["label"].notna()]
    out: dict = {
        "accuracy": ((labelled["label"] == labelled["predicted_label"]).sum(), len(labelled)),
        "label_feedback_rate": (len(labelled), len(frame)),
        "explicit_feedback_rate": (frame["has_explicit"].sum(), len(frame)),
    }
    values = ratings[ratings["inference_id"].isin(frame["inference_id"])]["value_numeric"]
    out["rating_mean"] = (values.sum(), len(values), values.to_numpy())
    for label in classes:
        positive = labelled["label"] == label
        predicted = labelled["predicted_label"] == label
        out[("selection_rate", label)] = ((frame["predicted_label"] == label).sum(), len(frame))
        out[("tpr", label)] = ((positive & predicted).sum(), positive.sum())
        out[("fpr", label)] = ((~positive & predicted).sum(), (~positive).sum())
    return out


# --------------------------------------------------------------------------------------------
# Bias across segments
# --------------------------------------------------------------------------------------------


def test_the_planted_worse_off_segment_is_flagged_with_the_right_sign(demo_warehouse, bias):
    planted = demo_warehouse.truth["biased_segment"]
    assert planted["attribute"] == "language" and planted["value"] == "de"
    accuracy = bias[
        (bias["segment_attribute"] == planted["attribute"])
        & (bias["metric"] == "accuracy")
        & (bias["time_bucket"] == "all")
    ].set_index(["model_version", "segment_value"])
    overall = accuracy.loc[("__all__", planted["value"])]
    assert overall["reference_group"] == "en"  # the majority language by volume
    assert overall["is_flagged"] and overall["is_significant"]
    assert overall["difference"] < 0 and overall["difference_upper"] < 0  # excludes parity
    assert overall["disparity_ratio"] < project_vars().bias_disparity_band[0]
    # the gap holds within each version, with the planted size inside the interval
    for version in ("v1", "v2"):
        row = accuracy.loc[(version, planted["value"])]
        assert row["difference_upper"] < 0
        assert row["difference_lower"] <= -planted["accuracy_gap"] <= row["difference_upper"]
    # bias over time: the weekly series of each version keeps the gap's sign
    weekly = bias[
        (bias["segment_attribute"] == planted["attribute"])
        & (bias["segment_value"] == planted["value"])
        & (bias["metric"] == "accuracy")
        & (bias["time_bucket"] == "week")
        & bias["difference"].notna()
    ]
    assert set(weekly["model_version"]) == {"__all__", "v1", "v2"}
    assert (weekly["difference"] < 0).all()
    # no other language is flagged for accuracy
    others = accuracy.loc["__all__"].drop(index=[planted["value"]])
    assert not others["is_flagged"].any()


@pytest.mark.parametrize("attribute", ["language", "region|device"])
def test_bias_numbers_equal_plain_pandas_on_the_same_rows(
    rows, ratings, bias, summary_table, attribute
):
    classes = sorted(set(rows["predicted_label"]) | set(rows["label"].dropna()))
    min_count = project_vars().bias_min_group_count
    volume = rows.groupby(attribute).size()
    reference = volume[volume == volume.max()].index.sort_values()[0]
    mart = bias[bias["segment_attribute"] == attribute]
    checked = 0
    slices = [("__all__", "all", None), ("v2", "all", None)]
    slices += [("__all__", "week", week) for week in sorted(rows["week_start"].unique())]
    for version, bucket, week in slices:
        part = rows if version == "__all__" else rows[rows["model_version"] == version]
        if week is not None:
            part = part[part["week_start"] == week]
        expected = {
            group: group_metrics(frame, ratings, classes)
            for group, frame in part.groupby(attribute)
        }
        here = mart[(mart["model_version"] == version) & (mart["time_bucket"] == bucket)]
        if week is not None:
            here = here[pd.to_datetime(here["bucket_start_date"]) == week]
        assert set(here["segment_value"]) == set(expected)
        assert (here["reference_group"] == reference).all()
        for row in here.itertuples():
            key = row.metric if pd.isna(row.class_label) else (row.metric, row.class_label)
            numbers = expected[row.segment_value][key]
            successes, trials = numbers[0], numbers[1]
            assert row.trials == trials, (row.segment_value, key)
            assert row.is_suppressed == (trials < min_count)
            if row.is_suppressed:
                assert pd.isna(row.metric_value) and pd.isna(row.p_value)
                continue
            assert row.metric_value == pytest.approx(successes / trials, rel=1e-12)
            if row.metric_kind == "proportion":
                low, high = wilson(successes, trials)
            else:
                values = numbers[2]
                half = Z95 * values.std(ddof=1) / np.sqrt(len(values))
                low, high = values.mean() - half, values.mean() + half
            assert (row.metric_lower, row.metric_upper) == pytest.approx((low, high), abs=1e-9)
            ref = expected[reference][key]
            if row.segment_value == reference or ref[1] < min_count:
                assert pd.isna(row.difference)
                continue
            ref_value = ref[0] / ref[1]
            assert row.difference == pytest.approx(successes / trials - ref_value, abs=1e-12)
            if ref_value > 0:
                ratio = (successes / trials) / ref_value
                assert row.disparity_ratio == pytest.approx(ratio, rel=1e-12)
            if row.metric_kind == "proportion":
                assert (row.difference_lower, row.difference_upper) == pytest.approx(
                    newcombe(successes, trials, ref[0], ref[1]), abs=1e-9
                )
                if 0 < successes + ref[0] < trials + ref[1]:
                    expected_p = pooled_z_p(successes, trials, ref[0], ref[1])
                    assert row.p_value == pytest.approx(expected_p, rel=1e-6, abs=1e-300)
            checked += 1

        # Fairlearn's summary measures over the unsuppressed groups
        summary = summaries(part, attribute, classes, min_count, expected)
        table = summary_table[
            (summary_table["model_version"] == version)
            & (summary_table["time_bucket"] == bucket)
            & (summary_table["segment_attribute"] == attribute)
        ]
        if week is not None:
            table = table[pd.to_datetime(table["bucket_start_date"]) == week]
        table = table.set_index("class_label")
        for label in classes:
            got = table.loc[label]
            want = summary[label]
            for measure in (
                "demographic_parity_difference",
                "demographic_parity_ratio",
                "equalized_odds_difference",
                "accuracy_difference",
            ):
                assert got[measure] == pytest.approx(want[measure], abs=1e-12), (label, measure)
    assert checked > 50


def summaries(part, attribute, classes, min_count, expected) -> dict:
    """demographic parity / equalized odds differences as Fairlearn defines them (between groups,
    max - min), over the groups whose metric is not suppressed."""

    def spread(metric_key, ratio=False):
        values = [
            numbers[metric_key][0] / numbers[metric_key][1]
            for numbers in expected.values()
            if numbers[metric_key][1] >= min_count
        ]
        if ratio:
            return min(values) / max(values) if values and max(values) > 0 else np.nan
        return max(values) - min(values) if values else np.nan

    out = {}
    for label in classes:
        out[label] = {
            "demographic_parity_difference": spread(("selection_rate", label)),
            "demographic_parity_ratio": spread(("selection_rate", label), ratio=True),
            # the larger gap of the two; the other alone when one has no reported group
            "equalized_odds_difference": np.fmax(spread(("tpr", label)), spread(("fpr", label))),
            "accuracy_difference": spread("accuracy"),
        }
    return out


@pytest.fixture(scope="module")
def summary_table(demo_warehouse) -> pd.DataFrame:
    with demo_warehouse.connect() as con:
        return con.execute("select * from marts.rpt_segment_bias_summary").df()


def test_p_values_and_benjamini_hochberg_match_scipy(rows, ratings, bias):
    tested = bias[bias["p_value"].notna()]
    assert len(tested) > 100
    # every z (proportions and the Welch z of the means) through scipy's normal distribution
    expected = 2 * stats.norm.sf(np.abs(tested["z_statistic"].to_numpy()))
    np.testing.assert_allclose(tested["p_value"], expected, rtol=2e-6, atol=1e-300)
    # BH across every test of a model version and bucket, as scipy adjusts them
    families = ["model_name", "model_version", "time_bucket", "bucket_start_date"]
    for _, family in tested.groupby(families, dropna=False):
        adjusted = stats.false_discovery_control(family["p_value"].to_numpy(), method="bh")
        np.testing.assert_allclose(family["p_value_adjusted"], adjusted, rtol=1e-9, atol=1e-300)
        assert (family["family_test_count"] == len(family)).all()
    # the mean's z is Welch's, from the ratings themselves
    rated = ratings.merge(rows[["inference_id", "language"]], on="inference_id")
    de = rated[rated["language"] == "de"]["value_numeric"]
    en = rated[rated["language"] == "en"]["value_numeric"]
    welch_z = (de.mean() - en.mean()) / np.sqrt(de.var() / len(de) + en.var() / len(en))
    row = bias[
        (bias["metric"] == "rating_mean")
        & (bias["segment_value"] == "de")
        & (bias["model_version"] == "__all__")
        & (bias["time_bucket"] == "all")
    ].iloc[0]
    assert row["z_statistic"] == pytest.approx(welch_z, rel=1e-9)


def test_normal_p_value_macro_is_accurate_far_into_the_tail(demo_warehouse):
    """The erfc approximation keeps its relative precision where p is tiny (the macro is
    rendered from macros/statistics/hypothesis_tests.sql, so the test checks what the models
    run)."""
    z = np.array([0.0, 0.5, 1.0, 1.96, 3.0, 5.0, 8.0, 12.0, 20.0, -4.0])
    macro = _macro("normal_two_sided_p")
    sql = " union all ".join(f"select {i} as i, {macro(str(v))} as p" for i, v in enumerate(z))
    with demo_warehouse.connect() as con:
        got = con.execute(f"select p from ({sql}) order by i").df()["p"].to_numpy()
    np.testing.assert_allclose(got, 2 * stats.norm.sf(np.abs(z)), rtol=2e-7, atol=0)


def _macro(name: str):
    """A macro of macros/statistics/hypothesis_tests.sql that needs no dbt context, as a Python
    callable."""
    import jinja2

    text = (PROJECT_DIR / "macros" / "statistics" / "hypothesis_tests.sql").read_text()
    environment = jinja2.Environment(extensions=["jinja2.ext.do"])
    return getattr(environment.from_string(text).module, name)


def test_feedback_skew_sits_beside_the_accuracy_gap(demo_warehouse, bias):
    with demo_warehouse.connect() as con:
        skew = con.execute(
            """
            select * from marts.rpt_feedback_skew
            where model_version = '__all__' and time_bucket = 'all'
                and segment_attribute = 'language'
            """
        ).df()
    skew = skew.set_index("segment_value")
    source = bias[
        (bias["model_version"] == "__all__")
        & (bias["time_bucket"] == "all")
        & (bias["segment_attribute"] == "language")
    ].set_index(["segment_value", "metric"])
    for group in skew.index:
        for metric in ("label_feedback_rate", "explicit_feedback_rate", "accuracy"):
            assert skew.loc[group, metric] == pytest.approx(
                source.loc[(group, metric), "metric_value"], nan_ok=True
            )
    # the generator gives every group the same feedback rates: no skew, but the accuracy gap
    assert not skew["is_label_feedback_skewed"].any()
    assert not skew["is_explicit_feedback_skewed"].any()
    assert skew.loc["de", "is_accuracy_gap_flagged"]


# --------------------------------------------------------------------------------------------
# Deployment impact
# --------------------------------------------------------------------------------------------


def test_v2_deployment_is_a_significant_improvement_on_matched_weekdays(demo_warehouse, rows):
    truth = demo_warehouse.truth
    v2 = next(d for d in truth["deployments"] if d["model_version"] == "v2")
    deployed_at = datetime.fromisoformat(v2["deployed_at"])
    assert deployed_at.time() == datetime.min.time()  # at midnight: the day counts as after
    window = project_vars().deployment_impact_days
    with demo_warehouse.connect() as con:
        impact = con.execute(
            """
            select * from marts.rpt_deployment_impact
            where model_version = 'v2' and segment_attribute = '__overall__'
            """
        ).df()
    impact = impact.set_index("metric")
    accuracy = impact.loc["accuracy"]

    # the windows, rebuilt here: days with predictions, nearest first, per weekday as many on
    # each side as the poorer side has
    day = pd.Timestamp(deployed_at.date())
    served = pd.Series(sorted(rows["served_date"].unique()))
    before = served[(served < day) & (served >= day - timedelta(days=window))]
    after = served[(served >= day) & (served < day + timedelta(days=window))]
    kept_before, kept_after = [], []
    for weekday in range(7):
        b = sorted(before[before.dt.day_of_week == weekday], reverse=True)
        a = sorted(after[after.dt.day_of_week == weekday])
        keep = min(len(b), len(a))
        kept_before += b[:keep]
        kept_after += a[:keep]
    assert sorted(d.weekday() for d in kept_before) == sorted(d.weekday() for d in kept_after)
    assert accuracy["before_day_count"] == accuracy["after_day_count"] == len(kept_before)
    assert pd.Timestamp(accuracy["before_first_date"]) == min(kept_before)
    assert pd.Timestamp(accuracy["after_last_date"]) == max(kept_after)

    def counts(days):
        part = rows[rows["served_date"].isin(days) & rows["label"].notna()]
        return (part["label"] == part["predicted_label"]).sum(), len(part)

    x_b, n_b = counts(kept_before)
    x_a, n_a = counts(kept_after)
    assert (accuracy["before_trials"], accuracy["after_trials"]) == (n_b, n_a)
    assert accuracy["difference"] == pytest.approx(x_a / n_a - x_b / n_b, abs=1e-12)
    assert (accuracy["difference_lower"], accuracy["difference_upper"]) == pytest.approx(
        newcombe(x_a, n_a, x_b, n_b), abs=1e-9
    )
    assert accuracy["p_value"] == pytest.approx(pooled_z_p(x_a, n_a, x_b, n_b), rel=2e-6)
    # the planted improvement (v1 0.72 -> v2 0.84) is found, and significant
    assert accuracy["is_significant"] and accuracy["difference_lower"] > 0
    planted = truth["accuracy"]["v2"] - truth["accuracy"]["v1"]
    assert accuracy["difference_lower"] < planted < accuracy["difference_upper"]

    # per segment too: the biased language improves as well (its gap is the same in both)
    with demo_warehouse.connect() as con:
        de = con.execute(
            """
            select * from marts.rpt_deployment_impact
            where model_version = 'v2' and segment_attribute = 'language'
                and segment_value = 'de' and metric = 'accuracy'
            """
        ).df()
    part = rows[rows["language"] == "de"]
    de_before = part[part["served_date"].isin(kept_before) & part["label"].notna()]
    assert de.loc[0, "before_trials"] == len(de_before)
    assert de.loc[0, "difference"] > 0


# --------------------------------------------------------------------------------------------
# Trends and seasonality
# --------------------------------------------------------------------------------------------


def test_weekday_profile_recovers_the_planted_weekday_volume_pattern(demo_warehouse, rows):
    truth = demo_warehouse.truth
    with demo_warehouse.connect() as con:
        profile = con.execute(
            "select * from marts.rpt_kpi_weekday_profile where model_version = '__all__'"
        ).df()
        daily = con.execute(
            "select * from marts.rpt_kpi_trends_daily where model_version = '__all__'"
        ).df()
    profile = profile.set_index("iso_weekday")
    weekday_mean = (
        profile.loc[[1, 2, 3, 4, 5], "inference_count"].sum()
        / profile.loc[[1, 2, 3, 4, 5], "day_count"].sum()
    )
    weekend_mean = (
        profile.loc[[6, 7], "inference_count"].sum() / profile.loc[[6, 7], "day_count"].sum()
    )
    assert weekday_mean / weekend_mean == pytest.approx(
        truth["weekday_volume_ratio_realised"],
        abs=1e-6,  # truth.json rounds to 6 places
    )
    assert weekday_mean / weekend_mean == pytest.approx(truth["weekday_volume_ratio"], abs=0.01)
    for weekday in range(1, 8):
        assert profile.loc[weekday, "is_weekend"] == (weekday >= 6)
    assert (profile.loc[[1, 2, 3, 4, 5], "volume_index"] > 1).all()
    assert (profile.loc[[6, 7], "volume_index"] < 1).all()
    # against pandas: mean volume per weekday over the days served, and nothing left after it
    per_day = rows.groupby("served_date").size()
    by_weekday = per_day.groupby(per_day.index.day_of_week).mean()
    for weekday, mean in by_weekday.items():
        assert profile.loc[weekday + 1, "mean_inference_count"] == pytest.approx(mean)
        assert profile.loc[weekday + 1, "volume_index"] == pytest.approx(mean / per_day.mean())
    # the only planted volume pattern is the weekday one: nothing is left after it
    assert daily["inference_count_residual"].abs().max() == pytest.approx(0, abs=1e-9)


def test_trends_pool_counts_over_rolling_windows_and_weeks(demo_warehouse, rows, ratings):
    with demo_warehouse.connect() as con:
        daily = con.execute(
            "select * from marts.rpt_kpi_trends_daily order by model_version, kpi_date"
        ).df()
        weekly = con.execute("select * from marts.rpt_kpi_trends_weekly").df()
    labelled = rows[rows["label"].notna()]
    for version in ("__all__", "v1", "v2"):
        part = rows if version == "__all__" else rows[rows["model_version"] == version]
        lab = labelled if version == "__all__" else labelled[labelled["model_version"] == version]
        days = pd.date_range(part["served_date"].min(), part["served_date"].max(), freq="D")
        frame = (
            pd.DataFrame(
                {
                    "n": part.groupby("served_date").size(),
                    "labelled": lab.groupby("served_date").size(),
                    "correct": (lab["label"] == lab["predicted_label"])
                    .groupby(lab["served_date"])
                    .sum(),
                }
            )
            .reindex(days, fill_value=0)
            .fillna(0)
        )
        got = daily[daily["model_version"] == version].set_index("kpi_date")
        got.index = pd.to_datetime(got.index)
        got = got.sort_index()
        assert list(got.index) == list(days)
        for size in (7, 28):
            rolled = frame.rolling(size, min_periods=1).sum()
            np.testing.assert_array_equal(got[f"labelled_count_{size}d"], rolled["labelled"])
            np.testing.assert_array_equal(got[f"inference_count_{size}d"], rolled["n"])
            for day, row in rolled.iterrows():
                if row["labelled"] == 0:
                    continue
                low, high = wilson(row["correct"], row["labelled"])
                assert got.loc[day, f"accuracy_{size}d"] == pytest.approx(
                    row["correct"] / row["labelled"], rel=1e-12
                )
                assert got.loc[day, f"accuracy_{size}d_lower"] == pytest.approx(low, abs=1e-9)
                assert got.loc[day, f"accuracy_{size}d_upper"] == pytest.approx(high, abs=1e-9)
        weeks = frame.groupby(
            frame.index - pd.to_timedelta(frame.index.day_of_week, unit="D")
        ).sum()
        mart = weekly[weekly["model_version"] == version].set_index("week_start_date")
        mart.index = pd.to_datetime(mart.index)
        mart = mart.sort_index()
        assert list(mart.index) == list(weeks.index)
        np.testing.assert_array_equal(mart["inference_count"], weeks["n"])
        np.testing.assert_allclose(mart["accuracy"], weeks["correct"] / weeks["labelled"])
        # the mean rating of a week is pooled over its ratings, across versions for __all__
        rated = ratings.merge(part[["inference_id", "served_date"]], on="inference_id")
        week_of = rated["served_date"] - pd.to_timedelta(
            rated["served_date"].dt.day_of_week, unit="D"
        )
        pooled = rated.groupby(week_of)["value_numeric"].mean()
        np.testing.assert_allclose(mart.loc[pooled.index, "rating_mean"], pooled, rtol=1e-9)


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"bias_intersections": [["region", "planet"]]}, "bias_intersections"),
        ({"bias_reference_groups": {"planet": "earth"}}, "bias_reference_groups"),
        ({"bias_disparity_band": [1.2, 0.8]}, "bias_disparity_band"),
        ({"bias_positive_labels": {"support_router": []}}, "bias_positive_labels"),
        ({"deployment_impact_days": 0}, "deployment_impact_days"),
    ],
)
def test_analytics_settings_are_validated_with_the_key_named(override, named):
    with pytest.raises(SettingsError, match=named):
        project_vars(override)
    # an intersection is a valid reference-group key
    ok = project_vars(
        {
            "bias_intersections": [["region", "device"]],
            "bias_reference_groups": {"region|device": "na|web"},
        }
    )
    assert ok.bias_reference_groups == {"region|device": "na|web"}


def test_reference_group_positive_label_and_suppression_follow_the_vars(demo_warehouse, tmp_path):
    """Rebuild rpt_segment_bias on a copy of the warehouse with other vars: a configured
    reference group, one positive label and a high minimum count."""
    db_path = tmp_path / "vars.duckdb"
    shutil.copyfile(demo_warehouse.db_path, db_path)
    overrides = {
        "bias_reference_groups": {"language": "de"},
        "bias_positive_labels": {"support_router": ["billing"]},
        "bias_min_group_count": 200,
    }
    dbt(
        ["run", "--select", "rpt_segment_bias", "--quiet"],
        dbt_vars=overrides,
        db_path=db_path,
        target_path=tmp_path / "target",
    )
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        bias = con.execute("select * from marts.rpt_segment_bias").df()
    finally:
        con.close()
    language = bias[bias["segment_attribute"] == "language"]
    assert set(language["reference_group"]) == {"de"}
    assert set(bias.loc[bias["segment_attribute"] == "region", "reference_group"]) == {"na"}
    assert set(bias["class_label"].dropna()) == {"billing"}
    small = bias["trials"] < 200
    assert bias.loc[small, "is_suppressed"].all() and bias.loc[small, "metric_value"].isna().all()
    assert not bias.loc[~small, "is_suppressed"].any()
    # against de, the majority language is the better-off one now
    en = language[
        (language["segment_value"] == "en")
        & (language["metric"] == "accuracy")
        & (language["model_version"] == "__all__")
        & (language["time_bucket"] == "all")
    ].iloc[0]
    assert en["difference_lower"] > 0 and en["is_flagged"]

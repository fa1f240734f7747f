"""The drift statistics computed in SQL equal scipy's on the same values.

A tiny raw dataset with known windows is ingested with the project's own ingest and the drift marts
are built with dbt (only what they need). Every statistic is then recomputed here, independently,
from the values written to the raw files: KS D (``scipy.stats.ks_2samp``, with many ties),
Wasserstein-1 (``scipy.stats.wasserstein_distance``), PSI (numpy) and Jensen-Shannon distance
(``scipy.spatial.distance.jensenshannon``) over bins cut at the reference quantiles (numpy,
``method='inverted_cdf'``, the definition of DuckDB's ``quantile_disc``), and the categorical
contingency tables (pandas crosstab, ``scipy.stats.chi2_contingency``). Edge cases: a category only
in the current window, a model with an empty current window, a single-value feature, missing and
non-numeric values.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance

from feedback_flywheel import warehouse
from feedback_flywheel.ingest import ingest_file
from tests.python.helpers import dbt

TOLERANCE = 1e-9
PSI_EPSILON = 1e-4
BINS = 10
TOP_K = 3

BATCH_END = datetime(2026, 3, 1)
CURRENT_START = BATCH_END - timedelta(days=1)  # drift_current_days: 1
REFERENCE_START = CURRENT_START - timedelta(days=14)  # drift_reference_days: 14
BATCH = {
    "FLYWHEEL_BATCH_ID": "b20260301T000000",
    "FLYWHEEL_BATCH_START": "2026-01-01 00:00:00",
    "FLYWHEEL_BATCH_END": "2026-03-01 00:00:00",
}
NUMERIC = ["x_int", "x_float", "x_const", "x_sparse"]
CATEGORICAL = ["color"]
DBT_VARS = {
    "drift_features": {"numeric": NUMERIC, "categorical": CATEGORICAL},
    "drift_top_k": TOP_K,
    "drift_bins": BINS,
    "label_settle_hours": 0,  # labels received before the watermark count, even current ones
    # label drift's current window is performance_current_days ending ceil(settle / 24) days
    # before the watermark: with these two it is the drift window, so one truth checks both
    "performance_current_days": 1,
}
SELECT = (
    "+fct_drift_numeric +fct_drift_categorical_summary"
    " +fct_drift_timeline_numeric +fct_drift_timeline_categorical"
)
MISSING = object()  # a key absent from inputs


@dataclass(frozen=True)
class DriftBuild:
    db_path: Path
    rows: pd.DataFrame  # one row per inference written, with its window side and values
    labels: pd.DataFrame  # inference_id, label


def _ts(value: datetime) -> pd.Timestamp:
    return pd.Timestamp(value, tz=UTC)


def _inputs_text(values: dict[str, Any]) -> str:
    return json.dumps({key: value for key, value in values.items() if value is not MISSING})


def make_rows(rng: np.random.Generator) -> pd.DataFrame:
    """The inferences: model m1 in both windows (plus rows outside them that must not count),
    model m2 in the reference window only (an empty current window)."""
    records: list[dict[str, Any]] = []

    def add(model: str, side: str, logged_at: datetime, shift: bool) -> None:
        x_sparse: Any = int(rng.integers(0, 6))
        draw = rng.random()
        if draw < 0.15:
            x_sparse = MISSING
        elif draw < 0.2:
            x_sparse = None  # JSON null
        elif draw < 0.23:
            x_sparse = "n/a"  # not a number: missing for numeric drift
        elif draw < 0.25:
            x_sparse = "NaN"  # parses to a double, but not a finite one: missing too
        colors = (
            ["red", "green", "blue", "yellow", "purple", None]
            if shift
            else ["red", "green", "blue", "yellow", "black", "white"]
        )
        shares = [0.2, 0.3, 0.2, 0.1, 0.1, 0.1] if shift else [0.35, 0.25, 0.2, 0.1, 0.06, 0.04]
        color = colors[int(rng.choice(len(colors), p=shares))]
        inputs = {
            "x_int": int(rng.poisson(4.0 if shift else 3.0)),
            "x_float": round(float(rng.normal(0.3 if shift else 0.0, 1.2 if shift else 1.0)), 2),
            "x_const": 5,
            "x_sparse": x_sparse,
            "color": MISSING if color is None else color,
        }
        records.append(
            {
                "inference_id": f"inf-{len(records):05d}",
                "model_name": model,
                "side": side,
                "logged_at": logged_at,
                "inputs": inputs,
                "predicted_label": "yes" if rng.random() < (0.6 if shift else 0.4) else "no",
                # Current scores stay below 0.7: the upper reference bins are empty there, which
                # takes PSI's epsilon path.
                "predicted_score": round(float(rng.uniform(0.5, 0.7 if shift else 1.0)), 3),
            }
        )

    def uniform(start: datetime, end: datetime) -> datetime:
        seconds = int(rng.integers(0, int((end - start).total_seconds())))
        return start + timedelta(seconds=seconds)

    for _ in range(400):
        add("m1", "reference", uniform(REFERENCE_START, CURRENT_START), shift=False)
    for _ in range(150):
        add("m1", "current", uniform(CURRENT_START, BATCH_END), shift=True)
    # Window edges: start inclusive, end exclusive.
    add("m1", "reference", REFERENCE_START, shift=False)
    add("m1", "current", CURRENT_START, shift=True)
    add("m1", "outside", BATCH_END, shift=True)
    for _ in range(30):
        add("m1", "outside", uniform(REFERENCE_START - timedelta(days=5), REFERENCE_START), True)
    for _ in range(60):
        add("m2", "reference", uniform(REFERENCE_START, CURRENT_START), shift=False)
    return pd.DataFrame.from_records(records)


def write_raw(tmp: Path, rows: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """The raw files (Parquet), and the labels written: a label for some inferences logged more
    than an hour before the watermark, received a minute after the inference."""
    inference_log = pd.DataFrame(
        {
            "inference_id": rows["inference_id"],
            "logged_at": [_ts(value) for value in rows["logged_at"]],
            "model_name": rows["model_name"],
            "model_version": "v1",
            "subject_id": [f"s-{i % 37}" for i in range(len(rows))],
            "context": '{"region": "eu", "language": "en"}',
            "inputs": [_inputs_text(inputs) for inputs in rows["inputs"]],
            "predicted_label": rows["predicted_label"],
            "predicted_score": rows["predicted_score"],
        }
    )
    labelled = rows[
        (rows["logged_at"] < BATCH_END - timedelta(hours=1)) & (rng.random(len(rows)) < 0.6)
    ]
    shifted = labelled["side"] == "current"
    label_values = np.where(rng.random(len(labelled)) < np.where(shifted, 0.7, 0.3), "yes", "no")
    feedback = pd.DataFrame(
        {
            "event_id": [f"fe-{i:05d}" for i in range(len(labelled))],
            "inference_id": labelled["inference_id"].to_numpy(),
            "event_type": "label",
            "value": label_values,
            "occurred_at": [_ts(value + timedelta(seconds=30)) for value in labelled["logged_at"]],
            "received_at": [_ts(value + timedelta(minutes=1)) for value in labelled["logged_at"]],
            "source": "annotation_tool",
            "schema_version": "1.0",
        }
    )
    deployments = pd.DataFrame(
        {
            "model_name": ["m1", "m2"],
            "model_version": ["v1", "v1"],
            "deployed_at": [_ts(datetime(2025, 12, 1))] * 2,
        }
    )
    files = {
        "model_deployments": deployments,
        "inference_log": inference_log,
        "feedback_events": feedback,
    }
    with warehouse.connect(tmp / "drift.duckdb") as con:
        warehouse.init_warehouse(con)
        for table, frame in files.items():
            path = tmp / f"{table}.parquet"
            frame.to_parquet(path, index=False)
            result = ingest_file(con, table, path)
            assert result.ok, result.message
    return pd.DataFrame(
        {"inference_id": labelled["inference_id"].to_numpy(), "label": label_values}
    )


def build(tmp: Path, db_path: Path) -> None:
    dbt(
        [
            "build",
            "--select",
            SELECT,
            "--exclude-resource-type",
            "unit_test",
            "--indirect-selection",
            "cautious",  # data tests that also read unselected models stay out
        ],
        dbt_vars=DBT_VARS,
        db_path=db_path,
        target_path=tmp / "target",
        extra_env={**BATCH, "DBT_LOG_PATH": str(tmp / "logs")},
    )


@pytest.fixture(scope="module")
def drift_build(tmp_path_factory: pytest.TempPathFactory) -> DriftBuild:
    tmp = tmp_path_factory.mktemp("drift")
    rng = np.random.default_rng(20260301)
    rows = make_rows(rng)
    labels = write_raw(tmp, rows, rng)
    db_path = tmp / "drift.duckdb"
    build(tmp, db_path)
    return DriftBuild(db_path, rows, labels)


def query(db_path: Path, sql: str) -> pd.DataFrame:
    with duckdb.connect(str(db_path), read_only=True) as con:
        return con.execute(sql).df()


# --- the expected values, computed here ------------------------------------------------------


def numeric_values(rows: pd.DataFrame, model: str, feature: str, side: str) -> np.ndarray:
    """The numeric values of a feature in a window (missing, null and non-numbers left out)."""
    selected = rows[(rows["model_name"] == model) & (rows["side"] == side)]
    if feature == "predicted_score":
        return selected["predicted_score"].to_numpy(dtype=float)
    values = [inputs.get(feature, MISSING) for inputs in selected["inputs"]]
    return np.array([value for value in values if isinstance(value, int | float)], dtype=float)


def scipy_statistics(ref: np.ndarray, cur: np.ndarray) -> dict[str, float]:
    """KS D, W1, the means and the reference's sample standard deviation, as scipy and numpy
    compute them on the two windows' values."""
    return {
        "ks_d": stats.ks_2samp(ref, cur).statistic,
        "wasserstein": stats.wasserstein_distance(ref, cur),
        "ref_mean": np.mean(ref),
        "ref_std": np.std(ref, ddof=1),
        "cur_mean": np.mean(cur),
    }


def window_rows(rows: pd.DataFrame, model: str, side: str) -> int:
    return int(((rows["model_name"] == model) & (rows["side"] == side)).sum())


def reference_cut_points(reference: np.ndarray) -> np.ndarray:
    return np.quantile(reference, [i / BINS for i in range(1, BINS)], method="inverted_cdf")


def binned(values: np.ndarray, cut_points: np.ndarray) -> np.ndarray:
    """Counts per bin: bin i holds cut_points[i - 1] <= x < cut_points[i]."""
    return np.bincount(np.searchsorted(cut_points, values, side="right"), minlength=BINS)


def psi(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    p = ref_counts / ref_counts.sum()
    q = cur_counts / cur_counts.sum()
    p = np.where(p == 0, PSI_EPSILON, p)
    q = np.where(q == 0, PSI_EPSILON, q)
    return float(np.sum((q - p) * np.log(q / p)))


def categorical_values(
    rows: pd.DataFrame, labels: pd.DataFrame, model: str, feature: str
) -> pd.DataFrame:
    """side and value (None when missing) of a categorical feature, one row per inference."""
    selected = rows[(rows["model_name"] == model) & rows["side"].isin(["reference", "current"])]
    if feature == "label":
        merged = selected.merge(labels, on="inference_id")
        return pd.DataFrame({"side": merged["side"], "value": merged["label"]})
    if feature == "predicted_label":
        return pd.DataFrame({"side": selected["side"], "value": selected["predicted_label"]})
    values = [inputs.get(feature, MISSING) for inputs in selected["inputs"]]
    return pd.DataFrame(
        {"side": selected["side"], "value": [None if v is MISSING else v for v in values]}
    )


def bucketed_crosstab(frame: pd.DataFrame) -> pd.DataFrame:
    """The contingency table: top-k reference categories (by count, then name), __other__,
    __unseen__, __missing__; columns reference and current."""
    reference_counts = frame.loc[frame["side"] == "reference", "value"].dropna().value_counts()
    ranked = sorted(reference_counts.items(), key=lambda item: (-item[1], item[0]))
    top = {value for value, _ in ranked[:TOP_K]}

    def bucket(value: Any) -> str:
        if pd.isna(value):
            return "__missing__"
        if value in top:
            return value
        return "__other__" if value in reference_counts.index else "__unseen__"

    buckets = pd.Series([bucket(value) for value in frame["value"]], index=frame.index)
    table = pd.crosstab(buckets, frame["side"])
    return table.reindex(columns=["reference", "current"], fill_value=0)


# --- numeric ------------------------------------------------------------------------------------


def numeric_mart(db_path: Path) -> pd.DataFrame:
    return query(db_path, "select * from marts.fct_drift_numeric").set_index(
        ["model_name", "feature_name"]
    )


def test_numeric_statistics_equal_scipy(drift_build: DriftBuild) -> None:
    mart = numeric_mart(drift_build.db_path)
    rows = drift_build.rows
    expected_features = {("m1", name) for name in [*NUMERIC, "predicted_score"]}
    expected_features |= {("m2", name) for name in [*NUMERIC, "predicted_score"]}
    assert set(mart.index) == expected_features
    for feature in ["x_int", "x_float", "x_sparse", "predicted_score"]:
        ref = numeric_values(rows, "m1", feature, "reference")
        cur = numeric_values(rows, "m1", feature, "current")
        got = mart.loc[("m1", feature)]
        assert got["n_ref"] == len(ref) and got["n_cur"] == len(cur), feature
        assert got["missing_ref"] == window_rows(rows, "m1", "reference") - len(ref), feature
        assert got["missing_cur"] == window_rows(rows, "m1", "current") - len(cur), feature
        assert len(np.unique(np.concatenate([ref, cur]))) < len(ref) + len(cur), "want ties"
        expected = scipy_statistics(ref, cur)
        expected["wasserstein_norm"] = expected["wasserstein"] / expected["ref_std"]
        cut_points = reference_cut_points(ref)
        ref_counts, cur_counts = binned(ref, cut_points), binned(cur, cut_points)
        if feature == "predicted_score":
            assert (cur_counts == 0).any() and (ref_counts > 0).all(), "one-sided empty bins"
        expected["psi"] = psi(ref_counts, cur_counts)
        expected["js_distance"] = distance.jensenshannon(ref_counts, cur_counts)
        for column, value in expected.items():
            assert got[column] == pytest.approx(value, abs=TOLERANCE, rel=TOLERANCE), (
                feature,
                column,
            )
    assert mart.loc[("m1", "x_int"), "ks_d"] > 0.1, "the shifted feature drifts"


NOON = {
    "FLYWHEEL_BATCH_ID": "b20260301T120000",
    "FLYWHEEL_BATCH_START": "2026-01-01 00:00:00",
    "FLYWHEEL_BATCH_END": "2026-03-01 12:00:00",
}


@pytest.fixture(scope="module")
def noon_build(drift_build: DriftBuild, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same inferences with the watermark at noon: every window bound cuts a day, so the
    windows are whole days' summaries plus the part days counted from their typed values."""
    tmp = tmp_path_factory.mktemp("drift-noon")
    db_path = tmp / "noon.duckdb"
    shutil.copyfile(drift_build.db_path, db_path)
    dbt(
        ["run", "--select", "+fct_drift_numeric", "--full-refresh"],
        dbt_vars=DBT_VARS,
        db_path=db_path,
        target_path=tmp / "target",
        extra_env={**NOON, "DBT_LOG_PATH": str(tmp / "logs")},
    )
    return db_path


def test_numeric_statistics_equal_scipy_at_a_noon_watermark(
    drift_build: DriftBuild, noon_build: Path
) -> None:
    """Current [02-28 12:00, 03-01 12:00), reference the 14 days before: the statistics over
    the merged day summaries and edge counts equal scipy's on the raw values of those windows."""
    end = datetime(2026, 3, 1, 12)
    current_start, reference_start = end - timedelta(days=1), end - timedelta(days=15)
    rows = drift_build.rows.copy()
    logged = rows["logged_at"]
    rows["side"] = np.select(
        [
            (logged >= current_start) & (logged < end),
            (logged >= reference_start) & (logged < current_start),
        ],
        ["current", "reference"],
        default="outside",
    )
    mart = numeric_mart(noon_build)
    assert set(mart["batch_id"]) == {NOON["FLYWHEEL_BATCH_ID"]}
    for feature in ["x_int", "x_float", "x_sparse", "predicted_score"]:
        ref = numeric_values(rows, "m1", feature, "reference")
        cur = numeric_values(rows, "m1", feature, "current")
        got = mart.loc[("m1", feature)]
        assert (got["n_ref"], got["n_cur"]) == (len(ref), len(cur)), feature
        assert got["missing_cur"] == window_rows(rows, "m1", "current") - len(cur), feature
        expected = scipy_statistics(ref, cur)
        for column, value in expected.items():
            assert got[column] == pytest.approx(value, abs=TOLERANCE, rel=TOLERANCE), (
                feature,
                column,
            )
    current_days = rows.loc[rows["side"] == "current", "logged_at"].dt.normalize().nunique()
    assert current_days == 2, "the current window cuts two days"


def _day_windows(rows: pd.DataFrame, model: str, day: datetime) -> pd.DataFrame:
    """The model's rows of the windows of timeline day ``day`` (side: reference or current)."""
    logged = rows["logged_at"]
    current = (logged >= day) & (logged < day + timedelta(days=1))
    reference = (logged >= day - timedelta(days=14)) & (logged < day)
    selected = rows[(rows["model_name"] == model) & (current | reference)].copy()
    selected["side"] = np.where(current[selected.index], "current", "reference")
    return selected


def test_the_timeline_evaluates_every_past_day_as_scipy_does(drift_build: DriftBuild) -> None:
    """Each past day of the batch window (2026-01-01 .. 02-27: the watermark's own day is
    fct_drift_numeric's) with inferences is evaluated over its own windows: the day against the
    14 days before it. Every statistic of every day equals scipy's on the raw values."""
    timeline = query(drift_build.db_path, "select * from marts.fct_drift_timeline_numeric")
    rows = drift_build.rows[drift_build.rows["logged_at"] < BATCH_END]
    served = {
        (model, day)
        for model, day in zip(rows["model_name"], rows["logged_at"].dt.normalize(), strict=True)
        if day <= BATCH_END - timedelta(days=2)
    }
    got_days = {
        (model, pd.Timestamp(day))
        for model, day in zip(timeline["model_name"], timeline["evaluation_date"], strict=True)
    }
    assert got_days == {(model, pd.Timestamp(day)) for model, day in served}
    checked = 0
    for record in timeline.itertuples(index=False):
        day = pd.Timestamp(record.evaluation_date).to_pydatetime()
        windows = _day_windows(rows, record.model_name, day)
        ref = numeric_values(windows, record.model_name, record.feature_name, "reference")
        cur = numeric_values(windows, record.model_name, record.feature_name, "current")
        assert (record.n_ref, record.n_cur) == (len(ref), len(cur)), record
        assert record.missing_cur == window_rows(windows, record.model_name, "current") - len(cur)
        if len(ref) and len(cur):
            assert record.ks_d == stats.ks_2samp(ref, cur).statistic, record
            assert record.wasserstein == pytest.approx(
                stats.wasserstein_distance(ref, cur), abs=TOLERANCE, rel=TOLERANCE
            )
            checked += 1
        else:
            assert pd.isna(record.ks_d), record
    assert checked >= 20


def test_the_timeline_contingency_tables_equal_an_independent_crosstab(
    drift_build: DriftBuild,
) -> None:
    timeline = query(drift_build.db_path, "select * from marts.fct_drift_timeline_categorical")
    rows = drift_build.rows[drift_build.rows["logged_at"] < BATCH_END]
    assert set(timeline["feature_name"]) == {"color", "predicted_label"}
    keys = ["model_name", "evaluation_date", "feature_name"]
    for (model, evaluation_date, feature), got in timeline.groupby(keys):
        day = pd.Timestamp(evaluation_date).to_pydatetime()
        windows = _day_windows(rows, model, day)
        values = categorical_values(windows, drift_build.labels, model, feature)
        expected = bucketed_crosstab(values)
        got = got.set_index("category")[["n_ref", "n_cur"]].rename(
            columns={"n_ref": "reference", "n_cur": "current"}
        )
        pd.testing.assert_frame_equal(
            got.sort_index(), expected.sort_index(), check_names=False, check_dtype=False
        )


def test_ks_d_is_bit_for_bit_scipy(drift_build: DriftBuild) -> None:
    """D is a maximum of differences of ratios computed the same way: no rounding to tolerate."""
    mart = numeric_mart(drift_build.db_path)
    for feature in ["x_int", "x_sparse"]:
        ref = numeric_values(drift_build.rows, "m1", feature, "reference")
        cur = numeric_values(drift_build.rows, "m1", feature, "current")
        assert mart.loc[("m1", feature), "ks_d"] == stats.ks_2samp(ref, cur).statistic


def test_reference_bins_are_the_reference_quantiles(drift_build: DriftBuild) -> None:
    bins = query(
        drift_build.db_path,
        "select * from marts.fct_drift_reference_bins order by model_name, feature_name, bin_index",
    )
    for (model, feature), group in bins.groupby(["model_name", "feature_name"]):
        ref = numeric_values(drift_build.rows, model, feature, "reference")
        cut_points = reference_cut_points(ref)
        assert group["bin_index"].tolist() == list(range(1, BINS + 1))
        assert group["lower_edge"].isna().tolist() == [True] + [False] * (BINS - 1)
        assert group["upper_edge"].isna().tolist() == [False] * (BINS - 1) + [True]
        assert group["upper_edge"].iloc[:-1].tolist() == cut_points.tolist(), (model, feature)
        assert group["lower_edge"].iloc[1:].tolist() == cut_points.tolist(), (model, feature)
        assert (group["reference_value_count"] == len(ref)).all()
        assert (group["reference_start_at"] == pd.Timestamp(REFERENCE_START)).all()
        assert (group["reference_end_at"] == pd.Timestamp(CURRENT_START)).all()
    # x_sparse (0..5) has tied quantiles: empty [v, v) bins, which the PSI above already covers.
    sparse = bins[(bins["model_name"] == "m1") & (bins["feature_name"] == "x_sparse")]
    assert (sparse["lower_edge"] == sparse["upper_edge"]).any()


def test_single_value_feature_has_zero_distances(drift_build: DriftBuild) -> None:
    got = numeric_mart(drift_build.db_path).loc[("m1", "x_const")]
    assert got["ks_d"] == 0 and got["wasserstein"] == 0
    assert got["psi"] == 0 and got["js_distance"] == 0
    assert got["ref_std"] == 0 and pd.isna(got["wasserstein_norm"])
    assert got["ref_mean"] == 5 and got["cur_mean"] == 5
    assert stats.ks_2samp([5.0] * 3, [5.0] * 2).statistic == 0


def test_empty_current_window_gives_nulls_not_errors(drift_build: DriftBuild) -> None:
    mart = numeric_mart(drift_build.db_path)
    for feature in [*NUMERIC, "predicted_score"]:
        got = mart.loc[("m2", feature)]
        assert got["n_cur"] == 0 and got["missing_cur"] == 0
        assert got["n_ref"] == len(numeric_values(drift_build.rows, "m2", feature, "reference"))
        for column in ["ks_d", "wasserstein", "wasserstein_norm", "psi", "js_distance", "cur_mean"]:
            assert pd.isna(got[column]), (feature, column)
    summary = query(
        drift_build.db_path,
        "select * from marts.fct_drift_categorical_summary where model_name = 'm2'",
    )
    assert (summary["n_cur"] == 0).all()
    assert summary[["linf", "js_distance", "unseen_share_cur"]].isna().all().all()


# --- categorical --------------------------------------------------------------------------------


def test_contingency_tables_equal_an_independent_crosstab(drift_build: DriftBuild) -> None:
    mart = query(drift_build.db_path, "select * from marts.fct_drift_categorical")
    features = {
        ("m1", "color"),
        ("m1", "predicted_label"),
        ("m1", "label"),
        ("m2", "color"),
        ("m2", "predicted_label"),
        ("m2", "label"),
    }
    assert set(zip(mart["model_name"], mart["feature_name"], strict=True)) == features
    for model, feature in features:
        frame = categorical_values(drift_build.rows, drift_build.labels, model, feature)
        expected = bucketed_crosstab(frame)
        got = (
            mart[(mart["model_name"] == model) & (mart["feature_name"] == feature)]
            .set_index("category")[["n_ref", "n_cur"]]
            .rename(columns={"n_ref": "reference", "n_cur": "current"})
        )
        pd.testing.assert_frame_equal(
            got.sort_index(), expected.sort_index(), check_names=False, check_dtype=False
        )
        if model == "m1":
            observed = got.drop(index="__missing__", errors="ignore").to_numpy().T
            independent = expected.drop(index="__missing__", errors="ignore").to_numpy().T
            assert stats.chi2_contingency(observed).statistic == pytest.approx(
                stats.chi2_contingency(independent).statistic, abs=TOLERANCE
            )
    color = mart[(mart["model_name"] == "m1") & (mart["feature_name"] == "color")].set_index(
        "category"
    )
    assert set(color.index) == {"red", "green", "blue", "__other__", "__unseen__", "__missing__"}
    assert color.loc["__unseen__", "n_ref"] == 0 and color.loc["__unseen__", "n_cur"] > 0
    assert color.loc["__other__", "distinct_values_ref"] == 3  # yellow, black, white
    assert sorted(color["category_rank"].dropna()) == [1, 2, 3]


def test_categorical_summary_equals_scipy(drift_build: DriftBuild) -> None:
    summary = query(
        drift_build.db_path, "select * from marts.fct_drift_categorical_summary"
    ).set_index(["model_name", "feature_name"])
    for feature in ["color", "predicted_label", "label"]:
        frame = categorical_values(drift_build.rows, drift_build.labels, "m1", feature)
        table = bucketed_crosstab(frame)
        present = table.drop(index="__missing__", errors="ignore")
        ref, cur = present["reference"].to_numpy(), present["current"].to_numpy()
        p, q = ref / ref.sum(), cur / cur.sum()
        reference_values = frame.loc[frame["side"] == "reference", "value"].dropna()
        current_values = frame.loc[frame["side"] == "current", "value"].dropna()
        got = summary.loc[("m1", feature)]
        assert got["n_ref"] == ref.sum() and got["n_cur"] == cur.sum(), feature
        assert got["missing_ref"] == frame.loc[frame["side"] == "reference", "value"].isna().sum()
        assert got["missing_cur"] == frame.loc[frame["side"] == "current", "value"].isna().sum()
        assert got["category_count_ref"] == reference_values.nunique()
        assert got["linf"] == pytest.approx(np.max(np.abs(p - q)), abs=TOLERANCE)
        assert got["js_distance"] == pytest.approx(distance.jensenshannon(ref, cur), abs=TOLERANCE)
        unseen = (~current_values.isin(set(reference_values))).mean()
        assert got["unseen_share_cur"] == pytest.approx(unseen, abs=TOLERANCE)
    assert summary.loc[("m1", "color"), "unseen_share_cur"] > 0
    assert summary.loc[("m1", "color"), "missing_cur"] > 0


def test_windows_are_recorded_on_every_row(drift_build: DriftBuild) -> None:
    for table in ["fct_drift_numeric", "fct_drift_categorical", "fct_drift_categorical_summary"]:
        bounds = query(
            drift_build.db_path,
            f"select distinct batch_id, reference_start_at, reference_end_at, current_start_at, "
            f"current_end_at from marts.{table}",
        )
        assert bounds.to_dict("records") == [
            {
                "batch_id": BATCH["FLYWHEEL_BATCH_ID"],
                "reference_start_at": pd.Timestamp(REFERENCE_START),
                "reference_end_at": pd.Timestamp(CURRENT_START),
                "current_start_at": pd.Timestamp(CURRENT_START),
                "current_end_at": pd.Timestamp(BATCH_END),
            }
        ], table


def test_rerun_keeps_frozen_bins_and_replaces_the_batch_rows(
    drift_build: DriftBuild, tmp_path: Path
) -> None:
    """Late reference rows arrive and the batch is built again: its statistics see them, but the
    reference window's bins stay as first frozen, and no bucket of the first attempt lingers."""
    db_path = tmp_path / "rerun.duckdb"
    shutil.copyfile(drift_build.db_path, db_path)
    bins_before = query(db_path, "select * from marts.fct_drift_reference_bins")
    late_count = 200
    late_at = REFERENCE_START + timedelta(hours=6)
    late_inputs = {"x_int": 100, "x_float": 0.5, "x_const": 5, "x_sparse": 1, "color": "orange"}
    late = pd.DataFrame(
        {
            "inference_id": [f"late-{i}" for i in range(late_count)],
            "logged_at": [_ts(late_at)] * late_count,
            "model_name": "m1",
            "model_version": "v1",
            "subject_id": "s-late",
            "context": '{"region": "eu", "language": "en"}',
            "inputs": _inputs_text(late_inputs),
            "predicted_label": "yes",
            "predicted_score": 0.9,
        }
    )
    late.to_parquet(tmp_path / "late.parquet", index=False)
    with warehouse.connect(db_path) as con:
        assert ingest_file(con, "inference_log", tmp_path / "late.parquet").ok
    build(tmp_path, db_path)

    bins_after = query(db_path, "select * from marts.fct_drift_reference_bins")
    pd.testing.assert_frame_equal(
        bins_after.sort_values("reference_bin_id").reset_index(drop=True),
        bins_before.sort_values("reference_bin_id").reset_index(drop=True),
    )
    rows = pd.concat(
        [
            drift_build.rows,
            pd.DataFrame(
                {
                    "inference_id": late["inference_id"],
                    "model_name": "m1",
                    "side": "reference",
                    "logged_at": late_at,
                    "inputs": [late_inputs] * late_count,
                    "predicted_label": "yes",
                    "predicted_score": 0.9,
                }
            ),
        ],
        ignore_index=True,
    )
    numeric = numeric_mart(db_path)
    assert len(numeric) == len(numeric_mart(drift_build.db_path))
    ref = numeric_values(rows, "m1", "x_int", "reference")
    cur = numeric_values(rows, "m1", "x_int", "current")
    assert numeric.loc[("m1", "x_int"), "n_ref"] == len(ref)
    assert numeric.loc[("m1", "x_int"), "ks_d"] == stats.ks_2samp(ref, cur).statistic
    frozen = bins_before[
        (bins_before["model_name"] == "m1") & (bins_before["feature_name"] == "x_int")
    ]
    cut_points = frozen.sort_values("bin_index")["upper_edge"].iloc[:-1].to_numpy()
    assert numeric.loc[("m1", "x_int"), "js_distance"] == pytest.approx(
        distance.jensenshannon(binned(ref, cut_points), binned(cur, cut_points)), abs=TOLERANCE
    )

    color = query(
        db_path,
        "select category, n_ref, n_cur from marts.fct_drift_categorical "
        "where model_name = 'm1' and feature_name = 'color'",
    ).set_index("category")
    expected = bucketed_crosstab(categorical_values(rows, drift_build.labels, "m1", "color"))
    before = bucketed_crosstab(
        categorical_values(drift_build.rows, drift_build.labels, "m1", "color")
    )
    assert set(expected.index) != set(before.index), "the late rows change the top k"
    assert color.loc["orange", "n_ref"] == late_count
    pd.testing.assert_frame_equal(
        color.rename(columns={"n_ref": "reference", "n_cur": "current"}).sort_index(),
        expected.sort_index(),
        check_names=False,
        check_dtype=False,
    )


def _typed_run(tmp: Path, db_path: Path, env: dict[str, str], dbt_vars: dict[str, Any]) -> None:
    dbt(
        ["run", "--select", "int_drift_values_typed"],
        dbt_vars=dbt_vars,
        db_path=db_path,
        target_path=tmp / "target",
        extra_env={**env, "DBT_LOG_PATH": str(tmp / "logs")},
    )


def test_inputs_are_parsed_once_and_a_retyped_feature_from_the_batch_that_configures_it(
    drift_build: DriftBuild, tmp_path: Path
) -> None:
    """A re-run parses nothing again; the next batch parses no inference already typed (its
    lookback days included); a feature configured anew (x_int, now categorical) is parsed from
    that batch on, for the inferences it sees (window plus lookback), and for no older one."""
    db_path = tmp_path / "typed.duckdb"
    shutil.copyfile(drift_build.db_path, db_path)
    typed = "select * from intermediate.int_drift_values_typed"
    before = query(db_path, typed)
    assert set(before["batch_id"]) == {BATCH["FLYWHEEL_BATCH_ID"]}
    accepted = query(
        db_path, "select count(*) as n from intermediate.int_inferences_validated where is_accepted"
    )["n"][0]
    features = len(NUMERIC) + len(CATEGORICAL) + 2  # + predicted_score, predicted_label
    assert len(before) == accepted * features, "one typed row per accepted inference and feature"

    _typed_run(tmp_path, db_path, BATCH, DBT_VARS)
    again = query(db_path, typed)
    assert len(again) == len(before), "a re-run of the batch parses nothing again"

    retyped = {
        **DBT_VARS,
        "drift_features": {"numeric": NUMERIC[1:], "categorical": [*CATEGORICAL, NUMERIC[0]]},
    }
    next_batch = {
        "FLYWHEEL_BATCH_ID": "b20260302T000000",
        "FLYWHEEL_BATCH_START": "2026-03-01 00:00:00",
        "FLYWHEEL_BATCH_END": "2026-03-02 00:00:00",
    }
    _typed_run(tmp_path, db_path, next_batch, retyped)
    after = query(db_path, typed)
    new = after[after["batch_id"] == next_batch["FLYWHEEL_BATCH_ID"]]
    assert set(new["feature_name"]) == {NUMERIC[0]}, "only the retyped feature is parsed again"
    assert set(new["value_type"]) == {"categorical"}
    lookback_start = pd.Timestamp(BATCH_END - timedelta(days=3))  # lookback_days: 3
    seen = drift_build.rows[
        (drift_build.rows["logged_at"] >= lookback_start)
        & (drift_build.rows["logged_at"] < pd.Timestamp(BATCH_END))
    ]
    assert sorted(new["inference_id"]) == sorted(seen["inference_id"]), (
        "the retyped feature is parsed for the inferences the batch sees, and no older one"
    )
    expected = {
        row.inference_id: (
            None
            if row.inputs.get(NUMERIC[0], MISSING) in (MISSING, None)
            else json.dumps(row.inputs[NUMERIC[0]])
        )
        for row in seen.itertuples()
    }
    got = dict(
        zip(
            new["inference_id"],
            new["string_value"].where(new["string_value"].notna(), None),
            strict=True,
        )
    )
    assert got == expected, "the categorical value is the JSON value as text"
    assert len(after) - len(new) == len(before), "the earlier rows are untouched"


def test_a_batch_that_failed_after_typing_values_has_its_days_counted_by_the_next(
    drift_build: DriftBuild, tmp_path: Path
) -> None:
    """A batch types the values of a late file and dies before the day summaries are built; the
    next batch, under its own id, finds those values already typed and still counts their day
    again: every day summary equals the count of its typed values, the late day's included."""
    db_path = tmp_path / "failed.duckdb"
    shutil.copyfile(drift_build.db_path, db_path)
    late_count, late_at = 50, REFERENCE_START + timedelta(hours=6)  # far behind the lookback
    pd.DataFrame(
        {
            "inference_id": [f"late-{i}" for i in range(late_count)],
            "logged_at": [_ts(late_at)] * late_count,
            "model_name": "m1",
            "model_version": "v1",
            "subject_id": "s-late",
            "context": '{"region": "eu", "language": "en"}',
            "inputs": _inputs_text({"x_int": 1, "x_float": 0.5, "x_const": 5, "color": "teal"}),
            "predicted_label": "yes",
            "predicted_score": 0.9,
        }
    ).to_parquet(tmp_path / "late.parquet", index=False)
    with warehouse.connect(db_path) as con:
        assert ingest_file(con, "inference_log", tmp_path / "late.parquet").ok
    failed = {
        "FLYWHEEL_BATCH_ID": "b20260301T120000",
        "FLYWHEEL_BATCH_START": "2026-03-01 00:00:00",
        "FLYWHEEL_BATCH_END": "2026-03-01 12:00:00",
    }
    upstream = ["run", "--select", "int_inferences_validated", "int_drift_values_typed"]
    env = {"DBT_LOG_PATH": str(tmp_path / "logs")}
    run = {"dbt_vars": DBT_VARS, "db_path": db_path, "target_path": tmp_path / "target"}
    dbt(upstream, **run, extra_env={**failed, **env})  # and then the batch died
    typed_late = query(
        db_path,
        "select distinct batch_id from intermediate.int_drift_values_typed "
        "where inference_id like 'late-%'",
    )
    assert list(typed_late["batch_id"]) == [failed["FLYWHEEL_BATCH_ID"]]

    following = {
        "FLYWHEEL_BATCH_ID": "b20260302T000000",
        "FLYWHEEL_BATCH_START": "2026-03-01 12:00:00",
        "FLYWHEEL_BATCH_END": "2026-03-02 00:00:00",
    }
    models = [*upstream, "int_drift_values_daily"]
    dbt(models, **run, extra_env={**following, **env})
    mismatched = query(
        db_path,
        """
        with typed as (
            select model_name, cast(logged_at as date) as logged_date, feature_name, value_type,
                coalesce(string_value, cast(numeric_value as varchar), '(missing)') as value,
                count(*) as n
            from intermediate.int_drift_values_typed group by all
        ),
        counted as (
            select model_name, logged_date, feature_name, value_type,
                coalesce(string_value, cast(numeric_value as varchar), '(missing)') as value,
                sum(value_count) as n
            from intermediate.int_drift_values_daily group by all
        )
        select * from typed full outer join counted
            using (model_name, logged_date, feature_name, value_type, value)
        where typed.n is distinct from counted.n
        """,
    )
    assert mismatched.empty, mismatched
    teal = query(
        db_path,
        "select value_count from intermediate.int_drift_values_daily "
        "where feature_name = 'color' and string_value = 'teal'",
    )
    assert list(teal["value_count"]) == [late_count]

"""marts.fct_feedback_latency recomputed in pandas from the rows it is defined on (the feedback
events, the training examples and dataset versions, the training runs and the registry), with
numpy's inverted-CDF quantiles, for the tests to compare with the mart."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import numpy as np
import pandas as pd

QUANTILES = {"p50_seconds": 0.5, "p90_seconds": 0.9, "p99_seconds": 0.99}


def _seconds(start: pd.Series, finish: pd.Series) -> pd.Series:
    return (finish - start).dt.total_seconds()


def _stage(frame: pd.DataFrame, model, order, stage, event_type, started, latency) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model_name": frame[model].to_numpy(),
            "stage_order": order,
            "stage": stage,
            "event_type": event_type if isinstance(event_type, str) else event_type.to_numpy(),
            "started_at": frame[started].to_numpy(),
            "latency_seconds": latency.to_numpy(),
        }
    )


def stage_rows(con: duckdb.DuckDBPyConnection, batch_id: str, batch_end: datetime) -> pd.DataFrame:
    """One row per stage instance: its start and latency in seconds (NaN while pending)."""
    current = f"ds-{batch_id}"
    feedback = con.execute(
        "select * from marts.fct_feedback where not is_retracted and event_type <> 'retraction' "
        "and received_at < ?",
        [batch_end],
    ).df()
    examples = con.execute(
        "select * from marts.fct_training_examples where dataset_version <= ?", [current]
    ).df()
    versions = (
        con.execute(
            "select dataset_version, as_of_at from marts.fct_dataset_versions "
            "where dataset_version <= ?",
            [current],
        )
        .df()
        .set_index("dataset_version")
        .as_of_at
    )
    runs = con.execute(
        "select * from ml.training_runs where dataset_version < ? "
        "qualify row_number() over (partition by training_run_id order by attempt desc) = 1",
        [current],
    ).df()
    deployed_at = (
        con.execute(
            "select training_run_id, min(deployed_at) as deployed_at from raw.model_deployments "
            "where training_run_id is not null group by 1"
        )
        .df()
        .set_index("training_run_id")
        .deployed_at
    )
    parts = []
    served = feedback[feedback.inference_logged_at.notna() & feedback.occurred_at.notna()]
    occurred = feedback[feedback.occurred_at.notna()]
    for frame, order, stage, start, finish in (
        (served, 1, "served_to_occurred", "inference_logged_at", "occurred_at"),
        (occurred, 2, "occurred_to_received", "occurred_at", "received_at"),
    ):
        latency = _seconds(frame[start], frame[finish])
        parts.append(_stage(frame, "model_name", order, stage, frame.event_type, start, latency))
        labels = frame[frame.is_ground_truth]
        parts.append(
            _stage(labels, "model_name", order, stage, "__labels__", start, latency[labels.index])
        )
    labels = feedback[feedback.is_ground_truth].copy()
    entered = examples.groupby("label_event_id").dataset_version.min()
    labels["dataset_version"] = labels.event_id.map(entered)
    # replaced: a newer label (occurred, received, event id) of the prediction has an example
    order = labels.set_index("event_id")[["occurred_at", "received_at"]]
    newest_used = {}
    for event_id, inference_id in zip(examples.label_event_id, examples.inference_id, strict=True):
        if event_id in order.index:
            key = (*order.loc[event_id], event_id)
            newest_used[inference_id] = max(newest_used.get(inference_id, key), key)
    replaced = [
        pd.isna(version)
        and inference_id in newest_used
        and newest_used[inference_id] > (occurred, received, event_id)
        for version, inference_id, occurred, received, event_id in zip(
            labels.dataset_version,
            labels.inference_id,
            labels.occurred_at,
            labels.received_at,
            labels.event_id,
            strict=True,
        )
    ]
    labels = labels[~pd.Series(replaced, index=labels.index)]
    included_at = labels.dataset_version.map(versions)
    parts.append(
        _stage(
            labels,
            "model_name",
            3,
            "received_to_dataset",
            "__labels__",
            "received_at",
            _seconds(labels.received_at, included_at),
        )
    )
    first = examples.groupby(["label_event_id", "model_name"]).dataset_version.min().reset_index()
    usable = runs[runs.status != "failed"]
    trained = [
        usable[
            (usable.model_name == row.model_name) & (usable.dataset_version >= row.dataset_version)
        ].dataset_version.min()
        for row in first.itertuples()
    ]
    first["entered_at"] = first.dataset_version.map(versions)
    first["trained_at"] = pd.Series(trained, index=first.index).map(versions)
    parts.append(
        _stage(
            first,
            "model_name",
            4,
            "dataset_to_training",
            "__labels__",
            "entered_at",
            _seconds(first.entered_at, first.trained_at),
        )
    )
    deployed = runs[runs.status == "deployed"].copy()
    deployed["started"] = deployed.dataset_version.map(versions)
    parts.append(
        _stage(
            deployed,
            "model_name",
            5,
            "training_to_deployment",
            "__labels__",
            "started",
            _seconds(deployed.finished_at, deployed.training_run_id.map(deployed_at)),
        )
    )
    return pd.concat(parts, ignore_index=True)


def expected_latency(
    con: duckdb.DuckDBPyConnection, batch_id: str, batch_end: datetime, days: int
) -> pd.DataFrame:
    """The mart's rows: per model, stage and event type, overall and per ISO week of the start."""
    rows = stage_rows(con, batch_id, batch_end)
    rows = rows[
        (rows.started_at >= batch_end - timedelta(days=days)) & (rows.started_at < batch_end)
    ]
    rows = rows.assign(
        week_start_date=(
            rows.started_at.dt.normalize() - pd.to_timedelta(rows.started_at.dt.day_of_week, "D")
        ).dt.date
    )
    out = []
    key = ["model_name", "stage_order", "stage", "event_type"]
    for breakdown, keys in (("overall", key), ("week", [*key, "week_start_date"])):
        for values, group in rows.groupby(keys):
            done = group.latency_seconds.dropna().to_numpy()
            record = dict(zip(keys, values, strict=True))
            record.setdefault("week_start_date", None)
            record |= {
                "breakdown": breakdown,
                "completed_count": len(done),
                "pending_count": int(group.latency_seconds.isna().sum()),
            }
            for name, q in QUANTILES.items():
                record[name] = (
                    float(np.quantile(done, q, method="inverted_cdf")) if len(done) else None
                )
            out.append(record)
    return pd.DataFrame(out)


def compare(con: duckdb.DuckDBPyConnection, batch_id: str, batch_end: datetime, days: int) -> int:
    """Assert the mart equals the recomputation row for row; returns the rows compared."""
    expected = expected_latency(con, batch_id, batch_end, days)
    measured = con.execute("select * from marts.fct_feedback_latency").df()
    measured["week_start_date"] = [
        None if pd.isna(day) else pd.Timestamp(day).date() for day in measured.week_start_date
    ]
    key = ["model_name", "stage", "event_type", "breakdown", "week_start_date"]
    joined = expected.merge(measured, on=key, how="outer", suffixes=("", "_sql"), indicator=True)
    assert (joined._merge == "both").all(), joined[joined._merge != "both"][key]
    for column in ("completed_count", "pending_count"):
        assert (joined[column] == joined[f"{column}_sql"]).all(), column
    for name in QUANTILES:
        left, right = joined[name].astype(float), joined[f"{name}_sql"].astype(float)
        assert ((left - right).abs().fillna(0) < 1e-6).all() and (left.isna() == right.isna()).all()
    # the bottleneck: the __labels__ stage with the largest median, per model, breakdown, week
    labels = joined[joined.event_type == "__labels__"].dropna(subset=["p50_seconds"])
    for _, group in labels.groupby(["model_name", "breakdown", "week_start_date"], dropna=False):
        slowest = group.sort_values(["p50_seconds", "stage_order"], ascending=[False, True])
        assert group.is_bottleneck.sum() == 1
        assert slowest.iloc[0].is_bottleneck
    assert not joined[joined.event_type != "__labels__"].is_bottleneck.any()
    return len(joined)

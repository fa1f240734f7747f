"""The closed-loop world and what serving a day does to its file, checked from the files."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from feedback_flywheel.demo import serving
from feedback_flywheel.demo.world import LABELS, generate

DAYS, PER_DAY = 24, 800


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("closed") / "world"
    return out, generate(out, seed=3, days=DAYS, inferences_per_day=PER_DAY, closed_loop=True)


def _labels_in_latam(out: Path, since: date | None, until: date | None) -> dict[str, float]:
    """Share of each label among latam's label events for inferences logged in [since, until)."""
    where = []
    if since:
        where.append(f"logged_at >= '{since}'")
    if until:
        where.append(f"logged_at < '{until}'")
    rows = duckdb.sql(
        f"""
        select value, count(*) / sum(count(*)) over () as share
        from read_parquet('{out}/feedback_events/*.parquet') as events
        join read_parquet('{out}/inference_log/*.parquet') using (inference_id)
        where event_type = 'label' and json_extract_string(context, '$.region') = 'latam'
            and {" and ".join(where)}
        group by value
        """
    ).fetchall()
    return dict(rows)


def test_the_closed_loop_world_has_v1_only_the_region_as_input_and_a_learnable_change(
    world: tuple[Path, dict[str, Any]],
) -> None:
    out, truth = world
    assert truth["closed_loop"] is True
    assert [d["model_version"] for d in truth["deployments"]] == ["v1"]
    versions = duckdb.sql(
        f"select distinct model_version from read_parquet('{out}/inference_log/*.parquet')"
    ).fetchall()
    assert versions == [("v1",)]
    inputs = duckdb.sql(
        f"select count(*) filter (where json_extract_string(inputs, '$.region') is null), "
        f"count(*) filter (where json_extract_string(inputs, '$.region') "
        f"<> json_extract_string(context, '$.region')) "
        f"from read_parquet('{out}/inference_log/*.parquet')"
    ).fetchall()
    assert inputs == [(0, 0)]
    (change,) = truth["concept_drift"]
    start = date.fromisoformat(change["start_date"])
    before = _labels_in_latam(out, None, start)
    after = _labels_in_latam(out, start, None)
    share = change["relabelled_share"]
    # after the change, account = the relabelled share plus the rest's base rate of account
    expected = share + (1 - share) * before["account"]
    assert before["account"] < 0.5
    assert abs(after["account"] - expected) < 0.05  # ~3% of labels are wrong (corrected later)


def _constant_model(label: str) -> dict[str, Any]:
    """A built-in model's parameters that ignore the inputs and favour ``label``."""
    intercepts = [2.0 if name == label else 0.0 for name in LABELS]
    return {
        "classes": list(LABELS),
        "coefficients": [[0.0, 0.0, 0.0]],
        "intercepts": intercepts,
        "l2": 1.0,
        "features": {
            "numeric": [{"key": "sentiment", "mean": 0.0, "scale": 1.0}],
            "categorical": [],
        },
    }


def test_serving_a_day_replaces_the_predictions_and_keeps_the_rest(
    world: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    out, truth = world
    day = date.fromisoformat(truth["end_date"]) - timedelta(days=2)
    drawn = out / "inference_log" / f"{day}.parquet"
    served = serving.served_path(tmp_path, str(day))
    rows = serving.serve_day(drawn, served, "v7", _constant_model("technical"))
    before, after = pq.read_table(drawn).to_pandas(), pq.read_table(served).to_pandas()
    assert rows == len(before) == len(after)
    assert set(after["model_version"]) == {"v7"}
    assert set(after["predicted_label"]) == {"technical"}
    expected = np.exp(2.0) / (np.exp(2.0) + 2)
    assert np.allclose(after["predicted_score"], round(expected, 4))
    assert after["probabilities"].isna().tolist() == before["probabilities"].isna().tolist()
    probabilities = json.loads(after["probabilities"].dropna().iloc[0])
    assert list(probabilities) == list(LABELS)
    assert abs(sum(probabilities.values()) - 1) < 1e-3
    untouched = ["inference_id", "logged_at", "subject_id", "context", "inputs", "output_text"]
    assert after[untouched].equals(before[untouched])
    # the drawn world is left as generated
    assert pq.read_table(drawn).to_pandas().equals(before)


def test_serving_without_a_trained_model_copies_the_drawn_file(
    world: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    out, truth = world
    drawn = out / "inference_log" / f"{truth['start_date']}.parquet"
    served = tmp_path / "copy.parquet"
    serving.serve_day(drawn, served, "v1", None)
    assert pq.read_table(served).equals(pq.read_table(drawn))


def test_a_model_that_cannot_predict_every_label_is_refused(
    world: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    out, truth = world
    drawn = out / "inference_log" / f"{truth['start_date']}.parquet"
    parameters = _constant_model("billing")
    parameters["classes"] = ["billing", "technical"]
    parameters["intercepts"] = [1.0, 0.0]
    parameters["coefficients"] = [[0.0, 0.0]]
    with pytest.raises(ValueError, match="cannot predict account"):
        serving.serve_day(drawn, tmp_path / "x.parquet", "v9", parameters)
    assert not (tmp_path / "x.parquet").exists()

"""A retraining after a change learns the new concept: with the change point the decision cites,
the trainer learns from the examples logged since (or, with too few, weighs recency), and it is
judged on the held-out rows since, so the candidate that knows the new concept beats the
incumbent that does not; the change point comes from the decision's signals."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from feedback_flywheel.retraining import signals, trainer, training_window

CHANGE = datetime(2026, 2, 15)


def _world(n: int, seed: int) -> pd.DataFrame:
    """Rows over 60 days (a third after CHANGE); the label is "up" when x (plus noise) is
    above 0, except in region=latam from CHANGE on, where the boundary moves to 1.2 (a concept
    change a linear model that sees region can learn). The incumbent predicts the old concept
    everywhere."""
    rng = np.random.default_rng(seed)
    logged = datetime(2026, 1, 6) + pd.to_timedelta(rng.uniform(0, 60, n), unit="D")
    x = rng.normal(size=n)
    latam = rng.random(n) < 0.4
    noisy = x + rng.normal(scale=0.3, size=n)
    boundary = np.where(latam & (logged >= CHANGE), 1.2, 0.0)
    label = np.where(noisy > boundary, "up", "down")
    return pd.DataFrame(
        {
            "training_sample_id": [f"s{i}" for i in range(n)],
            "inference_id": [f"i{seed}-{i}" for i in range(n)],
            "model_name": "m",
            "model_version": "v1",
            "label": label,
            "predicted_label": np.where(x > 0, "up", "down"),
            "features_json": [
                json.dumps({"x": float(v), "region": "latam" if r else "emea"})
                for v, r in zip(x, latam, strict=True)
            ],
            "sample_weight": 1.0,
            "inference_logged_at": logged,
        }
    )


REGISTRY = pd.DataFrame(
    {
        "model_version": ["v1"],
        "deployed_at": [datetime(2026, 1, 1)],
        "training_run_id": [None],
        "parameters_json": [None],
    }
)


def _train(sample: pd.DataFrame, **options) -> trainer.TrainingResult:
    return trainer.train_and_evaluate(
        sample, REGISTRY, dataset_version="ds-b1", model_name="m", **options
    )


def test_learning_from_after_the_change_beats_the_incumbent_there() -> None:
    history = _world(4000, seed=1)
    after = history[history.inference_logged_at >= CHANGE].reset_index(drop=True)
    mixed = _train(history, since=CHANGE, after_change=after.head(10), min_rows_after_change=20)
    learned = _train(history, since=CHANGE, after_change=after)
    assert learned.beats_current, learned
    assert learned.accuracy_gain > 0.15
    window = learned.parameters["inputs"]["training_window"]
    assert window == {
        "mode": "after_change",
        "since": "2026-02-15",
        "rows_after_change": len(after),
        "min_rows_after_change": training_window.MIN_ROWS_AFTER_CHANGE,
    }
    assert learned.n_train + learned.n_holdout == len(after)
    # the candidate that learned from the mixed history is judged on the same world and does
    # worse: most of its rows teach the old concept
    assert mixed.parameters["inputs"]["training_window"]["mode"] == "recency_weighted"
    plain = _train(history)
    assert plain.training_run_id != learned.training_run_id
    assert learned.holdout_accuracy > plain.holdout_accuracy


def test_too_few_rows_after_the_change_weigh_recency_and_judge_after_it() -> None:
    sample = _world(3000, seed=2)
    few = sample[sample.inference_logged_at >= CHANGE].head(50)
    chosen, window = training_window.choose(sample, few, CHANGE, min_rows=500, half_life_days=7)
    assert window.mode == "recency_weighted" and window.rows_after_change == 50
    newest = sample.inference_logged_at.max()
    age = (newest - sample.inference_logged_at).dt.total_seconds() / 86400
    assert np.allclose(chosen.sample_weight, 2.0 ** (-age / 7))
    assert chosen.sample_weight.idxmax() == sample.inference_logged_at.idxmax()
    result = _train(sample, since=CHANGE, after_change=few)
    assert result.parameters["inputs"]["training_window"]["mode"] == "recency_weighted"
    holdout = sample[training_window.judged_after(sample, CHANGE)]
    assert (holdout.inference_logged_at >= CHANGE).all()
    # the comparison counted only held-out rows logged since the change
    held_out = trainer.holdout_mask(sample.inference_id, 0.2, 42)
    since = (sample.inference_logged_at >= CHANGE).to_numpy()
    assert result.n_holdout == int((held_out & since).sum())


def test_without_a_change_point_nothing_changes() -> None:
    sample = _world(500, seed=3)
    chosen, window = training_window.choose(sample, None, None)
    assert chosen is sample and window.mode == "all"
    assert training_window.judged_after(sample, None).all()
    future = training_window.judged_after(sample, datetime(2030, 1, 1))
    assert future.all(), "no held-out row after the change point: judge on all of them"
    with pytest.raises(ValueError, match="min_rows_after_change"):
        training_window.choose(sample, None, CHANGE, min_rows=0)


def test_without_drop_sizes_the_training_start_is_the_earliest_change_cited() -> None:
    fired = {"enabled": True, "fired": True}
    decision = {
        "covariate_drift": fired | {"change_points": {"message_length": "2026-02-05"}},
        "concept_drift": fired | {"change_points": {"region=latam (v2)": "2026-02-15"}},
        "fast_performance_drop": fired
        | {"change_points": {"overall (v2)": "2026-02-16", "device=web (v2)": "2026-02-14"}},
        "performance_drop": {"enabled": True, "fired": False, "change_points": {"x": "2026-01-01"}},
    }
    assert signals.training_start(decision) == "2026-02-14"
    drift_only = {"covariate_drift": decision["covariate_drift"]}
    assert signals.training_start(drift_only) == "2026-02-05"
    assert signals.training_start({"covariate_drift": fired}) is None
    disabled = {
        "concept_drift": {"enabled": False, "fired": True, "change_points": {"a": "2026-01-02"}}
    }
    assert signals.training_start(disabled) is None


def test_a_decision_records_the_drop_starts_of_its_impact_signals() -> None:
    found = {
        name: signals.Signal(name, True, True, True, -0.2, -0.03) for name in signals.IMPACT_SIGNALS
    }
    found["concept_drift"].detail["keys"] = [["v2", "region", "latam"], ["v2", "device", "web"]]
    found["performance_drop"].detail["keys"] = [["v2", "__all__", "__all__"]]
    starts = {("v2", "region", "latam"): "2026-02-15", ("v2", "__all__", "__all__"): "2026-02-16"}
    signals.attach_drop_starts(found, starts)
    assert found["concept_drift"].detail["change_points"] == {"region=latam (v2)": "2026-02-15"}
    assert found["performance_drop"].detail["change_points"] == {"overall (v2)": "2026-02-16"}
    assert found["fast_performance_drop"].detail["change_points"] == {}
    assert found["concept_drift"].detail["worst_drop_start"] == "2026-02-15"
    assert found["fast_performance_drop"].detail["worst_drop_start"] is None
    as_json = {name: signal.as_dict() for name, signal in found.items()}
    assert signals.training_start(as_json) == "2026-02-15"


def test_the_training_start_is_where_the_largest_drop_started() -> None:
    """A decision citing a small drop in another segment from an earlier day (noise, or a
    change the model need not learn) learns from the start of the largest drop."""
    fired = {"enabled": True, "fired": True}
    decision = {
        "performance_drop": fired | {"value": -0.05, "worst_drop_start": "2026-02-17"},
        "concept_drift": fired
        | {
            "value": -0.29,
            "worst_drop_start": "2026-02-15",
            "change_points": {"region=latam (v1)": "2026-02-15", "language=es (v1)": "2026-02-07"},
        },
        "fast_performance_drop": {
            "enabled": True,
            "fired": False,
            "value": -0.4,
            "worst_drop_start": "2026-01-02",
        },
    }
    assert signals.training_start(decision) == "2026-02-15"
    decision["performance_drop"]["value"] = -0.5
    assert signals.training_start(decision) == "2026-02-17"


def test_the_retrain_flow_refuses_a_bad_train_from() -> None:
    from flows.retrain import _day

    assert _day("2026-02-15") == CHANGE
    assert _day(None) is None
    assert _day("2026-02-15T13:00:00") == CHANGE
    with pytest.raises(ValueError, match="train_from must be an ISO day"):
        _day("last tuesday")
    assert CHANGE - timedelta(days=1) < _day("2026-02-15")

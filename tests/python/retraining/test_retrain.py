"""The built-in retraining: the optimiser against independent solutions, the metrics against
direct numpy computations, and the flow on (a private copy of) the demo warehouse."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from feedback_flywheel import warehouse
from feedback_flywheel.retraining import trainer as training
from tests.python.helpers import DemoWarehouse

# --- synthetic data and independent references --------------------------------------------------


def synthetic(n: int, n_features: int, n_classes: int, seed: int) -> tuple[np.ndarray, ...]:
    """Separable-ish data from a softmax model, with positive random weights."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, n_features))
    true_coef = rng.normal(scale=1.5, size=(n_features, n_classes))
    logits = features @ true_coef + rng.normal(size=n_classes)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    labels = np.array([f"c{rng.choice(n_classes, p=row)}" for row in probs], dtype=object)
    weights = rng.uniform(0.5, 2.0, size=n)
    return features, labels, weights


def reference_loss_and_gradient(
    features: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray,
    coef: np.ndarray,
    intercept: np.ndarray,
    classes: tuple[str, ...],
    l2: float,
) -> tuple[float, np.ndarray, np.ndarray]:
    """The objective written out row by row (no shared code with the module)."""
    total = weights.sum()
    loss = 0.0
    grad_coef = np.zeros_like(coef)
    grad_intercept = np.zeros_like(intercept)
    for x, label, weight in zip(features, labels, weights, strict=True):
        z = x @ coef + intercept
        shift = z.max()
        p = np.exp(z - shift) / np.exp(z - shift).sum()
        k = classes.index(label)
        loss += weight * -math.log(p[k])
        onehot = np.zeros(len(classes))
        onehot[k] = 1.0
        grad_coef += weight * np.outer(x, p - onehot)
        grad_intercept += weight * (p - onehot)
    loss = loss / total + 0.5 * l2 * float((coef**2).sum())
    return loss, grad_coef / total + l2 * coef, grad_intercept / total


def newton_binary_logistic(
    features: np.ndarray, y: np.ndarray, weights: np.ndarray, penalty: float, iterations: int = 50
) -> tuple[np.ndarray, float]:
    """Plain Newton (IRLS): sum_i s_i logloss_i / sum s + penalty/2 ||beta||^2, free intercept."""
    design = np.column_stack([features, np.ones(len(y))])
    share = weights / weights.sum()
    ridge = np.full(design.shape[1], penalty)
    ridge[-1] = 0.0
    theta = np.zeros(design.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(design @ theta)))
        gradient = design.T @ (share * (p - y)) + ridge * theta
        hessian = design.T @ (design * (share * p * (1 - p))[:, None]) + np.diag(ridge)
        step = np.linalg.solve(hessian, gradient)
        theta -= step
        if np.abs(step).max() < 1e-13:
            break
    return theta[:-1], float(theta[-1])


# --- the fit ----------------------------------------------------------------------------------


def test_fit_is_a_stationary_point_and_its_loss_matches_a_direct_recomputation() -> None:
    features, labels, weights = synthetic(600, 4, 3, seed=1)
    l2 = 0.01
    model = training.fit_multinomial_logistic(features, labels, weights, l2=l2)
    assert model.classes == ("c0", "c1", "c2")
    loss, grad_coef, grad_intercept = reference_loss_and_gradient(
        features, labels, weights, model.coef, model.intercept, model.classes, l2
    )
    assert np.abs(grad_coef).max() < 1e-6
    assert np.abs(grad_intercept).max() < 1e-6
    assert loss == pytest.approx(model.fit_info["loss"], abs=1e-10)
    assert model.fit_info["converged"]
    assert model.intercept.sum() == pytest.approx(0.0, abs=1e-12)  # centred
    # The fitted model separates the classes far better than chance.
    predicted = np.asarray(model.classes)[model.predict_proba(features).argmax(axis=1)]
    assert training.accuracy(labels, predicted) > 0.7
    # Weights matter: doubling every weight changes nothing, zeroing half of them does.
    doubled = training.fit_multinomial_logistic(features, labels, 2 * weights, l2=l2)
    np.testing.assert_allclose(doubled.coef, model.coef, atol=1e-5)
    halved = weights.copy()
    halved[:300] = 0.0
    partial = training.fit_multinomial_logistic(features, labels, halved, l2=l2)
    alone = training.fit_multinomial_logistic(features[300:], labels[300:], weights[300:], l2=l2)
    np.testing.assert_allclose(partial.coef, alone.coef, atol=1e-5)
    assert np.abs(partial.coef - model.coef).max() > 1e-2


def test_two_class_fit_matches_newton_irls() -> None:
    features, labels, weights = synthetic(500, 3, 2, seed=2)
    l2 = 0.05
    model = training.fit_multinomial_logistic(features, labels, weights, l2=l2)
    # Two softmax columns with penalty l2/2 (|w0|^2 + |w1|^2) are a binary logistic regression on
    # beta = w1 - w0 with penalty l2/4 |beta|^2 (at the optimum w0 = -w1).
    beta, beta0 = newton_binary_logistic(
        features, (labels == "c1").astype(float), weights, penalty=l2 / 2
    )
    np.testing.assert_allclose(model.coef[:, 1] - model.coef[:, 0], beta, atol=1e-4)
    assert model.intercept[1] - model.intercept[0] == pytest.approx(beta0, abs=1e-4)
    np.testing.assert_allclose(model.coef[:, 0], -model.coef[:, 1], atol=1e-4)


def test_fit_refuses_what_it_cannot_fit() -> None:
    features = np.zeros((3, 2))
    with pytest.raises(ValueError, match="two classes"):
        training.fit_multinomial_logistic(features, ["a", "a", "a"])
    with pytest.raises(ValueError, match="l2"):
        training.fit_multinomial_logistic(features, ["a", "b", "a"], l2=0.0)
    with pytest.raises(ValueError, match="non-negative"):
        training.fit_multinomial_logistic(features, ["a", "b", "a"], [1.0, -1.0, 1.0])


def test_parameters_round_trip_rescores_identically() -> None:
    features, labels, weights = synthetic(200, 3, 3, seed=3)
    model = training.fit_multinomial_logistic(features, labels, weights)
    again = training.LogisticModel.from_dict(json.loads(json.dumps(model.to_dict())))
    np.testing.assert_allclose(again.predict_proba(features), model.predict_proba(features))


# --- features -------------------------------------------------------------------------------


def test_features_impute_the_training_mean_and_one_hot_seen_categories() -> None:
    train = training.parse_features(
        [
            '{"x": 1, "flag": true, "colour": "red", "empty": null}',
            '{"x": 3, "flag": false, "colour": "blue"}',
            '{"flag": true, "colour": "red", "mixed": 1}',
            '{"x": 5, "colour": null, "mixed": "a"}',
            "not json",
        ]
    )
    spec = training.learn_features(train)
    assert spec.feature_names == [
        "flag",
        "x",
        "colour=blue",
        "colour=red",
        "mixed=1",
        "mixed=a",
    ]
    numeric = {key: (mean, scale) for key, mean, scale in spec.numeric}
    assert numeric["x"][0] == pytest.approx(3.0)
    # Standard deviation over all five rows after imputing the two missing ones with the mean.
    assert numeric["x"][1] == pytest.approx(np.std([1, 3, 3, 5, 3]))
    assert numeric["flag"][0] == pytest.approx(2 / 3)
    scored = spec.transform(
        training.parse_features(['{"x": "n/a", "colour": "green", "flag": true}', "{}"])
    )
    x_col, red, blue = 1, 3, 2
    assert scored[0, x_col] == 0.0 and scored[1, x_col] == 0.0  # imputed mean -> 0 after centring
    assert scored[0, red] == scored[0, blue] == 0.0  # unseen category: all zeros
    assert scored[0, 0] == pytest.approx((1 - 2 / 3) / numeric["flag"][1])
    again = training.FeatureSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    np.testing.assert_array_equal(again.transform(train), spec.transform(train))


def test_max_categories_keeps_the_most_frequent() -> None:
    records = [{"c": value} for value in ["a", "b", "b", "c", "c", "c"]]
    spec = training.learn_features(records, max_categories=2)
    assert spec.feature_names == ["c=b", "c=c"]


# --- split and metrics ------------------------------------------------------------------------


def test_holdout_is_deterministic_about_the_share_and_independent_of_the_sampling_hash() -> None:
    ids = [f"inf-{number:09d}" for number in range(20_000)]
    mask = training.holdout_mask(ids, 0.2, seed=42)
    assert mask.mean() == pytest.approx(0.2, abs=0.01)
    np.testing.assert_array_equal(mask, training.holdout_mask(ids, 0.2, seed=42))
    assert (mask != training.holdout_mask(ids, 0.2, seed=7)).mean() > 0.2
    expected = [
        int(hashlib.md5(f"holdout|{i}|42".encode()).hexdigest()[:8], 16) / 2**32 < 0.2
        for i in ids[:100]
    ]
    assert mask[:100].tolist() == expected
    sampling_key = np.array(
        [int(hashlib.md5(f"{i}:42".encode()).hexdigest()[:8], 16) / 2**32 for i in ids]
    )
    # The rows the warehouse's sampling prefers (smallest keys) are held out at the same rate.
    assert mask[sampling_key < 0.2].mean() == pytest.approx(0.2, abs=0.02)


def test_metrics_match_direct_numpy_computations() -> None:
    rng = np.random.default_rng(5)
    classes = ("a", "b", "c")
    y_true = rng.choice(classes, size=400)
    y_pred = np.where(rng.random(400) < 0.6, y_true, rng.choice(["a", "b"], size=400))
    probabilities = rng.dirichlet([1, 1, 1], size=400)

    assert training.accuracy(y_true, y_pred) == pytest.approx(np.mean(y_true == y_pred))
    confusion = np.zeros((3, 3))
    np.add.at(
        confusion,
        (
            np.searchsorted(classes, y_true),
            np.searchsorted(classes, y_pred),
        ),
        1,
    )
    tp = np.diag(confusion)
    precision = tp / confusion.sum(axis=0)
    recall = tp / confusion.sum(axis=1)
    f1 = 2 * precision * recall / (precision + recall)
    assert training.macro_f1(y_true, y_pred) == pytest.approx(f1.mean())
    picked = probabilities[np.arange(400), np.searchsorted(classes, y_true)]
    assert training.log_loss(y_true, probabilities, classes) == pytest.approx(
        -np.log(picked).mean()
    )
    # A class never predicted still counts (F1 0); a label unknown to the model costs -log(eps).
    assert training.macro_f1(["a", "b"], ["a", "a"]) == pytest.approx((2 / 3 + 0) / 2)
    assert training.log_loss(["z"], np.array([[0.5, 0.5]]), ("a", "b")) == pytest.approx(
        -math.log(training.LOG_LOSS_EPS)
    )
    assert math.isnan(training.accuracy([], []))


def test_baseline_comparison_is_a_paired_one_sided_test() -> None:
    rng = np.random.default_rng(6)
    y = rng.choice(["a", "b"], size=300)
    candidate = np.where(rng.random(300) < 0.8, y, "x")
    baseline = np.where(rng.random(300) < 0.7, y, "x")
    result = training.compare_with_baseline(y, candidate, baseline, min_improvement=0.01)
    d = (candidate == y).astype(float) - (baseline == y).astype(float)
    z = (d.mean() - 0.01) / (d.std(ddof=1) / math.sqrt(len(d)))
    assert result.gain == pytest.approx(d.mean())
    assert result.p_value == pytest.approx(stats.norm.sf(z))
    assert result.beats == (d.mean() > 0.01 and stats.norm.sf(z) <= 0.05)
    assert result.baseline_accuracy == pytest.approx(np.mean(baseline == y))
    same = training.compare_with_baseline(y, baseline, baseline)
    assert (same.gain, same.p_value, same.beats) == (0.0, 1.0, False)
    assert not training.compare_with_baseline(y, candidate, baseline, min_improvement=0.5).beats
    assert training.compare_with_baseline(y, candidate, baseline, min_improvement=-1.0).beats


def test_versions_and_registry_view() -> None:
    assert training.next_version(["v1", "v2"]) == "v3"
    assert training.next_version(["v9", "v10", "beta"]) == "v11"
    assert training.next_version(["alpha", "beta"]) == "v3"
    assert training.next_version([]) == "v1"
    registry = pd.DataFrame(
        {
            "model_version": ["v1", "v2", "v3"],
            "deployed_at": pd.to_datetime(["2026-01-01", "2026-01-05", "2026-02-01"]),
            "training_run_id": [None, "tr-a", "tr-b"],
            "parameters_json": [None, None, '{"classes": ["a", "b"]}'],
        }
    )
    fresh = training.registry_view(registry, "tr-new")
    assert (fresh.current_version, fresh.candidate_version, fresh.already_deployed) == (
        "v3",
        "v4",
        False,
    )
    assert fresh.current_parameters == {"classes": ["a", "b"]}
    rerun = training.registry_view(registry, "tr-b")
    assert (rerun.current_version, rerun.candidate_version, rerun.already_deployed) == (
        "v2",
        "v3",
        True,
    )
    empty = training.registry_view(registry.iloc[:0], "tr-new")
    assert (empty.current_version, empty.candidate_version) == (None, "v1")


# --- the flow on the demo warehouse ------------------------------------------------------------


@pytest.fixture()
def private_warehouse(demo_warehouse: DemoWarehouse, tmp_path: Path) -> Path:
    return demo_warehouse.copy_to(tmp_path / "w.duckdb")


def _runs(db_path: Path) -> pd.DataFrame:
    with warehouse.connect(db_path, read_only=True) as con:
        return con.execute("select * from ml.training_runs order by started_at, attempt").df()


def _deployments(db_path: Path) -> pd.DataFrame:
    with warehouse.connect(db_path, read_only=True) as con:
        return con.execute(
            """
            select deployments.*, ledger.file_path, ledger.row_count
            from raw.model_deployments as deployments
            left join raw.load_ledger as ledger on deployments._load_id = ledger.load_id
            order by deployed_at
            """
        ).df()


def _sample(db_path: Path, dataset_version: str) -> pd.DataFrame:
    with warehouse.connect(db_path, read_only=True) as con:
        return con.execute(
            "select * from marts.fct_training_sample where dataset_version = ?", [dataset_version]
        ).df()


def _latest_version(db_path: Path) -> str:
    with warehouse.connect(db_path, read_only=True) as con:
        (version,) = con.execute(
            "select max(dataset_version) from marts.fct_dataset_versions where sample_count > 0"
        ).fetchone()
    return version


def test_retrain_records_a_sensible_run_and_deploys_only_a_winner(private_warehouse: Path) -> None:
    from flows.retrain import retrain

    db_path = private_warehouse
    before = _deployments(db_path)
    summary = retrain(db_path=str(db_path), decision_id="dec-test")
    version = _latest_version(db_path)
    assert summary["dataset_version"] == version
    runs = _runs(db_path)
    assert len(runs) == 1
    run = runs.iloc[0]
    sample = _sample(db_path, version)
    sample = sample[sample.label.notna()]
    assert run.model_name == "support_router" and run.dataset_version == version
    assert run.decision_id == "dec-test"
    assert run.training_run_id.startswith(f"tr-{version}-support_router-")
    assert run.n_train + run.n_holdout == len(sample)
    assert run.n_holdout == pytest.approx(0.2 * len(sample), rel=0.25)
    assert run.holdout_accuracy > 0.5  # three classes: chance is 1/3
    assert run.holdout_macro_f1 > 0.45
    assert run.holdout_log_loss < math.log(3)
    assert run.baseline_model_version == "v2" and run.baseline_scope == "served"
    assert run.candidate_version == "v3"
    assert run.finished_at >= run.started_at and run.train_seconds > 0

    # Independent check: re-split by the documented hash, rescore from parameters_json.
    parameters = json.loads(run.parameters_json)
    held = sample[
        [
            int(hashlib.md5(f"holdout|{i}|42".encode()).hexdigest()[:8], 16) / 2**32 < 0.2
            for i in sample.inference_id
        ]
    ]
    assert len(held) == run.n_holdout
    probabilities = training.rescore(parameters, held.features_json)
    predicted = np.asarray(parameters["classes"])[probabilities.argmax(axis=1)]
    assert np.mean(predicted == held.label.to_numpy()) == pytest.approx(run.holdout_accuracy)
    served = held[held.model_version == "v2"]
    assert run.n_baseline == len(served)
    assert run.baseline_accuracy == pytest.approx(np.mean(served.predicted_label == served.label))

    after = _deployments(db_path)
    if run.beats_current:
        assert run.status == "deployed" and len(after) == len(before) + 1
    else:
        assert run.status == "not_deployed" and len(after) == len(before)

    # The same inputs give the same id: a second attempt, never a second deployment.
    again = retrain(db_path=str(db_path), dataset_version=version)
    assert again["training_runs"][0]["training_run_id"] == run.training_run_id
    runs = _runs(db_path)
    assert runs.attempt.tolist() == [1, 2]
    assert runs.holdout_accuracy.iloc[1] == run.holdout_accuracy
    assert len(_deployments(db_path)) == len(after)


def test_a_winner_is_deployed_through_ingest_and_a_loser_is_not(private_warehouse: Path) -> None:
    from flows.retrain import retrain

    db_path = private_warehouse
    before = _deployments(db_path)

    # Nothing can beat the current model by 50 points of accuracy: recorded, not deployed.
    lost = retrain(db_path=str(db_path), min_improvement=0.5)["training_runs"][0]
    assert (lost["status"], lost["beats_current"]) == ("not_deployed", False)
    assert len(_deployments(db_path)) == len(before)

    # Any candidate beats a margin of -1: deployed as v3 with its own ledger entry.
    won = retrain(db_path=str(db_path), min_improvement=-1.0)["training_runs"][0]
    assert (won["status"], won["beats_current"], won["candidate_version"]) == (
        "deployed",
        True,
        "v3",
    )
    assert won["training_run_id"] != lost["training_run_id"]
    after = _deployments(db_path)
    assert len(after) == len(before) + 1
    new = after.iloc[-1]
    assert (new.model_name, new.model_version, new.training_run_id) == (
        "support_router",
        "v3",
        won["training_run_id"],
    )
    assert pd.isna(new.retired_at)
    assert new._load_id == won["load_id"] and new.row_count == 1
    assert Path(new.file_path) == db_path.parent / "registry" / f"{won['training_run_id']}.parquet"
    pd.testing.assert_frame_equal(after.iloc[: len(before)], before)  # old rows untouched

    # A re-run of the deployed run: same id, status already_deployed, nothing appended.
    rerun = retrain(db_path=str(db_path), min_improvement=-1.0)["training_runs"][0]
    assert (rerun["training_run_id"], rerun["status"]) == (
        won["training_run_id"],
        "already_deployed",
    )
    assert len(_deployments(db_path)) == len(after)

    # The next run compares with v3, which served nothing: it is rescored from its parameters,
    # and the same model cannot beat itself.
    following = retrain(db_path=str(db_path), significance=1.0)["training_runs"][0]
    assert following["baseline_model_version"] == "v3"
    assert following["baseline_scope"] == "rescored"
    assert following["accuracy_gain"] == pytest.approx(0.0)
    assert following["status"] == "not_deployed"
    assert following["candidate_version"] == "v4"

    assert _runs(db_path).status.tolist() == [
        "not_deployed",
        "deployed",
        "already_deployed",
        "not_deployed",
    ]


def test_retrain_publishes_the_training_run_artifact(private_warehouse: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.retrain import retrain

    summary = retrain(db_path=str(private_warehouse), min_improvement=0.5)
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["training-run"]))
        )
    assert artifacts
    latest = max(artifacts, key=lambda artifact: artifact.created)
    assert summary["training_runs"][0]["training_run_id"] in latest.data
    assert "not deployed" in latest.data


def test_retrain_refuses_an_unknown_dataset_version_or_model(private_warehouse: Path) -> None:
    from flows.retrain import retrain

    with pytest.raises(LookupError, match="does not exist"):
        retrain(db_path=str(private_warehouse), dataset_version="ds-b19990101T000000")
    with pytest.raises(LookupError, match="no rows"):
        retrain(db_path=str(private_warehouse), model_name="nobody")
    with pytest.raises(ValueError, match="holdout_share"):
        retrain(db_path=str(private_warehouse), holdout_share=1.5)


def test_a_failed_training_is_recorded_and_raised(
    private_warehouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.retrain import retrain

    def broken(*args: Any, **kwargs: Any) -> None:
        raise ValueError("the optimiser exploded")

    monkeypatch.setattr(training, "train_and_evaluate", broken)
    with pytest.raises(RuntimeError, match="support_router: ValueError: the optimiser exploded"):
        retrain(db_path=str(private_warehouse))
    runs = _runs(private_warehouse)
    assert runs.status.tolist() == ["failed"]
    assert runs.error_message.iloc[0] == "ValueError: the optimiser exploded"
    assert runs.training_run_id.iloc[0].startswith("tr-ds-")


# --- triggering ---------------------------------------------------------------------------------


def test_trigger_with_a_deployment_name_calls_run_deployment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import prefect.deployments

    calls: list[dict[str, Any]] = []

    def fake_run_deployment(**kwargs: Any) -> SimpleNamespace:
        calls.append(kwargs)
        return SimpleNamespace(id="0b5c0f3e-0000-4000-8000-000000000001")

    monkeypatch.setattr(prefect.deployments, "run_deployment", fake_run_deployment)
    from flows.retrain import trigger_retraining

    run_id = trigger_retraining(
        "ds-b20260121T000000",
        "dec-b20260121T000000-support_router",
        deployment_name="my-training/prod",
        db_path=None,
    )
    assert run_id == "0b5c0f3e-0000-4000-8000-000000000001"
    assert calls == [
        {
            "name": "my-training/prod",
            "parameters": {
                "dataset_version": "ds-b20260121T000000",
                "decision_id": "dec-b20260121T000000-support_router",
            },
            "timeout": 0,
            # asked again after a crash, Prefect returns the same flow run
            "idempotency_key": "dec-b20260121T000000-support_router",
        }
    ]


def test_trigger_without_a_deployment_runs_the_builtin_flow(private_warehouse: Path) -> None:
    version = _latest_version(private_warehouse)
    from flows.retrain import trigger_retraining

    run_id = trigger_retraining(
        version, "dec-1", deployment_name=None, db_path=str(private_warehouse)
    )
    runs = _runs(private_warehouse)
    assert runs.training_run_id.tolist() == [run_id]
    assert runs.decision_id.tolist() == ["dec-1"]
    assert runs.dataset_version.tolist() == [version]

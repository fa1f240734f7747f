"""The reward stage of one batch: retrain, promote, rank the model versions, score new outputs.

What it reads (all built by dbt, read through :mod:`.store`): ``marts.fct_preference_pairs``
(judgements of two outputs of the same context, with provenance, weight and a train / validation
split by context) and ``marts.fct_output_features`` (the features φ(x) of an output, computed in
SQL: word, character and sentence counts, has_question, the keyword flags of var
``reward_text_keywords``, and ``predicted_score``; a pair whose output has no ``output_text`` has
no features and is left out). What it writes (declared in feedback_flywheel/warehouse/schema.py):

- ``ml.reward_models``: one row per batch: trained or skipped, the version, its pairs window,
  held-out pairwise accuracy, log loss and calibration error of σ(Δr) against the observed win
  rates, the incumbent's metrics on the same validation pairs, the parameters (JSON), whether it
  was promoted and why.
- ``ml.reward_scores``: the scores of new outputs by the current (promoted) version, one row per
  (inference_id, version), with an ``input_hash`` of the exact features scored.
- ``ml.reward_leaderboard``: the item-level Bradley–Terry fit (one strength per model version)
  with cluster-bootstrap intervals, and the mean reward score per version.

Each batch retrains on all accumulated pairs, warm-started from the current version, when enough
new pairs arrived (:mod:`.training`, maths in :mod:`.bradley_terry`); a candidate is promoted only
when it beats the current version on the same validation pairs (:func:`_promotion`, policy in
``policies/reward.yml``). A batch is processed once: re-running it finds its ``ml.reward_models``
row and changes nothing.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from feedback_flywheel import audit
from feedback_flywheel.config.policies import RewardPolicy
from feedback_flywheel.rewards import store, training
from feedback_flywheel.rewards.leaderboard import fit_leaderboard
from feedback_flywheel.rewards.model import RewardModel, input_hash

__all__ = ["RewardOutcome", "run_batch"]

#: record keys left out of the audit payload (a timestamp, the raw JSON, a timing)
_NOT_AUDITED = ("created_at", "parameters_json", "train_seconds")
#: record keys reported in RewardOutcome.metrics
_METRIC_KEYS = (
    "heldout_pairs",
    "heldout_accuracy",
    "heldout_log_loss",
    "heldout_calibration_error",
    "current_heldout_accuracy",
    "current_heldout_log_loss",
    "n_pairs_train",
    "n_pairs_validation",
    "n_pairs_new",
)


@dataclass
class RewardOutcome:
    """What the reward stage did for one batch (also one row of ml.reward_models)."""

    batch_id: str
    status: str  # trained | skipped | already_done
    reward_model_version: str | None
    is_promoted: bool
    current_version: str | None
    reason: str
    scored: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for the flow's log and its artifact."""
        head = f"reward model, batch {self.batch_id}: {self.status}"
        if self.reward_model_version:
            head += f" {self.reward_model_version}"
            head += " (promoted)" if self.is_promoted else " (not promoted)"
        return (
            f"{head}; current {self.current_version or 'none'}; {self.reason}; scored {self.scored}"
        )


@dataclass(frozen=True)
class _BatchInputs:
    """What the stage reads before deciding anything: the feature names, the accumulated pairs
    whose outputs have features (with their raw feature matrices), the version in force, and
    (version, pairs_to_batch_id) of the latest trained version."""

    names: list[str]
    pairs: pd.DataFrame
    low: np.ndarray
    high: np.ndarray
    incumbent: RewardModel | None
    last_trained: tuple[str, str] | None


def run_batch(
    con: duckdb.DuckDBPyConnection,
    *,
    batch_id: str,
    window_start: datetime,
    window_end: datetime,
    policy: RewardPolicy,
    audit_key: bytes,
    lookback_days: int = 3,
    now: datetime | None = None,
) -> RewardOutcome:
    """The reward stage of one batch: train (when enough new pairs arrived), promote (when the
    candidate beats the current version), fit the leaderboard, score new outputs by the current
    version. Everything is written in one transaction with its audit row; a batch that already
    has its ml.reward_models row is left alone."""
    done = _already_done(con, batch_id)
    if done is not None:
        return done
    now = now or datetime.now(UTC).replace(tzinfo=None)
    inputs = _read_inputs(con, batch_id)
    record = _base_record(batch_id, inputs, policy, now)
    candidate: RewardModel | None = None
    skipped = _skip_reason(record, inputs, policy)
    if skipped is not None:
        record["reason"] = skipped
    else:
        candidate, trained = _train_and_judge(batch_id, inputs, policy)
        record.update(trained)
    scorer = candidate if record["is_promoted"] else inputs.incumbent
    pairs = inputs.pairs
    board = fit_leaderboard(pairs, policy, policy.training.ties) if len(pairs) else pd.DataFrame()
    with audit.atomic(con):
        store.insert_model_row(con, record)
        scored = 0
        if scorer is not None:
            scored = _score_outputs(
                con, scorer, batch_id, window_start, window_end, lookback_days, now
            )
        if len(board):
            _write_leaderboard(con, board, scorer, batch_id, now)
        _record_audit(con, audit_key, record, batch_id, scored)
    return RewardOutcome(
        batch_id=batch_id,
        status=record["status"],
        reward_model_version=record["reward_model_version"],
        is_promoted=record["is_promoted"],
        current_version=record["current_version"],
        reason=record["reason"],
        scored=scored,
        metrics={key: record.get(key) for key in _METRIC_KEYS},
    )


# --- the steps of a batch -----------------------------------------------------------------------


def _already_done(con: duckdb.DuckDBPyConnection, batch_id: str) -> RewardOutcome | None:
    """What an earlier run did for this batch, when it has its ml.reward_models row."""
    row = store.processed_row(con, batch_id)
    if row is None:
        return None
    return RewardOutcome(
        batch_id=batch_id,
        status="already_done",
        reward_model_version=row[1],
        is_promoted=bool(row[2]),
        current_version=row[3],
        reason=f"batch already processed ({row[0]}); nothing changed. Earlier: {row[4]}",
    )


def _read_inputs(con: duckdb.DuckDBPyConnection, batch_id: str) -> _BatchInputs:
    """The pairs completed by the batch, the features of their outputs, and the model history."""
    names = store.feature_columns(con)
    pairs = store.load_pairs(con, batch_id)
    incumbent = store.current_model(con)
    last_trained = store.last_trained(con)
    outputs = sorted(set(pairs.inference_id_low) | set(pairs.inference_id_high))
    features = store.load_features(con, outputs)
    pairs, low, high = training.usable_pairs(pairs, features, names)
    return _BatchInputs(names, pairs, low, high, incumbent, last_trained)


def _new_pairs(inputs: _BatchInputs) -> int:
    """Pairs that arrived after the latest trained version's pairs window (all pairs before the
    first training). The model's own echo (reward_model pairs) never counts as new."""
    pairs = inputs.pairs
    since = inputs.last_trained[1] if inputs.last_trained else None
    fresh = pairs.pair_source != training.ECHO_SOURCE
    return int((fresh & (pairs.batch_id > since)).sum()) if since else int(fresh.sum())


def _base_record(
    batch_id: str, inputs: _BatchInputs, policy: RewardPolicy, now: datetime
) -> dict[str, Any]:
    """The batch's ml.reward_models row as a skip: counts and provenance, nothing trained, the
    incumbent kept. Training fills in the rest."""
    pairs, incumbent = inputs.pairs, inputs.incumbent
    train = pairs.split == "train"
    return {
        "batch_id": batch_id,
        "reward_model_version": None,
        "status": "skipped",
        "is_promoted": False,
        "current_version": incumbent.version if incumbent else None,
        "previous_version": incumbent.version if incumbent else None,
        "pairs_from_batch_id": pairs.batch_id.min() if len(pairs) else None,
        "pairs_to_batch_id": batch_id,
        "n_pairs_train": int(train.sum()),
        "n_pairs_validation": int((pairs.split == "validation").sum()),
        "n_pairs_new": _new_pairs(inputs),
        "n_ties_train": int((train & (pairs.preferred_output == "tie")).sum()),
        "policy_version": policy.policy_version,
        "created_at": now,
    }


def _skip_reason(record: dict[str, Any], inputs: _BatchInputs, policy: RewardPolicy) -> str | None:
    """Why this batch trains nothing (too few pairs, or too few new ones), or None to train."""
    settings = policy.training
    n_train, new_pairs = record["n_pairs_train"], record["n_pairs_new"]
    incumbent, last = inputs.incumbent, inputs.last_trained
    if n_train < settings.min_pairs:
        return (
            f"too few pairs to train: {n_train} in the train split < training.min_pairs "
            f"{settings.min_pairs}; "
            + ("keeping " + incumbent.version if incumbent else "no model yet")
        )
    if last is not None and new_pairs < settings.min_new_pairs:
        return (
            f"too few new pairs: {new_pairs} since {last[0]} (pairs up to "
            f"{last[1]}) < training.min_new_pairs {settings.min_new_pairs}; keeping "
            f"{incumbent.version if incumbent else 'no model'}"
        )
    return None


def _train_and_judge(
    batch_id: str, inputs: _BatchInputs, policy: RewardPolicy
) -> tuple[RewardModel, dict[str, Any]]:
    """Train the batch's candidate, compare it with the incumbent on the same validation pairs,
    decide promotion; returns the candidate and the record fields of a trained batch."""
    version = f"rm-{batch_id}"
    incumbent = inputs.incumbent
    started = time.perf_counter()
    candidate, fit, warm_used = training.train_candidate(
        version, inputs.pairs, inputs.low, inputs.high, inputs.names, policy, incumbent
    )
    validation = training.ValidationPairs.of(inputs.pairs, inputs.low, inputs.high, inputs.names)
    scores = validation.metrics(candidate)
    previous = validation.metrics(incumbent) if incumbent is not None else None
    promote, why = _promotion(scores, previous, incumbent, policy)
    warm_from = incumbent.version if warm_used and incumbent else None
    candidate.extra.update({"warm_started_from": warm_from, "iterations": fit.iterations})
    kept = incumbent.version if incumbent else None
    return candidate, {
        "reward_model_version": version,
        "status": "trained",
        "is_promoted": promote,
        "current_version": version if promote else kept,
        "reason": why,
        "heldout_pairs": scores["pairs"],
        "heldout_accuracy": scores["accuracy"],
        "heldout_log_loss": scores["log_loss"],
        "heldout_calibration_error": scores["ece"],
        "current_heldout_accuracy": previous["accuracy"] if previous else None,
        "current_heldout_log_loss": previous["log_loss"] if previous else None,
        "warm_started_from": warm_from,
        "optimizer_iterations": fit.iterations,
        "converged": fit.converged,
        "train_seconds": round(time.perf_counter() - started, 4),
        "parameters_json": candidate.to_json(),
    }


def _promotion(
    scores: dict[str, Any],
    previous: dict[str, Any] | None,
    incumbent: RewardModel | None,
    policy: RewardPolicy,
) -> tuple[bool, str]:
    """Whether the candidate beats the current version on the same validation pairs, and why."""
    rules = policy.promotion
    if scores["pairs"] == 0:
        return False, "no decisive validation pairs to compare on; not promoted"
    accuracy = f"held-out accuracy {scores['accuracy']:.3f}, log loss {scores['log_loss']:.4f}"
    if previous is None or incumbent is None:
        if scores["accuracy"] > rules.min_accuracy:
            return True, f"first reward model: {accuracy} > coin {rules.min_accuracy}; promoted"
        return False, f"first reward model: {accuracy} not above {rules.min_accuracy}"
    if rules.metric == "log_loss":
        gain = previous["log_loss"] - scores["log_loss"]
        against = f"log loss {scores['log_loss']:.4f} vs {previous['log_loss']:.4f}"
    else:
        gain = scores["accuracy"] - previous["accuracy"]
        against = f"accuracy {scores['accuracy']:.3f} vs {previous['accuracy']:.3f}"
    if gain > rules.min_improvement:
        where = f"on {scores['pairs']} validation pairs"
        return True, f"beats {incumbent.version} {where} ({against}); promoted"
    return False, (
        f"does not beat {incumbent.version} on {scores['pairs']} validation pairs ({against}, "
        f"needs an improvement > {rules.min_improvement}); keeping {incumbent.version}"
    )


def _score_outputs(
    con: duckdb.DuckDBPyConnection,
    scorer: RewardModel,
    batch_id: str,
    window_start: datetime,
    window_end: datetime,
    lookback_days: int,
    now: datetime,
) -> int:
    """Score the outputs of the batch window (and the pairs' outputs) that ``scorer`` has not
    scored yet; returns how many rows were written."""
    outputs = store.outputs_to_score(con, scorer.version, window_start, window_end, lookback_days)
    if not len(outputs):
        return 0
    raw = outputs.reindex(columns=scorer.feature_names).astype(float).fillna(0.0)
    frame = pd.DataFrame(
        {
            "inference_id": outputs.inference_id,
            "reward_model_version": scorer.version,
            "batch_id": batch_id,
            "score": scorer.score(outputs),
            "input_hash": [input_hash(scorer.feature_names, row) for row in raw.to_numpy()],
            "scored_at": now,
        }
    )
    store.insert_scores(con, frame)
    return len(frame)


def _write_leaderboard(
    con: duckdb.DuckDBPyConnection,
    board: pd.DataFrame,
    scorer: RewardModel | None,
    batch_id: str,
    now: datetime,
) -> None:
    """The fitted board with the mean score of each version by ``scorer`` (after this batch's
    scores are written, so they count)."""
    means = store.mean_rewards(con, scorer.version if scorer else "")
    board = board.merge(means, on="item", how="left")
    board["scored_outputs"] = board.scored_outputs.fillna(0).astype(int)
    board["batch_id"] = batch_id
    board["computed_at"] = now
    store.insert_leaderboard(con, board)


def _record_audit(
    con: duckdb.DuckDBPyConnection,
    key: bytes,
    record: dict[str, Any],
    batch_id: str,
    scored: int,
) -> None:
    """The batch's audit row: the record (parameters as JSON, not as text) and the scored count."""
    parameters = record.get("parameters_json")
    audit.record(
        con,
        key=key,
        kind="reward_model",
        subject_id=record["reward_model_version"] or f"reward-{batch_id}",
        batch_id=batch_id,
        payload={key: value for key, value in record.items() if key not in _NOT_AUDITED}
        | {
            "parameters": json.loads(parameters) if parameters else None,
            "scored_outputs": scored,
        },
    )

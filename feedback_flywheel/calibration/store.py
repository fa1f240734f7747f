"""The reads and writes of the sampling-policy evaluation: the labelled batches it learns from
(``marts.fct_training_examples``, as every dataset version saw it) and the curves and scores it
writes (``ml.sampling_policy_curves``, ``ml.sampling_policy_scores``), once per batch."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb
import pandas as pd

from feedback_flywheel.calibration import bandit, evaluation
from feedback_flywheel.config.vars import FlywheelVars
from feedback_flywheel.warehouse import schema
from feedback_flywheel.warehouse.catalogue import (
    FCT_TRAINING_EXAMPLES,
    SAMPLING_POLICY_CURVES,
    SAMPLING_POLICY_SCORES,
)

CURVES_TABLE = schema.ML_TABLES["sampling_policy_curves"]
SCORES_TABLE = schema.ML_TABLES["sampling_policy_scores"]

#: the examples' columns a pool carries (the scores as fct_training_sample computes them)
_POOL_SELECT = """
    inference_id, label, features_json, coalesce(sample_weight, 1.0) as sample_weight,
    1 - coalesce(probability_top1, predicted_score) as least_confidence_score,
    1 - (probability_top1 - probability_top2) as margin_score,
    probability_entropy as entropy_score
"""


@dataclass(frozen=True)
class EvaluationOutcome:
    """What one batch's evaluation did: models evaluated, or that it had already run."""

    batch_id: str
    models: tuple[str, ...]
    already_evaluated: bool = False

    def summary(self) -> str:
        if self.already_evaluated:
            return f"sampling policies: batch {self.batch_id} already evaluated"
        if not self.models:
            return (
                f"sampling policies: batch {self.batch_id} not evaluated (no model has two "
                "labelled batches yet, or var sampling_policy_pairs is 0)"
            )
        return f"sampling policies: evaluated {', '.join(self.models)} for batch {self.batch_id}"


#: a row of the examples as of a batch (parameters: the batch id twice): added by then, not
#: superseded by then, labelled
_AS_OF = (
    "batch_id <= ? and (superseded_in_batch_id is null or superseded_in_batch_id > ?) "
    "and label is not null"
)


def pairs_of_model(
    con: duckdb.DuckDBPyConnection, model_name: str, batch_id: str, count: int
) -> list[evaluation.BatchPair]:
    """The model's last ``count`` pairs (t, t+1) of consecutive batches in which labelled
    examples entered, up to ``batch_id``: the pool as of t, the labels that entered in t+1."""
    batches = [
        row[0]
        for row in con.execute(
            f"select distinct batch_id from {FCT_TRAINING_EXAMPLES} "
            "where model_name = ? and batch_id <= ? and label is not null order by batch_id",
            [model_name, batch_id],
        ).fetchall()
    ]
    pairs = []
    for train, test in list(itertools.pairwise(batches))[-count:] if count else []:
        pool = con.execute(
            f"select {_POOL_SELECT} from {FCT_TRAINING_EXAMPLES} "
            f"where model_name = ? and {_AS_OF} order by inference_id",
            [model_name, train, train],
        ).df()
        held = con.execute(
            f"select inference_id, label, features_json from {FCT_TRAINING_EXAMPLES} "
            f"where model_name = ? and batch_id = ? and {_AS_OF} order by inference_id",
            [model_name, test, test, test],
        ).df()
        held = held[~held["inference_id"].isin(pool["inference_id"])].reset_index(drop=True)
        if len(pool) and len(held):
            pairs.append(evaluation.BatchPair(train, test, pool, held))
    return pairs


def evaluate_batch(
    con: duckdb.DuckDBPyConnection, batch_id: str, settings: FlywheelVars
) -> EvaluationOutcome:
    """Evaluate every model's query policies for ``batch_id`` and write the curves and scores.

    A batch already evaluated is left as it is (a re-run reads the same evidence); a model with
    no pair of labelled batches yet gets no rows.
    """
    recorded = con.execute(
        f"select distinct model_name from {SAMPLING_POLICY_SCORES} where batch_id = ?", [batch_id]
    ).fetchall()
    if recorded:
        return EvaluationOutcome(batch_id, tuple(sorted(row[0] for row in recorded)), True)
    models = [
        row[0]
        for row in con.execute(
            f"select distinct model_name from {FCT_TRAINING_EXAMPLES} order by model_name"
        ).fetchall()
    ]
    seeds = evaluation.seeds_of(settings.sampling_seed, settings.sampling_policy_seeds)
    now = datetime.now(UTC).replace(tzinfo=None)
    curves, scores = [], []
    for model_name in models:
        pairs = pairs_of_model(con, model_name, batch_id, settings.sampling_policy_pairs)
        if not pairs:
            continue
        per_seed = evaluation.per_seed(
            evaluation.trials(pairs, settings.sampling_policy_budgets, seeds)
        )
        common = {
            "batch_id": batch_id,
            "model_name": model_name,
            "first_train_batch_id": pairs[0].train_batch_id,
            "last_test_batch_id": pairs[-1].test_batch_id,
            "pairs": len(pairs),
            "computed_at": now,
        }
        curves.append(evaluation.curves(per_seed).assign(**common))
        model_scores = evaluation.scores(per_seed).assign(**common)
        scores.append(with_bandit_round(con, model_scores, batch_id, model_name, settings))
    if curves:
        # One transaction: a crash leaves both tables as they were, and the re-run evaluates.
        con.execute("begin transaction")
        try:
            con.execute(f"delete from {SAMPLING_POLICY_CURVES} where batch_id = ?", [batch_id])
            schema.insert_frame(con, CURVES_TABLE, pd.concat(curves))
            schema.insert_frame(con, SCORES_TABLE, pd.concat(scores))
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
    return EvaluationOutcome(batch_id, tuple(frame["model_name"].iloc[0] for frame in scores))


def previous_round(
    con: duckdb.DuckDBPyConnection, model_name: str, batch_id: str
) -> bandit.PreviousRound | None:
    """The model's last bandit round before ``batch_id`` (None: this is its first)."""
    rows = con.execute(
        f"select policy, exp3_log_weight, exp3_probability, is_exp3_draw "
        f"from {SAMPLING_POLICY_SCORES} where model_name = ? and batch_id = ("
        f"select max(batch_id) from {SAMPLING_POLICY_SCORES} where model_name = ? "
        "and batch_id < ? and exp3_probability is not null) order by policy",
        [model_name, model_name, batch_id],
    ).fetchall()
    drawn = [policy for policy, _, _, is_drawn in rows if is_drawn]
    if not drawn:
        return None
    return bandit.PreviousRound(
        log_weights={policy: weight for policy, weight, _, _ in rows},
        probabilities={policy: probability for policy, _, probability, _ in rows},
        drawn=drawn[0],
    )


def with_bandit_round(
    con: duckdb.DuckDBPyConnection,
    model_scores: pd.DataFrame,
    batch_id: str,
    model_name: str,
    settings: FlywheelVars,
) -> pd.DataFrame:
    """The model's scores of this evaluation with the Exp3 round it plays beside each policy."""
    gamma = settings.sampling_policy_exp3_gamma
    played = bandit.exp3_round(
        model_scores["policy"].tolist(),
        dict(zip(model_scores["policy"], model_scores["aulc_mean"], strict=True)),
        previous_round(con, model_name, batch_id),
        gamma,
        bandit.draw_key(model_name, batch_id, settings.sampling_seed),
    )
    rounds = pd.DataFrame(
        {
            "policy": played.policies,
            "exp3_log_weight": played.log_weights,
            "exp3_probability": played.probabilities,
            "exp3_reward": [
                played.reward if policy == played.credited else None for policy in played.policies
            ],
            "is_exp3_draw": [policy == played.drawn for policy in played.policies],
            "exp3_gamma": gamma,
        }
    )
    return model_scores.merge(rounds, on="policy", how="left", validate="one_to_one")

"""Every read and write of the warehouse the reward stage makes.

Reads only dbt's public marts (``marts.fct_preference_pairs``, ``marts.fct_output_features``) and
the reward stage's own ``ml`` tables, all named through the relation catalogue; writes go to the
``ml`` tables declared in :mod:`feedback_flywheel.warehouse.schema`, with the columns declared
there. Nothing here decides anything: :mod:`.stage` composes these.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb
import pandas as pd

from feedback_flywheel.rewards.model import RewardModel
from feedback_flywheel.warehouse import schema
from feedback_flywheel.warehouse.catalogue import (
    FCT_OUTPUT_FEATURES,
    FCT_PREFERENCE_PAIRS,
    REWARD_LEADERBOARD,
    REWARD_MODELS,
    REWARD_SCORES,
)

#: Columns of fct_output_features that are not features.
NON_FEATURE_COLUMNS = ("inference_id", "model_name", "model_version", "context_id", "logged_at")

# --- the inputs of a batch ----------------------------------------------------------------------


def feature_columns(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The feature columns of fct_output_features, in table order (the keyword flags follow var
    ``reward_text_keywords``, so they are read from the table, not listed here)."""
    rows = con.execute(
        """
        select column_name from information_schema.columns
        where table_schema = ? and table_name = ?
        order by ordinal_position
        """,
        [FCT_OUTPUT_FEATURES.schema, FCT_OUTPUT_FEATURES.name],
    ).fetchall()
    return [name for (name,) in rows if name not in NON_FEATURE_COLUMNS]


def load_pairs(con: duckdb.DuckDBPyConnection, batch_id: str) -> pd.DataFrame:
    """Every pair of fct_preference_pairs completed by ``batch_id`` (the accumulated pairs)."""
    return con.execute(
        f"""
        select
            preference_pair_id, pair_key, context_id, inference_id_low, inference_id_high,
            first_shown_inference_id, preferred_output, pair_source, annotator_id, model_name,
            model_version_low, model_version_high, split, batch_id, pair_weight
        from {FCT_PREFERENCE_PAIRS}
        where batch_id <= ?
        order by preference_pair_id
        """,
        [batch_id],
    ).df()


def load_features(con: duckdb.DuckDBPyConnection, inference_ids: list[str]) -> pd.DataFrame:
    """Features of the given outputs, indexed by inference_id (outputs without features, e.g.
    without ``output_text``, are absent)."""
    frame = pd.DataFrame({"inference_id": pd.Series(inference_ids, dtype=object)})
    con.register("wanted_outputs", frame)
    try:
        result = con.execute(
            f"""
            select features.* from {FCT_OUTPUT_FEATURES} as features
            inner join wanted_outputs using (inference_id)
            order by features.inference_id
            """
        ).df()
    finally:
        con.unregister("wanted_outputs")
    return result.set_index("inference_id")


def current_model(con: duckdb.DuckDBPyConnection) -> RewardModel | None:
    """The promoted version in force (the latest promoted one), or None before the first."""
    rows = con.execute(
        f"""
        select reward_model_version, parameters_json from {REWARD_MODELS}
        where is_promoted order by batch_id desc limit 1
        """
    ).fetchall()
    return RewardModel.from_json(rows[0][0], rows[0][1]) if rows else None


def last_trained(con: duckdb.DuckDBPyConnection) -> tuple[str, str] | None:
    """(version, pairs_to_batch_id) of the latest trained version, promoted or not: new pairs
    are counted from its pairs window."""
    rows = con.execute(
        f"""
        select reward_model_version, pairs_to_batch_id from {REWARD_MODELS}
        where status = 'trained' order by batch_id desc limit 1
        """
    ).fetchall()
    return rows[0] if rows else None


def processed_row(con: duckdb.DuckDBPyConnection, batch_id: str) -> tuple[Any, ...] | None:
    """(status, reward_model_version, is_promoted, current_version, reason) of the batch's
    ml.reward_models row, or None when the batch has not been processed."""
    rows = con.execute(
        f"""
        select status, reward_model_version, is_promoted, current_version, reason
        from {REWARD_MODELS} where batch_id = ?
        """,
        [batch_id],
    ).fetchall()
    return rows[0] if rows else None


def outputs_to_score(
    con: duckdb.DuckDBPyConnection,
    version: str,
    window_start: datetime,
    window_end: datetime,
    lookback_days: int,
) -> pd.DataFrame:
    """New outputs (logged in the batch window, or within lookback_days before it for late
    files) and the outputs of preference pairs, not yet scored by ``version``."""
    return con.execute(
        f"""
        with wanted as (
            select inference_id from {FCT_OUTPUT_FEATURES}
            where logged_at < ?
                and logged_at >= ? - interval {int(lookback_days)} day
            union
            select inference_id_low from {FCT_PREFERENCE_PAIRS}
            union
            select inference_id_high from {FCT_PREFERENCE_PAIRS}
        )
        select features.* from {FCT_OUTPUT_FEATURES} as features
        inner join wanted using (inference_id)
        where features.logged_at < ?
            and not exists (
                select 1 from {REWARD_SCORES} as scores
                where scores.inference_id = features.inference_id
                    and scores.reward_model_version = ?
            )
        order by features.inference_id
        """,
        [window_end, window_start, window_end, version],
    ).df()


def mean_rewards(con: duckdb.DuckDBPyConnection, version: str) -> pd.DataFrame:
    """Per item (``model_name:model_version``), the mean score by ``version`` of its outputs and
    how many outputs that is (every score written so far, this batch's included)."""
    return con.execute(
        f"""
        select features.model_name || ':' || features.model_version as item,
            avg(scores.score) as mean_reward, count(*) as scored_outputs
        from {REWARD_SCORES} as scores
        inner join {FCT_OUTPUT_FEATURES} as features using (inference_id)
        where scores.reward_model_version = ?
        group by 1
        """,
        [version],
    ).df()


# --- the outputs of a batch ---------------------------------------------------------------------


def insert_model_row(con: duckdb.DuckDBPyConnection, record: dict[str, Any]) -> None:
    """The batch's one ml.reward_models row."""
    schema.insert_frame(con, schema.REWARD_MODELS, pd.DataFrame([record]))


def insert_scores(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame) -> None:
    """Scores of outputs by one version (ml.reward_scores rows)."""
    schema.insert_frame(con, schema.REWARD_SCORES, frame)


def insert_leaderboard(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame) -> None:
    """The batch's leaderboard (ml.reward_leaderboard rows)."""
    schema.insert_frame(con, schema.REWARD_LEADERBOARD, frame)


# --- reading for people -------------------------------------------------------------------------


def status_frame(con: duckdb.DuckDBPyConnection, limit: int = 10) -> pd.DataFrame:
    """The latest ml.reward_models rows (newest first)."""
    return con.execute(
        f"""
        select batch_id, status, reward_model_version, is_promoted, current_version,
            n_pairs_train, n_pairs_validation, n_pairs_new, heldout_accuracy, heldout_log_loss,
            heldout_calibration_error, reason
        from {REWARD_MODELS} order by batch_id desc limit ?
        """,
        [limit],
    ).df()


def leaderboard_frame(con: duckdb.DuckDBPyConnection, batch_id: str | None = None) -> pd.DataFrame:
    """The leaderboard of a batch (default: the latest one that has one)."""
    if batch_id is None:
        batch_id = con.execute(f"select max(batch_id) from {REWARD_LEADERBOARD}").fetchall()[0][0]
    return con.execute(
        f"""
        select batch_id, rank, item, strength, strength_lower, strength_upper,
            cross_version_comparisons, wins, losses, ties, is_identified, mean_reward,
            scored_outputs
        from {REWARD_LEADERBOARD} where batch_id = ? order by rank nulls last, item
        """,
        [batch_id],
    ).df()

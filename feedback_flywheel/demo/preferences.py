"""Preference judgments of the tickets answered twice, and the hidden quality behind them.

Each pair is judged 1-3 times by distinct annotators (humans and AI judges) with a Bradley–Terry
model on the two replies' latent quality, a bias towards the first-shown reply, and ties when
the qualities are close. ``latent_quality.parquet`` holds the hidden quality of every judged
reply, so the warehouse's fit can be checked against it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from feedback_flywheel.demo.constants import (
    JUDGMENTS_PER_PAIR_PROBS,
    N_AI_JUDGES,
    N_HUMAN_ANNOTATORS,
    POSITION_BIAS,
    TIE_PROBABILITY,
    TIE_THRESHOLD,
    US_PER_DAY,
    US_PER_MINUTE,
)
from feedback_flywheel.demo.draws import pick, uniform_us
from feedback_flywheel.demo.writers import (
    contract_schema,
    text_columns,
    timestamps,
    write_daily,
    write_parquet,
)
from feedback_flywheel.warehouse.contract import RAW_TABLES


def draw_preferences(
    rng: np.random.Generator, world: dict[str, Any], end_us: int
) -> dict[str, Any]:
    """Judge each pair 1-3 times with a Bradley–Terry model, position bias and ties.

    Returns per judgment received in the history, in received order: the pair, its context
    number, the rows shown as a and b, the outcome (0 a, 1 b, 2 tie), the annotator code and
    the occurred / received times.
    """
    first, second = world["pair_first"], world["pair_second"]
    n_pairs = len(first)
    judgments = pick(rng, JUDGMENTS_PER_PAIR_PROBS, n_pairs).astype(np.int64) + 1
    pair = np.repeat(np.arange(n_pairs), judgments)
    k = np.arange(len(pair)) - np.repeat(np.cumsum(judgments) - judgments, judgments)
    pool = N_HUMAN_ANNOTATORS + N_AI_JUDGES
    base = rng.integers(0, pool, n_pairs)[pair]
    stride = rng.integers(1, pool, n_pairs)[pair]
    annotator = (base + k * stride) % pool  # distinct per pair because pool is prime
    swap = rng.random(len(pair)) < 0.5
    a = np.where(swap, second[pair], first[pair])
    b = np.where(swap, first[pair], second[pair])
    quality = world["quality"]
    diff = quality[a] - quality[b]
    tie = (np.abs(diff) < TIE_THRESHOLD) & (rng.random(len(pair)) < TIE_PROBABILITY)
    a_wins = rng.random(len(pair)) < 1.0 / (1.0 + np.exp(-(diff + POSITION_BIAS)))
    preferred = np.where(tie, 2, np.where(a_wins, 0, 1)).astype(np.int8)
    occ = world["logged"][second[pair]] + uniform_us(
        rng, 5 * US_PER_MINUTE, 2 * US_PER_DAY, len(pair)
    )
    rec = occ + uniform_us(rng, 0, US_PER_DAY, len(pair))
    keep = np.flatnonzero(rec < end_us)
    order = keep[np.lexsort((k[keep], pair[keep], rec[keep]))]
    return {
        "pair": pair[order],
        "context_number": pair[order] + 1,
        "a": a[order],
        "b": b[order],
        "preferred": preferred[order],
        "annotator": annotator[order],
        "occ": occ[order],
        "rec": rec[order],
    }


def write_preferences(
    con: duckdb.DuckDBPyConnection, out_dir: Path, prefs: dict[str, Any], start_us: int
) -> tuple[int, int]:
    """Write preference_events per received day (ids in received order). Returns (rows, files)."""
    size = len(prefs["a"])
    numeric = pa.table(
        {
            "num": np.arange(1, size + 1, dtype=np.int64),
            "context_number": prefs["context_number"],
            "a": prefs["a"] + 1,
            "b": prefs["b"] + 1,
            "annotator": prefs["annotator"],
        }
    )
    sql = f"""
        select
            printf('pref-%08d', num) as preference_id,
            printf('ctx-%07d', context_number) as context_id,
            printf('inf-%09d', a) as inference_id_a,
            printf('inf-%09d', b) as inference_id_b,
            case when annotator < {N_HUMAN_ANNOTATORS}
                then printf('ann-%02d', annotator + 1)
                else printf('ai-judge-%d', annotator - {N_HUMAN_ANNOTATORS} + 1)
            end as annotator_id,
            case when annotator < {N_HUMAN_ANNOTATORS} then 'human' else 'ai_judge' end as source
        from numeric
    """
    text = text_columns(con, numeric, sql)
    table = pa.Table.from_arrays(
        [
            text["preference_id"],
            text["context_id"],
            text["inference_id_a"],
            text["inference_id_b"],
            pc.take(pa.array(["a", "b", "tie"]), prefs["preferred"]),
            text["annotator_id"],
            text["source"],
            timestamps(prefs["occ"]),
            timestamps(prefs["rec"]),
        ],
        schema=contract_schema(RAW_TABLES["preference_events"]),
    )
    return write_daily(out_dir / "preference_events", table, prefs["rec"], start_us)


def write_latent_quality(out_dir: Path, world: dict[str, Any], prefs: dict[str, Any]) -> int:
    """latent_quality.parquet: the hidden q of every inference in a written preference pair.

    Returns the number of rows.
    """
    rows = np.unique(np.concatenate([prefs["a"], prefs["b"]]))
    table = pa.table(
        {
            "inference_id": pc.binary_join_element_wise(
                "inf-", pc.utf8_lpad(pa.array((rows + 1).astype(str)), 9, "0"), ""
            ),
            "latent_quality": pa.array(world["quality"][rows], type=pa.float64()),
        }
    )
    write_parquet(table, out_dir / "latent_quality.parquet")
    return len(rows)

"""Query policies: which labelled rows a budget of ``n`` takes from a pool, by a rule and a seed.

Every policy orders the pool and takes the first ``budget`` rows; ties (and the random order) come
from the sample key ``hash_fraction(inference_id, seed)``: ``int(md5("<inference_id>:<seed>")[:8],
16) / 2**32``, the same key the dbt macro ``hash_fraction`` computes, so the offline evaluation
here and ``fct_training_sample`` under ``sampling_policy: auto`` pick the same rows.

- ``random``: the smallest sample keys.
- ``stratified``: round robin over the labels: every label's first row (by sample key), then every
  label's second, and so on; within a round, by sample key.
- ``least_confidence`` / ``margin`` / ``entropy``: the most uncertain first, by the serving model's
  probabilities at prediction time (1 - p_top1, 1 - (p_top1 - p_top2), the entropy); rows without
  a score come last.
- ``mix``: the first ``ceil(budget / 2)`` rows by ``stratified``, the rest by ``least_confidence``
  from the rows not taken.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

UNCERTAINTY_POLICIES = ("least_confidence", "margin", "entropy")
POLICIES = ("random", "stratified", *UNCERTAINTY_POLICIES, "mix")
#: the baseline every other policy must beat
BASELINE_POLICY = "random"
#: the pool columns a policy reads
POOL_COLUMNS = ("inference_id", "label", "least_confidence_score", "margin_score", "entropy_score")


def sample_key(inference_id: str, seed: int) -> float:
    """``hash_fraction(inference_id, seed)`` of macros/cross_db/hashing.sql, in [0, 1)."""
    digest = hashlib.md5(f"{inference_id}:{seed}".encode()).hexdigest()
    return int(digest[:8], 16) / 4294967296.0


def sample_keys(inference_ids: Iterable[str], seed: int) -> np.ndarray:
    return np.array([sample_key(str(value), seed) for value in inference_ids], dtype=np.float64)


def _order(pool: pd.DataFrame, keys: np.ndarray, *primary: np.ndarray) -> np.ndarray:
    """Row positions sorted by ``primary`` (ascending, in order), then sample key, then id."""
    ids = pool["inference_id"].astype(str).to_numpy()
    # np.lexsort sorts by the last key first.
    return np.lexsort((ids, keys, *reversed(primary)))


def _stratified(pool: pd.DataFrame, keys: np.ndarray) -> np.ndarray:
    frame = pd.DataFrame(
        {"label": pool["label"].astype(str).to_numpy(), "key": keys, "id": pool["inference_id"]}
    )
    frame = frame.sort_values(["label", "key", "id"], kind="mergesort")
    label_rank = frame.groupby("label", sort=False).cumcount().to_numpy()
    rank = np.empty(len(pool), dtype=np.int64)
    rank[frame.index.to_numpy()] = label_rank
    return _order(pool, keys, rank)


def _uncertain(pool: pd.DataFrame, keys: np.ndarray, policy: str) -> np.ndarray:
    score = pool[f"{policy}_score"].astype(float).to_numpy()
    missing = np.isnan(score).astype(np.int64)
    return _order(pool, keys, missing, -np.nan_to_num(score, nan=0.0))


def full_orders(pool: pd.DataFrame, seed: int, keys: np.ndarray | None = None) -> dict:
    """Every row position in pick order, per policy other than mix (a budget takes a prefix)."""
    if keys is None:
        keys = sample_keys(pool["inference_id"], seed)
    orders = {"random": _order(pool, keys), "stratified": _stratified(pool, keys)}
    for policy in UNCERTAINTY_POLICIES:
        orders[policy] = _uncertain(pool, keys, policy)
    return orders


def mix_of(orders: dict, budget: int) -> np.ndarray:
    """mix's ``budget`` picks from the full orders: the stratified ``ceil(budget / 2)``, then
    the least confident of the rows not taken."""
    first = orders["stratified"][: math.ceil(budget / 2)]
    rest = orders["least_confidence"]
    taken = np.zeros(len(rest), dtype=bool)
    taken[first] = True
    return np.concatenate([first, rest[~taken[rest]]])[:budget]


def pick(
    pool: pd.DataFrame, policy: str, budget: int, seed: int, orders: dict | None = None
) -> np.ndarray:
    """Positions (into ``pool``, in pick order) of the ``budget`` rows ``policy`` takes.

    ``orders``: the pool's :func:`full_orders` for ``seed``, when the caller has them already.
    """
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(POLICIES)}; got {policy!r}")
    if budget < 0:
        raise ValueError(f"budget must be >= 0; got {budget}")
    if orders is None:
        orders = full_orders(pool, seed)
    if policy == "mix":
        return mix_of(orders, budget)
    return orders[policy][:budget]

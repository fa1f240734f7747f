"""Bad feedback: copies of valid events with exactly one defect each, at BAD_FEEDBACK_RATES.

The defect kinds are the warehouse's quarantine reason codes, and each is planted at a known
count (reported in ``truth.json``), so the tests can check that validation quarantines exactly
these rows for exactly these reasons. Each kind draws its templates from the valid events the
defect can be applied to without also making them bad for another reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from feedback_flywheel.demo.constants import (
    BAD_FEEDBACK_RATES,
    T_CLICK,
    T_DWELL,
    T_RATING,
    T_REWARD,
    T_THUMBS,
    T_UNKNOWN,
    UNKNOWN_INFERENCE_BASE,
    US_PER_DAY,
    US_PER_HOUR,
    US_PER_MINUTE,
    US_PER_SECOND,
)
from feedback_flywheel.demo.draws import uniform_us
from feedback_flywheel.demo.events import Block, concat, take

# Applies one defect to a block of copied events, in place: (rng, block, logged, end_us).
Defect = Callable[[np.random.Generator, Block, np.ndarray, int], None]


def bad_feedback(
    rng: np.random.Generator,
    world: dict[str, Any],
    valid: Block,
    n_valid: int,
    start_us: int,
    end_us: int,
) -> tuple[Block, np.ndarray, np.ndarray]:
    """Copies of valid events with exactly one defect each, at BAD_FEEDBACK_RATES of ``n_valid``.

    Returns (events, kind code per event, template index for duplicates else -1).
    """
    logged = world["logged"]
    pools = _pools(logged, valid, start_us, end_us)
    blocks: list[Block] = []
    kinds: list[np.ndarray] = []
    templates: list[np.ndarray] = []
    for code, (kind, rate) in enumerate(BAD_FEEDBACK_RATES.items()):
        pool = pools[kind]
        count = min(round(rate * n_valid), len(pool))
        index = np.sort(rng.choice(pool, size=count, replace=False))
        block = take(valid, index)
        block["schema"] = block["schema"].copy()
        defect = _DEFECTS.get(kind)
        if defect is not None:  # malformed payloads are truncated when numbered
            defect(rng, block, logged, end_us)
        blocks.append(block)
        kinds.append(np.full(count, code, np.int8))
        templates.append(index if kind == "duplicate_event_id" else np.full(count, -1, np.int64))
    return concat(blocks), np.concatenate(kinds), np.concatenate(templates)


def _pools(logged: np.ndarray, valid: Block, start_us: int, end_us: int) -> dict[str, np.ndarray]:
    """Per defect kind, the valid events it may copy.

    Duplicates and future events need room before the end of the history; values out of range
    need a type with a range; events before their inference need an inference late enough.
    """
    everything = np.arange(len(valid["row"]))
    template_logged = logged[valid["row"]]
    return {
        "malformed_payload": everything,
        "unknown_inference_id": everything,
        "duplicate_event_id": np.flatnonzero(valid["rec"] < end_us - 2 * US_PER_MINUTE),
        "value_out_of_range": np.flatnonzero(
            np.isin(valid["type"], (T_RATING, T_THUMBS, T_CLICK, T_DWELL, T_REWARD))
        ),
        "occurred_before_inference": np.flatnonzero(template_logged >= start_us + 13 * US_PER_HOUR),
        "occurred_in_future": np.flatnonzero(valid["rec"] < end_us - 3 * US_PER_HOUR),
        "unknown_event_type": everything,
        "unsupported_schema_version": everything,
    }


def _unknown_inference(
    rng: np.random.Generator, block: Block, logged: np.ndarray, end_us: int
) -> None:
    """Point at inference ids that never exist in inference_log."""
    block["inf"] = UNKNOWN_INFERENCE_BASE + np.arange(1, len(block["inf"]) + 1, dtype=np.int64)


def _duplicate(rng: np.random.Generator, block: Block, logged: np.ndarray, end_us: int) -> None:
    """Receive the same event (same id, once numbered) again, up to two days later."""
    room = np.minimum(2 * US_PER_DAY, end_us - block["rec"] - US_PER_SECOND)
    block["rec"] = block["rec"] + uniform_us(rng, US_PER_MINUTE, room, len(block["rec"]))


def _out_of_range(rng: np.random.Generator, block: Block, logged: np.ndarray, end_us: int) -> None:
    """Replace the value with one outside its type's range."""
    count = len(block["vnum"])
    out_of_range = {
        T_RATING: rng.choice([0.0, 7.0], size=count),
        T_THUMBS: np.zeros(count),
        T_CLICK: np.full(count, 2.0),
        T_DWELL: np.full(count, -5.0),
        T_REWARD: np.full(count, 3.5),
    }
    vnum = block["vnum"].copy()
    for event_type, values in out_of_range.items():
        hit = block["type"] == event_type
        vnum[hit] = values[hit]
    block["vnum"] = vnum


def _before_inference(
    rng: np.random.Generator, block: Block, logged: np.ndarray, end_us: int
) -> None:
    """Make the event occur 1-12 hours before the inference it is about."""
    count = len(block["occ"])
    block["occ"] = logged[block["row"]] - uniform_us(rng, US_PER_HOUR, 12 * US_PER_HOUR, count)


def _in_future(rng: np.random.Generator, block: Block, logged: np.ndarray, end_us: int) -> None:
    """Make the event occur hours after it was received (a client clock ahead)."""
    room = np.minimum(2 * US_PER_DAY, end_us - block["rec"] - US_PER_MINUTE)
    block["occ"] = block["rec"] + uniform_us(rng, 2 * US_PER_HOUR, room, len(block["rec"]))


def _unknown_type(rng: np.random.Generator, block: Block, logged: np.ndarray, end_us: int) -> None:
    """Give the event a type the contract does not know (``emoji_reaction``)."""
    count = len(block["type"])
    block["type"] = np.full(count, T_UNKNOWN, np.int8)
    block["vcat"] = np.full(count, -1, np.int8)
    block["vnum"] = np.ones(count)


def _unsupported_schema(
    rng: np.random.Generator, block: Block, logged: np.ndarray, end_us: int
) -> None:
    """Give the event a schema version ingest does not support."""
    block["schema"] = rng.integers(2, 4, len(block["schema"])).astype(np.int8)


_DEFECTS: dict[str, Defect] = {
    "unknown_inference_id": _unknown_inference,
    "duplicate_event_id": _duplicate,
    "value_out_of_range": _out_of_range,
    "occurred_before_inference": _before_inference,
    "occurred_in_future": _in_future,
    "unknown_event_type": _unknown_type,
    "unsupported_schema_version": _unsupported_schema,
}

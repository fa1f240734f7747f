"""Blocks of feedback events as column arrays, and the operations the feedback steps share.

A block is a dict of equally long numpy arrays: ``row`` (the inference's sorted position),
``inf`` (its number), ``type`` (code into EVENT_TYPES), ``vcat`` (label code or -1), ``vnum``
(numeric value), ``occ`` / ``rec`` (occurred / received, microseconds), ``src``, ``client`` and
``schema`` (codes into SOURCES, CLIENTS, SCHEMA_VERSIONS). Values become text only when written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from feedback_flywheel.demo.constants import SCHEMA_VERSION_1_1_SHARE

Block = dict[str, np.ndarray]


def event_block(
    rng: np.random.Generator,
    world: dict[str, Any],
    rows: np.ndarray,
    event_type: int,
    occ: np.ndarray,
    rec: np.ndarray,
    *,
    vcat: np.ndarray | None = None,
    vnum: np.ndarray | None = None,
    source: tuple[int, int] | None = None,
) -> Block:
    """One block of events of a type, as column arrays (value as label code or number).

    ``source`` = (source code, client code); without it the subject's device decides (web client
    or mobile app).
    """
    size = len(rows)
    if source is None:
        device = world["context"]["device"][rows]  # 0 web, 1 ios, 2 android
        src = np.where(device == 0, 2, 3).astype(np.int8)
        client = (device + 2).astype(np.int8)
    else:
        src = np.full(size, source[0], np.int8)
        client = np.full(size, source[1], np.int8)
    return {
        "row": rows.astype(np.int64),
        "inf": rows.astype(np.int64) + 1,
        "type": np.full(size, event_type, np.int8),
        "vcat": (vcat if vcat is not None else np.full(size, -1)).astype(np.int8),
        "vnum": (vnum if vnum is not None else np.zeros(size)).astype(np.float64),
        "occ": occ.astype(np.int64),
        "rec": rec.astype(np.int64),
        "src": src,
        "client": client,
        "schema": (rng.random(size) < SCHEMA_VERSION_1_1_SHARE).astype(np.int8),
    }


def concat(blocks: Sequence[Block]) -> Block:
    """The blocks one after another, field by field."""
    return {field: np.concatenate([block[field] for block in blocks]) for field in blocks[0]}


def take(block: Block, index: np.ndarray) -> Block:
    """The events of ``block`` at ``index`` (positions or a mask), as a new block."""
    return {field: values[index] for field, values in block.items()}


def keep_received(block: Block, end_us: int) -> Block:
    """Only events received before the end of the history are written."""
    return take(block, np.flatnonzero(block["rec"] < end_us))

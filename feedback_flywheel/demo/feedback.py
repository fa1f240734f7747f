"""The feedback events of the demo world: valid feedback of every type, retractions, the injected
bad rows, and the event numbers (ids) in received order.

Labels carry the true label, except for the ~3% that later get a correction: those labels are
wrong and the correction carries the true label (what applying corrections should recover).
Explicit and implicit signals agree with the prediction's correctness at the planted rates
(``P_CLICK``, ``P_THUMBS_UP``, ...), and every session step gets a reward. Each event type is one
step below, drawn in a fixed order (the order is part of the output).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from feedback_flywheel.demo.bad_feedback import bad_feedback
from feedback_flywheel.demo.constants import (
    BAD_FEEDBACK_RATES,
    CORRECTION_DELAY_DAYS,
    EVENT_TYPES,
    FEEDBACK_RATES,
    LABEL_DELAY_DAYS,
    P_CLICK,
    P_CONVERSION,
    P_THUMBS_UP,
    RATING_PROBS,
    REWARD_MEAN,
    REWARD_SD,
    T_CLICK,
    T_CONVERSION,
    T_CORRECTION,
    T_DWELL,
    T_LABEL,
    T_RATING,
    T_RETRACTION,
    T_REWARD,
    T_THUMBS,
    T_UNKNOWN,
    US_PER_DAY,
    US_PER_HOUR,
    US_PER_MINUTE,
    US_PER_SECOND,
)
from feedback_flywheel.demo.draws import by_correct, clean, pick, uniform_us
from feedback_flywheel.demo.events import Block, concat, event_block, keep_received, take

Window = tuple[float, float]  # (low, high) microseconds of a uniform delay


#: the signals ``generate(broken_tracking=...)`` can break, by their event type code
BREAKABLE_SIGNALS = {"click": T_CLICK, "conversion": T_CONVERSION, "dwell_seconds": T_DWELL}


def _break_tracking(world: dict[str, Any], blocks: list[Block]) -> None:
    """From the broken day on, the broken signal's events carry 0 (see ``generate``)."""
    if not world.get("broken_tracking"):
        return
    signal, day = world["broken_tracking"]
    for block in blocks:
        broken = (block["type"] == BREAKABLE_SIGNALS[signal]) & (world["day"][block["row"]] >= day)
        block["vnum"][broken] = 0.0


def draw_feedback(
    rng: np.random.Generator, world: dict[str, Any], start_us: int, end_us: int
) -> dict[str, Any]:
    """Draw valid feedback, retractions and the injected bad rows; number the events.

    Event ids ("fe-" + 9 digits) ascend with received_at; a duplicate re-uses its original's id.
    Returns the events in write order (received_at, then id) and the counts the truth reports.
    """
    labels, corrections = _labels(rng, world)
    ratings = _ratings(rng, world)
    thumbs = _thumbs(rng, world)
    clicks = _clicks(rng, world)
    dwells = _dwells(rng, world)
    conversions = _conversions(rng, world)
    rewards = _rewards(rng, world)
    _break_tracking(world, [clicks, dwells, conversions])
    valid = concat(
        [
            keep_received(block, end_us)
            for block in (
                labels,
                corrections,
                ratings,
                thumbs,
                clicks,
                dwells,
                conversions,
                rewards,
            )
        ]
    )
    valid = take(valid, np.lexsort((valid["type"], valid["row"], valid["rec"])))
    retractions, retraction_targets = _retractions(rng, world, valid, end_us)
    bad, bad_kind, duplicate_of = bad_feedback(
        rng, world, valid, len(valid["row"]) + len(retraction_targets), start_us, end_us
    )
    numbered = _number(rng, valid, retractions, retraction_targets, bad, bad_kind, duplicate_of)
    _truncate_malformed(rng, numbered)
    return _summary(take(numbered, np.lexsort((numbered["num"], numbered["rec"]))), world)


def _chosen(rng: np.random.Generator, world: dict[str, Any], rate: float) -> np.ndarray:
    """Rows of the inferences that get an event of a type, each with probability ``rate``."""
    return np.flatnonzero(rng.random(world["n"]) < rate)


def _timed(
    rng: np.random.Generator, world: dict[str, Any], rows: np.ndarray, lag: Window, transit: Window
) -> tuple[np.ndarray, np.ndarray]:
    """occurred_at = logged_at + lag, received_at = occurred_at + transit (uniform, us)."""
    occ = world["logged"][rows] + uniform_us(rng, lag[0], lag[1], len(rows))
    return occ, occ + uniform_us(rng, transit[0], transit[1], len(rows))


def _labels(rng: np.random.Generator, world: dict[str, Any]) -> tuple[Block, Block]:
    """Labels (ground truth, 0-10 days late) and the corrections of the few that are wrong.

    Returns (labels, corrections).
    """
    y_true = world["y_true"]
    rows = _chosen(rng, world, FEEDBACK_RATES["label"])
    delay = uniform_us(
        rng, LABEL_DELAY_DAYS[0] * US_PER_DAY, LABEL_DELAY_DAYS[1] * US_PER_DAY, len(rows)
    )
    label_rec = world["logged"][rows] + delay
    label_occ = label_rec - np.minimum(delay, uniform_us(rng, 0, 2 * US_PER_HOUR, len(rows)))
    corrected = rng.random(len(rows)) < FEEDBACK_RATES["correction"]
    label_value = np.where(
        corrected, (y_true[rows] + 1 + rng.integers(0, 2, len(rows))) % 3, y_true[rows]
    )
    labels = event_block(
        rng, world, rows, T_LABEL, label_occ, label_rec, vcat=label_value, source=(0, 0)
    )
    c_rows = rows[corrected]
    c_rec = label_rec[corrected] + uniform_us(
        rng,
        CORRECTION_DELAY_DAYS[0] * US_PER_DAY,
        CORRECTION_DELAY_DAYS[1] * US_PER_DAY,
        len(c_rows),
    )
    c_occ = c_rec - uniform_us(rng, 0, US_PER_HOUR, len(c_rows))
    corrections = event_block(
        rng, world, c_rows, T_CORRECTION, c_occ, c_rec, vcat=y_true[c_rows], source=(1, 1)
    )
    return labels, corrections


def _ratings(rng: np.random.Generator, world: dict[str, Any]) -> Block:
    """Star ratings 1-5, drawn from RATING_PROBS of a right or a wrong prediction."""
    correct = world["correct"]
    rows = _chosen(rng, world, FEEDBACK_RATES["rating"])
    occ, rec = _timed(rng, world, rows, (US_PER_MINUTE, 6 * US_PER_HOUR), (0, 10 * US_PER_MINUTE))
    rating = (
        np.where(
            correct[rows],
            pick(rng, RATING_PROBS["correct"], len(rows)),
            pick(rng, RATING_PROBS["wrong"], len(rows)),
        )
        + 1
    )
    return event_block(rng, world, rows, T_RATING, occ, rec, vnum=rating)


def _thumbs(rng: np.random.Generator, world: dict[str, Any]) -> Block:
    """Thumbs up (1) or down (-1), up with P_THUMBS_UP."""
    rows = _chosen(rng, world, FEEDBACK_RATES["thumbs"])
    occ, rec = _timed(rng, world, rows, (10 * US_PER_SECOND, US_PER_HOUR), (0, 10 * US_PER_MINUTE))
    up = rng.random(len(rows)) < by_correct(world["correct"][rows], P_THUMBS_UP)
    return event_block(rng, world, rows, T_THUMBS, occ, rec, vnum=np.where(up, 1.0, -1.0))


def _clicks(rng: np.random.Generator, world: dict[str, Any]) -> Block:
    """Clicks on the suggested reply (1) or not (0), with P_CLICK."""
    rows = _chosen(rng, world, FEEDBACK_RATES["click"])
    occ, rec = _timed(rng, world, rows, (US_PER_SECOND, 5 * US_PER_MINUTE), (0, 2 * US_PER_MINUTE))
    clicked = rng.random(len(rows)) < by_correct(world["correct"][rows], P_CLICK)
    return event_block(rng, world, rows, T_CLICK, occ, rec, vnum=clicked.astype(np.float64))


def _dwells(rng: np.random.Generator, world: dict[str, Any]) -> Block:
    """Dwell seconds on the reply (lognormal, longer after a right prediction, at most a day)."""
    rows = _chosen(rng, world, FEEDBACK_RATES["dwell_seconds"])
    occ, rec = _timed(
        rng, world, rows, (5 * US_PER_SECOND, 30 * US_PER_MINUTE), (0, 2 * US_PER_MINUTE)
    )
    log_mean = np.where(world["correct"][rows], 3.5, 2.8)
    dwell = clean(np.minimum(rng.lognormal(log_mean, 1.0), 86_400.0), 1)
    return event_block(rng, world, rows, T_DWELL, occ, rec, vnum=dwell)


def _conversions(rng: np.random.Generator, world: dict[str, Any]) -> Block:
    """Conversions (1) or not (0) up to two days later, with P_CONVERSION."""
    rows = _chosen(rng, world, FEEDBACK_RATES["conversion"])
    occ, rec = _timed(rng, world, rows, (US_PER_MINUTE, 2 * US_PER_DAY), (0, 10 * US_PER_MINUTE))
    converted = rng.random(len(rows)) < by_correct(world["correct"][rows], P_CONVERSION)
    return event_block(rng, world, rows, T_CONVERSION, occ, rec, vnum=converted.astype(np.float64))


def _rewards(rng: np.random.Generator, world: dict[str, Any]) -> Block:
    """A reward in [-1, 1] for every session step, from the environment seconds later."""
    rows = np.flatnonzero(world["session"] > 0)
    occ, rec = _timed(rng, world, rows, (US_PER_SECOND, 30 * US_PER_SECOND), (0, 5 * US_PER_SECOND))
    mean = by_correct(world["correct"][rows], REWARD_MEAN)
    reward = clean(np.clip(rng.normal(mean, REWARD_SD), -1.0, 1.0), 3)
    return event_block(rng, world, rows, T_REWARD, occ, rec, vnum=reward, source=(4, 5))


def _retractions(
    rng: np.random.Generator, world: dict[str, Any], valid: Block, end_us: int
) -> tuple[Block, np.ndarray]:
    """Retractions of ~1% of ratings and thumbs, from the same client as the withdrawn event.

    Returns (retractions received in the history, index into ``valid`` of what each withdraws).
    """
    candidates = np.flatnonzero(np.isin(valid["type"], (T_RATING, T_THUMBS)))
    targets = candidates[rng.random(len(candidates)) < FEEDBACK_RATES["retraction"]]
    r_occ = valid["rec"][targets] + uniform_us(rng, US_PER_MINUTE, US_PER_DAY, len(targets))
    r_rec = r_occ + uniform_us(rng, 0, 5 * US_PER_MINUTE, len(targets))
    retractions = event_block(rng, world, valid["row"][targets], T_RETRACTION, r_occ, r_rec)
    retractions["src"] = valid["src"][targets]
    retractions["client"] = valid["client"][targets]
    kept = np.flatnonzero(r_rec < end_us)
    return take(retractions, kept), targets[kept]


def _number(
    rng: np.random.Generator,
    valid: Block,
    retractions: Block,
    retraction_targets: np.ndarray,
    bad: Block,
    bad_kind: np.ndarray,
    duplicate_of: np.ndarray,
) -> Block:
    """All events with their numbers: each its own in received order (ties broken at random),
    except duplicates, which reuse their template's.

    Adds ``num``, ``vref`` (number of the event a retraction withdraws, else -1), ``bad`` (defect
    code, -1 for valid) and ``trunc`` (0 here; see :func:`_truncate_malformed`).
    """
    n_valid, n_retractions = len(valid["row"]), len(retraction_targets)
    original = duplicate_of < 0
    fresh = concat([valid, retractions, take(bad, np.flatnonzero(original))])
    fresh_kind = np.concatenate([np.full(n_valid + n_retractions, -1, np.int8), bad_kind[original]])
    order = np.lexsort((rng.random(len(fresh["row"])), fresh["rec"]))
    number = np.empty(len(order), np.int64)
    number[order] = np.arange(1, len(order) + 1)
    vref = np.full(len(order), -1, np.int64)
    vref[n_valid : n_valid + n_retractions] = number[retraction_targets]
    duplicates = take(bad, np.flatnonzero(~original))
    numbered = concat([fresh, duplicates])
    numbered["num"] = np.concatenate([number, number[duplicate_of[~original]]])
    numbered["vref"] = np.concatenate([vref, np.full(len(duplicates["row"]), -1, np.int64)])
    numbered["bad"] = np.concatenate([fresh_kind, bad_kind[~original]])
    numbered["trunc"] = np.zeros(len(order) + len(duplicates["row"]), np.int64)
    return numbered


def _truncate_malformed(rng: np.random.Generator, numbered: Block) -> None:
    """Mark how many characters (1-11) to cut off the payload of each malformed event."""
    malformed = numbered["bad"] == list(BAD_FEEDBACK_RATES).index("malformed_payload")
    numbered["trunc"][malformed] = rng.integers(1, 12, int(malformed.sum()))


def _summary(written: Block, world: dict[str, Any]) -> dict[str, Any]:
    """The written events with the counts the truth reports about them."""
    valid_mask = written["bad"] < 0
    valid_counts = {
        name: int(np.sum(valid_mask & (written["type"] == code)))
        for code, name in enumerate(EVENT_TYPES[:T_UNKNOWN])
    }
    bad_counts = {
        kind: int(np.sum(written["bad"] == code)) for code, kind in enumerate(BAD_FEEDBACK_RATES)
    }
    label_rows = valid_mask & (written["type"] == T_LABEL)
    label_delay = (
        written["rec"][label_rows] - world["logged"][written["row"][label_rows]]
    ) / US_PER_DAY
    return {
        "events": written,
        "valid_counts": valid_counts,
        "bad_counts": bad_counts,
        "labelled_inferences": len(np.unique(written["row"][label_rows])),
        "label_delay_observed": (
            (float(label_delay.min()), float(label_delay.max())) if len(label_delay) else None
        ),
    }

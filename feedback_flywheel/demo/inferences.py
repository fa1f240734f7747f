"""Every inference of the demo world and its hidden truth, drawn as numpy arrays.

The steps, in the order they draw from the generator (the order is part of the output: changing
it changes every file): the schedule of units and times, the subjects and their segment
attributes, the model's inputs (with the covariate drift), the true label (with the concept
drift), the model version (with v1 in shadow on some pairs), the prediction and its
probabilities (with the biased segment), and the suggested reply with its latent quality.
The result is sorted by logged_at, so row ``i`` is inference ``inf-{i + 1}``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from feedback_flywheel.demo.constants import (
    ACCURACY,
    BIASED_ACCURACY_GAP,
    BIASED_ATTRIBUTE,
    BIASED_VALUE,
    CHANNEL_SHARES_AFTER,
    CHANNEL_SHARES_BEFORE,
    CLOSED_LOOP_CONCEPT_LABEL,
    CLOSED_LOOP_RELABEL_SHARE,
    CONCEPT_DRIFT_ATTRIBUTE,
    CONCEPT_DRIFT_ROTATE_SHARE,
    CONCEPT_DRIFT_VALUE,
    CONTEXT_SHARES,
    LABEL_TEMPERATURE,
    LABEL_WEIGHTS,
    LABELS,
    MESSAGE_LENGTH_MEDIAN,
    MESSAGE_LENGTH_SHIFT,
    MISSING_RESPONSE_TIME_RATE,
    PROBABILITIES_NULL_RATE,
    PRODUCT_SHARES,
    SHADOW_PAIR_SHARE,
)
from feedback_flywheel.demo.draws import clean, pick
from feedback_flywheel.demo.replies import draw_replies
from feedback_flywheel.demo.schedule import (
    UNIT_PAIR,
    UNIT_SESSION,
    Schedule,
    Timeline,
    draw_schedule,
)


class _Numbering(NamedTuple):
    """Serving order of the rows and the numbers of sessions and preference contexts."""

    order: np.ndarray  # drawing-order row of each logged_at-sorted position
    rank: np.ndarray  # sorted position of each drawing-order row
    session: np.ndarray  # per unit: session number (1-based, by first row), else -1
    context: np.ndarray  # per unit: preference context number (1-based), else -1
    pair_units: np.ndarray  # pair units in context-number order
    n_sessions: int


def draw_inferences(
    rng: np.random.Generator, timeline: Timeline, inferences_per_day: int
) -> dict[str, Any]:
    """Draw every inference (as numpy arrays sorted by logged_at) and its hidden truth."""
    schedule = draw_schedule(rng, timeline, inferences_per_day)
    n = schedule.n
    subject, context = _subjects(rng, schedule)
    inputs = _inputs(rng, schedule.day >= timeline.covariate_day)
    y_base = _base_labels(rng, inputs)
    concept_values = list(CONTEXT_SHARES[CONCEPT_DRIFT_ATTRIBUTE])
    share = CLOSED_LOOP_RELABEL_SHARE if timeline.closed_loop else CONCEPT_DRIFT_ROTATE_SHARE
    rotated = (
        (context[CONCEPT_DRIFT_ATTRIBUTE] == concept_values.index(CONCEPT_DRIFT_VALUE))
        & (schedule.day >= timeline.concept_day)
        & (rng.random(n) < share)
    )
    # Pair twins copy the first answer's inputs and label (same ticket).
    twin = (schedule.kind == UNIT_PAIR) & (schedule.pos == 1)
    twin_rows = np.flatnonzero(twin)
    for array in (*inputs.values(), y_base, rotated):
        array[twin_rows] = array[twin_rows - 1]
    # Open loop: the label rotates (no input explains it). Closed loop: it becomes one label.
    changed = (
        np.full(n, LABELS.index(CLOSED_LOOP_CONCEPT_LABEL), np.int8)
        if timeline.closed_loop
        else (y_base + 1) % 3
    )
    y_true = np.where(rotated, changed, y_base).astype(np.int8)

    version = _versions(rng, schedule.logged, timeline.v2_us, twin)
    biased_values = list(CONTEXT_SHARES[BIASED_ATTRIBUTE])
    in_biased = context[BIASED_ATTRIBUTE] == biased_values.index(BIASED_VALUE)
    predicted, score = _predictions(rng, version, in_biased, y_base)
    probabilities = _probabilities(rng, predicted, score)
    probabilities_null = rng.random(n) < PROBABILITIES_NULL_RATE
    text_code, quality = draw_replies(rng, predicted, version)

    numbering = _number(schedule)
    rows = {
        "logged": schedule.logged,
        "day": schedule.day,
        "version": version,
        "subject": subject,
        "session": numbering.session[schedule.unit_of_row],
        "step": np.where(schedule.kind == UNIT_SESSION, schedule.pos, -1),
        "context_number": numbering.context[schedule.unit_of_row],
        **inputs,
        "predicted": predicted,
        "score": score,
        "probabilities": probabilities,
        "probabilities_null": probabilities_null,
        "text_code": text_code,
        "quality": quality,
        "y_true": y_true,
        "correct": predicted == y_true,
        "in_biased": in_biased,
        "rotated": rotated,
    }
    return {
        **_in_serving_order(schedule, numbering, rows, context),
        "closed_loop": timeline.closed_loop,
    }


def _subjects(
    rng: np.random.Generator, schedule: Schedule
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Draw subjects with fixed segment attributes; every row of a unit is about one subject.

    Returns (subject per row, attribute name -> value code per row).
    """
    n_subjects = max(50, schedule.n // 8)
    subject_attrs = {
        attribute: pick(rng, list(shares.values()), n_subjects)
        for attribute, shares in CONTEXT_SHARES.items()
    }
    subject = rng.integers(0, n_subjects, size=schedule.n_units)[schedule.unit_of_row]
    return subject, {attribute: codes[subject] for attribute, codes in subject_attrs.items()}


def _inputs(rng: np.random.Generator, after_covariate: np.ndarray) -> dict[str, np.ndarray]:
    """Draw what the model saw; message_length and channel shift from the covariate drift day."""
    n = len(after_covariate)
    account_age = np.minimum(np.floor(rng.exponential(400.0, n)), 3650).astype(np.int64)
    message_length = np.maximum(
        5,
        np.rint(
            rng.lognormal(np.log(MESSAGE_LENGTH_MEDIAN), 0.6, n)
            * np.where(after_covariate, MESSAGE_LENGTH_SHIFT, 1.0)
        ),
    ).astype(np.int64)
    sentiment = clean(np.tanh(rng.normal(0.0, 0.6, n)), 3)
    prior_tickets = rng.poisson(1.5, n).astype(np.int64)
    response_time = clean(rng.lognormal(np.log(180.0), 0.8, n), 1)
    response_missing = rng.random(n) < MISSING_RESPONSE_TIME_RATE
    channel = np.where(
        after_covariate,
        pick(rng, list(CHANNEL_SHARES_AFTER.values()), n),
        pick(rng, list(CHANNEL_SHARES_BEFORE.values()), n),
    ).astype(np.int8)
    product = pick(rng, list(PRODUCT_SHARES.values()), n)
    return {
        "account_age": account_age,
        "message_length": message_length,
        "sentiment": sentiment,
        "prior_tickets": prior_tickets,
        "response_time": response_time,
        "response_missing": response_missing,
        "channel": channel,
        "product": product,
    }


def _base_labels(rng: np.random.Generator, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """Draw the label the inputs imply, from a fixed softmax over LABEL_FEATURES.

    P(y|x) is fixed and learnable; the concept drift is applied on top of it afterwards.
    """
    channel, product = inputs["channel"], inputs["product"]
    features = np.column_stack(
        [
            np.ones(len(channel)),
            (np.log1p(inputs["account_age"]) - 5.5),
            (np.log(inputs["message_length"]) - np.log(MESSAGE_LENGTH_MEDIAN)) / 0.6,
            inputs["sentiment"],
            (inputs["prior_tickets"] - 1.5) / 1.2,
            channel == 1,
            channel == 2,
            product == 1,
            product == 2,
        ]
    ).astype(np.float64)
    logits = LABEL_TEMPERATURE * features @ LABEL_WEIGHTS.T
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    y_base = (rng.random(len(channel))[:, None] > np.cumsum(probs, axis=1)).sum(axis=1)
    return np.minimum(y_base, 2).astype(np.int8)


def _versions(
    rng: np.random.Generator, logged: np.ndarray, v2_us: int, twin: np.ndarray
) -> np.ndarray:
    """The model version of each row (0 = v1, 1 = v2): v2 from its deployment on, except the
    second answers of some pairs, which v1 kept running in shadow gives."""
    version = (logged >= v2_us).astype(np.int8)
    # A generator of its own (spawned, so the main stream of draws is unchanged).
    shadow = twin & (version == 1) & (rng.spawn(1)[0].random(len(logged)) < SHADOW_PAIR_SHARE)
    version[shadow] = 0
    return version


def _predictions(
    rng: np.random.Generator, version: np.ndarray, in_biased: np.ndarray, y_base: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Draw the predicted label and its score.

    The model is right (about the relationship it learned, ``y_base``) with its version's
    accuracy, less the gap inside the biased segment; its score is higher when it is right.
    """
    n = len(version)
    accuracy = np.where(version == 1, ACCURACY["v2"], ACCURACY["v1"]) - np.where(
        in_biased, BIASED_ACCURACY_GAP, 0.0
    )
    knows = rng.random(n) < accuracy
    predicted = np.where(knows, y_base, (y_base + 1 + rng.integers(0, 2, n)) % 3).astype(np.int8)
    score = np.where(knows, rng.beta(6.0, 1.8, n), rng.beta(2.0, 3.0, n))
    score = np.clip(np.round(1 / 3 + (2 / 3) * score, 4), 0.3334, 1.0)
    return predicted, score


def _probabilities(
    rng: np.random.Generator, predicted: np.ndarray, score: np.ndarray
) -> np.ndarray:
    """Class probabilities (n x 3) with ``score`` on the predicted label as the largest.

    The rest is split between the other two labels so that neither exceeds the score.
    """
    n = len(predicted)
    rest = np.round(1.0 - score, 4)
    with np.errstate(divide="ignore"):
        ratio = np.where(rest > 0, score / np.maximum(rest, 1e-12), np.inf)
    low = np.maximum(0.0, 1.0 - ratio)
    high = np.minimum(1.0, ratio)
    other_1 = clean((low + rng.random(n) * (high - low)) * rest, 4)
    other_2 = clean(rest - other_1, 4)
    probabilities = np.zeros((n, 3))
    rows = np.arange(n)
    probabilities[rows, predicted] = score
    probabilities[rows, (predicted + 1) % 3] = other_1
    probabilities[rows, (predicted + 2) % 3] = other_2
    return probabilities


def _number(schedule: Schedule) -> _Numbering:
    """Sort rows by logged_at (ids follow serving order) and number sessions and preference
    contexts in the order of their first row."""
    n, unit_kind, unit_first = schedule.n, schedule.unit_kind, schedule.unit_first
    order = np.lexsort((np.arange(n), schedule.logged))
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    session_units = np.flatnonzero(unit_kind == UNIT_SESSION)
    session = np.full(schedule.n_units, -1, np.int64)
    session[session_units[np.argsort(rank[unit_first[session_units]], kind="stable")]] = np.arange(
        1, len(session_units) + 1
    )
    pair_units = np.flatnonzero(unit_kind == UNIT_PAIR)
    pair_units = pair_units[np.argsort(rank[unit_first[pair_units]], kind="stable")]
    context = np.full(schedule.n_units, -1, np.int64)
    context[pair_units] = np.arange(1, len(pair_units) + 1)
    return _Numbering(order, rank, session, context, pair_units, len(session_units))


def _in_serving_order(
    schedule: Schedule,
    numbering: _Numbering,
    rows: dict[str, np.ndarray],
    context: dict[str, np.ndarray],
) -> dict[str, Any]:
    """The world as the writers and the truth read it: every per-row array in logged_at order,
    plus counts and the preference pairs as (first row, second row) sorted positions."""
    order, rank = numbering.order, numbering.rank
    pair_first_rows = schedule.unit_first[numbering.pair_units]
    return {
        "n": schedule.n,
        "n_units": schedule.n_units,
        "n_sessions": numbering.n_sessions,
        "n_pairs": len(numbering.pair_units),
        "day_counts": schedule.day_counts,
        **{name: values[order] for name, values in rows.items()},
        "context": {attribute: codes[order] for attribute, codes in context.items()},
        # pairs in sorted positions, ordered by context number
        "pair_first": rank[pair_first_rows],
        "pair_second": rank[pair_first_rows + 1],
    }

"""Everything the demo world planted, as the JSON-serialisable dict written to ``truth.json``.

It holds both the planted parameters (what the generator aimed for) and the realised values
(what the drawn, written rows actually show), so tests can check the warehouse against the
files exactly and against the parameters within sampling error. Dates are YYYY-MM-DD; every
count counts exactly what was written.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np

from feedback_flywheel.demo.constants import (
    ACCURACY,
    BAD_FEEDBACK_RATES,
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
    FEEDBACK_RATES,
    LABEL_DELAY_DAYS,
    LABELS,
    MESSAGE_LENGTH_SHIFT,
    MODEL_NAME,
    N_AI_JUDGES,
    N_HUMAN_ANNOTATORS,
    P_CLICK,
    P_CONVERSION,
    P_THUMBS_UP,
    PAIR_TICKET_SHARE,
    POSITION_BIAS,
    QUALITY_FEATURES,
    QUALITY_NOISE_SD,
    QUALITY_WEIGHTS,
    REWARD_MEAN,
    REWARD_SD,
    SESSION_SHARE,
    SESSION_STEPS,
    SHADOW_PAIR_SHARE,
    TIE_PROBABILITY,
    TIE_THRESHOLD,
    VERSION_QUALITY_OFFSET,
    WEEKDAY_VOLUME_RATIO,
)
from feedback_flywheel.demo.draws import weekdays
from feedback_flywheel.demo.schedule import Timeline


def build_truth(
    *,
    seed: int,
    inferences_per_day: int,
    timeline: Timeline,
    world: dict[str, Any],
    feedback: dict[str, Any],
    prefs: dict[str, Any],
    latent_rows: int,
    deployments: list[dict[str, Any]],
) -> dict[str, Any]:
    """Everything planted in the world, JSON-serialisable (dates as YYYY-MM-DD).

    The key order is the order ``truth.json`` shows them in.
    """
    start_date = timeline.start_date
    return {
        "seed": seed,
        "days": timeline.days,
        "inferences_per_day": inferences_per_day,
        "start_date": start_date.isoformat(),
        "end_date": (start_date + timedelta(days=timeline.days)).isoformat(),
        "model_name": MODEL_NAME,
        "labels": list(LABELS),
        "closed_loop": timeline.closed_loop,
        "covariate_drift": _covariate_drift(timeline),
        "concept_drift": _concept_drift(timeline),
        "biased_segment": {
            "attribute": BIASED_ATTRIBUTE,
            "value": BIASED_VALUE,
            "accuracy_gap": BIASED_ACCURACY_GAP,
        },
        "deployments": deployments,
        "bad_feedback": feedback["bad_counts"],
        "bad_feedback_rates": BAD_FEEDBACK_RATES,
        "counts": _counts(world, feedback, prefs, latent_rows, deployments),
        "context_shares": CONTEXT_SHARES,
        "feedback_rates": FEEDBACK_RATES,
        "label_coverage": FEEDBACK_RATES["label"],
        "label_coverage_written": round(feedback["labelled_inferences"] / world["n"], 6),
        "label_delay_days": {"min": LABEL_DELAY_DAYS[0], "max": LABEL_DELAY_DAYS[1]},
        "implicit_agreement": _implicit_agreement(),
        "broken_tracking": _broken_tracking(world, start_date),
        "accuracy": {
            "v1": ACCURACY["v1"],
            "v2": ACCURACY["v2"],
            "biased_segment": {v: round(ACCURACY[v] - BIASED_ACCURACY_GAP, 6) for v in ACCURACY},
        },
        "accuracy_realised": _accuracy_realised(world, timeline.concept_day),
        "weekday_volume_ratio": WEEKDAY_VOLUME_RATIO,
        "weekday_volume_ratio_realised": _weekday_ratio_realised(world["day_counts"], timeline),
        "sessions": {
            "share": SESSION_SHARE,
            "steps": list(SESSION_STEPS),
            "reward_mean": REWARD_MEAN,
            "reward_sd": REWARD_SD,
        },
        "preference": _preference(),
    }


def _rate(mask: np.ndarray) -> float | None:
    """The share of True in ``mask`` (6 decimals), or None when it is empty."""
    return round(float(mask.mean()), 6) if mask.size else None


def _covariate_drift(timeline: Timeline) -> list[dict[str, Any]]:
    """The two drifting inputs: message_length (a multiplier) and channel (new shares)."""
    start = (timeline.start_date + timedelta(days=timeline.covariate_day)).isoformat()
    return [
        {
            "feature": "message_length",
            "kind": "numeric",
            "start_date": start,
            "multiplier": MESSAGE_LENGTH_SHIFT,
        },
        {
            "feature": "channel",
            "kind": "categorical",
            "start_date": start,
            "shares_before": CHANNEL_SHARES_BEFORE,
            "shares_after": CHANNEL_SHARES_AFTER,
        },
    ]


def _concept_drift(timeline: Timeline) -> list[dict[str, Any]]:
    """The segment whose true labels change, from when, and how: rotated (open loop), or most
    of them relabelled to one label (closed loop)."""
    change: dict[str, Any] = (
        {
            "relabelled_share": CLOSED_LOOP_RELABEL_SHARE,
            "relabelled_to": CLOSED_LOOP_CONCEPT_LABEL,
        }
        if timeline.closed_loop
        else {"rotated_share": CONCEPT_DRIFT_ROTATE_SHARE}
    )
    return [
        {
            "segment_attribute": CONCEPT_DRIFT_ATTRIBUTE,
            "segment_value": CONCEPT_DRIFT_VALUE,
            "start_date": (timeline.start_date + timedelta(days=timeline.concept_day)).isoformat(),
            **change,
        },
    ]


def _counts(
    world: dict[str, Any],
    feedback: dict[str, Any],
    prefs: dict[str, Any],
    latent_rows: int,
    deployments: list[dict[str, Any]],
) -> dict[str, Any]:
    """Rows written per table, and the counts of what those rows contain."""
    events = feedback["events"]
    n_events = len(events["num"])
    n_valid = int(np.sum(events["bad"] < 0))
    return {
        "inference_log": world["n"],
        "feedback_events": n_events,
        "feedback_events_valid": n_valid,
        "feedback_events_bad": n_events - n_valid,
        "preference_events": len(prefs["a"]),
        "model_deployments": len(deployments),
        "latent_quality": latent_rows,
        "sessions": world["n_sessions"],
        "preference_contexts": world["n_pairs"],
        "preference_contexts_judged": len(np.unique(prefs["pair"])),
        "valid_events_by_type": feedback["valid_counts"],
    }


def _broken_tracking(world: dict[str, Any], start_date) -> dict[str, Any] | None:
    """The signal whose tracking breaks, from which day, and what it records from then on."""
    if not world.get("broken_tracking"):
        return None
    signal, day = world["broken_tracking"]
    return {
        "signal": signal,
        "from_day": day,
        "from_date": (start_date + timedelta(days=day)).isoformat(),
        "recorded_value": 0,
    }


def _implicit_agreement() -> dict[str, dict[str, float]]:
    """How often each implicit signal is positive after a right and after a wrong prediction."""
    return {
        "click": {
            "p_click_given_correct": P_CLICK["correct"],
            "p_click_given_wrong": P_CLICK["wrong"],
        },
        "thumbs": {
            "p_up_given_correct": P_THUMBS_UP["correct"],
            "p_up_given_wrong": P_THUMBS_UP["wrong"],
        },
        "conversion": {
            "p_convert_given_correct": P_CONVERSION["correct"],
            "p_convert_given_wrong": P_CONVERSION["wrong"],
        },
    }


def _accuracy_realised(world: dict[str, Any], concept_day: int) -> dict[str, Any]:
    """Accuracy the drawn rows actually have: per version, in the biased segment, and in the
    concept drift segment before and after the drift starts."""
    version, correct, in_biased = world["version"], world["correct"], world["in_biased"]
    latam = world["context"]["region"] == list(CONTEXT_SHARES["region"]).index("latam")
    after_concept = world["day"] >= concept_day
    return {
        "v1": _rate(correct[version == 0]),
        "v2": _rate(correct[version == 1]),
        "biased_segment": {
            "v1": _rate(correct[(version == 0) & in_biased]),
            "v2": _rate(correct[(version == 1) & in_biased]),
        },
        "concept_drift_segment_after_start": _rate(correct[latam & after_concept]),
        "concept_drift_segment_before_start": _rate(correct[latam & ~after_concept]),
    }


def _weekday_ratio_realised(day_counts: np.ndarray, timeline: Timeline) -> float | None:
    """Mean weekday volume over mean weekend volume, or None without both kinds of day."""
    weekday = weekdays(timeline.start_date, timeline.days)
    if not (weekday.any() and (~weekday).any()):
        return None
    return round(float(day_counts[weekday].mean() / day_counts[~weekday].mean()), 6)


def _preference() -> dict[str, Any]:
    """The parameters the preference judgments were drawn with."""
    return {
        "ticket_share": PAIR_TICKET_SHARE,
        "quality_weights": QUALITY_WEIGHTS,
        "quality_features": QUALITY_FEATURES,
        "quality_noise_sd": QUALITY_NOISE_SD,
        "tie_threshold": TIE_THRESHOLD,
        "tie_probability": TIE_PROBABILITY,
        "position_bias": POSITION_BIAS,
        "annotators": {"human": N_HUMAN_ANNOTATORS, "ai_judge": N_AI_JUDGES},
        "shadow_pair_share": SHADOW_PAIR_SHARE,
        "version_quality_offset": VERSION_QUALITY_OFFSET,
        # best first: the order the model-version leaderboard should recover
        "version_order": sorted(
            VERSION_QUALITY_OFFSET, key=lambda v: VERSION_QUALITY_OFFSET[v], reverse=True
        ),
    }

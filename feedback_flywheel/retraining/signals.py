"""The signals of a retraining decision, each computed from one batch's results.

A signal is one input of :func:`.decision.decide`: its value against its threshold, whether it
had data and whether it fired, with the detail the reason quotes (which features drifted, which
segments dropped, where the change started). Drift signals (covariate, prediction, label) say the
data moved; impact signals (the realised ``performance_drop`` of the batch's performance windows,
``concept_drift``, and ``fast_performance_drop``: the newest matured day of the performance
timeline) say the model got worse; ``estimated_performance_drop`` (the confidence-based estimate,
before labels) says a drift is expected to hurt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from feedback_flywheel.config.policies import Policy

#: signals that say the inputs or outputs moved
DRIFT_SIGNALS = ("covariate_drift", "prediction_drift", "label_drift")
#: signals that say the model's realised accuracy got worse
IMPACT_SIGNALS = ("performance_drop", "concept_drift", "fast_performance_drop")


@dataclass
class Signal:
    """One input of the decision: its value against its threshold."""

    name: str
    enabled: bool
    has_data: bool
    fired: bool
    value: float | None
    threshold: float | None
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "has_data": self.has_data,
            "fired": self.fired,
            "value": self.value,
            "threshold": self.threshold,
            **self.detail,
        }


#: the tests that measure a feature's values (the missing-rate test counts an absent key as
#: missing values, so it would report data for a feature that is not there at all)
DISTRIBUTION_TESTS = ("ks", "chi2")


def _feature_signal(
    name: str, drift: pd.DataFrame, kind: str, policy_signal: Any, min_samples: int
) -> Signal:
    """How many features of ``kind`` drifted; the signal has data only when some feature had
    enough values on both sides for its distribution test, and says which features had none."""
    rows = drift[drift.kind == kind] if not drift.empty else drift
    if rows.empty:
        return Signal(
            name, policy_signal.enabled, False, False, None, float(policy_signal.min_features)
        )
    drifted = sorted(set(rows[rows.is_drift].feature_name))
    measured = rows[rows.test.isin(DISTRIBUTION_TESTS)]
    enough = measured[(measured.n_ref >= min_samples) & (measured.n_cur >= min_samples)]
    without = sorted(set(measured.feature_name) - set(enough.feature_name))
    has_data = not enough.empty
    return Signal(
        name=name,
        enabled=policy_signal.enabled,
        has_data=has_data,
        fired=has_data and len(drifted) >= policy_signal.min_features,
        value=float(len(drifted)) if has_data else None,
        threshold=float(policy_signal.min_features),
        detail={"features": drifted, "features_without_data": without},
    )


def _performance_signal(checks: pd.DataFrame, policy: Policy) -> Signal:
    """The worst overall accuracy change among versions with enough labels, flagged when any
    version's check flagged a significant drop."""
    drop = policy.signals.performance_drop
    if checks.empty:
        return Signal("performance_drop", drop.enabled, False, False, None, -drop.min_drop)
    overall = checks[checks.check_name == "accuracy_change"]
    enough = overall[(overall.n_ref >= drop.min_labelled) & (overall.n_cur >= drop.min_labelled)]
    worst = enough.sort_values("accuracy_change").head(1) if not enough.empty else enough
    return Signal(
        name="performance_drop",
        enabled=drop.enabled,
        has_data=not enough.empty,
        fired=bool(not overall.empty and overall.is_flagged.any()),
        value=None if worst.empty else float(worst.accuracy_change.iloc[0]),
        threshold=-drop.min_drop,
        detail={
            "model_version": None if worst.empty else worst.model_version.iloc[0],
            "p_value": None if worst.empty else float(worst.p_value.iloc[0]),
            "keys": [
                [version, "__all__", "__all__"]
                for version in sorted(set(overall[overall.is_flagged].model_version))
            ],
        },
    )


def _concept_signal(checks: pd.DataFrame, policy: Policy) -> Signal:
    """Concept drift: a flagged within-segment drop or a flagged concept part of a
    decomposition; the segments are listed worst first."""
    concept = policy.signals.concept_drift
    if checks.empty:
        return Signal("concept_drift", concept.enabled, False, False, None, -concept.min_drop)
    segment = checks[checks.check_name == "segment_concept"]
    flagged = segment[segment.is_flagged] if not segment.empty else segment
    decomposition = (
        checks[(checks.check_name == "concept_decomposition") & checks.is_flagged]
        if not checks.empty
        else checks
    )
    worst_segment = flagged.sort_values("accuracy_change").head(1) if not flagged.empty else flagged
    return Signal(
        name="concept_drift",
        enabled=concept.enabled,
        has_data=bool(not segment.empty and (segment.n_cur >= concept.min_labelled).any()),
        fired=bool(not flagged.empty or not decomposition.empty),
        value=None if worst_segment.empty else float(worst_segment.accuracy_change.iloc[0]),
        threshold=-concept.min_drop,
        detail={
            "segments": [
                f"{row.segment_attribute}={row.segment_value} ({row.model_version}): "
                f"{row.accuracy_change:+.3f} [{row.concept_lower:+.3f}, {row.concept_upper:+.3f}]"
                # worst first: the reason quotes the first five
                for row in flagged.sort_values(
                    ["accuracy_change", "segment_attribute", "segment_value"]
                ).itertuples(index=False)
            ],
            "decompositions": [
                f"by {row.segment_attribute} ({row.model_version}): concept "
                f"{row.concept_part:+.3f}, covariate {row.covariate_part:+.3f}"
                for row in decomposition.itertuples(index=False)
            ],
            "keys": [  # worst first, like the segments
                list(key)
                for key in flagged.sort_values(
                    ["accuracy_change", "segment_attribute", "segment_value"]
                )[["model_version", "segment_attribute", "segment_value"]].itertuples(
                    index=False, name=None
                )
            ],
        },
    )


def _estimated_signal(estimates: pd.DataFrame, policy: Policy) -> Signal:
    """The worst gap between the confidence-based estimate and the reference accuracy."""
    estimated = policy.signals.estimated_performance_drop
    usable = estimates[estimates.estimated_accuracy.notna()] if not estimates.empty else estimates
    gaps = (usable.estimated_accuracy - usable.reference_accuracy) if not usable.empty else None
    worst_gap = None if gaps is None or gaps.empty else float(gaps.min())
    return Signal(
        name="estimated_performance_drop",
        enabled=estimated.enabled,
        has_data=worst_gap is not None,
        fired=worst_gap is not None and worst_gap <= -estimated.min_drop,
        value=worst_gap,
        threshold=-estimated.min_drop,
    )


def build_signals(
    model_name: str,
    drift: pd.DataFrame,
    checks: pd.DataFrame,
    estimates: pd.DataFrame,
    policy: Policy,
    performance_days: pd.DataFrame | None = None,
) -> dict[str, Signal]:
    """Every signal the policy knows, computed for one model from the batch's results;
    ``performance_days``: the batch's ``ml.performance_timeline`` rows of the recent days (the
    fast signal's input; none: the fast signal has no data)."""
    drift = drift[drift.model_name == model_name] if not drift.empty else drift
    checks = checks[checks.model_name == model_name] if not checks.empty else checks
    estimates = estimates[estimates.model_name == model_name] if not estimates.empty else estimates
    days = pd.DataFrame() if performance_days is None else performance_days
    days = days[days.model_name == model_name] if not days.empty else days
    min_samples = policy.drift.min_samples
    return {
        "covariate_drift": _feature_signal(
            "covariate_drift", drift, "covariate", policy.signals.covariate_drift, min_samples
        ),
        "prediction_drift": _feature_signal(
            "prediction_drift", drift, "prediction", policy.signals.prediction_drift, min_samples
        ),
        "label_drift": _feature_signal(
            "label_drift", drift, "label", policy.signals.label_drift, min_samples
        ),
        "performance_drop": _performance_signal(checks, policy),
        "concept_drift": _concept_signal(checks, policy),
        "estimated_performance_drop": _estimated_signal(estimates, policy),
        "fast_performance_drop": _fast_signal(days, policy),
    }


def attach_change_points(signals: dict[str, Signal], changes: dict[str, str]) -> None:
    """Record with the feature signals where each drifted feature's change started (the drift
    timeline's estimate, :mod:`.change_points`)."""
    for name in ("covariate_drift", "prediction_drift"):
        features = signals[name].detail.get("features") or []
        signals[name].detail["change_points"] = {f: changes[f] for f in features if f in changes}


def attach_drop_starts(signals: dict[str, Signal], starts: dict[tuple[str, str, str], str]) -> None:
    """Record with each impact signal where each drop it cites started (the performance
    timeline's change points, keyed by model version, segment attribute and value), and where
    its worst drop with a change point started (``worst_drop_start``; its keys come worst
    first)."""
    for name in IMPACT_SIGNALS:
        signal = signals[name]
        cited = [tuple(key) for key in signal.detail.get("keys") or [] if tuple(key) in starts]
        signal.detail["change_points"] = {
            f"{_segment_label(attribute, value)} ({version})": starts[(version, attribute, value)]
            for version, attribute, value in cited
        }
        signal.detail["worst_drop_start"] = starts[cited[0]] if cited else None


def training_start(signals: dict[str, Any]) -> str | None:
    """The day a retraining should learn from (ISO), read from a decision's signals (as
    ``signals_json`` holds them); None when no signal that fired cites a change point.

    Of the impact signals that fired, the one with the largest drop wins and its worst drop's
    start is the day: that drop is where the change is concentrated, which is what the new
    model must learn, and it is the best located; the smaller drops a decision also cites
    (other segments, often noise a few days off) would mix rows from before the change into
    the window. Ties go to the earlier start. (Decisions recorded before ``worst_drop_start``
    existed: the earliest change point their impact signals cite.) Without an impact change
    point: the earliest change point a drift signal that fired cites. A concept change wins
    over an earlier input shift.
    """

    def fired(name: str) -> dict[str, Any] | None:
        signal = signals.get(name) or {}
        return signal if signal.get("fired") and signal.get("enabled") else None

    impact = [signal for name in IMPACT_SIGNALS if (signal := fired(name))]
    worst = [s for s in impact if s.get("worst_drop_start") and s.get("value") is not None]
    if worst:
        return min(worst, key=lambda s: (s["value"], s["worst_drop_start"]))["worst_drop_start"]
    for group in (impact, [signal for name in DRIFT_SIGNALS if (signal := fired(name))]):
        days = [day for signal in group for day in (signal.get("change_points") or {}).values()]
        if days:
            return min(days)
    return None


def fast_drops(rows: pd.DataFrame, policy: Policy) -> pd.Series:
    """Which performance-timeline rows are drops by the fast signal's own floors: both windows
    hold ``min_labelled`` labels, the change is at most ``-min_drop``, and the p-value (adjusted
    across the day's segments for a segment) is below its ``alpha``."""
    fast = policy.signals.fast_performance_drop
    p = rows.p_value.where(rows.check_name == "accuracy_change", rows.p_adjusted)
    return (
        (rows.n_ref >= fast.min_labelled)
        & (rows.n_cur >= fast.min_labelled)
        & (p < fast.alpha)
        & (rows.accuracy_change <= -fast.min_drop)
    )


def _fast_signal(days: pd.DataFrame, policy: Policy) -> Signal:
    """The fast window of the performance timeline: per model version, overall and per segment
    value, the newest evaluated day whose fast window and reference both hold ``min_labelled``
    matured labels; it fires when one of them dropped by ``min_drop`` with a p-value (Benjamini-
    Hochberg adjusted across the day's segments for a segment) below the signal's own ``alpha``.
    The value is the worst change among those newest days."""
    fast = policy.signals.fast_performance_drop
    keys = ["model_version", "segment_attribute", "segment_value"]
    usable = (
        days[(days.n_ref >= fast.min_labelled) & (days.n_cur >= fast.min_labelled)]
        if not days.empty
        else days
    )
    if usable.empty:
        return Signal("fast_performance_drop", fast.enabled, False, False, None, -fast.min_drop)
    newest = usable.sort_values("evaluation_date").groupby(keys, sort=False).tail(1)
    dropped = newest[fast_drops(newest, policy)]
    dropped = dropped.sort_values(["accuracy_change", *keys])
    return Signal(
        name="fast_performance_drop",
        enabled=fast.enabled,
        has_data=True,
        fired=not dropped.empty,
        value=float(newest.accuracy_change.min()),
        threshold=-fast.min_drop,
        detail={
            "segments": [
                f"{_segment_name(row)} ({row.model_version}) on {_day(row.evaluation_date)}: "
                f"{row.accuracy_change:+.3f}"
                for row in dropped.itertuples(index=False)
            ],
            "keys": [list(key) for key in dropped[keys].itertuples(index=False, name=None)],
            "alpha": fast.alpha,
        },
    )


def _segment_name(row: Any) -> str:
    return _segment_label(row.segment_attribute, row.segment_value)


def _segment_label(attribute: str, value: str) -> str:
    return "overall" if attribute == "__all__" else f"{attribute}={value}"


def _day(value: Any) -> str:
    return pd.Timestamp(value).date().isoformat()

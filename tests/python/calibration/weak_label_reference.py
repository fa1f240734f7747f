"""The weak labels recounted in pandas: what ``marts.fct_weak_label_fidelity`` must measure for a
batch and which predictions ``marts.fct_weak_label_examples`` must then label, from the rows of
``marts.fct_feedback_signals`` and ``marts.fct_training_examples`` themselves; the Wilson
interval comes from scipy (``binomtest(...).proportion_ci(method="wilson")``)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
from scipy import stats

SIGNALS = ("click", "conversion", "thumbs", "dwell_seconds")


def positive(frame: pd.DataFrame, signal: str, dwell_at: float) -> pd.Series:
    """Whether each row's ``signal`` counts as positive (the fidelity report's rules)."""
    if signal == "thumbs":
        return frame[signal] > 0
    if signal == "dwell_seconds":
        return frame[signal] >= dwell_at
    return frame[signal] == 1


def fidelity(
    signals: pd.DataFrame,
    examples: pd.DataFrame,
    *,
    batch_end: datetime,
    days: int,
    dwell_at: float,
    configured: list[str],
    min_count: int,
    min_fidelity: float,
) -> pd.DataFrame:
    """One row per (model, signal, polarity): overlap, right, rate, Wilson bounds, usability."""
    window = signals[
        (signals.inference_logged_at >= batch_end - timedelta(days=days))
        & (signals.inference_logged_at < batch_end)
        & signals.is_correct.notna()
    ]
    label_counts = examples.groupby("model_name").label.nunique()
    rows = []
    for model_name in sorted(signals.model_name.unique()):
        two_class = label_counts.get(model_name, 0) == 2
        model_rows = window[window.model_name == model_name]
        for signal in SIGNALS:
            held = model_rows[model_rows[signal].notna()]
            is_positive = positive(held, signal, dwell_at)
            for polarity, chosen in (("positive", is_positive), ("negative", ~is_positive)):
                rows_of = held[chosen]
                correct = rows_of.is_correct.astype(bool)
                right = int(correct.sum() if polarity == "positive" else (~correct).sum())
                n = len(rows_of)
                low = high = rate = None
                if n:
                    interval = stats.binomtest(right, n).proportion_ci(0.95, method="wilson")
                    low, high, rate = interval.low, interval.high, right / n
                if signal not in configured:
                    usability = "not_configured"
                elif polarity == "negative" and not two_class:
                    usability = "not_two_class"
                elif n < min_count:
                    usability = "too_few_overlaps"
                elif low < min_fidelity:
                    usability = "below_min_fidelity"
                else:
                    usability = "usable"
                rows.append((model_name, signal, polarity, n, right, rate, low, high, usability))
    return pd.DataFrame(
        rows,
        columns=[
            "model_name",
            "signal_name",
            "signal_polarity",
            "overlap_count",
            "right_count",
            "fidelity_rate",
            "fidelity_rate_lower",
            "fidelity_rate_upper",
            "usability",
        ],
    )


def unlabelled_usable(
    signals: pd.DataFrame, usable: pd.DataFrame, *, batch_end: datetime, dwell_at: float
) -> set[str]:
    """The predictions without a current label that hold a signal whose (signal, polarity) is
    usable: each must have a current weak label."""
    unlabelled = signals[signals.is_correct.isna() & (signals.inference_logged_at < batch_end)]
    found: set[str] = set()
    for row in usable.itertuples():
        held = unlabelled[
            (unlabelled.model_name == row.model_name) & unlabelled[row.signal_name].notna()
        ]
        is_positive = positive(held, row.signal_name, dwell_at)
        chosen = is_positive if row.signal_polarity == "positive" else ~is_positive
        found |= set(held[chosen].inference_id)
    return found

"""Which rows a retraining learns from, and which it is judged on, when the world has changed.

A dataset version's training sample is drawn from the whole history: after a concept change
most of its rows teach the old concept, and a candidate judged on held-out rows of the whole
history is judged on the world that is gone. When the decision behind a retraining cites a
change point (:func:`.signals.training_start`), the built-in trainer instead:

- **learns from after the change**: the dataset version's labelled examples logged on or after
  the change point (``marts.fct_training_examples`` as of the version, at most
  ``max_rows_after_change``, chosen by the hash of the inference id and the seed), when there are
  at least ``min_rows_after_change`` of them (default 500: fewer cannot fit a three-class model
  on a dozen features reliably);
- **else weighs recency**: the usual training sample, each row's weight multiplied by
  ``0.5 ** (age / recency_half_life_days)``, its age counted back from the newest row, so the days
  since the change count most without throwing the history away;
- and in both cases **is judged after the change**: candidate and incumbent are compared on the
  held-out rows logged on or after the change point (all held-out rows when none are).

What was done is recorded with the run (``parameters_json.training_window``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

import numpy as np
import pandas as pd

#: defaults of the retrain flow's parameters
MIN_ROWS_AFTER_CHANGE = 500
MAX_ROWS_AFTER_CHANGE = 20_000
RECENCY_HALF_LIFE_DAYS = 7.0


@dataclass(frozen=True)
class TrainingWindow:
    """What a run learned from: ``all`` (no change point), ``after_change`` or
    ``recency_weighted``, with the numbers that chose it."""

    mode: str
    since: str | None = None
    rows_after_change: int | None = None
    min_rows_after_change: int | None = None
    recency_half_life_days: float | None = None

    def as_dict(self) -> dict[str, object]:
        return {key: value for key, value in asdict(self).items() if value is not None}


def choose(
    sample: pd.DataFrame,
    after_change: pd.DataFrame | None,
    since: datetime | None,
    *,
    min_rows: int = MIN_ROWS_AFTER_CHANGE,
    half_life_days: float = RECENCY_HALF_LIFE_DAYS,
) -> tuple[pd.DataFrame, TrainingWindow]:
    """The rows to train and evaluate on: ``after_change`` (the labelled examples since the
    change point) when there are at least ``min_rows``, else ``sample`` weighted by recency;
    ``sample`` as it is without a change point."""
    if since is None:
        return sample, TrainingWindow("all")
    if min_rows < 1 or half_life_days <= 0:
        raise ValueError(
            f"min_rows_after_change must be >= 1 and recency_half_life_days > 0; got {min_rows} "
            f"and {half_life_days}"
        )
    labelled = 0 if after_change is None else int(after_change["label"].notna().sum())
    day = since.date().isoformat()
    if labelled >= min_rows:
        return after_change, TrainingWindow("after_change", day, labelled, min_rows)
    logged = pd.to_datetime(sample["inference_logged_at"])
    age_days = (logged.max() - logged).dt.total_seconds().to_numpy() / 86_400.0
    weights = sample["sample_weight"].astype(float).fillna(1.0).to_numpy()
    weighted = sample.assign(sample_weight=weights * np.power(0.5, age_days / half_life_days))
    window = TrainingWindow("recency_weighted", day, labelled, min_rows, half_life_days)
    return weighted, window


def judged_after(holdout: pd.DataFrame, since: datetime | None) -> np.ndarray:
    """The held-out rows the comparison uses: those logged on or after ``since`` (all of them
    when there is no change point, or none was logged after it)."""
    everything = np.ones(len(holdout), dtype=bool)
    if since is None or holdout.empty:
        return everything
    after = (pd.to_datetime(holdout["inference_logged_at"]) >= pd.Timestamp(since)).to_numpy()
    return after if after.any() else everything

"""Small helpers every generator step shares: seeded categorical and uniform draws, rounding that
never prints "-0.0", and microsecond timestamp arithmetic.

All timestamps in the generator are integers of microseconds since the epoch (naive UTC), so
arithmetic is exact and vectorised and Arrow can take the arrays as ``timestamp("us")`` as they
are.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np

from feedback_flywheel.demo.constants import EPOCH, US_PER_DAY


def pick(rng: np.random.Generator, probs: Sequence[float], size: int) -> np.ndarray:
    """Categorical draws (codes into ``probs``) as int8."""
    cum = np.cumsum(np.asarray(probs, dtype=np.float64))
    cum /= cum[-1]
    codes = np.searchsorted(cum, rng.random(size), side="right")
    return np.minimum(codes, len(probs) - 1).astype(np.int8)


def uniform_us(rng: np.random.Generator, low_us: float, high_us: Any, size: int) -> np.ndarray:
    """Integer microsecond offsets uniform in [low, high); ``high_us`` may be an array."""
    return (low_us + rng.random(size) * (np.asarray(high_us, dtype=np.float64) - low_us)).astype(
        np.int64
    )


def clean(values: np.ndarray, decimals: int) -> np.ndarray:
    """Round and turn -0.0 into 0.0, so text never shows "-0.0"."""
    return np.round(values, decimals) + 0.0


def by_correct(correct: np.ndarray, values: dict[str, float]) -> np.ndarray:
    """Per row, ``values["correct"]`` where the prediction was right, else ``values["wrong"]``."""
    return np.where(correct, values["correct"], values["wrong"])


def day_us(day: date) -> int:
    """Microseconds since the epoch at 00:00 UTC of ``day``."""
    return (day - EPOCH).days * US_PER_DAY


def iso(us: int) -> str:
    """ISO 8601 text of a naive UTC microsecond timestamp."""
    return (datetime(1970, 1, 1) + timedelta(microseconds=int(us))).isoformat()


def weekdays(start_date: date, days: int) -> np.ndarray:
    """True for each day of the history that falls on Monday to Friday."""
    return np.array([(start_date + timedelta(days=d)).weekday() < 5 for d in range(days)])

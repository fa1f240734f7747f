"""When things happen in the demo world: the history's key dates, how many inferences each day
serves, how they group into units (single tickets, tickets answered twice, RL-style sessions),
and the logged_at of every row.

Rows are drawn per unit so that a pair's two answers and a session's steps sit minutes apart on
the same day, which is what the warehouse's session and preference models expect to see.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from feedback_flywheel.demo.constants import (
    PAIR_TICKET_SHARE,
    SESSION_SHARE,
    SESSION_STEP_GAP_MINUTES,
    SESSION_STEPS,
    US_PER_DAY,
    US_PER_MINUTE,
    US_PER_SECOND,
    WEEKDAY_VOLUME_RATIO,
)
from feedback_flywheel.demo.draws import day_us, uniform_us, weekdays

UNIT_SINGLE, UNIT_PAIR, UNIT_SESSION = 0, 1, 2
# Seconds after midnight a unit may start so that it still ends the same day, per unit kind.
_UNIT_START_SPAN_SECONDS = np.array([86_399.0, 86_280.0, 82_800.0])


@dataclass(frozen=True)
class Timeline:
    """The history's bounds and the days its planted changes start on (as day indexes)."""

    start_date: date
    days: int
    start_us: int
    end_us: int
    v2_us: int  # v2 replaces v1 a third of the way in (never in a closed loop: end_us)
    covariate_day: int  # message_length and channel drift from here on
    concept_day: int  # the concept drift segment's labels change from here on
    # A closed loop: v1 serves until the flywheel deploys a model of its own, and the concept
    # drift is one a model can learn (see :mod:`feedback_flywheel.demo.serving`).
    closed_loop: bool = False

    @classmethod
    def of(cls, start_date: date, days: int, *, closed_loop: bool = False) -> Timeline:
        """The timeline of a history of ``days`` days from ``start_date``."""
        start_us = day_us(start_date)
        end_us = start_us + days * US_PER_DAY
        return cls(
            start_date=start_date,
            days=days,
            start_us=start_us,
            end_us=end_us,
            v2_us=end_us if closed_loop else start_us + (days // 3) * US_PER_DAY,
            covariate_day=days * 7 // 12,
            concept_day=days * 3 // 4,
            closed_loop=closed_loop,
        )


@dataclass(frozen=True)
class Schedule:
    """Every inference row's unit and logged_at, in drawing order (not yet sorted by time)."""

    day_counts: np.ndarray  # inferences per day of the history
    unit_kind: np.ndarray  # per unit: UNIT_SINGLE, UNIT_PAIR or UNIT_SESSION
    unit_first: np.ndarray  # per unit: its first row
    unit_of_row: np.ndarray  # per row: its unit
    pos: np.ndarray  # per row: position inside its unit (0 for the first)
    kind: np.ndarray  # per row: the kind of its unit
    logged: np.ndarray  # per row: logged_at in microseconds
    day: np.ndarray  # per row: day index of logged_at

    @property
    def n(self) -> int:
        """Number of inference rows."""
        return len(self.unit_of_row)

    @property
    def n_units(self) -> int:
        """Number of units (tickets and sessions)."""
        return len(self.unit_kind)


def draw_schedule(
    rng: np.random.Generator, timeline: Timeline, inferences_per_day: int
) -> Schedule:
    """Draw the units of every day and the logged_at of each of their rows."""
    day_counts = _day_counts(timeline.days, inferences_per_day, timeline.start_date)
    unit_len, unit_kind, unit_day = _layout(rng, day_counts)
    n = int(unit_len.sum())
    unit_first = np.cumsum(unit_len) - unit_len
    unit_of_row = np.repeat(np.arange(len(unit_len)), unit_len)
    pos = np.arange(n) - unit_first[unit_of_row]
    kind = unit_kind[unit_of_row]
    unit_start = (
        timeline.start_us
        + unit_day * US_PER_DAY
        + (rng.random(len(unit_len)) * _UNIT_START_SPAN_SECONDS[unit_kind] * US_PER_SECOND)
    )
    offset = _offsets_in_unit(rng, kind, pos, unit_first, unit_of_row)
    logged = unit_start.astype(np.int64)[unit_of_row] + offset
    return Schedule(
        day_counts=day_counts,
        unit_kind=unit_kind,
        unit_first=unit_first,
        unit_of_row=unit_of_row,
        pos=pos,
        kind=kind,
        logged=logged,
        day=(logged - timeline.start_us) // US_PER_DAY,
    )


def _day_counts(days: int, inferences_per_day: int, start_date: date) -> np.ndarray:
    """Inferences per day: weekdays WEEKDAY_VOLUME_RATIO times weekend days, averaging the input."""
    weekday = weekdays(start_date, days)
    weight_weekday = 7 * WEEKDAY_VOLUME_RATIO / (5 * WEEKDAY_VOLUME_RATIO + 2)
    weight_weekend = 7 / (5 * WEEKDAY_VOLUME_RATIO + 2)
    weights = np.where(weekday, weight_weekday, weight_weekend)
    return np.rint(inferences_per_day * weights).astype(np.int64)


def _layout(
    rng: np.random.Generator, day_counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split each day's inferences into units: singles, pairs (2 rows) and sessions (k rows).

    Returns per unit (length, kind 0=single 1=pair 2=session, day index).
    """
    lengths: list[np.ndarray] = []
    kinds: list[np.ndarray] = []
    unit_days: list[np.ndarray] = []
    for day, count in enumerate(day_counts):
        n_pairs = round(int(count) * PAIR_TICKET_SHARE / (1 + PAIR_TICKET_SHARE))
        sessions = _session_lengths(rng, round(int(count) * SESSION_SHARE))
        singles = int(count) - 2 * n_pairs - int(sessions.sum())
        day_lengths = np.concatenate(
            [np.ones(singles, np.int64), np.full(n_pairs, 2, np.int64), sessions.astype(np.int64)]
        )
        day_kinds = np.concatenate(
            [
                np.full(singles, UNIT_SINGLE, np.int8),
                np.full(n_pairs, UNIT_PAIR, np.int8),
                np.full(len(sessions), UNIT_SESSION, np.int8),
            ]
        )
        lengths.append(day_lengths)
        kinds.append(day_kinds)
        unit_days.append(np.full(len(day_lengths), day, np.int64))
    return np.concatenate(lengths), np.concatenate(kinds), np.concatenate(unit_days)


def _session_lengths(rng: np.random.Generator, session_rows: int) -> np.ndarray:
    """Session lengths (SESSION_STEPS bounds) adding up to about ``session_rows`` rows.

    The last session is cut to fit and dropped if that leaves it shorter than the minimum.
    """
    low, high = SESSION_STEPS
    draws = rng.integers(low, high + 1, size=session_rows // low + 1)
    cumulative = np.cumsum(draws)
    cut = int(np.searchsorted(cumulative, session_rows))
    sessions = draws[: cut + 1].copy()
    sessions[-1] -= cumulative[cut] - session_rows
    return sessions[sessions >= low]


def _offsets_in_unit(
    rng: np.random.Generator,
    kind: np.ndarray,
    pos: np.ndarray,
    unit_first: np.ndarray,
    unit_of_row: np.ndarray,
) -> np.ndarray:
    """Microseconds from its unit's start to each row: seconds between a pair's two answers,
    minutes between a session's steps."""
    n = len(kind)
    gap = np.where(
        kind == UNIT_PAIR,
        uniform_us(rng, 2 * US_PER_SECOND, 60 * US_PER_SECOND, n),
        uniform_us(
            rng,
            SESSION_STEP_GAP_MINUTES[0] * US_PER_MINUTE,
            SESSION_STEP_GAP_MINUTES[1] * US_PER_MINUTE,
            n,
        ),
    )
    gap[pos == 0] = 0
    running = np.cumsum(gap)
    return running - running[unit_first][unit_of_row]

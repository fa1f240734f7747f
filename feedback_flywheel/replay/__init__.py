"""The experience replay buffer: transitions from the RL-style sessions the logs carry
(``marts.fct_replay_transitions``), kept as a governed warehouse table (``ml.replay_*``).

- :mod:`.refresh`: once per batch, insert what entered, refresh priorities, evict with reasons,
  hold the capacity, record the version;
- :mod:`.sampling`: uniform, prioritized and recent samplers in SQL, with probabilities,
  importance weights and the samples-per-insert limiter (what a trainer imports);
- :mod:`.priorities`: the TD-error write-back;
- :mod:`.composition` and :mod:`.versions`: what a version holds, and rebuilding it.
"""

from feedback_flywheel.replay.priorities import TdErrorReportError, report_td_errors
from feedback_flywheel.replay.refresh import RefreshOutcome, refresh
from feedback_flywheel.replay.sampling import (
    RateLimited,
    ReplayError,
    Sample,
    sample,
    sample_when_allowed,
)

__all__ = [
    "RateLimited",
    "RefreshOutcome",
    "ReplayError",
    "Sample",
    "TdErrorReportError",
    "refresh",
    "report_td_errors",
    "sample",
    "sample_when_allowed",
]

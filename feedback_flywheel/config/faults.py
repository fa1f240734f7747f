"""Fault injection for the crash-safety tests: die at a named point as a ``kill -9`` would.

The batch cycle calls :func:`fault_point` at every task boundary (``after:dbt-build``, …) and at
the risky moments inside a task (``trigger-retraining:before``, ``publish:renamed``, …); every
point is listed in :data:`FAULT_POINTS`. Inert unless ``$FLYWHEEL_FAULT_AT`` names the point:
then the process exits at once with :data:`FAULT_EXIT_CODE`, without running ``finally`` blocks,
closing files or releasing anything but what the kernel releases (the run lock, DuckDB's lock).
``tests/python/flows/test_crash_safety.py`` kills a run at each point and checks that the next
run completes it to the same warehouse as an uninterrupted run, with no duplicate trigger.
"""

from __future__ import annotations

import os
import sys

FAULT_ENV = "FLYWHEEL_FAULT_AT"
FAULT_EXIT_CODE = 137

#: every point the batch cycle can be killed at, in the order a batch passes them
FAULT_POINTS = (
    "after:plan-batch",
    "after:open-batch",
    "after:dbt-build",
    "after:audit-dataset-versions",
    "after:test-drift",
    "after:check-performance",
    "after:decide-retraining",
    "trigger-retraining:before",
    "trigger-retraining:after",
    "after:train-reward-model",
    "after:refresh-replay-buffer",
    "after:record-batch",
    "after:publish-batch-summary",
    "publish:building",
    "after:publish-serving-snapshot",
)


def fault_point(name: str) -> None:
    """Exit the process here when ``$FLYWHEEL_FAULT_AT`` is ``name`` (see the module doc)."""
    if os.environ.get(FAULT_ENV) == name:
        sys.stderr.write(f"fault injected at {name}: exiting as if killed\n")
        sys.stderr.flush()
        os._exit(FAULT_EXIT_CODE)

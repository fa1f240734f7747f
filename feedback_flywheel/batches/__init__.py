"""Batches: the windows a cycle processes (:mod:`.windows`), their bookkeeping in
``ml.batch_runs`` (:mod:`.runs`) and the run lock that lets one run at a time at a warehouse
(:mod:`.lock`)."""

from feedback_flywheel.batches.lock import RunLockBusy, holds_lock, lock_path, run_lock
from feedback_flywheel.batches.runs import (
    abandon_running,
    batch_counts,
    close_batch,
    mark_published,
    open_batch,
    unpublished_batch,
)
from feedback_flywheel.batches.windows import (
    MAX_DAILY_BATCHES,
    BatchError,
    BatchWindow,
    batch_id_for,
    first_data_time,
    has_inference_history,
    latest_successful,
    plan_windows,
    rerun_window,
    utc_now,
    window,
)

__all__ = [
    "MAX_DAILY_BATCHES",
    "BatchError",
    "BatchWindow",
    "RunLockBusy",
    "abandon_running",
    "batch_counts",
    "batch_id_for",
    "close_batch",
    "first_data_time",
    "has_inference_history",
    "holds_lock",
    "latest_successful",
    "lock_path",
    "mark_published",
    "open_batch",
    "plan_windows",
    "rerun_window",
    "run_lock",
    "unpublished_batch",
    "utc_now",
    "window",
]

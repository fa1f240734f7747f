"""Batches: the windows a cycle processes (:mod:`.windows`) and their bookkeeping in
``ml.batch_runs`` (:mod:`.runs`)."""

from feedback_flywheel.batches.runs import batch_counts, close_batch, open_batch
from feedback_flywheel.batches.windows import (
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
    "BatchError",
    "BatchWindow",
    "batch_counts",
    "batch_id_for",
    "close_batch",
    "first_data_time",
    "has_inference_history",
    "latest_successful",
    "open_batch",
    "plan_windows",
    "rerun_window",
    "utc_now",
    "window",
]

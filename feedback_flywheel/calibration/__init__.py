"""Feedback-loop calibration, the Python side: the offline evaluation of query policies
(:mod:`.policies`, :mod:`.evaluation`), the Exp3 bandit over the policies across cycles
(:mod:`.bandit`) and their reads and writes (:mod:`.store`). Fidelity, label
coverage and the maturation window are dbt models (``models/marts/calibration``); which policy the
next training sample uses is the mart ``fct_sampling_policy_scores``."""

from feedback_flywheel.calibration.policies import POLICIES, pick, sample_key
from feedback_flywheel.calibration.store import EvaluationOutcome, evaluate_batch

__all__ = ["POLICIES", "EvaluationOutcome", "evaluate_batch", "pick", "sample_key"]

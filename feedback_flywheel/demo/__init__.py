"""The demo world: a deterministic, seeded world of logs (inferences, feedback, preferences,
deployments) with every drift and defect it injects written to ``truth.json``
(:func:`generate`)."""

from feedback_flywheel.demo.constants import MODEL_NAME
from feedback_flywheel.demo.world import generate
from feedback_flywheel.demo.writers import contract_schema

__all__ = ["MODEL_NAME", "contract_schema", "generate"]

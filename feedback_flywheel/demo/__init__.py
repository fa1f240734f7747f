"""The demo world: a deterministic, seeded world of logs (inferences, feedback, preferences,
deployments) with every drift and defect it injects written to ``truth.json``
(:func:`generate`)."""

from feedback_flywheel.demo.world import MODEL_NAME, contract_schema, generate

__all__ = ["MODEL_NAME", "contract_schema", "generate"]

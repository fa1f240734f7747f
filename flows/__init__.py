"""Prefect flows of feedback_flywheel: one ``@flow`` per module."""

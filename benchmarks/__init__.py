"""Benchmarks for feedback_flywheel: ``python -m benchmarks.run`` (see benchmarks/README.md)."""

"""Prefect flows of feedback_flywheel: one ``@flow`` per module.

Importing :mod:`feedback_flywheel` first sets the project's Prefect defaults (``PREFECT_HOME``
inside the project, telemetry off) before any flow module imports prefect.
"""

import feedback_flywheel  # noqa: F401

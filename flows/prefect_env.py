"""Prefect settings the project needs before ``prefect`` is imported.

Prefect reads its settings from the environment of the process when it is first imported, so
this is the one place the project sets environment variables for its own process: Prefect's
home (its local database and settings) inside the project, ignored by git, unless the user
configured one; telemetry off.
"""

from __future__ import annotations

import os

from feedback_flywheel.config import paths


def configure() -> None:
    os.environ.setdefault("PREFECT_HOME", str(paths.project_dir(os.environ) / ".prefect"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")

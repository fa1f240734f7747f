"""Prefect settings the project needs before ``prefect`` is imported.

Prefect's home (its local database and settings) lives inside the project, ignored by git, unless
the user configured one; telemetry is off. Import this module before anything imports prefect.
"""

from __future__ import annotations

import os

from feedback_flywheel import paths


def configure() -> None:
    os.environ.setdefault("PREFECT_HOME", str(paths.project_dir() / ".prefect"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")

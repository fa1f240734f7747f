"""Prefect settings the project needs before ``prefect`` is imported.

Prefect reads its settings from the environment of the process when it is first imported, so
this is the one place the project sets environment variables for its own process: Prefect's
home (its local database and settings) inside the project, ignored by git, unless the user
configured one; telemetry off; time for the temporary server's first start.
"""

from __future__ import annotations

import os
from pathlib import Path

from feedback_flywheel.config import paths


def configure() -> None:
    os.environ.setdefault("PREFECT_HOME", str(paths.project_dir(os.environ) / ".prefect"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
    # The temporary server migrates a fresh Prefect home on its first start, which takes longer
    # than Prefect's 20 s default on a loaded 2-core machine ("Timed out while attempting to
    # connect to ephemeral Prefect API server" on a first `make run`).
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


LOGGING_CONFIG = Path(__file__).with_name("logging.yml")


def configure_logging(log_file: Path, *, verbose: bool) -> None:
    """Send Prefect's logs — every flow and task run, the dbt output its tasks log, the
    temporary server — to ``log_file`` instead of the console (``verbose``: to both, as Prefect
    does by default). Prefect reads its logging configuration from the environment when it sets
    logging up, so this must run before prefect is imported."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    os.environ["PREFECT_LOGGING_SETTINGS_PATH"] = str(LOGGING_CONFIG)
    os.environ["PREFECT_LOGGING_HANDLERS_FILE_FILENAME"] = str(log_file.resolve())
    handlers = "console,file" if verbose else "file"
    for logger in ("ROOT", "PREFECT", "UVICORN", "FASTAPI"):
        os.environ[f"PREFECT_LOGGING_{'LOGGERS_' if logger != 'ROOT' else ''}{logger}_HANDLERS"] = (
            handlers
        )
    for logger in ("PREFECT_FLOW_RUNS", "PREFECT_TASK_RUNS"):
        os.environ[f"PREFECT_LOGGING_LOGGERS_{logger}_HANDLERS"] = f"api,{handlers}"

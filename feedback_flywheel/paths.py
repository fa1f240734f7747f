"""Where things live: the dbt project, the database file and Prefect's home.

dbt-duckdb resolves a relative database path against the current directory, not the project, so a
flow started elsewhere would silently create a second, empty database. Everything here is therefore
resolved to an absolute path once, and handed to dbt through ``FLYWHEEL_DUCKDB``.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_DB_RELATIVE = Path("data") / "flywheel.duckdb"


def project_dir() -> Path:
    """The dbt project directory (the one holding ``dbt_project.yml``)."""
    override = os.environ.get("FLYWHEEL_PROJECT_DIR")
    return Path(override).resolve() if override else PROJECT_DIR


def database_path() -> Path:
    """The DuckDB file: ``$FLYWHEEL_DUCKDB`` if set, else ``data/flywheel.duckdb`` in the project.

    A relative ``FLYWHEEL_DUCKDB`` is taken relative to the current directory, as a user typing it
    would expect, and made absolute here.
    """
    configured = os.environ.get("FLYWHEEL_DUCKDB")
    path = Path(configured).expanduser() if configured else project_dir() / DEFAULT_DB_RELATIVE
    return path.resolve()


def published_path(db_path: Path | None = None) -> Path:
    """The read-only copy published after each successful cycle: ``$FLYWHEEL_SERVING_DUCKDB``
    if set, else ``<db>.serving.duckdb`` next to the warehouse."""
    configured = os.environ.get("FLYWHEEL_SERVING_DUCKDB")
    if configured:
        return Path(configured).expanduser().resolve()
    db_path = Path(db_path).resolve() if db_path else database_path()
    return db_path.with_name(db_path.stem + ".serving.duckdb")

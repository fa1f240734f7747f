"""Where things live: the dbt project, the warehouse file, the serving copy.

dbt-duckdb resolves a relative database path against the current directory, not the project, so a
flow started elsewhere would silently create a second, empty database. Every path is therefore
made absolute here, once, when the run's settings are loaded (:mod:`feedback_flywheel.config.
settings`); after that it travels as an argument, never through the environment of the process.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

PACKAGE_PROJECT_DIR = Path(__file__).resolve().parents[2]
DEFAULT_DB_RELATIVE = Path("data") / "flywheel.duckdb"
SERVING_ENV = "FLYWHEEL_SERVING_DUCKDB"


def project_dir(environ: Mapping[str, str]) -> Path:
    """The dbt project directory (the one holding ``dbt_project.yml``): ``$FLYWHEEL_PROJECT_DIR``
    if set, else the checkout this package was installed from."""
    override = environ.get("FLYWHEEL_PROJECT_DIR")
    return Path(override).resolve() if override else PACKAGE_PROJECT_DIR


def database_path(environ: Mapping[str, str], project: Path) -> Path:
    """The DuckDB file: ``$FLYWHEEL_DUCKDB`` if set, else ``data/flywheel.duckdb`` in the project.

    A relative ``FLYWHEEL_DUCKDB`` is taken relative to the current directory, as a user typing it
    would expect, and made absolute here.
    """
    configured = environ.get("FLYWHEEL_DUCKDB")
    path = Path(configured).expanduser() if configured else project / DEFAULT_DB_RELATIVE
    return path.resolve()


def published_path(db_path: Path, environ: Mapping[str, str]) -> Path:
    """The read-only copy published after each successful cycle: ``$FLYWHEEL_SERVING_DUCKDB``
    if set, else ``<db>.serving.duckdb`` next to the warehouse."""
    configured = environ.get(SERVING_ENV)
    if configured:
        return Path(configured).expanduser().resolve()
    return serving_path_beside(db_path)


def serving_path_beside(db_path: Path) -> Path:
    """``<db>.serving.duckdb`` next to the warehouse (the default serving copy)."""
    db_path = Path(db_path).resolve()
    return db_path.with_name(db_path.stem + ".serving.duckdb")

"""What every command group shares: exit codes, the ``--db`` and ``--serving`` options, loading
the run's settings once, and turning the package's errors into one clear line."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from feedback_flywheel.config import (
    ConfigFileError,
    PolicyError,
    ReplayPolicyError,
    RewardPolicyError,
    Settings,
    SettingsError,
    paths,
)

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_BUSY = 3
CONFIGURATION_ERRORS = (
    SettingsError,
    PolicyError,
    RewardPolicyError,
    ReplayPolicyError,
    ConfigFileError,
)


def echo_progress(message: str) -> None:
    click.echo(f"  {message}", err=True)


def db_option(function):
    return click.option(
        "--db",
        "db_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="DuckDB file (default: $FLYWHEEL_DUCKDB, else data/flywheel.duckdb in the project).",
    )(function)


def serving_option(function):
    return click.option(
        "--serving",
        "serving_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Serving snapshot file (default: $FLYWHEEL_SERVING_DUCKDB, else "
        "<warehouse>.serving.duckdb next to the warehouse).",
    )(function)


def database(db_path: Path | None) -> Path:
    """The warehouse file a command works on: ``--db``, else the environment's default."""
    if db_path is not None:
        return db_path.expanduser().resolve()
    return paths.database_path(os.environ, paths.project_dir(os.environ))


def load_settings(
    db_path: Path | None = None,
    *,
    serving_path: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    policy_path: Path | None = None,
    replay_policy_path: Path | None = None,
) -> Settings:
    """The run's settings, loaded once; a bad var or policy exits 2 with its message."""
    try:
        return Settings.load(
            db_path=db_path,
            serving_path=serving_path,
            overrides=overrides,
            policy_path=policy_path,
            replay_policy_path=replay_policy_path,
        )
    except CONFIGURATION_ERRORS as error:
        fail(str(error), EXIT_USAGE)
        raise  # unreachable: fail exits


def fail(message: str, code: int = EXIT_USAGE) -> None:
    """Print ``error: message`` on stderr and exit with ``code``."""
    click.echo(f"error: {message}", err=True)
    raise SystemExit(code)


def parse_timestamp(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 timestamp, e.g. 2026-03-01 or 2026-03-01T06:00:00Z"
        ) from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def fmt(value: object, spec: str = ".3f") -> str:
    """A number for a table cell; '-' for a missing one (None, NaN, NA)."""
    import pandas as pd

    if value is None or pd.isna(value):
        return "-"
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return str(value)

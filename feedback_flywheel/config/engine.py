"""The engine's resources: how much memory and how many threads DuckDB may use, and where it
spills, for every connection of a run (the Python stage's and dbt's).

From the environment, validated (an error names the variable, the value and what is allowed):

- ``FLYWHEEL_MEMORY_LIMIT`` — e.g. ``2GB``, ``512MiB`` (DuckDB's ``memory_limit``; default:
  DuckDB's, 80% of RAM). A build that exceeds it spills to the temporary directory instead of
  failing.
- ``FLYWHEEL_THREADS`` — 1 to 256 (DuckDB's ``threads``; default: every core).
- ``FLYWHEEL_TEMP_DIRECTORY`` — where DuckDB spills (default: ``<warehouse>.tmp`` beside the file).

``flywheel --memory-limit 2GB --threads 2 run`` sets the first two for one command. dbt receives
them through the project's dbt-duckdb plugin (:mod:`feedback_flywheel.warehouse.dbt_plugin`),
at connect time: a ``temp_directory`` in ``profiles.yml`` fails once the database is open.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from feedback_flywheel.config.vars import SettingsError

MEMORY_ENV = "FLYWHEEL_MEMORY_LIMIT"
THREADS_ENV = "FLYWHEEL_THREADS"
TEMP_DIRECTORY_ENV = "FLYWHEEL_TEMP_DIRECTORY"
_MEMORY = re.compile(r"^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$", re.IGNORECASE)


def check_memory_limit(value: str) -> str:
    """``value`` if it is a DuckDB memory size (``512MB``, ``2GiB``), else SettingsError."""
    if not _MEMORY.match(value.strip()):
        raise SettingsError(
            f"{MEMORY_ENV} / --memory-limit must be a size such as 512MB or 2GiB; got {value!r}"
        )
    return value.strip()


def check_threads(value: str | int) -> int:
    """``value`` as a thread count 1..256, else SettingsError."""
    text = str(value).strip()
    if not text.isdigit() or not 1 <= int(text) <= 256:
        raise SettingsError(f"{THREADS_ENV} / --threads must be 1 to 256; got {value!r}")
    return int(text)


def engine_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """The DuckDB config options the environment asks for (empty: DuckDB's defaults)."""
    options: dict[str, str] = {}
    if environ.get(MEMORY_ENV):
        options["memory_limit"] = check_memory_limit(environ[MEMORY_ENV])
    if environ.get(THREADS_ENV):
        options["threads"] = str(check_threads(environ[THREADS_ENV]))
    if environ.get(TEMP_DIRECTORY_ENV):
        options["temp_directory"] = str(Path(environ[TEMP_DIRECTORY_ENV]).expanduser().resolve())
    return options

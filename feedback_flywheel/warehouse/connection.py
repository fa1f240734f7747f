"""Connecting to the DuckDB file, with errors that say what to do.

DuckDB allows one writer process at a time (or many read-only ones, never both): a lock error
becomes :class:`WarehouseUnavailable`, a missing file opened for reading :class:`WarehouseMissing`;
the CLI prints either without a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from feedback_flywheel.config import paths
from feedback_flywheel.config.engine import engine_settings


class WarehouseUnavailable(RuntimeError):
    """The warehouse cannot be opened as asked (locked by another process, or missing); the
    message says what to do. The CLI prints it without a traceback."""


class WarehouseMissing(FileNotFoundError, WarehouseUnavailable):
    """There is no warehouse file to read."""


@contextmanager
def connect(db_path: Path, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse (creating its folder when writing) and close it on exit.

    DuckDB allows one writer process at a time; a lock error is turned into a message that says
    what to do instead of a bare ``IOException``. The engine resources of the environment
    (``FLYWHEEL_MEMORY_LIMIT``, ``_THREADS``, ``_TEMP_DIRECTORY``) apply.
    """
    db_path = Path(db_path)
    if not read_only:
        db_path.parent.mkdir(parents=True, exist_ok=True)
    elif not db_path.exists():
        raise WarehouseMissing(
            f"no warehouse at {db_path}: run `flywheel init` (or `make run`) first, "
            "or point FLYWHEEL_DUCKDB at an existing file"
        )
    try:
        con = duckdb.connect(str(db_path), read_only=read_only, config=engine_settings(os.environ))
    except duckdb.IOException as error:
        if "lock" in str(error).lower():
            raise WarehouseUnavailable(
                f"{db_path} is open in another process (DuckDB allows one writer). Wait for the "
                "running build to finish, or read the published copy "
                f"{paths.serving_path_beside(db_path)} instead."
            ) from error
        raise
    try:
        yield con
    finally:
        con.close()

"""Ingest: users' log files into the append-only ``raw`` tables, checked against the contract,
once each, whole or not at all (see :mod:`feedback_flywheel.ingest.loader`)."""

from feedback_flywheel.ingest.checks import LoadChecks
from feedback_flywheel.ingest.loader import (
    ALREADY_LOADED,
    LOADED,
    REFUSED,
    SUPPORTED_EXTENSIONS,
    LoadResult,
    LoadStatus,
    expand_paths,
    file_sha256,
    ingest_file,
    ingest_files,
)

__all__ = [
    "ALREADY_LOADED",
    "LOADED",
    "REFUSED",
    "SUPPORTED_EXTENSIONS",
    "LoadChecks",
    "LoadResult",
    "LoadStatus",
    "expand_paths",
    "file_sha256",
    "ingest_file",
    "ingest_files",
]

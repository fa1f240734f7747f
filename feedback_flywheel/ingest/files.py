"""Which files a load means, and their content hash: a folder is its supported files, sorted."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Final

#: File extension -> format name recorded in ``raw.load_ledger.file_format``.

SUPPORTED_EXTENSIONS: Final[dict[str, str]] = {
    ".parquet": "parquet",
    ".csv": "csv",
    ".jsonl": "json",
    ".ndjson": "json",
    ".json": "json",
}

_SUPPORTED_LIST = ", ".join(SUPPORTED_EXTENSIONS)

_HASH_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    """Hex sha256 of the file's bytes, read in 1 MiB chunks so big files are not held in memory."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def expand_paths(paths: Iterable[Path | str]) -> list[Path]:
    """Files to ingest: each file as given, each directory replaced by its supported files.

    Directories are not searched recursively; inside them, hidden files (``.name``, e.g. partial
    uploads) and files with other extensions are skipped, and the rest are sorted by name so that
    loads happen in a predictable (e.g. date-stamped) order. Paths that do not exist are kept, so
    that :func:`ingest_file` can refuse them with a message.
    """
    expanded: list[Path] = []
    for raw_path in paths:
        path = Path(raw_path)
        if path.is_dir():
            expanded.extend(
                sorted(
                    child
                    for child in path.iterdir()
                    if child.is_file()
                    and not child.name.startswith(".")
                    and child.suffix.lower() in SUPPORTED_EXTENSIONS
                )
            )
        else:
            expanded.append(path)
    return expanded

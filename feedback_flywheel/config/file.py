"""The configuration file: where a warehouse's own settings live, so nobody edits the project.

``dbt_project.yml`` holds the defaults (the demo world's). A warehouse's own values — the features
to monitor, the segment attributes, any threshold — go into one YAML file, found in this order:

1. ``$FLYWHEEL_CONFIG`` if set;
2. else ``<warehouse>.config.yml`` beside the warehouse file (``flywheel config discover`` —
   or the first batch of a warehouse without one — writes it there).

The project ships ``flywheel.yml``: the demo world's configuration, pinned (the defaults of
``dbt_project.yml`` are the demo's); ``flywheel demo`` puts a copy beside its warehouse.

The file::

    version: 1
    pin: false          # true: discovery never changes this file again
    vars:               # any dbt var of dbt_project.yml; these win over its defaults
      segment_attributes: [zipcode, elevel]
      drift_features: {numeric: [age, income], categorical: [channel]}
    discovered:         # what discovery wrote into vars, and when (so `flywheel config show` can
      at: ...           # tell a discovered value from one you edited); informational
      vars: {...}

``--var`` on the command line wins over the file. :func:`layered` returns every value with where
it came from: ``default``, ``discovered``, ``file`` or ``--var``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CONFIG_ENV = "FLYWHEEL_CONFIG"
SHIPPED_NAME = "flywheel.yml"
FILE_VERSION = 1


class ConfigFileError(ValueError):
    """The configuration file is unreadable or malformed; the message names the file and key."""


@dataclass(frozen=True)
class ConfigFile:
    """One configuration file as read: its path, its vars, what discovery wrote, the pin."""

    path: Path
    vars: dict[str, Any] = field(default_factory=dict)
    discovered: dict[str, Any] = field(default_factory=dict)
    discovered_at: str | None = None
    pin: bool = False
    exists: bool = True


def beside(db_path: Path) -> Path:
    """``<warehouse>.config.yml`` beside the warehouse file."""
    db_path = Path(db_path).resolve()
    return db_path.with_name(db_path.stem + ".config.yml")


def locate(environ: Mapping[str, str], db_path: Path) -> Path:
    """The configuration file of this warehouse: ``$FLYWHEEL_CONFIG``, else beside it (the file
    need not exist yet: without it the project's defaults apply)."""
    configured = environ.get(CONFIG_ENV)
    if configured:
        return Path(configured).expanduser().resolve()
    return beside(db_path)


def shipped(project_dir: Path) -> Path:
    """The project's own configuration file: the demo world's, pinned."""
    return project_dir / SHIPPED_NAME


def read(path: Path) -> ConfigFile:
    """The file at ``path`` (an absent file is an empty configuration)."""
    if not path.exists():
        return ConfigFile(path, exists=False)
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigFileError(f"cannot read the configuration file {path}: {error}") from None
    if not isinstance(document, dict):
        raise ConfigFileError(
            f"{path}: expected a mapping with `vars:`, got {type(document).__name__}"
        )
    unknown = sorted(set(document) - {"version", "pin", "vars", "discovered"})
    if unknown:
        raise ConfigFileError(
            f"{path}: unknown key(s) {', '.join(unknown)}; allowed: version, pin, vars, discovered"
        )
    if document.get("version", FILE_VERSION) != FILE_VERSION:
        raise ConfigFileError(f"{path}: version must be {FILE_VERSION}")
    values = document.get("vars") or {}
    discovered = document.get("discovered") or {}
    if not isinstance(values, dict) or not isinstance(discovered, dict):
        raise ConfigFileError(f"{path}: `vars` and `discovered` must be mappings")
    return ConfigFile(
        path=path,
        vars=dict(values),
        discovered=dict(discovered.get("vars") or {}),
        discovered_at=discovered.get("at"),
        pin=bool(document.get("pin", False)),
    )


def write(config: ConfigFile, header: str) -> None:
    """Write ``config`` to its path (atomically: a temporary file renamed over it)."""
    document: dict[str, Any] = {"version": FILE_VERSION, "pin": config.pin, "vars": config.vars}
    if config.discovered:
        document["discovered"] = {"at": config.discovered_at, "vars": config.discovered}
    text = header + yaml.safe_dump(document, sort_keys=False, width=100, allow_unicode=True)
    config.path.parent.mkdir(parents=True, exist_ok=True)
    temporary = config.path.with_name(config.path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, config.path)


def layered(
    defaults: Mapping[str, Any], config: ConfigFile, overrides: Mapping[str, Any]
) -> dict[str, tuple[Any, str]]:
    """Every var with its value and where it came from: ``--var`` over the file over the
    project's defaults; a file value discovery wrote (and nobody changed) is ``discovered``."""
    values: dict[str, tuple[Any, str]] = {
        name: (value, "default") for name, value in defaults.items()
    }
    for name, value in config.vars.items():
        source = "discovered" if config.discovered.get(name) == value else "file"
        values[name] = (value, source)
    for name, value in overrides.items():
        values[name] = (value, "--var")
    return values

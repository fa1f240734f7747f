"""The project's dbt-duckdb plugin (``profiles.yml``: ``plugins: [{module: ...dbt_plugin}]``).

At connect time it applies the run's engine resources (:mod:`feedback_flywheel.config.engine`:
memory limit, threads, spill directory), and on every cursor dbt opens it sets the DuckDB
variable ``flywheel_pseudonym_key`` that the ``pseudonym()`` macro reads. The key is derived from
the run's secret (:mod:`feedback_flywheel.config.secrets`: ``FLYWHEEL_SECRET_KEY``, else the key
file beside the warehouse) here, in the dbt process, so it never appears in compiled SQL,
``target/`` or the logs, and a ``dbt build`` typed by hand uses the same key as ``flywheel run``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dbt.adapters.duckdb.plugins import BasePlugin

from feedback_flywheel.config.engine import engine_settings
from feedback_flywheel.config.secrets import load_secret

PSEUDONYM_VARIABLE = "flywheel_pseudonym_key"


class Plugin(BasePlugin):
    """Engine settings at connect, the pseudonym key on every cursor."""

    def initialize(self, plugin_config: dict[str, Any]) -> None:
        self._key: str | None = None

    def update_connection_config(self, creds: Any, config: dict[str, Any]) -> None:
        config.update(engine_settings(os.environ))

    def _pseudonym_key(self) -> str:
        if self._key is None:
            path = getattr(self.creds, "path", None)
            if not path or path == ":memory:":
                raise RuntimeError("the feedback_flywheel plugin needs a warehouse file (path)")
            self._key = load_secret(os.environ, Path(path)).pseudonym_key
        return self._key

    def configure_connection(self, conn: Any) -> None:
        conn.execute(f"set variable {PSEUDONYM_VARIABLE} = ?", [self._pseudonym_key()])

    def configure_cursor(self, cursor: Any) -> None:
        cursor.execute(f"set variable {PSEUDONYM_VARIABLE} = ?", [self._pseudonym_key()])

"""Serving the batch cycle on a schedule (``flywheel serve``).

Prefect's temporary API does not fire schedules, so without ``PREFECT_API_URL`` a local Prefect
server is started first and this process talks to it. Not a flow of its own: it serves
:func:`flows.batch_cycle.batch_cycle`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path


class PrefectServerError(RuntimeError):
    """The local Prefect server did not start."""


def start_local_server(port: int) -> tuple[subprocess.Popen, str]:
    """Start ``prefect server start`` on 127.0.0.1:``port`` and wait until it is healthy."""
    api = f"http://127.0.0.1:{port}/api"
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "prefect"),
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{api}/health", timeout=2) as response:
                if response.status == 200:
                    return server, api
        except OSError:
            time.sleep(0.5)
    server.terminate()
    raise PrefectServerError(f"the local Prefect server did not become healthy on port {port}")


def serve_batch_cycle(
    db_path: Path,
    *,
    cron: str,
    timezone: str,
    port: int,
    api_url: str | None,
    echo: Callable[[str], None],
) -> None:
    """Serve ``batch_cycle`` for ``db_path`` on ``cron`` (read in ``timezone``) until stopped."""
    server = None
    if not api_url:
        server, api_url = start_local_server(port)
        # Prefect's client reads its API address from the environment of this process.
        os.environ["PREFECT_API_URL"] = api_url
    echo(f"Prefect API: {api_url}  (UI: {api_url.removesuffix('/api')})")
    echo(f"serving batch_cycle on '{cron}' ({timezone}) for {db_path}")
    from prefect.schedules import Cron

    from flows.batch_cycle import batch_cycle

    try:
        batch_cycle.serve(
            name="flywheel-batch-cycle",
            schedules=[Cron(cron, timezone=timezone)],
            parameters={"db_path": str(db_path)},
        )
    finally:
        if server is not None:
            server.terminate()

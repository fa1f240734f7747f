"""What people look at: ``flywheel dashboard`` (Streamlit over the serving copy) and ``publish``
(publish that read-only copy now)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from feedback_flywheel.cli.app import main
from feedback_flywheel.cli.common import EXIT_USAGE, db_option, load_settings, serving_option


@main.command()
@serving_option
@db_option
@click.option(
    "--full",
    is_flag=True,
    help="Build the copy from scratch instead of syncing the previous one in place.",
)
def publish(serving_path: Path | None, db_path: Path | None, full: bool) -> None:
    """Publish the read-only serving snapshot of the marts now (the batch cycle does this
    after every successful batch): the previous copy synced to the warehouse (only changed rows
    are written) or built from scratch, beside the target, then swapped in atomically, and the
    latest successful batch recorded as published. Waits for a running batch (the run lock) up
    to a minute."""
    from feedback_flywheel.batches import mark_published, run_lock
    from feedback_flywheel.publish import serving
    from feedback_flywheel.warehouse import connect

    settings = load_settings(db_path, serving_path=serving_path)
    try:
        with run_lock(settings.db_path, wait_seconds=60):
            result = serving.publish(settings.db_path, settings.serving_path, full=full)
            if result.batch_id:  # the next run then has nothing left to publish for it
                with connect(settings.db_path) as con:
                    mark_published(con, result.batch_id, result.published_at)
    except (FileNotFoundError, serving.PublishError) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(result.describe())


def _streamlit_command(app: Path, address: str, port: int, headless: bool) -> list[str]:
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.headless",
        str(headless).lower(),
        "--server.address",
        address,
        "--server.port",
        str(port),
        "--server.fileWatcherType",
        "none",
        "--browser.gatherUsageStats",
        "false",
        "--global.developmentMode",
        "false",
        "--client.toolbarMode",
        "minimal",
    ]


@main.command()
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=8501,
    show_default=True,
    help="Port to serve the dashboard on.",
)
@click.option(
    "--address",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (0.0.0.0 to let other machines in).",
)
@click.option(
    "--headless/--open-browser",
    default=True,
    show_default=True,
    help="--open-browser opens a browser tab on start.",
)
@serving_option
@db_option
def dashboard(
    port: int, address: str, headless: bool, serving_path: Path | None, db_path: Path | None
) -> None:
    """Start the dashboard (Streamlit) over the published serving snapshot (Ctrl-C to stop).

    It reads only the read-only snapshot, never the warehouse, so it can stay open while
    batches run; it shows a new snapshot as soon as one is published. No usage statistics are
    sent and nothing is downloaded.
    """
    from feedback_flywheel.config.paths import SERVING_ENV

    snapshot = load_settings(db_path, serving_path=serving_path).serving_path
    if not snapshot.exists():
        click.echo(
            f"note: no serving snapshot at {snapshot} yet; the dashboard will say so until "
            "a batch publishes one (`flywheel run`) or you run `flywheel publish`.",
            err=True,
        )
    app = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"
    command = _streamlit_command(app, address, port, headless)
    # The dashboard is another process: its one setting, the snapshot, travels in its
    # environment.
    environment = {
        **os.environ,
        SERVING_ENV: str(snapshot),
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
    }
    click.echo(f"dashboard on http://{address}:{port}/ reading {snapshot}", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    # Become the Streamlit server, so Ctrl-C and kill reach it directly (no orphaned child).
    os.execve(sys.executable, command, environment)

"""The dbt docs site: ``flywheel docs`` serves it on localhost, or writes it to a folder."""

from __future__ import annotations

import contextlib
import functools
import http.server
import sys
from pathlib import Path

import click

from feedback_flywheel.cli.app import main
from feedback_flywheel.cli.common import EXIT_FAILED, db_option, load_settings


@main.command()
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option("--address", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write the site to this folder instead of serving it (open static_index.html).",
)
@db_option
def docs(port: int, address: str, out_dir: Path | None, db_path: Path | None) -> None:
    """Generate the dbt docs site of the warehouse — every model, source, test and exposure,
    their lineage and column docs — and serve it on http://ADDRESS:PORT/ (Ctrl-C to stop), or
    write it to --out."""
    from feedback_flywheel.publish.docs import generate
    from feedback_flywheel.warehouse.dbt import DbtError

    settings = load_settings(db_path)
    try:
        site = generate(settings, out_dir)
    except DbtError as error:
        click.echo(f"error: dbt docs generate failed: {error}", err=True)
        sys.exit(EXIT_FAILED)
    if out_dir is not None:
        click.echo(f"docs site written to {site} (open {site / 'static_index.html'})")
        return
    handler = functools.partial(_QuietHandler, directory=str(site))
    with http.server.ThreadingHTTPServer((address, port), handler) as server:
        click.echo(f"docs on http://{address}:{port}/ (Ctrl-C to stop)", err=True)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the site's files without a log line per request."""

    def log_message(self, format: str, *args: object) -> None:
        pass

"""``flywheel check``: the warehouse's data tests on demand, over the latest batch or (``--full``)
over whole tables."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from feedback_flywheel.cli.app import main
from feedback_flywheel.cli.common import (
    EXIT_BUSY,
    EXIT_FAILED,
    EXIT_USAGE,
    db_option,
    echo_progress,
    load_settings,
)


@main.command()
@click.option(
    "--full",
    is_flag=True,
    help="Read whole tables (every batch's rows), not only the latest batch's.",
)
@db_option
@click.pass_context
def check(ctx: click.Context, full: bool, db_path: Path | None) -> None:
    """Run every dbt data test against the warehouse and name the ones that fail.

    Each batch's build already runs the data tests over the rows that batch wrote (plus
    lookback_days), so its cost does not grow with the history. `check` runs them again over the
    latest batch; `check --full` over every row of every table: duplicates across batches, late
    files older than the lookback, anything a batch-scoped test cannot see. Exit 1 when a test
    fails."""
    from feedback_flywheel.batches import RunLockBusy
    from feedback_flywheel.publish.checks import CheckError, check_results_path, run_checks

    settings = load_settings(db_path)
    verbose = ctx.obj.get("verbose", False)
    scope = "every row of every table" if full else "the latest batch's rows"
    echo_progress(f"running the data tests over {scope} ...")
    on_line = (lambda line: click.echo(line, err=True)) if verbose else None
    try:
        result = run_checks(settings, full=full, on_line=on_line)
    except RunLockBusy as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_BUSY)
    except CheckError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_USAGE)
    counts = result.counts
    summary = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
    where = "whole tables" if full else f"batch {result.batch.batch_id}"
    if result.ok:
        click.echo(f"data tests over {where}: {summary or 'none ran'}")
        return
    click.echo(f"data tests over {where}: {summary}", err=True)
    if result.failed:
        click.echo("failed:", err=True)
        for node in result.failed:
            click.echo(f"  {node}", err=True)
    else:  # dbt failed before any test could (a compilation error): its own words
        click.echo(result.failure, err=True)
    click.echo(
        f"see {_shown(check_results_path(settings))}; `dbt test --select TEST --store-failures` "
        "keeps a failing test's rows in the warehouse for a look",
        err=True,
    )
    sys.exit(EXIT_FAILED)


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is inside it (``target/check/...``)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)

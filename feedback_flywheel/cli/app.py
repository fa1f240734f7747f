"""The ``flywheel`` command group; each command group lives in a module of its own.

Exit codes scripts can trust: 0 success, 1 a batch or check failed, 2 bad usage, bad input or bad
configuration (the message says which and what to do), 3 busy: another run holds the warehouse's
run lock (try again later, or pass --wait).
"""

from __future__ import annotations

import os

import click

from feedback_flywheel.batches.lock import RunLockBusy
from feedback_flywheel.cli.common import EXIT_BUSY, EXIT_USAGE
from feedback_flywheel.config.engine import (
    MEMORY_ENV,
    THREADS_ENV,
    check_memory_limit,
    check_threads,
)
from feedback_flywheel.config.vars import SettingsError
from feedback_flywheel.warehouse import WarehouseUnavailable


class FlywheelGroup(click.Group):
    """Commands that cannot open the warehouse (locked by a running build, or missing) print
    the reason and what to do, without a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except WarehouseUnavailable as error:
            problem = click.ClickException(str(error))
            problem.exit_code = EXIT_USAGE  # as the commands that catch it themselves
            raise problem from error
        except RunLockBusy as error:
            problem = click.ClickException(str(error))
            problem.exit_code = EXIT_BUSY
            raise problem from error


def _memory_limit(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    try:
        return None if value is None else check_memory_limit(value)
    except SettingsError as error:
        raise click.BadParameter(str(error)) from None


def _threads(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    try:
        return None if value is None else check_threads(value)
    except SettingsError as error:
        raise click.BadParameter(str(error)) from None


@click.group(cls=FlywheelGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="feedback_flywheel")
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Print every dbt and Prefect log line too (they always go to logs/flywheel.log).",
)
@click.option(
    "--memory-limit",
    callback=_memory_limit,
    metavar="SIZE",
    help=f"DuckDB memory limit for this command, e.g. 2GB (${MEMORY_ENV}); a build over it "
    "spills to disk.",
)
@click.option(
    "--threads",
    callback=_threads,
    metavar="N",
    help=f"DuckDB threads for this command (${THREADS_ENV}; default: every core).",
)
@click.pass_context
def main(ctx: click.Context, verbose: bool, memory_limit: str | None, threads: int | None) -> None:
    """feedback_flywheel: turn logged predictions and their feedback into curated datasets,
    KPIs and retraining decisions, one auditable batch at a time."""
    ctx.ensure_object(dict)["verbose"] = verbose
    # the engine settings reach every connection of this process and of dbt (its plugin)
    if memory_limit:
        os.environ[MEMORY_ENV] = memory_limit
    if threads:
        os.environ[THREADS_ENV] = str(threads)

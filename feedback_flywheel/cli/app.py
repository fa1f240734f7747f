"""The ``flywheel`` command group; each command group lives in a module of its own.

Exit codes scripts can trust: 0 success, 1 a batch or check failed, 2 bad usage, bad input or bad
configuration (the message says which and what to do).
"""

from __future__ import annotations

import click

from feedback_flywheel.cli.common import EXIT_USAGE
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


@click.group(cls=FlywheelGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="feedback_flywheel")
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Print every dbt and Prefect log line too (they always go to logs/flywheel.log).",
)
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """feedback_flywheel: turn logged predictions and their feedback into curated datasets,
    KPIs and retraining decisions, one auditable batch at a time."""
    ctx.ensure_object(dict)["verbose"] = verbose

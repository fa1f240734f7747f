"""Getting data in: ``flywheel init``, ``contract``, ``demo-data`` and ``ingest``."""

from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path

import click

from feedback_flywheel.cli.app import main
from feedback_flywheel.cli.common import (
    EXIT_USAGE,
    database,
    db_option,
    echo_progress,
    load_settings,
)
from feedback_flywheel.config import paths


@main.command()
@db_option
def init(db_path: Path | None) -> None:
    """Create the warehouse file with its raw and ml tables (safe to repeat)."""
    from feedback_flywheel.warehouse import connect, init_warehouse

    target = database(db_path)
    with connect(target) as con:
        init_warehouse(con)
    click.echo(f"warehouse ready: {target}")


def _print_contract(fmt: str) -> None:
    from feedback_flywheel.warehouse.contract import RAW_TABLES

    for table in RAW_TABLES.values():
        if fmt == "markdown":
            click.echo(f"### `{table.name}`\n\n{table.description}\n")
            click.echo("| column | type | required | meaning |\n|---|---|---|---|")
            for column in table.columns:
                required = "yes" if column.required else "no"
                click.echo(
                    f"| `{column.name}` | {column.type} | {required} | {column.description} |"
                )
            click.echo("")
        else:
            click.echo(f"{table.name}: {table.description}")
            for column in table.columns:
                flag = "required" if column.required else "optional"
                click.echo(f"  {column.name:<16} {column.type:<10} {flag:<9} {column.description}")
            click.echo("")


@main.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown", "dbt-sources", "ml-sources"]),
    default="text",
    show_default=True,
    help="dbt-sources prints models/staging/raw/_raw__sources.yml as generated from the contract; "
    "ml-sources prints models/staging/ml/_ml__sources.yml as generated from the ml schema.",
)
def contract(fmt: str) -> None:
    """Print the raw input contract: every table and column users load."""
    if fmt == "dbt-sources":
        from feedback_flywheel.warehouse.contract import dbt_sources_yaml

        click.echo(dbt_sources_yaml(), nl=False)
    elif fmt == "ml-sources":
        from feedback_flywheel.warehouse.schema import ml_sources_yaml

        click.echo(ml_sources_yaml(), nl=False)
    else:
        _print_contract(fmt)


@main.command("demo-data")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder to write to (default: data/demo in the project).",
)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--days", type=click.IntRange(min=4), default=60, show_default=True)
@click.option("--inferences-per-day", type=click.IntRange(min=10), default=2000, show_default=True)
@click.option(
    "--start-date",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default="2026-01-01",
    show_default=True,
)
@click.option(
    "--broken-tracking",
    metavar="SIGNAL:DAY",
    help="Break one signal's tracking from a day on (0-based): it is recorded as 0 from then "
    "(click, conversion or dwell_seconds; truth.json says so), e.g. click:40.",
)
def demo_data(
    out: Path | None,
    seed: int,
    days: int,
    inferences_per_day: int,
    start_date: datetime,
    broken_tracking: str | None,
) -> None:
    """Write a deterministic demo world (raw files + truth.json of what was injected)."""
    import os

    from feedback_flywheel import demo

    out = out or paths.project_dir(os.environ) / "data" / "demo"
    started = time.perf_counter()
    try:
        truth = demo.generate(
            out,
            seed=seed,
            days=days,
            inferences_per_day=inferences_per_day,
            start_date=start_date.date(),
            progress=echo_progress,
            broken_tracking=_broken_tracking(broken_tracking),
        )
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--broken-tracking") from error
    counts = truth.get("counts", {})
    click.echo(
        f"demo world written to {out} in {time.perf_counter() - started:.1f} s: "
        + ", ".join(f"{table} {n:,}" for table, n in counts.items() if isinstance(n, int))
    )


def _broken_tracking(value: str | None) -> tuple[str, int] | None:
    """``SIGNAL:DAY`` as (signal, day); the generator checks both."""
    if value is None:
        return None
    signal, _, day = value.partition(":")
    if not day.strip().isdigit():
        raise click.BadParameter(
            f"{value!r} is not SIGNAL:DAY (e.g. click:40: clicks recorded as 0 from day 40 on)",
            param_hint="--broken-tracking",
        )
    return signal.strip(), int(day)


@main.command()
@click.argument("table")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--allow-extra-columns",
    is_flag=True,
    help="Drop columns the contract does not know instead of refusing the file.",
)
@db_option
def ingest(
    table: str, files: tuple[Path, ...], allow_extra_columns: bool, db_path: Path | None
) -> None:
    """Append Parquet, CSV or JSON-lines FILES (or folders of them) to raw TABLE.

    Each file loads whole or not at all; a file already loaded (same bytes) adds nothing.
    Exit code 2 when any file was refused.
    """
    from feedback_flywheel import ingest as ingest_module
    from feedback_flywheel.warehouse import connect
    from feedback_flywheel.warehouse.contract import get_table

    try:
        get_table(table)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    settings = load_settings(db_path)
    checks = ingest_module.LoadChecks(
        supported_schema_versions=tuple(settings.vars.supported_schema_versions),
        known_event_types=settings.event_types(),
        warn_share=settings.vars.warn_quarantine_share,
    )
    with connect(settings.db_path) as con:
        results = ingest_module.ingest_files(
            con, table, list(files), allow_extra_columns=allow_extra_columns, checks=checks
        )
    refused = 0
    for result in results:
        click.echo(result.message, err=result.status == "refused")
        for warning in result.warnings:
            click.echo(f"warning: {warning}", err=True)
        refused += result.status == "refused"
    loaded = sum(result.rows for result in results if result.status == "loaded")
    click.echo(
        f"{table}: {loaded:,} rows appended from "
        f"{sum(r.status == 'loaded' for r in results)} file(s), "
        f"{sum(r.status == 'already_loaded' for r in results)} already loaded, "
        f"{refused} refused"
    )
    if refused:
        sys.exit(EXIT_USAGE)

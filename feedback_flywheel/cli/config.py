"""A warehouse's configuration: ``flywheel config show`` (every setting and where it came from)
and ``flywheel config discover`` (what the logs carry, written into the configuration file)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from feedback_flywheel.cli.app import main
from feedback_flywheel.cli.common import EXIT_USAGE, db_option, load_settings
from feedback_flywheel.config import file as config_file
from feedback_flywheel.config.vars import BATCH_VARS, parse_overrides, project_vars


@main.group()
def config() -> None:
    """The warehouse's configuration file: show every setting, or discover them from the logs."""


def _var_option(function):
    return click.option(
        "--var",
        "var_pairs",
        multiple=True,
        metavar="KEY=VALUE",
        help="An override to show as a run would apply it (repeatable).",
    )(function)


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print the settings as JSON.")
@_var_option
@db_option
def config_show(as_json: bool, var_pairs: tuple[str, ...], db_path: Path | None) -> None:
    """Every setting of the warehouse with where it came from: the project's default
    (dbt_project.yml), discovered, the configuration file (you edited it), or --var."""
    overrides = parse_overrides(var_pairs)
    settings = load_settings(db_path, overrides=overrides)
    layered = config_file.layered(
        project_vars(settings.project_dir), settings.config, settings.overrides
    )
    if as_json:
        click.echo(
            json.dumps({name: {"value": v, "source": s} for name, (v, s) in layered.items()})
        )
        return
    state = "pinned" if settings.config.pin else "not pinned"
    where = settings.config.path if settings.config.exists else f"{settings.config.path} (none yet)"
    click.echo(f"configuration file: {where}, {state}")
    if settings.config.discovered_at:
        click.echo(f"last discovery: {settings.config.discovered_at}")
    click.echo(f"{'setting':<30} {'source':<11} value")
    for name, (value, source) in layered.items():
        if name in BATCH_VARS:  # set by the batch cycle for each batch
            continue
        text = json.dumps(value) if not isinstance(value, str) else value
        click.echo(f"{name:<30} {source:<11} {text}")


@config.command("discover")
@click.option("--dry-run", is_flag=True, help="Show what discovery finds without writing the file.")
@db_option
def config_discover(dry_run: bool, db_path: Path | None) -> None:
    """Profile the keys of the recent inferences' inputs and context and write the monitored
    features and segment attributes into the warehouse's configuration file (values you edited
    there are kept; a pinned file is left alone). The rules are in the README."""
    from feedback_flywheel.discovery.run import DiscoveryError, discover

    settings = load_settings(db_path)
    try:
        found = discover(settings, write=not dry_run)
    except DiscoveryError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(f"keys of the inferences logged in the last {settings.vars.discovery_days} days:")
    for line in found.lines():
        click.echo(line)

"""The audit trail: ``flywheel audit verify`` (the hash chain) and ``audit trace`` (lineage)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from feedback_flywheel.cli.app import main
from feedback_flywheel.cli.common import (
    EXIT_FAILED,
    EXIT_USAGE,
    database,
    db_option,
    load_settings,
)
from feedback_flywheel.warehouse import connect


@main.group()
def audit() -> None:
    """The audit trail: verify the hash chain of ml.audit_log, trace lineage."""


@audit.command("verify")
@click.option(
    "--head",
    "expected_head",
    help="A head hash noted earlier (a batch artifact prints it): fail unless the chain still "
    "holds it (catches rows cut off the end, or a chain rewritten).",
)
@click.option(
    "--count",
    "expected_count",
    type=click.IntRange(min=1),
    help="With --head: the seq that head was at; the chain must have that hash at that seq.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@db_option
def audit_verify(
    expected_head: str | None, expected_count: int | None, as_json: bool, db_path: Path | None
) -> None:
    """Verify the audit trail under the warehouse's audit key (FLYWHEEL_SECRET_KEY, else the key
    file beside the warehouse): the chain of ml.audit_log (no gap, every prev_hash, every keyed
    row hash), the head every batch recorded (in ml.batch_runs and in the serving copy) and a
    head you noted, and every audited table against its audit rows. Reports OK with the row
    count and head, or the first problem: its seq and what it is.

    Exit code 0 when the trail holds, 1 when it does not.
    """
    from feedback_flywheel import audit as audit_module

    if expected_count is not None and expected_head is None:
        click.echo("error: --count goes with --head HASH", err=True)
        sys.exit(EXIT_USAGE)
    settings = load_settings(db_path)
    try:
        with connect(settings.db_path, read_only=True) as con:
            result = audit_module.verify(
                con,
                key=settings.secret.audit_key,
                expected_head=expected_head,
                expected_count=expected_count,
                extra_heads=audit_module.serving_heads(settings.serving_path),
            )
    except (FileNotFoundError, RuntimeError, ValueError) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_USAGE)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
    elif result.ok:
        click.echo(f"OK: {result.count:,} audit rows, head {result.head_hash or '(empty log)'}")
    else:
        broken = result.broken
        click.echo(
            f"BROKEN at seq {broken.seq}: {broken.problem.replace('_', ' ')}: {broken.detail} "
            f"({result.count:,} rows in ml.audit_log)",
            err=True,
        )
    if not result.ok:
        sys.exit(EXIT_FAILED)


@audit.command("trace")
@click.argument("identifier")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=50,
    show_default=True,
    help="Raw events to list (0 = all); the per-file summary always counts all of them.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the trace as JSON.")
@db_option
def audit_trace(identifier: str, limit: int, as_json: bool, db_path: Path | None) -> None:
    """Lineage of IDENTIFIER: a training example (training_example_id, a training sample row or an
    inference_id) or a dataset version (ds-<batch_id> or the batch id).

    Lists the raw events behind it — inference_log rows and feedback events with the load file
    (raw.load_ledger) and line (_file_row) each came from, and their validation status — and the
    training runs that used it with the retraining decision that caused each. Exit code 2 when
    the id is unknown.
    """
    from feedback_flywheel.audit import lineage

    try:
        with connect(database(db_path), read_only=True) as con:
            result = lineage.trace(con, identifier, limit=limit or None)
    except (lineage.TraceError, FileNotFoundError, RuntimeError) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_USAGE)
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
    else:
        click.echo(lineage.render_text(result), nl=False)

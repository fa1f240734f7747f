"""The audit trail: ``flywheel audit verify`` (the hash chain) and ``audit trace`` (lineage)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from feedback_flywheel.cli.app import main
from feedback_flywheel.cli.common import EXIT_FAILED, EXIT_USAGE, database, db_option
from feedback_flywheel.warehouse import connect


@main.group()
def audit() -> None:
    """The audit trail: verify the hash chain of ml.audit_log, trace lineage."""


@audit.command("verify")
@click.option(
    "--head",
    "expected_head",
    help="A head hash noted earlier: fail unless the chain still contains it (catches rows cut "
    "off the end, which the chain alone cannot see).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@db_option
def audit_verify(expected_head: str | None, as_json: bool, db_path: Path | None) -> None:
    """Recompute the hash chain of ml.audit_log and report OK with the row count and head hash,
    or the first broken link: its seq and whether it is a gap in the sequence, a prev_hash that
    does not match the previous row, or a row whose content no longer matches its hash.

    Exit code 0 when the chain holds, 1 when it is broken.
    """
    from feedback_flywheel import audit as audit_module

    try:
        with connect(database(db_path), read_only=True) as con:
            result = audit_module.verify(con, expected_head=expected_head)
    except (FileNotFoundError, RuntimeError) as error:
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

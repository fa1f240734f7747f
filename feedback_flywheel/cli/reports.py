"""Reading what the warehouse holds: ``flywheel summary``, ``batches``, ``decisions``, ``drift``
and ``dataset list`` / ``dataset verify``. The queries are the read model's
(:mod:`feedback_flywheel.publish.queries`); this module only prints."""

from __future__ import annotations

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
from feedback_flywheel.publish import queries
from feedback_flywheel.warehouse import connect


@main.command()
@db_option
def summary(db_path: Path | None) -> None:
    """Print the summary of what the warehouse holds (reads the database read-only)."""
    from feedback_flywheel.cli.run import print_summary

    print_summary(load_settings(db_path))


@main.command("batches")
@click.option("--limit", type=int, default=20, show_default=True)
@db_option
def list_batches(limit: int, db_path: Path | None) -> None:
    """List the latest batch runs with their windows, status and counts."""
    with connect(database(db_path), read_only=True) as con:
        rows = queries.batch_runs(con, limit)
    click.echo(
        f"{'batch_id':<18} {'try':>3} {'status':<8} {'window':<41} "
        f"{'in':>8} {'accepted':>9} {'quarant.':>9} {'held':>6} {'dbt s':>6}"
    )
    for row in rows:
        batch, attempt, status, start, end, fin, acc, quar, held, seconds = row
        click.echo(
            f"{batch:<18} {attempt:>3} {status:<8} {start!s:<19} .. {end!s:<19} "
            f"{fin or 0:>8,} {acc or 0:>9,} {quar or 0:>9,} {held or 0:>6,} "
            f"{seconds or 0:>6}"
        )


@main.command()
@click.option("--limit", type=int, default=20, show_default=True)
@db_option
def decisions(limit: int, db_path: Path | None) -> None:
    """List retraining decisions with the signals that fired and what was triggered."""
    with connect(database(db_path), read_only=True) as con:
        rows = queries.decisions(con, limit=limit)
    if not rows:
        click.echo("no retraining decisions yet")
    for batch, model, outcome, status, run_id, reason, _ in rows:
        trigger = f" -> {run_id}" if run_id else ""
        click.echo(f"{batch} {model:<16} {outcome:<17} {status}{trigger}\n    {reason}")


def _drift_line(row: tuple) -> str:
    model, feature, kind, test, stat, p_adj, metric, effect, floor, n_ref, n_cur, is_drift = row
    effect_text = (
        f"{metric}={effect:.3g}/{floor:g}" if effect == effect and effect is not None else "n/a"
    )
    p_text = "n/a" if p_adj is None or p_adj != p_adj else f"{p_adj:.2g}"
    stat_text = "n/a" if stat is None or stat != stat else f"{stat:.4g}"
    return (
        f"{model:<16} {feature:<18} {kind:<10} {test:<12} {stat_text:>10} {p_text:>9} "
        f"{effect_text:>22} {n_ref:>8,} {n_cur:>8,}  {'YES' if is_drift else 'no'}"
    )


@main.command()
@click.option("--batch-id", help="The batch to show (default: the latest with drift results).")
@click.option("--all", "show_all", is_flag=True, help="Every test, not only the drifted ones.")
@db_option
def drift(batch_id: str | None, show_all: bool, db_path: Path | None) -> None:
    """Show a batch's drift tests: statistic, BH-adjusted p-value, effect size and the verdict."""
    with connect(database(db_path), read_only=True) as con:
        if batch_id is not None and not queries.drift_batch_exists(con, batch_id):
            latest = queries.latest_drift_batch(con)
            click.echo(
                f"error: batch {batch_id!r} has no drift tests (latest: {latest or 'none yet'}); "
                "see `flywheel batches`",
                err=True,
            )
            sys.exit(EXIT_USAGE)
        batch_id = batch_id or queries.latest_drift_batch(con)
        if batch_id is None:
            click.echo("error: no drift tests yet: run a batch first (`flywheel run`)", err=True)
            sys.exit(EXIT_USAGE)
        rows = queries.drift_rows(con, batch_id, drifted_only=not show_all)
    click.echo(
        f"drift tests of batch {batch_id}"
        + ("" if show_all else " (drifted only; --all shows every test)")
    )
    click.echo(
        f"{'model':<16} {'feature':<18} {'kind':<10} {'test':<12} {'statistic':>10} "
        f"{'p_adj':>9} {'effect':>22} {'n_ref':>8} {'n_cur':>8}  drift"
    )
    for row in rows:
        click.echo(_drift_line(row))


@main.group()
def dataset() -> None:
    """Dataset versions: list them, or rebuild one and prove it is identical."""


@dataset.command("list")
@click.option("--limit", type=int, default=20, show_default=True)
@db_option
def dataset_list(limit: int, db_path: Path | None) -> None:
    """List dataset versions with their size, sample and fingerprints."""
    with connect(database(db_path), read_only=True) as con:
        rows = queries.dataset_versions(con, limit)
    click.echo(
        f"{'dataset_version':<22} {'examples':>9} {'added':>7} {'superseded':>10} "
        f"{'sample':>7}  fingerprint"
    )
    for version, total, added, superseded, sample, fingerprint in rows:
        click.echo(
            f"{version:<22} {total:>9,} {added:>7,} {superseded:>10,} {sample:>7,}  {fingerprint}"
        )


@dataset.command("verify")
@click.argument("dataset_version")
@db_option
def dataset_verify(dataset_version: str, db_path: Path | None) -> None:
    """Rebuild the training sample of DATASET_VERSION from the examples and compare row for row.

    Exit code 1 when the rebuild differs from what was stored.
    """
    from feedback_flywheel.curation import datasets

    try:
        result = datasets.verify(load_settings(db_path), dataset_version)
    except datasets.DatasetVersionError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_USAGE)
    if result.identical:
        click.echo(
            f"{dataset_version}: rebuilt {result.rebuilt_rows:,} rows, identical to the "
            "stored sample"
        )
        return
    click.echo(
        f"{dataset_version}: NOT identical: stored {result.stored_rows:,}, rebuilt "
        f"{result.rebuilt_rows:,}, {result.only_stored:,} only stored, "
        f"{result.only_rebuilt:,} only rebuilt",
        err=True,
    )
    sys.exit(EXIT_FAILED)

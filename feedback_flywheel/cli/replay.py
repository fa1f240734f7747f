"""The replay buffer: ``flywheel replay status``, ``replay sample``, ``replay priorities`` and
``replay verify``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from feedback_flywheel.batches import run_lock, utc_now
from feedback_flywheel.cli.app import main
from feedback_flywheel.cli.common import EXIT_FAILED, database, db_option, fail, fmt, load_settings
from feedback_flywheel.warehouse import connect

#: how long a command that writes waits for a running batch to finish
LOCK_WAIT_SECONDS = 120.0


@main.group()
def replay() -> None:
    """The experience replay buffer: transitions from the logged sessions, kept by every batch
    (policies/replay.yml). Sample it for a trainer, report TD errors back, read its history."""


@replay.command("status")
@click.option("--limit", type=int, default=10, show_default=True, help="Versions to show.")
@db_option
def replay_status(limit: int, db_path: Path | None) -> None:
    """Buffer versions, newest first: size against capacity, inserted, evicted by reason,
    priorities, samples per insert, and composition warnings."""
    from feedback_flywheel.replay import report

    with connect(database(db_path), read_only=True) as con:
        history = report.versions_frame(con, limit)
    if history.empty:
        click.echo("the replay buffer has no version yet: run a batch (`flywheel run`) first")
        return
    click.echo(
        f"{'version':<19} {'size':>8} {'capacity':>8} {'in':>7} {'out':>7} {'p min':>7} "
        f"{'p max':>7} {'draws':>7} {'per insert':>10}"
    )
    for row in history.itertuples(index=False):
        click.echo(
            f"{row.buffer_version:<19} {row.size:>8,} {row.capacity:>8,} {row.inserted:>7,} "
            f"{row.evicted:>7,} {fmt(row.priority_min):>7} {fmt(row.priority_max):>7} "
            f"{row.draws:>7,} {fmt(row.samples_per_insert, '.2f'):>10}"
        )
        reasons = {k: v for k, v in json.loads(row.evictions_json).items() if v}
        if reasons:
            click.echo("    evicted: " + ", ".join(f"{k} {v:,}" for k, v in reasons.items()))
        if row.warnings:
            for warning in row.warnings.split("; "):
                click.echo(f"    warning: {warning}")


def _write(frame, out: Path) -> None:
    suffix = out.suffix.lower()
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix in (".parquet", ".pq"):
        frame.to_parquet(out, index=False)
    elif suffix == ".csv":
        frame.to_csv(out, index=False)
    elif suffix in (".jsonl", ".json"):
        frame.to_json(out, orient="records", lines=True, date_format="iso")
    else:
        fail(f"--out {out}: write .parquet, .csv or .jsonl")


@replay.command("sample")
@click.option("--n", "n", type=click.IntRange(min=1), required=True, help="Rows to draw.")
@click.option(
    "--sampler",
    type=click.Choice(["prioritized", "uniform", "recent"]),
    default="prioritized",
    show_default=True,
    help="prioritized: P(i) = p^alpha / sum p^alpha; uniform; recent: uniform over the newest "
    "--window transitions.",
)
@click.option("--alpha", type=float, help="Priority exponent (default: policies/replay.yml).")
@click.option("--beta", type=float, help="Importance-weight exponent (default: annealed).")
@click.option("--seed", type=click.IntRange(min=0), required=True, help="Seed of the draws.")
@click.option("--window", type=click.IntRange(min=1), help="recent: transitions to draw from.")
@click.option("--model", "model_name", help="Draw only this model's transitions.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the rows (.parquet, .csv or .jsonl) instead of printing the first ones.",
)
@db_option
def replay_sample(
    n: int,
    sampler: str,
    alpha: float | None,
    beta: float | None,
    seed: int,
    window: int | None,
    model_name: str | None,
    out: Path | None,
    db_path: Path | None,
) -> None:
    """Draw N transitions (with replacement) from the latest buffer version, in the warehouse,
    each with its sampling probability and normalised importance weight. The draw is recorded
    and counted; the same seed on the same version draws the same rows."""
    from feedback_flywheel import replay as buffer

    settings = load_settings(db_path)
    try:
        drawn = buffer.sample_when_allowed(
            settings.db_path,
            policy=settings.replay_policy,
            lock_wait_seconds=LOCK_WAIT_SECONDS,
            n=n,
            seed=seed,
            sampler=sampler,
            alpha=alpha,
            beta=beta,
            recent_window=window,
            model_name=model_name,
            now=utc_now(),
        )
    except buffer.ReplayError as error:
        fail(str(error), EXIT_FAILED)
        raise
    click.echo(
        f"sample {drawn.sample_id}: {n:,} draws from {drawn.eligible:,} transitions of "
        f"rb-{drawn.buffer_batch_id} ({drawn.sampler}, alpha {drawn.alpha:g}, beta "
        f"{drawn.beta:.3g}); samples per insert now {drawn.samples_per_insert:.2f}"
    )
    if out is not None:
        _write(drawn.rows, out)
        click.echo(f"wrote {len(drawn.rows):,} rows to {out}")
        return
    shown = drawn.rows.head(10)
    click.echo(f"{'draw':>5} {'transition':<16} {'P(i)':>10} {'weight':>7} {'reward':>7}")
    for row in shown.itertuples(index=False):
        click.echo(
            f"{row.draw:>5} {row.transition_id:<16} {row.probability:>10.3g} "
            f"{row.weight:>7.3f} {fmt(row.reward, '+.3f'):>7}"
        )
    if len(drawn.rows) > len(shown):
        click.echo(f"... {len(drawn.rows) - len(shown):,} more (--out FILE writes them all)")


@replay.command("priorities")
@click.option("--run", "run_id", required=True, help="The training run that computed the errors.")
@click.option(
    "--file",
    "report_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="CSV or Parquet with columns transition_id, td_error.",
)
@db_option
def replay_priorities(run_id: str, report_path: Path, db_path: Path | None) -> None:
    """Report a training run's TD errors: each transition still in the buffer gets priority
    |TD error| + epsilon. Reporting the same run again replaces its report."""
    from feedback_flywheel.replay import priorities

    settings = load_settings(db_path)
    try:
        errors = priorities.read_report_file(report_path)
        lock = run_lock(settings.db_path, wait_seconds=LOCK_WAIT_SECONDS)
        with lock, connect(settings.db_path) as con:
            outcome = priorities.report_td_errors(
                con,
                training_run_id=run_id,
                errors=errors,
                epsilon=settings.replay_policy.priority.epsilon,
                now=utc_now(),
                source=str(report_path),
            )
    except priorities.TdErrorReportError as error:
        fail(str(error))
        raise
    click.echo(outcome.summary())


@replay.command("verify")
@db_option
def replay_verify(db_path: Path | None) -> None:
    """Rebuild every buffer version from ml.replay_buffer and ml.replay_evictions and check it
    against the membership hash the version recorded (and the audit trail holds): OK, or each
    version that does not rebuild (exit 1)."""
    from feedback_flywheel.replay import versions

    with connect(database(db_path), read_only=True) as con:
        checks = versions.verify(con)
    if not checks:
        click.echo("the replay buffer has no version yet: run a batch (`flywheel run`) first")
        return
    broken = [batch_id for batch_id, ok in checks if not ok]
    if broken:
        for batch_id in broken:
            click.echo(
                f"rb-{batch_id}: rebuilding it from the buffer and its eviction log does not give "
                "the membership it recorded",
                err=True,
            )
        raise SystemExit(EXIT_FAILED)
    click.echo(
        f"OK: {len(checks)} buffer version(s) rebuild exactly (rb-{checks[0][0]} .. "
        f"rb-{checks[-1][0]})"
    )

"""The reward model: ``flywheel reward status`` and ``reward leaderboard``."""

from __future__ import annotations

from pathlib import Path

import click

from feedback_flywheel.cli.app import main
from feedback_flywheel.cli.common import database, db_option, fmt
from feedback_flywheel.publish import queries
from feedback_flywheel.warehouse import connect


@main.group()
def reward() -> None:
    """The reward model: training history, the current version, the model-version leaderboard
    and the quality of the preference data (written by the batch cycle's reward stage)."""


def _quality_lines(quality: list[tuple]) -> list[str]:
    lines = [
        "\npreference data quality (marts.rpt_preference_quality):",
        f"  {'source':<16} {'judged':>7} {'contexts':>8} {'ties':>6} "
        f"{'first-shown wins [95% CI]':<26} {'agree':>6} {'cycles':>6} {'quar.':>5} "
        f"{'held':>5}",
    ]
    for source, judged, contexts, ties, first, low, high, agree, cycles, quar, held in quality:
        interval = f"{fmt(first)} [{fmt(low)}, {fmt(high)}]"
        lines.append(
            f"  {source:<16} {judged:>7} {contexts:>8} {fmt(ties):>6} {interval:<26} "
            f"{fmt(agree):>6} {fmt(cycles):>6} {quar:>5} {held:>5}"
        )
    return lines


@reward.command("status")
@click.option("--limit", type=int, default=10, show_default=True, help="Batches to show.")
@db_option
def reward_status(limit: int, db_path: Path | None) -> None:
    """Reward-model batches (trained or skipped, promoted or not, and why), held-out accuracy /
    log loss / calibration error, the current version, and the preference data quality."""
    from feedback_flywheel.rewards import store as reward_store

    with connect(database(db_path), read_only=True) as con:
        history = reward_store.status_frame(con, limit)
        quality = queries.preference_quality(con)
    if history.empty:
        click.echo("no reward model yet: run a batch (`flywheel run`) first")
        return
    click.echo(f"current reward model: {history.current_version.iloc[0] or 'none'}")
    click.echo(
        f"{'batch':<17} {'status':<8} {'version':<20} {'prom':<5} {'train':>6} {'val':>5} "
        f"{'new':>5} {'acc':>6} {'logloss':>8} {'ece':>6}"
    )
    for row in history.itertuples(index=False):
        click.echo(
            f"{row.batch_id:<17} {row.status:<8} {fmt(row.reward_model_version, 's'):<20} "
            f"{'yes' if row.is_promoted else 'no':<5} {row.n_pairs_train:>6} "
            f"{row.n_pairs_validation:>5} {row.n_pairs_new:>5} {fmt(row.heldout_accuracy):>6} "
            f"{fmt(row.heldout_log_loss, '.4f'):>8} {fmt(row.heldout_calibration_error):>6}"
        )
        click.echo(f"    {row.reason}")
    if quality:
        for line in _quality_lines(quality):
            click.echo(line)


def _leaderboard_line(row) -> str:
    rank = fmt(row.rank, ".0f")
    strength = (
        f"{fmt(row.strength, '+.3f')} [{fmt(row.strength_lower, '+.3f')}, "
        f"{fmt(row.strength_upper, '+.3f')}]"
        if row.is_identified
        else "not compared with another"
    )
    record = f"{row.wins}-{row.losses}-{row.ties}"
    return (
        f"{rank:>4} {row.item:<28} {strength:<28} {row.cross_version_comparisons:>6} "
        f"{record:<12} {fmt(row.mean_reward, '+.3f'):>11} {row.scored_outputs:>7}"
    )


@reward.command("leaderboard")
@click.option("--batch-id", default=None, help="Batch whose leaderboard to show (default latest).")
@db_option
def reward_leaderboard(batch_id: str | None, db_path: Path | None) -> None:
    """Model versions ranked by an item-level Bradley-Terry fit on cross-version preference pairs
    (strength with a 95% bootstrap interval), beside the mean reward-model score of each."""
    from feedback_flywheel.rewards import store as reward_store

    with connect(database(db_path), read_only=True) as con:
        board = reward_store.leaderboard_frame(con, batch_id)
    if board.empty:
        raise click.ClickException(
            f"no leaderboard for batch {batch_id}; `flywheel reward status` lists the batches "
            "the reward stage ran for"
            if batch_id
            else "no leaderboard yet: run a batch (`flywheel run`) first"
        )
    click.echo(f"leaderboard of batch {board.batch_id.iloc[0]}")
    click.echo(
        f"{'rank':>4} {'model:version':<28} {'strength [95% CI]':<28} {'cross':>6} "
        f"{'W-L-T':<12} {'mean reward':>11} {'scored':>7}"
    )
    for row in board.itertuples(index=False):
        click.echo(_leaderboard_line(row))
    if not board.is_identified.any():
        click.echo(
            "\nno preference pair compares outputs of two different versions, so the versions "
            "cannot be ranked by preference; the mean reward score is the reward model's view."
        )

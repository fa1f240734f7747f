"""``flywheel backtest``: replay a retraining policy over the stored timeline (no retraining)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from feedback_flywheel.cli.app import main
from feedback_flywheel.cli.common import EXIT_USAGE, database, db_option, fail, load_settings
from feedback_flywheel.retraining import backtest as replayer
from feedback_flywheel.warehouse import connect


@main.command()
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The retraining policy to replay (default: policies/retraining.yml).",
)
@click.option(
    "--changes",
    "--truth",
    "changes_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Known changes to measure against: a demo truth.json, or a change log (YAML or JSON "
    "list of {kind: covariate|concept, start_date, feature | segment_attribute, segment_value}).",
)
@click.option("--days", "show_days", is_flag=True, help="Print every day's decision too.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@db_option
def backtest(
    policy_path: Path | None,
    changes_path: Path | None,
    show_days: bool,
    as_json: bool,
    db_path: Path | None,
) -> None:
    """Replay the decisions POLICY would have made on every day of the stored drift and
    performance timelines, and report the retrainings it would have triggered, its warnings,
    and, given the known changes, its detection delays and false alarms. Nothing is retrained
    or written: tune thresholds on your own history, then pass the file to `flywheel run
    --policy`."""
    settings = load_settings(db_path, policy_path=policy_path)
    try:
        changes = replayer.load_changes(changes_path) if changes_path else []
    except replayer.ChangeLogError as error:
        fail(str(error), EXIT_USAGE)
    with connect(database(db_path), read_only=True) as con:
        decisions = replayer.replay(
            con,
            settings.retraining_policy,
            replayer.Windows(
                current_days=settings.vars.performance_current_days,
                reference_days=settings.vars.performance_reference_days,
                fast_days=settings.vars.performance_fast_days,
            ),
        )
    if not decisions:
        fail("the timeline is empty: run a batch first (`flywheel run`)", EXIT_USAGE)
    result = replayer.report(decisions, changes)
    if as_json:
        click.echo(replayer.as_json({"policy": _policy(settings), "models": result}))
        return
    click.echo(f"backtest of {_policy(settings)['source']} ({_policy(settings)['version']})")
    click.echo("not on the timeline, replayed as not fired: " + ", ".join(replayer.NOT_ON_TIMELINE))
    for model, entry in result.items():
        _print_model(model, entry)
        if show_days:
            for day in (d for d in decisions if d.model_name == model):
                click.echo(
                    f"    {day.day} {day.decision:<17} {','.join(day.fired) or '-'}"
                    + (f"  drifted: {', '.join(day.drifted)}" if day.drifted else "")
                    + (f"  dropped: {', '.join(day.dropped)}" if day.dropped else "")
                )


def _policy(settings: Any) -> dict[str, str]:
    policy = settings.retraining_policy
    return {"source": policy.source, "version": policy.policy_version}


def _print_model(model: str, entry: dict[str, Any]) -> None:
    counts = ", ".join(f"{count} {name}" for name, count in sorted(entry["decisions"].items()))
    click.echo(f"\n{model}: {entry['days']} days {entry['first_day']} .. {entry['last_day']}")
    click.echo(f"  decisions: {counts}")
    retrainings = entry["retrainings"]
    click.echo(f"  retrainings it would trigger: {len(retrainings)}")
    for item in retrainings:
        click.echo(f"    {item['day']}  {', '.join(item['signals'])}")
    if "changes" not in entry:
        click.echo("  (give --changes truth.json or a change log for delays and false alarms)")
        return
    alarms = entry["false_alarms"]
    click.echo(
        f"  false alarms on the {entry['stable_days']} stable days before the first change: "
        f"{alarms['retrain']} retrain, {alarms['warning']} warning; days with drift on a "
        f"feature no change names: {alarms['days_with_unnamed_drift']}"
        + (f" ({', '.join(alarms['unnamed_features'])})" if alarms["unnamed_features"] else "")
    )
    click.echo(
        f"  {'change':<28} {'start':<10}  {'first flag':<10} {'delay':>5}  "
        f"{'retrain':<10} {'delay':>5}"
    )
    for change in entry["changes"]:
        click.echo(
            f"  {change['change']:<28} {change['start_date']:<10}  "
            f"{change['first_flag'] or '-':<10} {_days(change['flag_delay_days']):>5}  "
            f"{change['first_retrain'] or '-':<10} {_days(change['retrain_delay_days']):>5}"
        )


def _days(value: int | None) -> str:
    return "-" if value is None else f"{value:+d}d"

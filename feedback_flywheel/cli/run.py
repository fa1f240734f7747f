"""Running the loop: ``flywheel run`` (the batch cycle now), ``demo`` (the whole loop on the demo
world) and ``serve`` (the batch cycle on a schedule)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import click

from feedback_flywheel.cli.app import main
from feedback_flywheel.cli.common import (
    CONFIGURATION_ERRORS,
    EXIT_BUSY,
    EXIT_FAILED,
    EXIT_USAGE,
    db_option,
    echo_progress,
    load_settings,
    parse_timestamp,
)
from feedback_flywheel.config import Settings, SettingsError, parse_overrides

RAW_TABLE_ORDER = ("model_deployments", "inference_log", "feedback_events", "preference_events")


def _logging(settings: Settings) -> None:
    """Prefect's and dbt's logs into logs/flywheel.log (and the console with -v); once."""
    from flows.prefect_env import configure_logging

    state = click.get_current_context().find_root().ensure_object(dict)
    if state.get("logging"):
        return
    verbose = bool(state.get("verbose"))
    log_file = settings.project_dir / "logs" / "flywheel.log"
    configure_logging(log_file, verbose=verbose)
    state["logging"] = log_file
    click.echo(f"logs: {log_file}" + ("" if verbose else " (-v prints them here too)"), err=True)


def _result_line(number: int, total: int, result: dict, seconds: float) -> str:
    decisions = ", ".join(f"{model} {what}" for model, what in result["decisions"].items())
    return (
        f"[{number}/{total}] {result['batch_id']} ok in {seconds:.0f} s: "
        f"{result['feedback_in']:,} feedback in ({result['feedback_accepted']:,} accepted, "
        f"{result['feedback_quarantined']:,} quarantined, {result['feedback_held']:,} held), "
        f"{result['inferences_in']:,} inferences; decision: {decisions or 'kept'}"
    )


def run_batches(
    settings: Settings,
    until: datetime | None,
    daily: bool,
    batch_id: str | None,
    *,
    dry_run: bool = False,
    policy_path: Path | None = None,
    wait_seconds: float = 0.0,
    replay_policy_path: Path | None = None,
) -> list[dict]:
    """Plan and run batch_cycle flows, one result line per batch (and its warnings), holding the
    warehouse's run lock for all of them (waiting up to ``wait_seconds`` for it); returns the
    counts of each batch run."""
    from feedback_flywheel import batches

    with batches.run_lock(settings.db_path, wait_seconds=wait_seconds):
        return _run_locked(
            settings, until, daily, batch_id, dry_run, policy_path, replay_policy_path
        )


def _run_locked(
    settings: Settings,
    until: datetime | None,
    daily: bool,
    batch_id: str | None,
    dry_run: bool,
    policy_path: Path | None,
    replay_policy_path: Path | None = None,
) -> list[dict]:
    from feedback_flywheel import batches
    from feedback_flywheel.warehouse import connect, init_warehouse

    _logging(settings)
    from flows.batch_cycle import batch_cycle

    common = {
        "overrides": settings.overrides,
        "db_path": str(settings.db_path),
        "dry_run": dry_run,
        "policy_path": str(policy_path) if policy_path else None,
        "replay_policy_path": str(replay_policy_path) if replay_policy_path else None,
        "progress": True,
    }
    if batch_id:
        with connect(settings.db_path) as con:  # an unknown or old batch fails here, at once
            init_warehouse(con)
            batches.rerun_window(con, batch_id)
        windows = [None]
    else:
        with connect(settings.db_path) as con:
            init_warehouse(con)
            windows = batches.plan_windows(
                con,
                until or batches.utc_now(),
                daily=daily,
                floor=settings.vars.floor,
                clock_skew_seconds=settings.vars.clock_skew_seconds,
            )
        if not windows:
            click.echo("nothing to do: the warehouse is already at that watermark", err=True)
    results = []
    for number, window in enumerate(windows, start=1):
        started = time.monotonic()
        if window is None:
            result = batch_cycle(batch_id=batch_id, **common)
        else:
            result = batch_cycle(
                window_start=window.window_start, window_end=window.window_end, **common
            )
        if result is None:
            continue
        click.echo(_result_line(number, len(windows), result, time.monotonic() - started), err=True)
        for warning in result.get("warnings", []):
            click.echo(f"  warning: {warning}", err=True)
        results.append(result)
    return results


def print_summary(settings: Settings) -> None:
    from feedback_flywheel.publish.summary import run_summary
    from feedback_flywheel.warehouse import connect

    with connect(settings.db_path, read_only=True) as con:
        click.echo(run_summary(con, settings.db_path, settings.serving_path))


def _until(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    return parse_timestamp(value)


@main.command()
@click.option(
    "--until",
    callback=_until,
    help="Watermark to build up to (ISO 8601, UTC; default: now).",
)
@click.option("--daily", is_flag=True, help="One batch per UTC day up to the watermark.")
@click.option("--batch-id", help="Re-run this batch (only the latest can be re-run).")
@click.option(
    "--var",
    "var_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a dbt var for this run (repeatable), e.g. --var lookback_days=5.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Record retraining decisions without triggering any retraining.",
)
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Retraining policy file (default: policies/retraining.yml).",
)
@click.option(
    "--replay-policy",
    "replay_policy_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Replay buffer policy file (default: policies/replay.yml).",
)
@click.option(
    "--wait",
    "wait_seconds",
    type=click.FloatRange(min=0),
    default=0,
    show_default=True,
    metavar="SECONDS",
    help="When another run holds the warehouse, wait this long for it before refusing (exit 3).",
)
@db_option
def run(
    until: datetime | None,
    daily: bool,
    batch_id: str | None,
    var_pairs: tuple[str, ...],
    dry_run: bool,
    policy_path: Path | None,
    replay_policy_path: Path | None,
    wait_seconds: float,
    db_path: Path | None,
) -> None:
    """Run the batch cycle now: from the last watermark up to --until (default: now): build the
    warehouse, test drift and performance, decide whether to retrain, and trigger it."""
    from feedback_flywheel.batches import BatchError, RunLockBusy

    try:
        overrides = parse_overrides(var_pairs)
    except SettingsError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_USAGE)
    # a bad --var or policy fails here, before any batch is opened
    settings = load_settings(
        db_path,
        overrides=overrides,
        policy_path=policy_path,
        replay_policy_path=replay_policy_path,
    )
    try:
        run_batches(
            settings,
            until,
            daily,
            batch_id,
            dry_run=dry_run,
            policy_path=policy_path,
            wait_seconds=wait_seconds,
            replay_policy_path=replay_policy_path,
        )
    except RunLockBusy as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_BUSY)
    except (BatchError, *CONFIGURATION_ERRORS) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_USAGE)
    except Exception as error:  # a failed batch: recorded in ml.batch_runs, reported here
        click.echo(f"batch failed: {error}", err=True)
        sys.exit(EXIT_FAILED)
    print_summary(settings)


def _demo_world(
    seed: int,
    days: int,
    inferences_per_day: int,
    project_dir: Path,
    closed_loop: bool = False,
    out: Path | None = None,
) -> tuple:
    """The demo world's folder and truth, generated once (it is deterministic)."""
    from feedback_flywheel import demo as demo_module

    name = f"demo-seed{seed}-{days}d-{inferences_per_day}" + ("-closed-loop" if closed_loop else "")
    out = out or project_dir / "data" / name
    truth_file = out / "truth.json"
    click.echo(f"1/4 demo world -> {out}", err=True)
    if truth_file.exists():
        truth = json.loads(truth_file.read_text())
        if (truth["seed"], truth["days"], truth["inferences_per_day"]) == (
            seed,
            days,
            inferences_per_day,
        ) and truth.get("closed_loop", False) == closed_loop:
            click.echo("  already generated (deterministic); reusing it", err=True)
            return out, truth
    truth = demo_module.generate(
        out,
        seed=seed,
        days=days,
        inferences_per_day=inferences_per_day,
        start_date=date(2026, 1, 1),
        closed_loop=closed_loop,
        progress=echo_progress,
    )
    return out, truth


def _pin_config(settings: Settings) -> None:
    """The demo's own configuration, pinned (flywheel.yml), unless the project has one."""
    from feedback_flywheel.config import file as config_file

    if not settings.config.exists:
        settings.config.path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(config_file.shipped(settings.project_dir), settings.config.path)


def _ingest_demo(settings: Settings, out: Path) -> None:
    from feedback_flywheel import ingest as ingest_module
    from feedback_flywheel.warehouse import connect, init_warehouse

    click.echo(f"2/4 ingest into {settings.db_path}", err=True)
    _pin_config(settings)
    with connect(settings.db_path) as con:
        init_warehouse(con)
        for table in RAW_TABLE_ORDER:
            results = ingest_module.ingest_files(con, table, [out / table])
            loaded = [r for r in results if r.status == "loaded"]
            refused = [r for r in results if r.status == "refused"]
            click.echo(
                f"  {table}: {sum(r.rows for r in loaded):,} rows from {len(loaded)} "
                f"file(s), {len(results) - len(loaded) - len(refused)} already loaded",
                err=True,
            )
            if refused:
                for result in refused:
                    click.echo(result.message, err=True)
                sys.exit(EXIT_FAILED)


@main.command()
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--days", type=click.IntRange(min=8), default=60, show_default=True)
@click.option("--inferences-per-day", type=click.IntRange(min=10), default=2000, show_default=True)
@click.option(
    "--daily-batches",
    type=click.IntRange(min=1),
    help="The last N days run as daily batches; the history before them as one batch "
    "[default: 5; with --closed-loop: from two days before the concept change].",
)
@click.option(
    "--closed-loop",
    is_flag=True,
    help="Serve each day by the version the registry deployed before it, so a retrained model "
    "serves the next day (its own world and database: data/closed-loop.duckdb unless --db).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder the demo world is written to [default: data/demo-seed<seed>-<days>d-<volume>].",
)
@db_option
def demo(
    seed: int,
    days: int,
    inferences_per_day: int,
    daily_batches: int | None,
    closed_loop: bool,
    out: Path | None,
    db_path: Path | None,
) -> None:
    """The whole loop on the demo world: generate, ingest, run the batches, print a summary."""
    if closed_loop:
        _closed_loop_demo(seed, days, inferences_per_day, daily_batches, out, db_path)
        return
    daily_batches = daily_batches or 5
    settings = load_settings(db_path)
    out, truth = _demo_world(seed, days, inferences_per_day, settings.project_dir, out=out)
    _ingest_demo(settings, out)
    settings = settings.reload()
    end = datetime.fromisoformat(truth["end_date"])
    history_end = end - timedelta(days=daily_batches)
    click.echo(
        f"3/4 batches: history up to {history_end.date()}, then {daily_batches} daily", err=True
    )
    try:
        run_batches(settings, history_end, False, None)
        run_batches(settings, end, True, None)
    except Exception as error:
        click.echo(f"batch failed: {error}", err=True)
        sys.exit(EXIT_FAILED)
    click.echo("4/4 summary", err=True)
    print_summary(settings)


def _closed_loop_demo(
    seed: int,
    days: int,
    inferences_per_day: int,
    daily_batches: int | None,
    out: Path | None,
    db_path: Path | None,
) -> None:
    from feedback_flywheel.cli.closed_loop import print_recovery, run_closed_loop

    settings = load_settings(db_path)
    if db_path is None:
        settings = load_settings(settings.project_dir / "data" / "closed-loop.duckdb")
    out, truth = _demo_world(seed, days, inferences_per_day, settings.project_dir, True, out)
    _pin_config(settings)
    settings = settings.reload()
    end = date.fromisoformat(truth["end_date"])
    concept = date.fromisoformat(truth["concept_drift"][0]["start_date"])
    daily_from = end - timedelta(days=daily_batches) if daily_batches else concept - timedelta(2)
    run_closed_loop(settings, out, truth, max(daily_from, date.fromisoformat(truth["start_date"])))
    click.echo("4/4 summary", err=True)
    print_summary(settings)
    print_recovery(settings, truth)


@main.command()
@click.option(
    "--cron", default="0 2 * * *", show_default=True, help="When to run the cycle (cron syntax)."
)
@click.option(
    "--timezone",
    default="UTC",
    show_default=True,
    help="IANA time zone the cron is read in, e.g. Europe/Berlin.",
)
@click.option(
    "--port",
    type=int,
    default=4200,
    show_default=True,
    help="Port of the local Prefect server started when PREFECT_API_URL is unset.",
)
@db_option
def serve(cron: str, timezone: str, port: int, db_path: Path | None) -> None:
    """Serve batch_cycle on a schedule through Prefect (Ctrl-C to stop).

    Prefect's temporary API does not fire schedules, so without PREFECT_API_URL a local Prefect
    server is started first (its UI address is printed).
    """
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(timezone)
    except ZoneInfoNotFoundError:
        raise click.BadParameter(
            f"unknown time zone {timezone!r}", param_hint="--timezone"
        ) from None
    settings = load_settings(db_path)
    from flows.schedule import PrefectServerError, serve_batch_cycle

    try:
        serve_batch_cycle(
            settings.db_path,
            cron=cron,
            timezone=timezone,
            port=port,
            api_url=os.environ.get("PREFECT_API_URL"),
            echo=click.echo,
        )
    except PrefectServerError as error:
        raise click.ClickException(str(error)) from error

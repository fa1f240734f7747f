"""The ``flywheel`` command.

Exit codes scripts can trust: 0 success, 1 a batch or check failed, 2 bad usage, bad input or bad
configuration (the message says which and what to do).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, date, datetime
from pathlib import Path

import click

from feedback_flywheel import paths
from feedback_flywheel.settings import SettingsError, load_settings, parse_overrides

EXIT_FAILED = 1
EXIT_USAGE = 2


def _echo_progress(message: str) -> None:
    click.echo(f"  {message}", err=True)


def _db_option(function):
    return click.option(
        "--db",
        "db_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="DuckDB file (default: $FLYWHEEL_DUCKDB, else data/flywheel.duckdb in the project).",
    )(function)


def _resolve_db(db_path: Path | None) -> Path:
    if db_path is not None:
        os.environ["FLYWHEEL_DUCKDB"] = str(db_path.resolve())
    return paths.database_path()


def _parse_timestamp(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 timestamp, e.g. 2026-03-01 or 2026-03-01T06:00:00Z"
        ) from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


class _FlywheelGroup(click.Group):
    """Commands that cannot open the warehouse (locked by a running build, or missing) print
    the reason and what to do, without a traceback."""

    def invoke(self, ctx: click.Context):
        from feedback_flywheel.warehouse import WarehouseUnavailable

        try:
            return super().invoke(ctx)
        except WarehouseUnavailable as error:
            problem = click.ClickException(str(error))
            problem.exit_code = EXIT_USAGE  # as the commands that catch it themselves
            raise problem from error


@click.group(cls=_FlywheelGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="feedback_flywheel")
def main() -> None:
    """feedback_flywheel: turn logged predictions and their feedback into curated datasets,
    KPIs and retraining decisions, one auditable batch at a time."""


@main.command()
@_db_option
def init(db_path: Path | None) -> None:
    """Create the warehouse file with its raw and ml tables (safe to repeat)."""
    from feedback_flywheel import warehouse

    database = _resolve_db(db_path)
    with warehouse.connect(database) as con:
        warehouse.init_warehouse(con)
    click.echo(f"warehouse ready: {database}")


@main.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown", "dbt-sources"]),
    default="text",
    show_default=True,
    help="dbt-sources prints models/staging/raw/_raw__sources.yml as generated from the contract.",
)
def contract(fmt: str) -> None:
    """Print the raw input contract: every table and column users load."""
    from feedback_flywheel.contract import RAW_TABLES, dbt_sources_yaml

    if fmt == "dbt-sources":
        click.echo(dbt_sources_yaml(), nl=False)
        return

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
def demo_data(
    out: Path | None, seed: int, days: int, inferences_per_day: int, start_date: datetime
) -> None:
    """Write a deterministic demo world (raw files + truth.json of what was injected)."""
    from feedback_flywheel import demo

    out = out or paths.project_dir() / "data" / "demo"
    started = time.perf_counter()
    truth = demo.generate(
        out,
        seed=seed,
        days=days,
        inferences_per_day=inferences_per_day,
        start_date=start_date.date(),
        progress=_echo_progress,
    )
    counts = truth.get("counts", {})
    click.echo(
        f"demo world written to {out} in {time.perf_counter() - started:.1f} s: "
        + ", ".join(f"{table} {n:,}" for table, n in counts.items() if isinstance(n, int))
    )


@main.command()
@click.argument("table")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--allow-extra-columns",
    is_flag=True,
    help="Drop columns the contract does not know instead of refusing the file.",
)
@_db_option
def ingest(
    table: str, files: tuple[Path, ...], allow_extra_columns: bool, db_path: Path | None
) -> None:
    """Append Parquet, CSV or JSON-lines FILES (or folders of them) to raw TABLE.

    Each file loads whole or not at all; a file already loaded (same bytes) adds nothing.
    Exit code 2 when any file was refused.
    """
    from feedback_flywheel import ingest as ingest_module
    from feedback_flywheel import warehouse
    from feedback_flywheel.contract import get_table

    try:
        get_table(table)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    database = _resolve_db(db_path)
    with warehouse.connect(database) as con:
        results = ingest_module.ingest_files(
            con, table, list(files), allow_extra_columns=allow_extra_columns
        )
    refused = 0
    for result in results:
        click.echo(result.message, err=result.status == "refused")
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


def _run_batches(
    database: Path,
    until: datetime | None,
    daily: bool,
    batch_id: str | None,
    overrides: dict,
    *,
    dry_run: bool = False,
    policy_path: Path | None = None,
) -> list[dict]:
    """Plan and run batch_cycle flows; returns the counts of each batch run."""
    from feedback_flywheel import batches, warehouse
    from flows.batch_cycle import batch_cycle

    common = {
        "overrides": overrides,
        "db_path": str(database),
        "dry_run": dry_run,
        "policy_path": str(policy_path) if policy_path else None,
    }
    if batch_id:
        return [batch_cycle(batch_id=batch_id, **common)]
    with warehouse.connect(database) as con:
        warehouse.init_warehouse(con)
        windows = batches.plan_windows(con, until or batches.utc_now(), daily=daily)
    if not windows:
        click.echo("nothing to do: the warehouse is already at that watermark", err=True)
    results = []
    for number, window in enumerate(windows, start=1):
        click.echo(
            f"[{number}/{len(windows)}] batch {window.batch_id}: "
            f"{window.window_start} .. {window.window_end}",
            err=True,
        )
        results.append(
            batch_cycle(window_start=window.window_start, window_end=window.window_end, **common)
        )
    return results


def _print_summary(database: Path) -> None:
    from feedback_flywheel import report, warehouse

    with warehouse.connect(database, read_only=True) as con:
        click.echo(report.run_summary(con, database))


@main.command()
@click.option("--until", help="Watermark to build up to (ISO 8601, UTC; default: now).")
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
@_db_option
def run(
    until: str | None,
    daily: bool,
    batch_id: str | None,
    var_pairs: tuple[str, ...],
    dry_run: bool,
    policy_path: Path | None,
    db_path: Path | None,
) -> None:
    """Run the batch cycle now: from the last watermark up to --until (default: now): build the
    warehouse, test drift and performance, decide whether to retrain, and trigger it."""
    from feedback_flywheel.batches import BatchError
    from feedback_flywheel.policy import PolicyError, load_policy

    database = _resolve_db(db_path)
    try:
        overrides = parse_overrides(var_pairs)
        load_settings(overrides)  # a bad --var fails here, before any batch is opened
        load_policy(policy_path)  # and so does a bad policy
        _run_batches(
            database,
            _parse_timestamp(until),
            daily,
            batch_id,
            overrides,
            dry_run=dry_run,
            policy_path=policy_path,
        )
    except (SettingsError, BatchError, PolicyError) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_USAGE)
    except Exception as error:  # a failed batch: recorded in ml.batch_runs, reported here
        click.echo(f"batch failed: {error}", err=True)
        sys.exit(EXIT_FAILED)
    _print_summary(database)


@main.command()
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--days", type=click.IntRange(min=8), default=60, show_default=True)
@click.option("--inferences-per-day", type=click.IntRange(min=10), default=2000, show_default=True)
@click.option(
    "--daily-batches",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="The last N days run as daily batches; the history before them as one batch.",
)
@_db_option
def demo(
    seed: int, days: int, inferences_per_day: int, daily_batches: int, db_path: Path | None
) -> None:
    """The whole loop on the demo world: generate, ingest, run the batches, print a summary."""
    from datetime import timedelta

    from feedback_flywheel import demo as demo_module
    from feedback_flywheel import ingest as ingest_module
    from feedback_flywheel import warehouse

    database = _resolve_db(db_path)
    out = paths.project_dir() / "data" / f"demo-seed{seed}-{days}d-{inferences_per_day}"
    truth_file = out / "truth.json"
    click.echo(f"1/4 demo world -> {out}", err=True)
    if truth_file.exists():
        truth = json.loads(truth_file.read_text())
        click.echo("  already generated (deterministic); reusing it", err=True)
    else:
        truth = demo_module.generate(
            out,
            seed=seed,
            days=days,
            inferences_per_day=inferences_per_day,
            start_date=date(2026, 1, 1),
            progress=_echo_progress,
        )
    click.echo(f"2/4 ingest into {database}", err=True)
    with warehouse.connect(database) as con:
        warehouse.init_warehouse(con)
        for table in ("model_deployments", "inference_log", "feedback_events", "preference_events"):
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
    end = datetime.fromisoformat(truth["end_date"])
    history_end = end - timedelta(days=daily_batches)
    click.echo(
        f"3/4 batches: history up to {history_end.date()}, then {daily_batches} daily", err=True
    )
    try:
        _run_batches(database, history_end, False, None, {})
        _run_batches(database, end, True, None, {})
    except Exception as error:
        click.echo(f"batch failed: {error}", err=True)
        sys.exit(EXIT_FAILED)
    click.echo("4/4 summary", err=True)
    _print_summary(database)


@main.command()
@_db_option
def summary(db_path: Path | None) -> None:
    """Print the summary of what the warehouse holds (reads the database read-only)."""
    _print_summary(_resolve_db(db_path))


@main.command("batches")
@click.option("--limit", type=int, default=20, show_default=True)
@_db_option
def list_batches(limit: int, db_path: Path | None) -> None:
    """List the latest batch runs with their windows, status and counts."""
    from feedback_flywheel import warehouse

    with warehouse.connect(_resolve_db(db_path), read_only=True) as con:
        rows = con.execute(
            """
            select batch_id, attempt, status, window_start, window_end, feedback_in,
                feedback_accepted, feedback_quarantined, feedback_held, round(dbt_seconds, 1)
            from ml.batch_runs order by window_end desc, attempt desc limit ?
            """,
            [limit],
        ).fetchall()
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
@_db_option
def decisions(limit: int, db_path: Path | None) -> None:
    """List retraining decisions with the signals that fired and what was triggered."""
    from feedback_flywheel import warehouse

    with warehouse.connect(_resolve_db(db_path), read_only=True) as con:
        rows = con.execute(
            """
            select batch_id, model_name, decision, trigger_status, triggered_run_id, reason
            from ml.retraining_decisions order by watermark_at desc, model_name limit ?
            """,
            [limit],
        ).fetchall()
    if not rows:
        click.echo("no retraining decisions yet")
    for batch, model, outcome, status, run_id, reason in rows:
        trigger = f" -> {run_id}" if run_id else ""
        click.echo(f"{batch} {model:<16} {outcome:<17} {status}{trigger}\n    {reason}")


@main.command()
@click.option("--batch-id", help="The batch to show (default: the latest with drift results).")
@click.option("--all", "show_all", is_flag=True, help="Every test, not only the drifted ones.")
@_db_option
def drift(batch_id: str | None, show_all: bool, db_path: Path | None) -> None:
    """Show a batch's drift tests: statistic, BH-adjusted p-value, effect size and the verdict."""
    from feedback_flywheel import report, warehouse

    with warehouse.connect(_resolve_db(db_path), read_only=True) as con:
        batch_id = (
            batch_id or con.execute("select max(batch_id) from ml.drift_results").fetchone()[0]
        )
        rows = report.drift_rows(con, batch_id, drifted_only=not show_all)
    click.echo(
        f"drift tests of batch {batch_id}"
        + ("" if show_all else " (drifted only; --all shows every test)")
    )
    click.echo(
        f"{'model':<16} {'feature':<18} {'kind':<10} {'test':<12} {'statistic':>10} "
        f"{'p_adj':>9} {'effect':>22} {'n_ref':>8} {'n_cur':>8}  drift"
    )
    for (
        model,
        feature,
        kind,
        test,
        stat,
        p_adj,
        metric,
        effect,
        floor,
        n_ref,
        n_cur,
        is_drift,
    ) in rows:
        effect_text = (
            f"{metric}={effect:.3g}/{floor:g}" if effect == effect and effect is not None else "n/a"
        )
        p_text = "n/a" if p_adj is None or p_adj != p_adj else f"{p_adj:.2g}"
        stat_text = "n/a" if stat is None or stat != stat else f"{stat:.4g}"
        click.echo(
            f"{model:<16} {feature:<18} {kind:<10} {test:<12} {stat_text:>10} {p_text:>9} "
            f"{effect_text:>22} {n_ref:>8,} {n_cur:>8,}  {'YES' if is_drift else 'no'}"
        )


@main.group()
def dataset() -> None:
    """Dataset versions: list them, or rebuild one and prove it is identical."""


@dataset.command("list")
@click.option("--limit", type=int, default=20, show_default=True)
@_db_option
def dataset_list(limit: int, db_path: Path | None) -> None:
    """List dataset versions with their size, sample and fingerprints."""
    from feedback_flywheel import warehouse

    with warehouse.connect(_resolve_db(db_path), read_only=True) as con:
        rows = con.execute(
            """
            select dataset_version, example_count, examples_added, examples_superseded,
                sample_count, example_fingerprint
            from marts.fct_dataset_versions order by dataset_version desc limit ?
            """,
            [limit],
        ).fetchall()
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
@_db_option
def dataset_verify(dataset_version: str, db_path: Path | None) -> None:
    """Rebuild the training sample of DATASET_VERSION from the examples and compare row for row.

    Exit code 1 when the rebuild differs from what was stored.
    """
    from feedback_flywheel import datasets

    try:
        result = datasets.verify(dataset_version, _resolve_db(db_path))
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


def _ensure_prefect_server(port: int) -> subprocess.Popen | None:
    """Start a local Prefect server unless PREFECT_API_URL points at one; wait until healthy."""
    if os.environ.get("PREFECT_API_URL"):
        return None
    api = f"http://127.0.0.1:{port}/api"
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "prefect"),
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{api}/health", timeout=2) as response:
                if response.status == 200:
                    os.environ["PREFECT_API_URL"] = api
                    return server
        except OSError:
            time.sleep(0.5)
    server.terminate()
    raise click.ClickException(f"the local Prefect server did not become healthy on port {port}")


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
@_db_option
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
    database = _resolve_db(db_path)
    server = _ensure_prefect_server(port)
    api = os.environ["PREFECT_API_URL"]
    click.echo(f"Prefect API: {api}  (UI: {api.removesuffix('/api')})")
    click.echo(f"serving batch_cycle on '{cron}' ({timezone}) for {database}")
    from prefect.schedules import Cron

    from flows.batch_cycle import batch_cycle

    try:
        batch_cycle.serve(
            name="flywheel-batch-cycle",
            schedules=[Cron(cron, timezone=timezone)],
            parameters={"db_path": str(database)},
        )
    finally:
        if server is not None:
            server.terminate()


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
@_db_option
def audit_verify(expected_head: str | None, as_json: bool, db_path: Path | None) -> None:
    """Recompute the hash chain of ml.audit_log and report OK with the row count and head hash,
    or the first broken link: its seq and whether it is a gap in the sequence, a prev_hash that
    does not match the previous row, or a row whose content no longer matches its hash.

    Exit code 0 when the chain holds, 1 when it is broken.
    """
    from feedback_flywheel import audit as audit_module
    from feedback_flywheel import warehouse

    try:
        with warehouse.connect(_resolve_db(db_path), read_only=True) as con:
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
@_db_option
def audit_trace(identifier: str, limit: int, as_json: bool, db_path: Path | None) -> None:
    """Lineage of IDENTIFIER: a training example (training_example_id, a training sample row or an
    inference_id) or a dataset version (ds-<batch_id> or the batch id).

    Lists the raw events behind it — inference_log rows and feedback events with the load file
    (raw.load_ledger) and line (_file_row) each came from, and their validation status — and the
    training runs that used it with the retraining decision that caused each. Exit code 2 when
    the id is unknown.
    """
    from feedback_flywheel import lineage, warehouse

    try:
        with warehouse.connect(_resolve_db(db_path), read_only=True) as con:
            result = lineage.trace(con, identifier, limit=limit or None)
    except (lineage.TraceError, FileNotFoundError, RuntimeError) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_USAGE)
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
    else:
        click.echo(lineage.render_text(result), nl=False)


def _serving_option(function):
    return click.option(
        "--serving",
        "serving_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Serving snapshot file (default: $FLYWHEEL_SERVING_DUCKDB, else "
        "<warehouse>.serving.duckdb next to the warehouse).",
    )(function)


@main.command()
@_serving_option
@_db_option
def publish(serving_path: Path | None, db_path: Path | None) -> None:
    """Publish the read-only serving snapshot of the marts now (the batch cycle does this
    after every successful batch): built beside the target, then swapped in atomically."""
    from feedback_flywheel import serving

    database = _resolve_db(db_path)
    try:
        result = serving.publish(database, serving_path)
    except (FileNotFoundError, serving.PublishError) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(result.describe())


@main.command()
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=8501,
    show_default=True,
    help="Port to serve the dashboard on.",
)
@click.option(
    "--address",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (0.0.0.0 to let other machines in).",
)
@click.option(
    "--headless/--open-browser",
    default=True,
    show_default=True,
    help="--open-browser opens a browser tab on start.",
)
@_serving_option
@_db_option
def dashboard(
    port: int, address: str, headless: bool, serving_path: Path | None, db_path: Path | None
) -> None:
    """Start the dashboard (Streamlit) over the published serving snapshot (Ctrl-C to stop).

    It reads only the read-only snapshot, never the warehouse, so it can stay open while
    batches run; it shows a new snapshot as soon as one is published. No usage statistics are
    sent and nothing is downloaded.
    """
    from feedback_flywheel import serving

    database = _resolve_db(db_path)
    snapshot = serving_path.resolve() if serving_path else serving.serving_path(database)
    if not snapshot.exists():
        click.echo(
            f"note: no serving snapshot at {snapshot} yet; the dashboard will say so until "
            "a batch publishes one (`flywheel run`) or you run `flywheel publish`.",
            err=True,
        )
    app = Path(__file__).resolve().parent / "dashboard" / "app.py"
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.headless",
        str(headless).lower(),
        "--server.address",
        address,
        "--server.port",
        str(port),
        "--server.fileWatcherType",
        "none",
        "--browser.gatherUsageStats",
        "false",
        "--global.developmentMode",
        "false",
        "--client.toolbarMode",
        "minimal",
    ]
    environment = {
        **os.environ,
        serving.SERVING_ENV: str(snapshot),
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
    }
    click.echo(f"dashboard on http://{address}:{port}/ reading {snapshot}", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    # Become the Streamlit server, so Ctrl-C and kill reach it directly (no orphaned child).
    os.execve(sys.executable, command, environment)


# --- reward model ---------------------------------------------------------------------------


@main.group()
def reward() -> None:
    """The reward model: training history, the current version, the model-version leaderboard
    and the quality of the preference data (written by the batch cycle's reward stage)."""


def _fmt(value: object, spec: str = ".3f") -> str:
    """A number for a table cell; '-' for a missing one (None, NaN, NA)."""
    import pandas as pd

    if value is None or pd.isna(value):
        return "-"
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return str(value)


@reward.command("status")
@click.option("--limit", type=int, default=10, show_default=True, help="Batches to show.")
@_db_option
def reward_status(limit: int, db_path: Path | None) -> None:
    """Reward-model batches (trained or skipped, promoted or not, and why), held-out accuracy /
    log loss / calibration error, the current version, and the preference data quality."""
    from feedback_flywheel import reward as reward_module
    from feedback_flywheel import warehouse

    with warehouse.connect(_resolve_db(db_path), read_only=True) as con:
        if not reward_module.has_tables(con):
            click.echo("no reward model yet: run a batch (`flywheel run`) first")
            return
        history = reward_module.status_frame(con, limit)
        quality = con.execute(
            """
            select pair_source, judgements, contexts, tie_share, first_shown_win_rate,
                first_shown_win_rate_lower, first_shown_win_rate_upper,
                annotator_agreement_rate, cycle_rate, quarantined_rows, held_rows
            from marts.rpt_preference_quality order by pair_source = 'all', pair_source
            """
        ).fetchall()
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
            f"{row.batch_id:<17} {row.status:<8} {_fmt(row.reward_model_version, 's'):<20} "
            f"{'yes' if row.is_promoted else 'no':<5} {row.n_pairs_train:>6} "
            f"{row.n_pairs_validation:>5} {row.n_pairs_new:>5} {_fmt(row.heldout_accuracy):>6} "
            f"{_fmt(row.heldout_log_loss, '.4f'):>8} {_fmt(row.heldout_calibration_error):>6}"
        )
        click.echo(f"    {row.reason}")
    if quality:
        click.echo("\npreference data quality (marts.rpt_preference_quality):")
        click.echo(
            f"  {'source':<16} {'judged':>7} {'contexts':>8} {'ties':>6} "
            f"{'first-shown wins [95% CI]':<26} {'agree':>6} {'cycles':>6} {'quar.':>5} "
            f"{'held':>5}"
        )
        for source, judged, contexts, ties, first, low, high, agree, cycles, quar, held in quality:
            interval = f"{_fmt(first)} [{_fmt(low)}, {_fmt(high)}]"
            click.echo(
                f"  {source:<16} {judged:>7} {contexts:>8} {_fmt(ties):>6} {interval:<26} "
                f"{_fmt(agree):>6} {_fmt(cycles):>6} {quar:>5} {held:>5}"
            )


@reward.command("leaderboard")
@click.option("--batch-id", default=None, help="Batch whose leaderboard to show (default latest).")
@_db_option
def reward_leaderboard(batch_id: str | None, db_path: Path | None) -> None:
    """Model versions ranked by an item-level Bradley-Terry fit on cross-version preference pairs
    (strength with a 95% bootstrap interval), beside the mean reward-model score of each."""
    from feedback_flywheel import reward as reward_module
    from feedback_flywheel import warehouse

    with warehouse.connect(_resolve_db(db_path), read_only=True) as con:
        if not reward_module.has_tables(con):
            click.echo("no leaderboard yet: run a batch (`flywheel run`) first")
            return
        board = reward_module.leaderboard_frame(con, batch_id)
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
        rank = _fmt(row.rank, ".0f")
        strength = (
            f"{_fmt(row.strength, '+.3f')} [{_fmt(row.strength_lower, '+.3f')}, "
            f"{_fmt(row.strength_upper, '+.3f')}]"
            if row.is_identified
            else "not compared with another"
        )
        record = f"{row.wins}-{row.losses}-{row.ties}"
        click.echo(
            f"{rank:>4} {row.item:<28} {strength:<28} {row.cross_version_comparisons:>6} "
            f"{record:<12} {_fmt(row.mean_reward, '+.3f'):>11} {row.scored_outputs:>7}"
        )
    if not board.is_identified.any():
        click.echo(
            "\nno preference pair compares outputs of two different versions, so the versions "
            "cannot be ranked by preference; the mean reward score is the reward model's view."
        )


if __name__ == "__main__":
    main()

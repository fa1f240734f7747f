"""``flywheel demo --closed-loop``: the demo world served one day at a time by whatever the
registry has deployed, so a user watches the flywheel turn (drift, decision, retraining,
deployment, recovery).

The loop, after the history before ``daily_from`` was ingested and built as one batch:

1. the day's ``inference_log`` file is served by the newest deployed version
   (:func:`feedback_flywheel.demo.serving.serve_day`: the drawn v1 until the flywheel deploys a
   model of its own, then that model's predictions from the rows' inputs);
2. that file and the day's feedback and preference files are ingested (a file is never
   ingested before it is served);
3. the day's batch runs (``flywheel run --daily``): its decision may retrain, and a retrained
   model that beats the serving one is deployed through the registry, so it serves tomorrow.

Which version served each day is written to ``truth.json`` (``served``) as the loop goes.
"""

from __future__ import annotations

import json
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from feedback_flywheel.cli.common import EXIT_FAILED
from feedback_flywheel.config import Settings

DAILY_TABLES = ("inference_log", "feedback_events", "preference_events")


def run_closed_loop(settings: Settings, out: Path, truth: dict[str, Any], daily_from: date) -> None:
    """Run the closed loop over the world in ``out`` (its ``truth``), daily from ``daily_from``."""
    from feedback_flywheel.cli.run import run_batches

    end = date.fromisoformat(truth["end_date"])
    days = [daily_from + timedelta(days=offset) for offset in range((end - daily_from).days)]
    click.echo(f"2/4 ingest the history before {daily_from} into {settings.db_path}", err=True)
    _ingest(settings, "model_deployments", sorted((out / "model_deployments").glob("*.parquet")))
    for table in DAILY_TABLES:
        _ingest(settings, table, [p for p in _day_files(out, table) if p.stem < str(daily_from)])
    click.echo(
        f"3/4 batches: history up to {daily_from}, then {len(days)} daily, each served by the "
        "version the registry deployed before it",
        err=True,
    )
    served = truth.setdefault("served", {})
    start = date.fromisoformat(truth["start_date"])
    for offset in range((daily_from - start).days):
        served[(start + timedelta(days=offset)).isoformat()] = "v1"  # as drawn
    try:
        run_batches(settings, _midnight(daily_from), False, None)
        for day in days:
            served[day.isoformat()] = _serve(settings, out, day)
            _write_truth(out, truth)
            for table in DAILY_TABLES[1:]:
                _ingest(settings, table, [out / table / f"{day}.parquet"], quiet=True)
            run_batches(settings, _midnight(day + timedelta(days=1)), True, None)
    except Exception as error:
        click.echo(f"batch failed: {error}", err=True)
        sys.exit(EXIT_FAILED)


def _serve(settings: Settings, out: Path, day: date) -> str:
    """Serve ``day`` with the newest deployed version, ingest it; returns that version."""
    from feedback_flywheel.demo import serving

    version, parameters = deployed_model(settings.db_path)
    drawn = out / "inference_log" / f"{day}.parquet"
    served = serving.served_path(out, day.isoformat())
    if not drawn.exists():
        return version
    rows = serving.serve_day(drawn, served, version, parameters)
    who = f"{version} (trained by the flywheel)" if parameters else "v1 (as drawn)"
    click.echo(f"  {day}: {rows:,} inferences served by {who}", err=True)
    _ingest(settings, "inference_log", [served], quiet=True)
    return version if parameters else "v1"


def deployed_model(db_path: Path) -> tuple[str, dict[str, Any] | None]:
    """The newest deployed version of the demo model and, when the flywheel trained it, its
    parameters (None for the drawn v1)."""
    from feedback_flywheel.demo.constants import MODEL_NAME
    from feedback_flywheel.retraining import training_store

    registry = training_store.read_registry(db_path, MODEL_NAME)
    if registry.empty:
        return "v1", None
    latest = registry.iloc[-1]
    text = latest["parameters_json"]
    return str(latest["model_version"]), json.loads(text) if isinstance(text, str) else None


def _ingest(settings: Settings, table: str, paths: list[Path], *, quiet: bool = False) -> None:
    from feedback_flywheel import ingest
    from feedback_flywheel.warehouse import connect, init_warehouse

    paths = [path for path in paths if path.exists()]
    with connect(settings.db_path) as con:
        init_warehouse(con)
        results = ingest.ingest_files(con, table, paths)
    refused = [result for result in results if result.status == "refused"]
    for result in refused:
        click.echo(result.message, err=True)
    if refused:
        sys.exit(EXIT_FAILED)
    if not quiet:
        loaded = [result for result in results if result.status == "loaded"]
        click.echo(
            f"  {table}: {sum(r.rows for r in loaded):,} rows from {len(loaded)} file(s), "
            f"{len(results) - len(loaded)} already loaded",
            err=True,
        )


def _day_files(out: Path, table: str) -> list[Path]:
    return sorted((out / table).glob("*.parquet"))


def _midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time())


def _write_truth(out: Path, truth: dict[str, Any]) -> None:
    (out / "truth.json").write_text(json.dumps(truth, indent=2) + "\n", encoding="utf-8")


def print_recovery(settings: Settings, truth: dict[str, Any]) -> None:
    """The loop's days as a table: who served, accuracy overall and in the changed segment."""
    from feedback_flywheel.demo import serving
    from feedback_flywheel.warehouse import connect

    change = truth["concept_drift"][0]
    segment = f"{change['segment_attribute']}={change['segment_value']}"
    since = date.fromisoformat(change["start_date"]) - timedelta(days=2)
    with connect(settings.db_path, read_only=True) as con:
        rows = serving.daily_accuracy(
            con, truth["model_name"], change["segment_attribute"], change["segment_value"], since
        )
    click.echo(
        f"\nthe loop, day by day (concept change in {segment} from {change['start_date']}; "
        "accuracy on the labels received so far):"
    )
    click.echo(f"  {'day':<10}  {'served by':<10}  {'accuracy':>8}  {segment:>14}")
    for row in rows:
        click.echo(
            f"  {row['day']:<10}  {row['versions']:<10}  {_pct(row['accuracy']):>8}  "
            f"{_pct(row['segment']):>14}"
        )
    click.echo(
        f"the decisions: `flywheel decisions --db {settings.db_path}`; the dashboard: "
        f"`flywheel dashboard --db {settings.db_path}`"
    )


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"

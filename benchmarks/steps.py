"""The benchmark's steps, each run as ``python -m benchmarks.steps STEP ...`` in a fresh process.

Every step writes what it did (``rows`` and a short ``detail``) as JSON to ``--out``; the runner
measures the process from outside (:mod:`benchmarks.measure`). The steps call the product's own
code, the same functions the ``flywheel`` CLI and the ``batch_cycle`` flow call, without Prefect:

``demo``    ``demo.generate`` (the files ``flywheel demo-data`` writes).
``ingest``  ``warehouse.init_warehouse`` then ``ingest.ingest_files`` for the four raw tables, from
            the demo folders, into a fresh DuckDB file (what ``flywheel ingest`` does per table).
``scan``    the scan floor: one query that reads every raw row once and parses each JSON field
            once (``inputs``, ``context``, ``probabilities`` of the inferences, ``payload`` of the
            feedback), touching every column: the least any build of the history must do. The
            full build is reported as a multiple of it.
``batch``   one batch's build as ``flows.batch_cycle`` runs it, minus Prefect and minus the
            flow's Python stages after the build (drift and performance tests, the retraining
            decision): ``plan_windows`` + ``open_batch``; ``dbt build --exclude-resource-type
            unit_test`` through ``warehouse.dbt.run_dbt`` in a subprocess, with the project's
            vars from ``Settings.dbt_vars()`` (without the batch window) as ``--vars`` and the
            window as ``BatchWindow.dbt_env()`` environment variables (what ``dbt_build`` in the
            flow does); then ``batch_counts`` + ``close_batch``, so ``ml.batch_runs`` holds the
            batch and the next batch, or ``flywheel run``, starts from its watermark.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections import Counter
from datetime import date, datetime
from pathlib import Path
from typing import Any

RAW_TABLES = ("model_deployments", "inference_log", "feedback_events", "preference_events")


def memory_limit_value(text: str) -> str:
    """A DuckDB memory_limit such as ``4GB`` or ``512MiB``; refuses anything else."""
    value = text.strip()
    if not re.fullmatch(r"\d+(\.\d+)?\s*[KMGT]i?B", value, flags=re.IGNORECASE):
        raise argparse.ArgumentTypeError(f"memory limit must look like 4GB or 512MiB, got {text!r}")
    return value


def _file_mib(path: Path) -> float:
    total = 0
    for candidate in (path, path.with_name(path.name + ".wal")):
        if candidate.exists():
            total += candidate.stat().st_size
    return total / 2**20


def _tree_mib(folder: Path) -> float:
    return sum(file.stat().st_size for file in folder.rglob("*") if file.is_file()) / 2**20


def step_demo(out: Path, days: int, inferences_per_day: int, seed: int) -> dict[str, Any]:
    from feedback_flywheel import demo

    truth = demo.generate(
        out,
        seed=seed,
        days=days,
        inferences_per_day=inferences_per_day,
        start_date=date(2026, 1, 1),
        progress=lambda message: print(f"  {message}", file=sys.stderr),
    )
    counts = truth["counts"]
    rows = sum(int(counts[table]) for table in RAW_TABLES)
    files = sum(1 for _ in out.rglob("*.parquet"))
    return {
        "rows": rows,
        "detail": (
            f"inferences {counts['inference_log']:,}, feedback {counts['feedback_events']:,}, "
            f"preferences {counts['preference_events']:,}; {files} files, "
            f"{_tree_mib(out):,.0f} MiB"
        ),
        "inferences": int(counts["inference_log"]),
        "end_date": truth["end_date"],
    }


def step_ingest(demo_dir: Path, db_path: Path, memory_limit: str | None) -> dict[str, Any]:
    from feedback_flywheel import ingest, warehouse

    per_table: dict[str, int] = {}
    files = 0
    with warehouse.connect(db_path) as con:
        if memory_limit:
            con.execute(f"set memory_limit = '{memory_limit_value(memory_limit)}'")
        warehouse.init_warehouse(con)
        for table in RAW_TABLES:
            results = ingest.ingest_files(con, table, [demo_dir / table])
            refused = [result for result in results if result.status == "refused"]
            if refused:
                raise SystemExit(f"ingest refused {len(refused)} file(s): {refused[0].message}")
            per_table[table] = sum(r.rows for r in results if r.status == "loaded")
            files += len(results)
    short = {
        "inference_log": "inferences",
        "feedback_events": "feedback",
        "preference_events": "preferences",
        "model_deployments": "deployments",
    }
    return {
        "rows": sum(per_table.values()),
        "detail": ", ".join(f"{short[t]} {n:,}" for t, n in per_table.items() if t != RAW_TABLES[0])
        + f"; {files} files; db {_file_mib(db_path):,.0f} MiB",
    }


#: what the scan floor touches: every column of the three event tables, each JSON text parsed once
SCAN_FLOOR_SQL = """
select
    (select
        count(*) + count(logged_at) + count(predicted_score) + count(step_index)
        + sum(length(inference_id) + length(model_name) + length(model_version))
        + sum(coalesce(length(subject_id), 0) + coalesce(length(session_id), 0))
        + sum(coalesce(length(predicted_label), 0) + coalesce(length(output_text), 0))
        + sum(coalesce(len(json_keys(try_cast(inputs as json))), 0))
        + sum(coalesce(len(json_keys(try_cast(context as json))), 0))
        + sum(coalesce(cardinality(try_cast(try_cast(probabilities as json)
            as map(varchar, double))), 0))
     from raw.inference_log),
    (select
        count(*) + count(occurred_at) + count(received_at)
        + sum(coalesce(length(event_id), 0) + coalesce(length(inference_id), 0))
        + sum(coalesce(length(event_type), 0) + coalesce(length(value), 0))
        + sum(coalesce(length(source), 0) + coalesce(length(schema_version), 0))
        + sum(coalesce(len(json_keys(try_cast(payload as json))), 0))
     from raw.feedback_events),
    (select
        count(*) + count(occurred_at) + count(received_at)
        + sum(coalesce(length(preference_id), 0) + coalesce(length(context_id), 0))
        + sum(coalesce(length(inference_id_a), 0) + coalesce(length(inference_id_b), 0))
        + sum(coalesce(length(preferred), 0) + coalesce(length(annotator_id), 0))
        + sum(coalesce(length(source), 0))
     from raw.preference_events)
"""


def step_scan(db_path: Path) -> dict[str, Any]:
    from feedback_flywheel import warehouse

    with warehouse.connect(db_path, read_only=True) as con:
        started = time.perf_counter()
        con.execute(SCAN_FLOOR_SQL).fetchall()
        seconds = time.perf_counter() - started
        (rows,) = con.execute(
            "select (select count(*) from raw.inference_log)"
            " + (select count(*) from raw.feedback_events)"
            " + (select count(*) from raw.preference_events)"
        ).fetchone()
    return {
        "rows": int(rows),
        "detail": f"one query over the 3 event tables, JSON parsed once: {seconds:.1f} s",
    }


def node_seconds(target: Path | None = None) -> float:
    """The sum of every node's execution time in the last dbt run (its SQL, without start-up)."""
    return float(sum(result.get("execution_time") or 0.0 for result in run_results(target)))


def step_batch(db_path: Path, end: datetime, profiles_dir: Path | None) -> dict[str, Any]:
    from feedback_flywheel import batches, warehouse
    from feedback_flywheel.config import Settings
    from feedback_flywheel.warehouse.dbt import BATCH_BUILD_ARGS, run_dbt

    with warehouse.connect(db_path) as con:
        warehouse.init_warehouse(con)
        planned = batches.plan_windows(con, end)  # from the last watermark, as the flow plans
        if len(planned) != 1:
            raise SystemExit(f"expected one batch window up to {end}, planned {planned}")
        batch = planned[0]
        attempt = batches.open_batch(con, batch)
    # Exactly what flows.batch_cycle.dbt_build runs: the window validated with the other settings,
    # the constant vars as --vars, the window as environment variables (so dbt can parse the
    # project partially from one batch to the next), unit tests excluded.
    settings = Settings.load(db_path=db_path)
    constant_vars = settings.dbt_vars()
    args = list(BATCH_BUILD_ARGS)
    if profiles_dir:
        args += ["--profiles-dir", str(profiles_dir)]
    target = os.environ.get("DBT_TARGET_PATH")
    started = time.perf_counter()
    try:
        result = run_dbt(
            args,
            project_dir=settings.project_dir,
            dbt_vars=constant_vars,
            db_path=db_path,
            on_line=_echo,
            target_path=Path(target) if target else None,
            extra_env=batch.dbt_env(),
        )
    except Exception as error:
        with warehouse.connect(db_path) as con:
            batches.close_batch(con, batch, attempt, status="failed", error_message=str(error))
        raise
    dbt_seconds = time.perf_counter() - started
    with warehouse.connect(db_path) as con:
        counts = batches.batch_counts(con, batch)
        batches.close_batch(
            con, batch, attempt, status="success", counts=counts, dbt_seconds=result.seconds
        )
        preferences_in = con.execute(
            "select count(*) from raw.preference_events where received_at >= ? and received_at < ?",
            [batch.window_start, batch.window_end],
        ).fetchone()
    nodes = node_summary()
    node_time = node_seconds()
    inferences = int(counts["inferences_in"])  # type: ignore[call-overload]
    feedback = int(counts["feedback_in"])  # type: ignore[call-overload]
    preferences = int(preferences_in[0]) if preferences_in else 0
    return {
        "rows": inferences + feedback + preferences,
        "detail": (
            f"window {batch.window_start:%m-%d}..{batch.window_end:%m-%d}: inferences "
            f"{inferences:,}, feedback {feedback:,}, preferences {preferences:,}; dbt "
            f"{dbt_seconds:.1f} s (nodes {node_time:.1f} s), {nodes}; db "
            f"{_file_mib(db_path):,.0f} MiB"
        ),
        "batch_id": batch.batch_id,
        "dbt_seconds": dbt_seconds,
        "node_seconds": node_time,
    }


def _echo(line: str) -> None:
    """dbt's output goes to the step's log (the runner keeps it in <workdir>/logs)."""
    print(line, file=sys.stderr, flush=True)


def node_summary(target: Path | None = None) -> str:
    """``"164/166 nodes ok, 2 no-op"`` from the last dbt run's run_results.json in ``target``."""
    statuses = Counter(node_statuses(target).values())
    ok = statuses.pop("success", 0) + statuses.pop("pass", 0)
    return f"{ok}/{ok + sum(statuses.values())} nodes ok" + "".join(
        f", {count} {status}" for status, count in sorted(statuses.items())
    )


def node_statuses(target: Path | None = None) -> dict[str, str]:
    """Node statuses from run_results.json in ``target`` (default: where the runner pointed dbt:
    ``$DBT_TARGET_PATH``, else the project's target/)."""
    return {result["unique_id"]: str(result["status"]) for result in run_results(target)}


def run_results(target: Path | None = None) -> list[dict[str, Any]]:
    """The results of the last dbt run in ``target`` (default: ``$DBT_TARGET_PATH``, else the
    project's target/); empty when it is missing or unreadable."""
    from feedback_flywheel.config import paths

    project = paths.project_dir(os.environ)
    target = target or Path(os.environ.get("DBT_TARGET_PATH") or project / "target")
    if not target.is_absolute():
        target = project / target
    try:
        return list(json.loads((target / "run_results.json").read_text())["results"])
    except (OSError, ValueError, KeyError):
        return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="One benchmark step (run by benchmarks.run).")
    parser.add_argument("--out", type=Path, required=True, help="JSON file for the step's result")
    sub = parser.add_subparsers(dest="step", required=True)
    demo = sub.add_parser("demo")
    demo.add_argument("--dir", type=Path, required=True)
    demo.add_argument("--days", type=int, required=True)
    demo.add_argument("--inferences-per-day", type=int, required=True)
    demo.add_argument("--seed", type=int, default=7)
    ingest = sub.add_parser("ingest")
    ingest.add_argument("--dir", type=Path, required=True)
    ingest.add_argument("--db", type=Path, required=True)
    ingest.add_argument("--memory-limit", type=memory_limit_value, help="DuckDB memory_limit")
    scan = sub.add_parser("scan")
    scan.add_argument("--db", type=Path, required=True)
    batch = sub.add_parser("batch")
    batch.add_argument("--db", type=Path, required=True)
    batch.add_argument("--end", type=datetime.fromisoformat, required=True)
    batch.add_argument("--profiles-dir", type=Path, help="dbt profiles (default: the project's)")
    args = parser.parse_args(argv)

    if args.step == "demo":
        result = step_demo(args.dir, args.days, args.inferences_per_day, args.seed)
    elif args.step == "ingest":
        result = step_ingest(args.dir, args.db.resolve(), args.memory_limit)
    elif args.step == "scan":
        result = step_scan(args.db.resolve())
    else:
        result = step_batch(args.db.resolve(), args.end, args.profiles_dir)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

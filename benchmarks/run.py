"""Benchmark the warehouse at scale: ``python -m benchmarks.run [--sizes 1000000,10000000]``.

For each size (number of inferences, with the feedback and preferences the demo world generates
for them) it runs, each step in its own fresh process measured by :mod:`benchmarks.measure`:

1. ``demo``        demo-data generation (informative only),
2. ``ingest``      the four raw tables from the demo files into a fresh DuckDB file,
3. ``scan floor``  one query reading every raw row once, each JSON field parsed once: the least
   any build of the history must do (the full build is reported as a multiple of it),
4. ``full build``  one batch over the whole history except the last day (``dbt build``),
5. ``daily batch`` one incremental batch for the last day on top of it,
6. ``flywheel run`` the same daily batch through the Prefect ``batch_cycle`` flow (``--dry-run``:
   no model is trained), on a copy of the database after step 3 (smallest size only), so the
   overhead of the CLI, Prefect and the flow's Python stages is visible; with no Prefect API
   configured, as a first try on a laptop runs it, Prefect starts a temporary server for it,
7. ``flywheel run`` once more on another such copy, against a Prefect server that is already
   running (``prefect server start``, started before and not measured), as a scheduled
   deployment runs: the same overhead without the temporary server's start.

``--history-days 30,90`` runs each size's day on top of each history (the same inferences per
day, so the 90-day case has three times the inferences of the 30-day one) and prints, under the
table, the daily batch of the longer history as a ratio of the shorter one's.

Progress goes to stderr, the table to stdout. See benchmarks/README.md for reading the numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import metadata
from pathlib import Path

from benchmarks.measure import read_result
from benchmarks.steps import memory_limit_value

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_WORKDIR = Path("/tmp/flywheel-bench")
STEPS = (
    "demo",
    "ingest",
    "scan floor",
    "full build",
    "daily batch",
    "flywheel run (Prefect)",
    "flywheel run (server up)",
)
FLOW_STEP, SERVED_FLOW_STEP = STEPS[5], STEPS[6]


@dataclass
class StepRun:
    """One measured run of one step."""

    wall_seconds: float
    peak_kib: int
    tree_peak_kib: int
    max_process_kib: int
    cpu_seconds: float
    others_cpu_share: float  # share of the machine's CPU capacity used by other processes
    rows: int | None
    detail: str
    node_seconds: float | None = None  # dbt's node execution times summed (the batch steps)


@dataclass
class Row:
    """All runs of one (size, days, step): the table shows their medians."""

    size: int
    days: int
    step: str
    runs: list[StepRun] = field(default_factory=list)

    def median(self, attribute: str) -> float:
        values = [getattr(run, attribute) for run in self.runs]
        return statistics.median(value for value in values if value is not None)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _mib(kib: float) -> str:
    return f"{kib / 1024:,.0f}"


def _case_label(size: int, days: int) -> str:
    return f"{_size_label(size)}-{days}d"


def _size_label(size: int) -> str:
    if size % 1_000_000 == 0:
        return f"{size // 1_000_000}M"
    if size % 1_000 == 0:
        return f"{size // 1_000}k"
    return f"{size:,}"


def machine_lines(workdir: Path) -> list[str]:
    """Cores, CPU, RAM, disk and the versions that matter, for the top of the table."""
    import duckdb

    cpu = "unknown CPU"
    mem_kib = 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    free_gib = shutil.disk_usage(workdir).free / 2**30

    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "?"

    return [
        f"machine: {os.cpu_count()} cores ({cpu}), {mem_kib / 2**20:.1f} GiB RAM, "
        f"{free_gib:.0f} GiB free in {workdir}",
        f"software: DuckDB {duckdb.__version__}, dbt-core {version('dbt-core')}, dbt-duckdb "
        f"{version('dbt-duckdb')}, Prefect {version('prefect')}, Python "
        f"{platform.python_version()}, {platform.system()} {platform.release()}",
    ]


class StepFailed(RuntimeError):
    """A step exited non-zero: shown as FAILED in the table; the size's later steps are skipped."""


def failure_summary(log_text: str) -> str:
    """The failing dbt nodes and the first error message in a step's log, on one line."""
    lines = log_text.splitlines()
    nodes = [
        line.split("Failure in ", 1)[1].split(" (", 1)[0].split()[-1]
        for line in lines
        if "Failure in " in line
    ]
    errors = [line.strip() for line in lines if "Error:" in line and "Runtime Error in" not in line]
    message = errors[0] if errors else (lines[-1].strip() if lines else "no output")
    unique_nodes = list(dict.fromkeys(nodes))
    summary = (f"{', '.join(unique_nodes)}: " if unique_nodes else "") + message[:300]
    if "(exit -9)" in log_text:
        summary += " (SIGKILL: on Linux usually the kernel's OOM killer, see `dmesg`)"
    return summary


class Bench:
    """Runs the steps for the sizes asked for and collects their measurements."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.workdir: Path = args.workdir.resolve()
        self.python = sys.executable
        self.flywheel = str(Path(sys.executable).parent / "flywheel")
        self.rows: dict[tuple[int, str], Row] = {}
        self.ingest_args: list[str] = []
        self.batch_args: list[str] = []
        if args.memory_limit:
            self.ingest_args = ["--memory-limit", args.memory_limit]
            self.batch_args = ["--profiles-dir", str(self.limited_profiles(args.memory_limit))]

    def env(self, size_dir: Path, db_path: Path) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_DIR), env.get("PYTHONPATH")]))
        env["FLYWHEEL_DUCKDB"] = str(db_path)
        # dbt's target/ and logs/ go to the workdir: the project's own stay untouched.
        env["DBT_TARGET_PATH"] = str(size_dir / "dbt-target")
        env["DBT_LOG_PATH"] = str(self.workdir / "logs" / f"dbt-{size_dir.name}")
        env["DBT_PROFILES_DIR"] = str(PROJECT_DIR)
        env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
        env["DBT_USE_COLORS"] = "false"  # plain logs
        env["PREFECT_HOME"] = str(self.workdir / "prefect-home")
        env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
        env.pop("PREFECT_API_URL", None)  # the flow step measures Prefect's temporary server
        return env

    def measured(
        self,
        size: int,
        days: int,
        step: str,
        repeat: int,
        command: list[str],
        env: dict[str, str],
        step_result: Path | None,
    ) -> dict[str, object]:
        """Run ``command`` under benchmarks.measure; record it; return the step's own result."""
        label = _case_label(size, days)
        log_dir = self.workdir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        slug = step.split()[0] if step.startswith("flywheel") else step.replace(" ", "-")
        log = log_dir / f"{label}-{slug}-r{repeat}.log"
        measurement_file = log_dir / f"{label}-{slug}-r{repeat}.measure.json"
        _say(f"[{label}] {step} (run {repeat}/{self.args.repeat}) ... log: {log}")
        measurement_file.unlink(missing_ok=True)
        if step_result is not None:
            step_result.unlink(missing_ok=True)  # never read an earlier step's result
        with log.open("w") as handle:
            completed = subprocess.run(
                [self.python, "-m", "benchmarks.measure", str(measurement_file), "--", *command],
                cwd=PROJECT_DIR,
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if not measurement_file.exists():  # the wrapper itself was killed
            _say(f"[{label}] {step}: no measurement (exit {completed.returncode}); see {log}")
            raise StepFailed(f"{label} {step}")
        measurement = read_result(measurement_file)
        result: dict[str, object] = {}
        if completed.returncode != 0:
            text = log.read_text(errors="replace")
            tail = "\n".join(text.splitlines()[-30:])
            _say(f"[{label}] {step} FAILED (exit {completed.returncode}); end of its log:\n{tail}")
            result = {"detail": f"FAILED (exit {completed.returncode}): {failure_summary(text)}"}
        elif step_result is not None:
            result = json.loads(step_result.read_text())
            shutil.copyfile(step_result, log_dir / f"{label}-{slug}-r{repeat}.result.json")
        rows = result.get("rows")
        detail = str(result.get("detail", ""))
        big = [p for p in measurement.tree_peak_processes if int(p.rsplit(":", 1)[1][:-3]) >= 20]
        if len(big) > 1:  # who held the memory at the sampled peak
            detail += "; at peak " + " + ".join(p.replace(":", " ") for p in big)
        run = StepRun(
            wall_seconds=measurement.wall_seconds,
            peak_kib=measurement.peak_kib,
            tree_peak_kib=measurement.tree_peak_kib,
            max_process_kib=measurement.max_process_kib,
            cpu_seconds=measurement.cpu_seconds,
            others_cpu_share=max(0.0, measurement.machine_busy_seconds - measurement.cpu_seconds)
            / max(measurement.wall_seconds * (os.cpu_count() or 1), 1e-9),
            rows=int(rows) if isinstance(rows, int) else None,
            detail=detail,
            node_seconds=float(result["node_seconds"]) if "node_seconds" in result else None,
        )
        self.rows.setdefault((size, days, step), Row(size, days, step)).runs.append(run)
        largest = measurement.tree_peak_processes[0] if measurement.tree_peak_processes else "-"
        _say(
            f"[{label}] {step}: {run.wall_seconds:.1f} s, peak {_mib(run.peak_kib)} MiB "
            f"(tree sum {_mib(run.tree_peak_kib)}, largest process "
            f"{_mib(run.max_process_kib)}; at the peak {largest})"
            + (f", {run.rows:,} rows" if run.rows is not None else "")
            + f", CPU {run.cpu_seconds:.1f} s, others {run.others_cpu_share:.0%} of the machine"
        )
        if completed.returncode != 0:
            raise StepFailed(f"{label} {step}")
        return result

    def run_size(self, size: int, days: int, repeat: int, with_flow: bool) -> None:
        label = _case_label(size, days)
        size_dir = self.workdir / label
        demo_dir = size_dir / "demo"
        db_path = size_dir / "flywheel.duckdb"
        flow_db = size_dir / "flow.duckdb"
        served_db = size_dir / "flow-served.duckdb"
        if repeat == 1 and size_dir.exists():
            shutil.rmtree(size_dir)
        size_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(size_dir / "dbt-target", ignore_errors=True)  # same dbt state every repeat
        for path in (db_path, flow_db, served_db):
            for stale in (path, path.with_name(path.name + ".wal")):
                stale.unlink(missing_ok=True)
        env = self.env(size_dir, db_path)
        per_day = math.ceil(size / days)
        out = size_dir / "step-result.json"
        step = [self.python, "-m", "benchmarks.steps", "--out", str(out)]

        days_text, per_day_text = str(days), str(per_day)
        demo_args = [
            *("--dir", str(demo_dir), "--days", days_text, "--inferences-per-day", per_day_text)
        ]
        demo = self.measured(size, days, "demo", repeat, [*step, "demo", *demo_args], env, out)
        end = datetime.fromisoformat(str(demo["end_date"]))
        history_end = end - timedelta(days=1)
        self.measured(
            size,
            days,
            "ingest",
            repeat,
            [*step, "ingest", "--dir", str(demo_dir), "--db", str(db_path), *self.ingest_args],
            env,
            out,
        )
        scan = [*step, "scan", "--db", str(db_path)]
        self.measured(size, days, "scan floor", repeat, scan, env, out)
        full_args = ["--db", str(db_path), "--end", history_end.isoformat(), *self.batch_args]
        self.measured(size, days, "full build", repeat, [*step, "batch", *full_args], env, out)
        if with_flow:
            from feedback_flywheel.config import file as config_file
            from feedback_flywheel.config.secrets import secret_path

            for copy in (flow_db, served_db):
                shutil.copyfile(db_path, copy)
                for beside in (secret_path, config_file.beside):  # its key and configuration
                    if beside(db_path).exists():
                        shutil.copyfile(beside(db_path), beside(copy))
                # Not measured: publish the full build's serving copy, as the flow would have
                # after it, so the measured run is a plain nightly batch and not a recovery of an
                # unpublished one.
                subprocess.run(
                    [self.flywheel, "publish", "--db", str(copy)],
                    cwd=PROJECT_DIR,
                    env={**env, "FLYWHEEL_DUCKDB": str(copy)},
                    stdout=subprocess.DEVNULL,
                    check=True,
                )
        self.measured(
            size,
            days,
            "daily batch",
            repeat,
            [*step, "batch", "--db", str(db_path), "--end", end.isoformat(), *self.batch_args],
            env,
            out,
        )
        if with_flow:
            self.prepare_prefect(env)
            flow_env = {**env, "FLYWHEEL_DUCKDB": str(flow_db)}
            self.measured(
                size,
                days,
                FLOW_STEP,
                repeat,
                self.flow_command(flow_db, end, env),
                flow_env,
                None,
            )
            flow_run = self.rows[(size, days, FLOW_STEP)].runs[-1]
            flow_run.rows, detail = self.flow_counts(flow_db, env["DBT_TARGET_PATH"])
            flow_run.detail = detail + flow_run.detail
            served_env = {**env, "FLYWHEEL_DUCKDB": str(served_db)}
            with self.prefect_server(served_env) as api_url:
                self.measured(
                    size,
                    days,
                    SERVED_FLOW_STEP,
                    repeat,
                    self.flow_command(served_db, end, env),
                    {**served_env, "PREFECT_API_URL": api_url},
                    None,
                )
            served_run = self.rows[(size, days, SERVED_FLOW_STEP)].runs[-1]
            served_run.rows, detail = self.flow_counts(served_db, env["DBT_TARGET_PATH"])
            served_run.detail = detail + served_run.detail

    @contextlib.contextmanager
    def prefect_server(self, env: dict[str, str]) -> Iterator[str]:
        """``prefect server start`` on a free local port, until healthy (not measured); yields
        its API URL and stops it afterwards."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        _say(f"starting a Prefect server on port {port} (not measured)")
        server = subprocess.Popen(
            [
                str(Path(self.python).parent / "prefect"),
                *("server", "start", "--host", "127.0.0.1", "--port", str(port)),
            ],
            cwd=PROJECT_DIR,
            env={**env, "PREFECT_UI_ENABLED": "false"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        api_url = f"http://127.0.0.1:{port}/api"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the Prefect server on port {port} did not come up")
                time.sleep(0.25)
            yield api_url
        finally:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()

    def flow_command(self, flow_db: Path, end: datetime, env: dict[str, str]) -> list[str]:
        """``flywheel run`` up to ``end``, with ``--dry-run`` when the CLI has it: a retraining
        decision is recorded but no model is trained, which is a job of its own, not the cycle's."""
        command = [self.flywheel, "run", "--db", str(flow_db), "--until", end.isoformat()]
        usage = subprocess.run(
            [self.flywheel, "run", "--help"],
            cwd=PROJECT_DIR,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        return [*command, "--dry-run"] if "--dry-run" in usage else command

    def limited_profiles(self, memory_limit: str) -> Path:
        """A copy of the project's profiles.yml with DuckDB's memory_limit set in every output."""
        import yaml

        profiles = yaml.safe_load((PROJECT_DIR / "profiles.yml").read_text())
        for profile in profiles.values():
            for output in profile.get("outputs", {}).values():
                output.setdefault("settings", {})["memory_limit"] = memory_limit
        folder = self.workdir / "profiles"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "profiles.yml").write_text(yaml.safe_dump(profiles, sort_keys=False))
        return folder

    def prepare_prefect(self, env: dict[str, str]) -> None:
        """Create Prefect's database once (not measured): a first-ever run would migrate it."""
        marker = self.workdir / "prefect-home" / ".bench-ready"
        if marker.exists():
            return
        _say("preparing Prefect's database (once, not measured)")
        subprocess.run(
            [str(Path(self.python).parent / "prefect"), "server", "database", "upgrade", "-y"],
            cwd=PROJECT_DIR,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            check=True,
        )
        marker.touch()

    @staticmethod
    def flow_counts(flow_db: Path, dbt_target: str) -> tuple[int, str]:
        """Rows and detail of the batch the flow ran, read back from ml.batch_runs."""
        import duckdb

        from benchmarks.steps import node_summary

        nodes = node_summary(Path(dbt_target))  # the flow's dbt wrote its run_results.json there

        con = duckdb.connect(str(flow_db), read_only=True)
        try:
            row = con.execute(
                """
                select batch_id, window_start, window_end, inferences_in, feedback_in, dbt_seconds,
                    (select count(*) from raw.preference_events p
                     where p.received_at >= b.window_start and p.received_at < b.window_end)
                from ml.batch_runs b where status = 'success' order by window_end desc limit 1
                """
            ).fetchone()
        finally:
            con.close()
        if row is None:
            return 0, "no successful batch recorded"
        _, start, end, inferences, feedback, dbt_seconds, preferences = row
        return (
            int(inferences) + int(feedback) + int(preferences),
            f"window {start:%m-%d}..{end:%m-%d}: the same batch through batch_cycle; dbt "
            f"{dbt_seconds:.1f} s, {nodes}; the rest is the CLI, Prefect and the flow's Python "
            "stages",
        )

    def clean(self, size: int, days: int) -> None:
        size_dir = self.workdir / _case_label(size, days)
        if not self.args.keep and size_dir.exists():
            shutil.rmtree(size_dir)


def render(rows: list[Row], header: list[str], repeat: int) -> str:
    """The table: medians over the runs when there are several."""
    lines = [*header, ""]
    lines.append(
        "| inferences / history | step | wall s | peak RSS MiB | rows | CPU s | others | detail |"
    )
    lines.append("|---|---|---:|---:|---:|---:|---:|---|")
    for row in rows:
        walls = [run.wall_seconds for run in row.runs]
        peaks = [run.peak_kib for run in row.runs]
        # The detail (dbt seconds, node counts, database size) of the run with the median wall
        # time, so it matches the wall column; the lower middle one when the count is even.
        typical = sorted(row.runs, key=lambda run: run.wall_seconds)[(len(row.runs) - 1) // 2]
        detail = typical.detail
        if len(row.runs) > 1:
            detail += (
                f" [n={len(row.runs)}: wall {min(walls):.1f}-{max(walls):.1f} s, "
                f"peak {_mib(min(peaks))}-{_mib(max(peaks))} MiB]"
            )
        rows_text = f"{typical.rows:,}" if typical.rows is not None else ""
        lines.append(
            f"| {_size_label(row.size)} / {row.days} d | {row.step} | "
            f"{statistics.median(walls):.1f} | "
            f"{_mib(statistics.median(peaks))} | {rows_text} | "
            f"{statistics.median(run.cpu_seconds for run in row.runs):.1f} | "
            f"{statistics.median(run.others_cpu_share for run in row.runs):.0%} | {detail} |"
        )
    if repeat > 1:
        lines.append("")
        lines.append(
            f"wall s, peak RSS, CPU s and others are medians over {repeat} runs; the detail is the"
            " run with the median wall time"
        )
    lines.append("")
    lines.append(
        "CPU s: CPU time of the step's process tree (user + system). others: CPU used by other"
        " processes during the step, as a share of the machine (above ~5% the wall time is"
        " inflated by them)."
    )
    return "\n".join(lines)


def comparisons(rows: list[Row], histories: list[int]) -> list[str]:
    """The ratios the table is read for, from medians of this run: the full build as a multiple
    of the scan floor, the daily batch as a share of the full build, and the daily batch of each
    longer history against the shortest one's (same inferences per day)."""
    by_key = {(row.size, row.days, row.step): row for row in rows}
    lines: list[str] = []
    cases = sorted({(row.size, row.days) for row in rows}, key=lambda case: (case[1], case[0]))
    for size, days in cases:
        floor = by_key.get((size, days, "scan floor"))
        full = by_key.get((size, days, "full build"))
        daily = by_key.get((size, days, "daily batch"))
        label = f"{_size_label(size)} / {days} d"
        if floor and full and floor.runs and full.runs:
            wall = full.median("wall_seconds") / floor.median("wall_seconds")
            cpu = full.median("cpu_seconds") / floor.median("cpu_seconds")
            lines.append(
                f"- {label}: full build = {wall:.1f}x the scan floor in wall time, "
                f"{cpu:.1f}x in CPU s"
            )
        if full and daily and full.runs and daily.runs:
            lines.append(
                f"- {label}: daily batch = "
                f"{daily.median('cpu_seconds') / full.median('cpu_seconds'):.0%} of the full "
                f"build's CPU s, {daily.median('wall_seconds') / full.median('wall_seconds'):.0%}"
                " of its wall time"
            )
        for step, how in ((FLOW_STEP, "temporary server"), (SERVED_FLOW_STEP, "server up")):
            flow = by_key.get((size, days, step))
            if flow and daily and flow.runs and daily.runs:
                lines.append(
                    f"- {label}: `flywheel run` daily batch ({how}) = "
                    f"{flow.median('wall_seconds') / daily.median('wall_seconds'):.2f}x the bare "
                    f"daily batch in wall time, "
                    f"{flow.median('cpu_seconds') / daily.median('cpu_seconds'):.2f}x in CPU s"
                )
    if len(histories) > 1:
        shortest = min(histories)
        bases = sorted({row.size for row in rows if row.days == shortest})
        for base in bases:
            per_day = math.ceil(base / shortest)
            short = by_key.get((base, shortest, "daily batch"))
            for days in sorted(histories):
                if days == shortest:
                    continue
                long = by_key.get((per_day * days, days, "daily batch"))
                if not (short and long and short.runs and long.runs):
                    continue
                ratio = {
                    name: long.median(attribute) / max(short.median(attribute), 1e-9)
                    for name, attribute in (
                        ("CPU s", "cpu_seconds"),
                        ("dbt node time", "node_seconds"),
                        ("wall", "wall_seconds"),
                        ("peak RSS", "peak_kib"),
                    )
                    if all(getattr(run, attribute) is not None for run in short.runs + long.runs)
                }
                lines.append(
                    f"- daily batch ({per_day:,} inferences/day) after {days} d of history vs "
                    f"after {shortest} d: "
                    + ", ".join(f"{name} {value:.2f}x" for name, value in ratio.items())
                )
    return ["", "Ratios (medians of this run):", *lines] if lines else []


def parse_history(text: str) -> list[int]:
    try:
        days = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--history-days expects integers like 30,90: {text!r}"
        ) from None
    if not days or min(days) < 8 or len(set(days)) != len(days):
        raise argparse.ArgumentTypeError("--history-days: distinct numbers of days, each >= 8")
    return days


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--sizes expects integers like 1000000,10000000: {text!r}"
        ) from None
    if not sizes or min(sizes) < 1000:
        raise argparse.ArgumentTypeError("--sizes: each size must be at least 1000 inferences")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="Ingest, full build and daily batch at N inferences; prints one table.",
    )
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=[1_000_000],
        help="comma-separated numbers of inferences (default 1000000)",
    )
    parser.add_argument(
        "--days",
        type=int,
        default=30,
        help="days of history the inferences are spread over (default 30)",
    )
    parser.add_argument(
        "--history-days",
        type=parse_history,
        default=None,
        help="comma-separated histories, e.g. 30,90: each size's day on top of each (the same "
        "inferences per day as the first history gives; --days is then ignored)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=DEFAULT_WORKDIR,
        help=f"scratch folder (default {DEFAULT_WORKDIR})",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per size; the table shows medians (default 1)"
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep each size's demo files and databases in the workdir",
    )
    parser.add_argument(
        "--memory-limit",
        type=memory_limit_value,
        help="DuckDB memory_limit for ingest and the dbt builds, e.g. 4GB (default: DuckDB's, 80%% "
        "of RAM); implies --no-flow, since `flywheel run` uses the project's profile",
    )
    parser.add_argument(
        "--no-flow",
        action="store_true",
        help="skip the `flywheel run` (Prefect) step at the smallest size",
    )
    args = parser.parse_args(argv)
    if args.days < 8:
        parser.error("--days must be at least 8")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    bench = Bench(args)
    bench.workdir.mkdir(parents=True, exist_ok=True)
    header = machine_lines(bench.workdir)
    histories = args.history_days or [args.days]
    header.append(
        f"workload: history {', '.join(f'{d} d' for d in histories)}, sizes "
        f"{', '.join(_size_label(s) for s in args.sizes)}"
        f" inferences, repeat {args.repeat}; DuckDB memory_limit "
        f"{args.memory_limit or 'default (80% of RAM)'}; every step in a fresh process"
    )
    for line in header:
        _say(line)
    started = time.perf_counter()
    smallest = min(args.sizes)
    failed: list[str] = []
    cases = [
        (size if days == histories[0] else math.ceil(size / histories[0]) * days, days)
        for size in args.sizes
        for days in histories
    ]
    for size, days in cases:
        for repeat in range(1, args.repeat + 1):
            with_flow = (
                size == smallest
                and days == histories[0]
                and not (args.no_flow or args.memory_limit)
            )
            try:
                bench.run_size(size, days, repeat, with_flow=with_flow)
            except StepFailed as failure:
                failed.append(str(failure))
                break  # the case's later steps and repeats need this one
        bench.clean(size, days)
    _say(f"done in {time.perf_counter() - started:.0f} s")
    order = {step: index for index, step in enumerate(STEPS)}
    rows = sorted(bench.rows.values(), key=lambda row: (row.days, row.size, order[row.step]))
    print(render(rows, header, args.repeat) + "\n".join(["", *comparisons(rows, histories)]))
    if failed:
        _say(f"failed: {'; '.join(failed)} (logs in {bench.workdir / 'logs'})")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

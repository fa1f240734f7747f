"""Running dbt for a batch, in a subprocess.

dbt runs in its own process, not through ``dbtRunner`` in ours: after an in-process invocation the
DuckDB file stays open in this process, which would lock out the next step (and any reader). The
subprocess gets an absolute ``FLYWHEEL_DUCKDB`` and the project's ``profiles.yml``, so it builds the
same database wherever the flow was started from.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: What a batch builds: every model, seed, snapshot and data test, except the dbt unit tests (they
#: check SQL logic, not data: `make test` runs them) and the data tests of the on-demand views
#: (tag ``on_demand``: views a batch does not write, computed over the whole history when read;
#: ``flywheel check`` and ``make test`` run their tests).
BATCH_BUILD_ARGS = (
    "build",
    "--exclude-resource-type",
    "unit_test",
    "--exclude",
    "tag:on_demand,resource_type:test",
)


class DbtError(RuntimeError):
    """dbt exited non-zero; the message lists the failing nodes and dbt's own words."""


@dataclass(frozen=True)
class DbtResult:
    """What one dbt invocation did."""

    command: list[str]
    seconds: float
    node_statuses: dict[str, str] = field(default_factory=dict)
    output_tail: str = ""


def dbt_executable() -> str:
    """The ``dbt`` installed next to this interpreter (the project's venv), else the one on PATH."""
    candidate = Path(sys.executable).parent / "dbt"
    return str(candidate) if candidate.exists() else "dbt"


def target_dir(project_dir: Path) -> Path:
    """Where dbt writes its artefacts for this project: ``$DBT_TARGET_PATH`` when set (relative
    to the project, as dbt reads it), else the project's ``target/``. Two runs from one project
    that must not share artefacts (e.g. parallel test workers) each export their own."""
    configured = os.environ.get("DBT_TARGET_PATH")
    if not configured:
        return project_dir / "target"
    path = Path(configured)
    return path if path.is_absolute() else project_dir / path


def dbt_env(project_dir: Path, db_path: Path, target: str) -> dict[str, str]:
    """Environment for a dbt subprocess: absolute database path and target (the profile reads
    both), the project's profiles, no telemetry. This is how the run's settings reach another
    process; inside this one they travel as arguments."""
    env = dict(os.environ)
    env["FLYWHEEL_DUCKDB"] = str(Path(db_path).resolve())
    env["FLYWHEEL_TARGET"] = target
    env["DBT_PROFILES_DIR"] = str(project_dir)
    env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    env.setdefault("DBT_LOG_PATH", str(project_dir / "logs"))
    return env


def run_dbt(
    args: Sequence[str],
    *,
    project_dir: Path,
    db_path: Path,
    target: str = "dev",
    dbt_vars: dict[str, Any] | None = None,
    on_line: Callable[[str], None] | None = None,
    target_path: Path | None = None,
    extra_env: dict[str, str] | None = None,
) -> DbtResult:
    """Run ``dbt <args>`` in the project, streaming its log lines to ``on_line``.

    ``target_path`` sends dbt's artefacts (compiled SQL, run_results.json) somewhere other than the
    project's ``target/``, e.g. for a compile that must not disturb a build's artefacts; without
    it, a ``DBT_TARGET_PATH`` in the environment is honoured, as dbt itself does.

    Raises DbtError naming every failed node (from ``target/run_results.json``) when dbt fails.
    """
    project = project_dir
    command = [dbt_executable(), *args]
    if dbt_vars:
        command += ["--vars", json.dumps(dbt_vars, sort_keys=True)]
    env = dbt_env(project_dir, db_path, target) | (extra_env or {})
    if target_path is not None:
        env["DBT_TARGET_PATH"] = str(target_path)
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    lines: list[str] = []
    assert process.stdout is not None
    for line in process.stdout:
        line = line.rstrip("\n")
        lines.append(line)
        if on_line:
            on_line(line)
    returncode = process.wait()
    seconds = time.perf_counter() - started
    results_dir = Path(env["DBT_TARGET_PATH"]) if target_path is not None else target_dir(project)
    if not results_dir.is_absolute():
        results_dir = project / results_dir
    statuses = node_statuses(results_dir / "run_results.json")
    tail = "\n".join(_plain(line) for line in lines[-40:])
    if returncode != 0:
        failed = [
            f"  {node}: {status}"
            for node, status in statuses.items()
            if status in {"error", "fail", "runtime error"}
        ]
        raise DbtError(
            f"dbt {' '.join(args)} failed (exit {returncode}).\n"
            + ("Failed nodes:\n" + "\n".join(failed) + "\n" if failed else "")
            + "dbt says:\n"
            + _failure_details(lines)
        )
    return DbtResult(command=command, seconds=seconds, node_statuses=statuses, output_tail=tail)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _plain(line: str) -> str:
    """A dbt log line without colour codes."""
    return _ANSI.sub("", line).rstrip()


def _failure_details(lines: list[str], limit: int = 30) -> str:
    """The part of dbt's output that explains a failure: from its error summary to "Done."."""
    plain = [_plain(line) for line in lines]
    start = next(
        (
            i
            for i, line in enumerate(plain)
            if "Completed with" in line or "Encountered an error" in line
        ),
        max(len(plain) - limit, 0),
    )
    details = [line for line in plain[start:] if line.strip()]
    return "\n".join(details[:limit])


def node_statuses(run_results: Path) -> dict[str, str]:
    """The status of every node in a run_results.json (empty when it is missing or unreadable)."""
    try:
        results = json.loads(run_results.read_text())["results"]
    except (OSError, ValueError, KeyError):
        return {}
    return {result["unique_id"]: str(result["status"]) for result in results}

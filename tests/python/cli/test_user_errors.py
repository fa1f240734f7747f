"""User errors are one clear line with exit code 2, at once (nothing is retried that cannot
change); the engine's memory and thread settings reach DuckDB, in the Python stage and in dbt."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from feedback_flywheel import ingest, warehouse
from feedback_flywheel.cli.common import EXIT_USAGE
from feedback_flywheel.config.engine import MEMORY_ENV, THREADS_ENV
from flows.retries import is_transient
from tests.python.helpers import DemoWarehouse, copy_warehouse, subprocess_env

FLYWHEEL = str(Path(sys.executable).parent / "flywheel")


def flywheel(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [FLYWHEEL, *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=subprocess_env(**(env or {})),
    )


@pytest.fixture(scope="module")
def copy(demo_warehouse: DemoWarehouse, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_warehouse(demo_warehouse.db_path, tmp_path_factory.mktemp("errors") / "w.duckdb")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["run", "--until", "next tuesday"], "--until"),
        (["run", "--batch-id", "b20990101T000000"], "b20990101T000000"),
        (["run", "--batch-id", "not-a-batch"], "not-a-batch"),
        (["drift", "--batch-id", "b20990101T000000"], "b20990101T000000"),
        (["--memory-limit", "lots", "run"], "--memory-limit"),
        (["--threads", "0", "summary"], "--threads"),
    ],
)
def test_a_user_error_is_one_line_exit_2_and_immediate(
    copy: Path, args: list[str], says: str
) -> None:
    started = time.monotonic()
    done = flywheel(*args, "--db", str(copy))
    seconds = time.monotonic() - started
    assert done.returncode == EXIT_USAGE, done.stdout + done.stderr
    assert says in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(errors) <= 3, errors
    assert seconds < 30, f"took {seconds:.0f} s: something retried"


def test_only_transient_errors_are_retried() -> None:
    class State:
        def __init__(self, error: BaseException) -> None:
            self.error = error

        def result(self) -> None:
            raise self.error

    assert is_transient(None, None, State(duckdb.IOException("Could not set lock on file")))
    assert is_transient(None, None, State(duckdb.TransactionException("conflict")))
    assert not is_transient(None, None, State(ValueError("unknown batch b1")))
    assert not is_transient(None, None, State(duckdb.CatalogException("no such table")))
    assert not is_transient(None, None, State(KeyError("x")))


def test_a_csv_line_of_several_megabytes_loads(tmp_path: Path) -> None:
    long_text = "x" * (3 * 1024 * 1024)
    header = "event_id,inference_id,event_type,value,payload,occurred_at,received_at,source,"
    header += "schema_version"
    line = f'e1,i1,rating,3,"{long_text}",2026-03-04T01:00:00,2026-03-04T01:00:05,web,1.1'
    path = tmp_path / "long.csv"
    path.write_text(header + "\n" + line + "\n")
    with warehouse.connect(tmp_path / "w.duckdb") as con:
        warehouse.init_warehouse(con)
        (result,) = ingest.ingest_files(con, "feedback_events", [path])
        assert result.status == "loaded", result.message
        (length,) = con.execute("select length(payload) from raw.feedback_events").fetchone()
    assert length == len(long_text)


def test_memory_and_threads_reach_the_python_stage_and_dbt(
    copy: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(MEMORY_ENV, "300MB")
    monkeypatch.setenv(THREADS_ENV, "1")
    with warehouse.connect(copy, read_only=True) as con:
        memory, threads = con.execute(
            "select current_setting('memory_limit'), current_setting('threads')"
        ).fetchone()
    assert threads == 1
    assert memory.replace(" ", "") in {"286.1MiB", "300.0MB"}, memory
    from tests.python.helpers import dbt

    lines: list[str] = []
    dbt(
        [
            "show",
            "--inline",
            "select current_setting('memory_limit') as memory_limit, "
            "current_setting('threads') as threads",
        ],
        db_path=copy,
        on_line=lines.append,
        target_path=tmp_path / "target",
    )
    shown = "\n".join(lines).replace(" ", "")
    assert "286.1MiB" in shown or "300.0MB" in shown, shown
    assert "|1|" in shown or "|1\n" in shown, shown

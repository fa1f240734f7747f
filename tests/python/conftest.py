"""Shared fixtures: a Prefect test harness for the session, and a demo warehouse built by the
real batch cycle (history batch, daily batches, then a drain batch past the lookback so no
feedback is left on hold)."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

import flows  # noqa: F401  (sets the project's Prefect defaults before prefect is imported)
from feedback_flywheel import batches, demo
from tests.python.helpers import (
    PROJECT_DIR,
    DemoWarehouse,
    ingest_demo,
    project_vars,
    run_windows,
)

#: the test files whose module fixtures run many batches, slowest first (measured in CI): they
#: start first, so under pytest-xdist no worker is left with one of them while the other idles
SLOWEST_FIRST = (
    "flows/test_crash_safety.py",
    "flows/test_own_data.py",
    "retraining/test_retraining_trigger.py",
    "dashboard/test_dashboard.py",
    "audit/test_audit.py",
    "retraining/test_closed_loop.py",
    "reliability/test_hostile_rows.py",
    "flows/test_batch_cycle.py",
    "replay/test_buffer.py",
    "calibration/test_fidelity_drop.py",
    "calibration/test_calibration_world.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the slowest files first (see SLOWEST_FIRST); every other file keeps its order."""
    here = os.path.dirname(__file__)

    def rank(item: pytest.Item) -> int:
        relative = os.path.relpath(str(item.path), here)
        return SLOWEST_FIRST.index(relative) if relative in SLOWEST_FIRST else len(SLOWEST_FIRST)

    items.sort(key=rank)  # stable: tests keep their order inside a file


@pytest.fixture(scope="session", autouse=True)
def isolated_environment() -> Iterator[None]:
    """Every test passes its own warehouse path; the serving copy follows it (next to it) only
    when no FLYWHEEL_SERVING_DUCKDB is exported, so one exported in the shell is set aside.
    Under pytest-xdist each worker gets its own dbt target and log folders."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("FLYWHEEL_SERVING_DUCKDB", raising=False)
        worker = os.environ.get("PYTEST_XDIST_WORKER")
        if worker:  # parallel workers: dbt's artefacts and logs apart (one project directory)
            patch.setenv("DBT_TARGET_PATH", str(PROJECT_DIR / "target" / f"pytest-{worker}"))
            patch.setenv("DBT_LOG_PATH", str(PROJECT_DIR / "logs" / f"pytest-{worker}"))
        yield


@pytest.fixture(scope="session", autouse=True)
def prefect_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One temporary Prefect API for the whole session (starting one costs seconds)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def demo_warehouse(tmp_path_factory: pytest.TempPathFactory) -> DemoWarehouse:
    """16 simulated days: one history batch for the first 12, four daily batches, then a drain
    batch reaching past the lookback (so every held row is decided)."""
    root = tmp_path_factory.mktemp("warehouse")
    demo_dir = root / "demo"
    truth = demo.generate(demo_dir, seed=11, days=16, inferences_per_day=400)
    db_path = root / "flywheel.duckdb"
    ingest_demo(db_path, demo_dir)
    start = datetime.fromisoformat(truth["start_date"])
    end = datetime.fromisoformat(truth["end_date"])
    lookback = timedelta(days=project_vars().lookback_days + 1)
    boundaries = [start, end - timedelta(days=4)]
    boundaries += [end - timedelta(days=days) for days in (3, 2, 1, 0)]
    boundaries.append(end + lookback)
    windows = [batches.window(a, b) for a, b in itertools.pairwise(boundaries)]
    run_windows(db_path, windows)
    (root / "truth.json").write_text(json.dumps(truth))
    return DemoWarehouse(db_path, demo_dir, truth, windows)

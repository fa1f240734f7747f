"""Shared fixtures: a Prefect test harness for the session, and a demo warehouse built by the
real batch cycle (history batch, daily batches, then a drain batch past the lookback so no
feedback is left on hold)."""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from feedback_flywheel import (
    batches,
    demo,
    ingest,
    warehouse,
)
from feedback_flywheel.settings import load_settings

RAW_TABLE_ORDER = ("model_deployments", "inference_log", "feedback_events", "preference_events")


@pytest.fixture(scope="session", autouse=True)
def isolated_environment() -> Iterator[None]:
    """Every test passes its own warehouse path; the serving copy follows it (next to it) only
    when no FLYWHEEL_SERVING_DUCKDB is exported, so one exported in the shell is set aside."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("FLYWHEEL_SERVING_DUCKDB", raising=False)
        yield


@pytest.fixture(scope="session", autouse=True)
def prefect_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One temporary Prefect API for the whole session (starting one costs seconds)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@dataclass(frozen=True)
class DemoWarehouse:
    """A warehouse built from a small demo world, and what was injected into it."""

    db_path: Path
    demo_dir: Path
    truth: dict[str, Any]
    windows: list[batches.BatchWindow]

    def connect(self):
        return warehouse.connect(self.db_path, read_only=True)

    def copy_to(self, path: Path) -> Path:
        """A copy of the database file (to mutate without disturbing other tests)."""
        shutil.copyfile(self.db_path, path)
        return path


def ingest_demo(db_path: Path, demo_dir: Path) -> None:
    with warehouse.connect(db_path) as con:
        warehouse.init_warehouse(con)
        for table in RAW_TABLE_ORDER:
            results = ingest.ingest_files(con, table, [demo_dir / table])
            refused = [result.message for result in results if not result.ok]
            assert not refused, refused


def run_windows(db_path: Path, windows: list[batches.BatchWindow]) -> None:
    from flows.batch_cycle import batch_cycle

    for window in windows:
        # dry run: decisions are recorded but no retraining is triggered, so tests that train
        # (test_retrain.py) start from a warehouse without training runs or new deployments
        batch_cycle(
            window_start=window.window_start,
            window_end=window.window_end,
            db_path=str(db_path),
            dry_run=True,
        )


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
    lookback = timedelta(days=load_settings().lookback_days + 1)
    boundaries = [start, end - timedelta(days=4)]
    boundaries += [end - timedelta(days=days) for days in (3, 2, 1, 0)]
    boundaries.append(end + lookback)
    windows = [batches.window(a, b) for a, b in itertools.pairwise(boundaries)]
    run_windows(db_path, windows)
    (root / "truth.json").write_text(json.dumps(truth))
    return DemoWarehouse(db_path, demo_dir, truth, windows)

"""Helpers the tests share (importable, unlike conftest): the project's vars and settings for a
test warehouse, and dbt on it."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from feedback_flywheel import batches, ingest, warehouse
from feedback_flywheel.config import Settings
from feedback_flywheel.config import file as config_file
from feedback_flywheel.config.paths import PACKAGE_PROJECT_DIR
from feedback_flywheel.config.vars import FlywheelVars, load_vars
from feedback_flywheel.warehouse.dbt import DbtResult, run_dbt

PROJECT_DIR = PACKAGE_PROJECT_DIR
RAW_TABLE_ORDER = ("model_deployments", "inference_log", "feedback_events", "preference_events")


def project_vars(overrides: dict[str, Any] | None = None) -> FlywheelVars:
    """The project's dbt vars (``dbt_project.yml``) with ``overrides``, validated."""
    return load_vars(PROJECT_DIR, overrides)


def settings_for(db_path: Path, **kwargs: Any) -> Settings:
    """The settings of a run on the test warehouse ``db_path`` (its serving copy beside it)."""
    return Settings.load(db_path=db_path, **kwargs)


def dbt(args: list[str], *, db_path: Path, **kwargs: Any) -> DbtResult:
    """``dbt <args>`` in the project on the test warehouse ``db_path``."""
    return run_dbt(args, project_dir=PROJECT_DIR, db_path=db_path, **kwargs)


def default_policy():
    """The shipped retraining policy (``policies/retraining.yml``)."""
    from feedback_flywheel.config.policies import default_policy_path, load_policy

    return load_policy(default_policy_path(PROJECT_DIR))


def default_reward_policy():
    """The shipped reward policy (``policies/reward.yml``)."""
    from feedback_flywheel.config.policies import default_reward_policy_path, load_reward_policy

    return load_reward_policy(default_reward_policy_path(PROJECT_DIR))


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
        """A copy of the database file (to mutate without disturbing other tests), with the
        files that belong to it: its key file (the audit chain and the pseudonyms are keyed by
        it) and its configuration file."""
        return copy_warehouse(self.db_path, path)


def copy_warehouse(source: Path, target: Path) -> Path:
    """Copy a warehouse file with its key file and configuration file beside it."""
    from feedback_flywheel.config.secrets import secret_path

    shutil.copyfile(source, target)
    for beside in (secret_path, config_file.beside):
        if beside(source).exists():
            shutil.copyfile(beside(source), beside(target))
    return target


def ingest_demo(db_path: Path, demo_dir: Path) -> None:
    """Load a demo world into ``db_path``, with the demo's configuration beside it (the shipped
    flywheel.yml, pinned, as `flywheel demo` does)."""
    shutil.copyfile(PROJECT_DIR / "flywheel.yml", config_file.beside(db_path))
    with warehouse.connect(db_path) as con:
        warehouse.init_warehouse(con)
        for table in RAW_TABLE_ORDER:
            results = ingest.ingest_files(con, table, [demo_dir / table])
            refused = [result.message for result in results if not result.ok]
            assert not refused, refused


def run_windows(
    db_path: Path, windows: list[batches.BatchWindow], overrides: dict[str, Any] | None = None
) -> None:
    """Run the batch cycle over each window in turn (``overrides``: vars, as ``--var``)."""
    from flows.batch_cycle import batch_cycle

    for window in windows:
        # dry run: decisions are recorded but no retraining is triggered, so tests that train
        # (test_retrain.py) start from a warehouse without training runs or new deployments
        batch_cycle(
            window_start=window.window_start,
            window_end=window.window_end,
            db_path=str(db_path),
            dry_run=True,
            overrides=overrides,
        )


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a `flywheel` subprocess of a test: this session's Prefect test API
    (so the subprocess starts no temporary server of its own, which would outlive a killed
    process and hold its output pipes open), plus ``extra``."""
    import os

    from prefect.settings import PREFECT_API_URL

    env = dict(os.environ)
    url = PREFECT_API_URL.value()
    if url:
        env["PREFECT_API_URL"] = url
    return env | extra

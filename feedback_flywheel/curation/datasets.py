"""Dataset versions: rebuild the training sample of any version and prove it is identical.

A dataset version is a batch: the Incremental Dataset as of that batch's watermark, and the
training sample drawn from it. Sampling is a pure function of the examples as of the version and
the sampling settings recorded in ``marts.fct_dataset_versions`` (seed, quota, budget, method), so
the sample of an old version can be recomputed from ``marts.fct_training_examples`` at any later
time. This module compiles ``analyses/training_sample_for_version.sql`` with those settings, runs
it, and compares the rows with what ``marts.fct_training_sample`` stored.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from feedback_flywheel.config import Settings
from feedback_flywheel.config.vars import load_vars
from feedback_flywheel.warehouse import connect
from feedback_flywheel.warehouse.catalogue import FCT_DATASET_VERSIONS, FCT_TRAINING_SAMPLE
from feedback_flywheel.warehouse.dbt import run_dbt

ANALYSIS = "training_sample_for_version"


class DatasetVersionError(LookupError):
    """The dataset version does not exist; the message lists the latest ones."""


@dataclass(frozen=True)
class VerifyResult:
    dataset_version: str
    stored_rows: int
    rebuilt_rows: int
    only_stored: int
    only_rebuilt: int

    @property
    def identical(self) -> bool:
        return self.only_stored == 0 and self.only_rebuilt == 0 and self.stored_rows > 0


def _version_settings(db_path: Path, dataset_version: str) -> dict[str, object]:
    with connect(db_path, read_only=True) as con:
        row = con.execute(
            f"""
            select batch_id, stratify_by, uncertainty_method, sampling_seed,
                stratified_quota_per_cell, uncertainty_budget, sampling_policy,
                weak_label_signals, weak_label_budget
            from {FCT_DATASET_VERSIONS} where dataset_version = ?
            """,
            [dataset_version],
        ).fetchone()
        if row is None:
            latest = [
                version
                for (version,) in con.execute(
                    f"select dataset_version from {FCT_DATASET_VERSIONS} "
                    "order by dataset_version desc limit 5"
                ).fetchall()
            ]
            raise DatasetVersionError(
                f"no dataset version {dataset_version!r}; latest: {', '.join(latest) or 'none'}"
            )
    batch_id, stratify_by, method, seed, quota, budget, policy, weak_signals, weak_budget = row
    return {
        "dataset_batch_id": batch_id,
        "stratify_by": stratify_by,
        "uncertainty_method": method,
        "sampling_seed": seed,
        "stratified_quota_per_cell": quota,
        "uncertainty_budget": budget,
        "sampling_policy": policy or "fixed",  # versions built before the setting existed
        "weak_label_signals": weak_signals.split(",") if weak_signals else [],
        "weak_label_budget": weak_budget,
    }


def rebuild_sql(settings: Settings, dataset_version: str) -> str:
    """The SQL that recomputes the sample of ``dataset_version`` with its recorded settings (the
    project's vars with the version's sampling settings on top)."""
    version_vars = _version_settings(settings.db_path, dataset_version)
    dataset_batch_id = version_vars.pop("dataset_batch_id")
    dbt_vars = load_vars(settings.project_dir, version_vars).dbt_vars()
    dbt_vars["dataset_batch_id"] = dataset_batch_id
    with tempfile.TemporaryDirectory(prefix="flywheel-compile-") as target:
        run_dbt(
            ["compile", "--select", ANALYSIS, "--quiet"],
            project_dir=settings.project_dir,
            db_path=settings.db_path,
            target=settings.target,
            dbt_vars=dbt_vars,
            target_path=Path(target),
        )
        compiled = next(Path(target).rglob(f"{ANALYSIS}.sql"))
        return compiled.read_text()


def verify(settings: Settings, dataset_version: str) -> VerifyResult:
    """Rebuild the sample of ``dataset_version`` and compare it row for row with the stored one."""
    sql = rebuild_sql(settings, dataset_version)
    with connect(settings.db_path, read_only=True) as con:
        con.execute(f"create temp table rebuilt as {sql}")
        con.execute(
            f"create temp table stored as select * from {FCT_TRAINING_SAMPLE} "
            "where dataset_version = ?",
            [dataset_version],
        )
        columns = ", ".join(
            name
            for (name,) in con.execute(
                "select column_name from information_schema.columns "
                "where table_name = 'rebuilt' order by ordinal_position"
            ).fetchall()
        )
        counts = con.execute(
            f"""
            select
                (select count(*) from stored),
                (select count(*) from rebuilt),
                (select count(*) from (
                    select {columns} from stored except all select {columns} from rebuilt)),
                (select count(*) from (
                    select {columns} from rebuilt except all select {columns} from stored))
            """
        ).fetchone()
    return VerifyResult(dataset_version, *counts)

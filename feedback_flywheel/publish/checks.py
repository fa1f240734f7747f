"""The warehouse's data tests, on demand: ``flywheel check`` runs every dbt data test over the
latest batch's rows (what each batch's build checks), ``flywheel check --full`` over whole tables
(the audit of the same invariants across the whole history).

A batch's build reads only the rows it wrote (each model's ``meta.batch_scope``, see
``macros/project/data_tests_scope.sql``), so its cost does not grow with the history; what a
batch-scoped test cannot see (a duplicate between this batch and an old one, a late file older
than ``lookback_days``) the full check does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from feedback_flywheel import batches
from feedback_flywheel.config import Settings
from feedback_flywheel.warehouse import connect
from feedback_flywheel.warehouse.dbt import DbtError, node_statuses, run_dbt, target_dir

#: where a check's dbt artefacts go, inside dbt's target folder (``target/check``; its
#: run_results.json names every test and its status), apart from a build's
CHECK_TARGET = Path("check")


def check_results_path(settings: Settings) -> Path:
    """The run_results.json of the latest ``flywheel check``."""
    return target_dir(settings.project_dir) / CHECK_TARGET / "run_results.json"


#: the statuses dbt gives a data test that found rows breaking it
FAILED = frozenset({"fail", "error", "runtime error"})


class CheckError(RuntimeError):
    """The check could not run (nothing built yet, the warehouse busy); the message says why."""


@dataclass(frozen=True)
class CheckResult:
    """What a check found: the status of every data test, and the batch it was scoped to."""

    scope: str
    batch: batches.BatchWindow
    statuses: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    failure: str = ""

    @property
    def failed(self) -> list[str]:
        return sorted(node for node, status in self.statuses.items() if status in FAILED)

    @property
    def counts(self) -> Counter:
        return Counter(self.statuses.values())

    @property
    def ok(self) -> bool:
        return not self.failed and not self.failure


def run_checks(
    settings: Settings,
    *,
    full: bool = False,
    on_line: Callable[[str], None] | None = None,
) -> CheckResult:
    """Run every data test (no unit tests, nothing built) against the warehouse, scoped to the
    latest successful batch or (``full``) to whole tables, holding the run lock so no batch
    builds meanwhile. Raises CheckError when there is nothing to check."""
    if not settings.db_path.exists():
        raise CheckError(f"no warehouse at {settings.db_path}: build one first (`flywheel run`)")
    with batches.run_lock(settings.db_path):
        with connect(settings.db_path, read_only=True) as con:
            latest = batches.latest_successful(con)
        if latest is None:
            raise CheckError(
                f"no successful batch in {settings.db_path} yet: run one first (`flywheel run`)"
            )
        scope = "full" if full else "batch"
        results = target_dir(settings.project_dir) / CHECK_TARGET
        dbt_vars = settings.dbt_vars() | {"data_tests_scope": scope}
        try:
            result = run_dbt(
                ["test", "--exclude-resource-type", "unit_test"],
                project_dir=settings.project_dir,
                db_path=settings.db_path,
                target=settings.target,
                dbt_vars=dbt_vars,
                on_line=on_line,
                target_path=results,
                extra_env=latest.dbt_env(),
            )
        except DbtError as error:
            statuses = node_statuses(results / "run_results.json")
            return CheckResult(scope, latest, statuses, failure=str(error))
    return CheckResult(scope, latest, dict(result.node_statuses), result.seconds)

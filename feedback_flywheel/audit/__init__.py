"""The audit trail: the hash-chained ``ml.audit_log`` (:mod:`.chain`), what it records about
each kind of thing (:mod:`.entries`), and lineage from a training example back to raw files and
forward to the runs that used it (:mod:`.lineage`)."""

from feedback_flywheel.audit.chain import (
    AUDIT_COLUMNS,
    AUDIT_TABLE,
    GENESIS_HASH,
    KNOWN_KINDS,
    BrokenLink,
    VerifyResult,
    atomic,
    canonical_json,
    compute_row_hash,
    ensure_table,
    record,
    table_exists,
    verify,
)
from feedback_flywheel.audit.entries import (
    batch_of_dataset_version,
    dataset_version_entries,
    deployment_entry,
    training_run_entry,
)

__all__ = [
    "AUDIT_COLUMNS",
    "AUDIT_TABLE",
    "GENESIS_HASH",
    "KNOWN_KINDS",
    "BrokenLink",
    "VerifyResult",
    "atomic",
    "batch_of_dataset_version",
    "canonical_json",
    "compute_row_hash",
    "dataset_version_entries",
    "deployment_entry",
    "ensure_table",
    "record",
    "table_exists",
    "training_run_entry",
    "verify",
]

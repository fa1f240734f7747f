"""The audit trail: the keyed hash chain ``ml.audit_log`` (:mod:`.chain`), its verification
against the recorded heads and the audited tables (:mod:`.verify`, :mod:`.crosscheck`), what it
records about each kind of thing (:mod:`.entries`), and lineage from a training example back to
raw files and forward to the runs that used it (:mod:`.lineage`)."""

from feedback_flywheel.audit.canonical import canonical_json
from feedback_flywheel.audit.chain import (
    AUDIT_COLUMNS,
    AUDIT_TABLE,
    GENESIS_HASH,
    KNOWN_KINDS,
    atomic,
    compute_row_hash,
    ensure_table,
    head,
    record,
    table_exists,
)
from feedback_flywheel.audit.entries import (
    batch_of_dataset_version,
    dataset_version_entries,
    deployment_entry,
    training_run_entry,
)
from feedback_flywheel.audit.verify import BrokenLink, VerifyResult, serving_heads, verify

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
    "head",
    "record",
    "serving_heads",
    "table_exists",
    "training_run_entry",
    "verify",
]

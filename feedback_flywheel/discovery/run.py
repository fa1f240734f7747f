"""Running discovery on a warehouse: build the profile of its keys, propose, write the file.

Called by ``flywheel config discover`` and by the batch cycle on the first batch of a warehouse
that has no configuration file yet (so the first batch already monitors the user's own features).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from feedback_flywheel.config import Settings
from feedback_flywheel.config import file as config_file
from feedback_flywheel.discovery.profile import KeyProfile, read_profiles
from feedback_flywheel.discovery.propose import Proposal, apply, propose
from feedback_flywheel.warehouse import connect
from feedback_flywheel.warehouse.catalogue import RPT_PAYLOAD_KEYS
from feedback_flywheel.warehouse.dbt import run_dbt


class DiscoveryError(RuntimeError):
    """Discovery cannot run (no inference logged yet); the message says what to do."""


@dataclass
class Discovery:
    """What discovery found, and what it did with it."""

    profiles: list[KeyProfile]
    proposal: Proposal
    path: Path
    written: bool
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The findings as text: each key, its role and why, then what was written."""
        lines = []
        for judgement in self.proposal.judgements:
            role = judgement.role or "left out"
            lines.append(
                f"  {judgement.payload:<8} {judgement.key_name:<28} {role:<12} {judgement.reason}"
            )
        features = self.proposal.vars["drift_features"]
        lines.append(
            f"monitored features: numeric {', '.join(features['numeric']) or '(none)'}; "
            f"categorical {', '.join(features['categorical']) or '(none)'}"
        )
        lines.append(
            "segment attributes: "
            + (", ".join(self.proposal.vars["segment_attributes"]) or "(none)")
            + f"; stratify_by: {self.proposal.vars['stratify_by'] or '(none: by label)'}"
        )
        lines += [f"note: {note}" for note in self.notes]
        lines.append(
            f"written to {self.path}" if self.written else f"not written ({self.path} unchanged)"
        )
        return lines


def profile_keys(settings: Settings) -> list[KeyProfile]:
    """Build the view of the keys (``dbt run`` of it and its staging) and read it."""
    run_dbt(
        ["run", "--select", f"+{RPT_PAYLOAD_KEYS.name}", "--quiet"],
        project_dir=settings.project_dir,
        db_path=settings.db_path,
        target=settings.target,
        dbt_vars=settings.dbt_vars(),
    )
    with connect(settings.db_path) as con:
        return read_profiles(con)


def discover(settings: Settings, *, write: bool = True) -> Discovery:
    """Profile the warehouse's recent inferences, propose its configuration and (with
    ``write``) write it into the warehouse's configuration file."""
    profiles = profile_keys(settings)
    if not profiles:
        raise DiscoveryError(
            f"{settings.db_path} has no inference with a JSON `inputs` or `context` yet: load "
            "your inference_log first (`flywheel ingest inference_log FILE...`)"
        )
    proposal = propose(profiles)
    path = settings.config.path if settings.config else config_file.beside(settings.db_path)
    if not write:
        return Discovery(profiles, proposal, path, written=False)
    updated, notes, written = apply(path, proposal)
    return Discovery(profiles, proposal, updated.path, written=written, notes=notes)


def needs_discovery(settings: Settings, has_history: bool) -> bool:
    """Whether the batch cycle should discover before its build: the warehouse has no
    configuration file yet (one you wrote, or pinned, is never second-guessed) and no batch has
    built inferences with the defaults yet (``has_history``). That is its first batch, or the
    first one with inferences to learn from when the earlier ones had none; a warehouse built
    without a file keeps the defaults it was built with."""
    config = settings.config
    return not has_history and (config is None or not config.exists)

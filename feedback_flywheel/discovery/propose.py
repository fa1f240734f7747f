"""From the keys a warehouse's inferences carry to its configuration, by documented rules.

**Monitored features** (keys of ``inputs``; var ``drift_features``), over the recent inferences
of every model (a key is judged over all the models that have it):

- present in fewer than :data:`MIN_PRESENT_SHARE` of a model's inferences, or always null: not
  monitored (reported, so you can add it by hand);
- every non-null value a JSON number: **numeric**;
- nested objects or arrays among its values: not monitored;
- otherwise (text, booleans, or a mix) **categorical**, when it has at most
  :data:`MAX_CATEGORIES` distinct values; more than that looks like an id or free text, and is not
  monitored.

**Segment attributes** (keys of ``context``; var ``segment_attributes``): every key with at most
:data:`MAX_SEGMENT_GROUPS` distinct values (text, booleans or numbers), except ``context_id``
(which names the prompt an output answered, for preference pairs). The stratum of the training
sample (var ``stratify_by``) is the attribute with the fewest groups (at least two; ties by
name); with no attribute it is unset and the sample stratifies by label alone. Intersections
for the bias report (var ``bias_intersections``) are left for you to choose.

Discovery writes what it found into the warehouse's configuration file (``pin: true`` there stops
it) and never overwrites a value you edited in that file.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from feedback_flywheel.config import file as config_file
from feedback_flywheel.discovery.profile import KeyProfile

MIN_PRESENT_SHARE = 0.05
MAX_CATEGORIES = 50
MAX_SEGMENT_GROUPS = 20
RESERVED_CONTEXT_KEYS = frozenset({"context_id"})
DISCOVERED_VARS = ("drift_features", "segment_attributes", "stratify_by", "bias_intersections")
HEADER = (
    "# feedback_flywheel configuration of one warehouse: `flywheel config discover` wrote it from\n"
    "# the logs; edit any value (discovery never overwrites an edit), or set `pin: true` to stop\n"
    "# discovery. `flywheel config show` lists every setting and where it came from.\n"
)


@dataclass(frozen=True)
class Judgement:
    """What discovery made of one key, and why."""

    payload: str
    key_name: str
    role: str | None  # numeric | categorical | segment | None (left out)
    reason: str


@dataclass
class Proposal:
    """The discovered vars and the judgement of every key."""

    vars: dict[str, Any]
    judgements: list[Judgement] = field(default_factory=list)

    def left_out(self) -> list[Judgement]:
        return [judgement for judgement in self.judgements if judgement.role is None]


def _merge(profiles: list[KeyProfile]) -> dict[tuple[str, str], list[KeyProfile]]:
    merged: dict[tuple[str, str], list[KeyProfile]] = defaultdict(list)
    for profile in profiles:
        merged[(profile.payload, profile.key_name)].append(profile)
    return merged


def _judge_input(key: str, profiles: list[KeyProfile]) -> Judgement:
    share = max(profile.present_share for profile in profiles)
    valued = sum(profile.valued_rows for profile in profiles)
    distinct = max(profile.distinct_values for profile in profiles)
    if share < MIN_PRESENT_SHARE or valued == 0:
        why = "always null" if valued == 0 else f"present in only {share:.1%} of inferences"
        return Judgement("inputs", key, None, why)
    if sum(profile.numeric_rows for profile in profiles) == valued:
        return Judgement("inputs", key, "numeric", "every value is a number")
    if any(profile.other_rows for profile in profiles):
        return Judgement("inputs", key, None, "nested objects or arrays among its values")
    if distinct > MAX_CATEGORIES:
        return Judgement(
            "inputs",
            key,
            None,
            f"{distinct} distinct values (more than {MAX_CATEGORIES}): an id or free text",
        )
    return Judgement("inputs", key, "categorical", f"{distinct} distinct values")


def _judge_context(key: str, profiles: list[KeyProfile]) -> Judgement:
    distinct = max(profile.distinct_values for profile in profiles)
    if key in RESERVED_CONTEXT_KEYS:
        return Judgement("context", key, None, "reserved: names the prompt of preference pairs")
    if sum(profile.valued_rows for profile in profiles) == 0:
        return Judgement("context", key, None, "always null")
    if any(profile.other_rows for profile in profiles):
        return Judgement("context", key, None, "nested objects or arrays among its values")
    if distinct > MAX_SEGMENT_GROUPS:
        return Judgement(
            "context",
            key,
            None,
            f"{distinct} distinct values (more than {MAX_SEGMENT_GROUPS}): too many groups",
        )
    return Judgement("context", key, "segment", f"{distinct} groups")


def propose(profiles: list[KeyProfile]) -> Proposal:
    """The configuration the profiles call for (the rules are in the module docstring)."""
    judgements = []
    groups: dict[str, int] = {}
    for (payload, key), found in sorted(_merge(profiles).items()):
        judge = _judge_input if payload == "inputs" else _judge_context
        judgement = judge(key, found)
        judgements.append(judgement)
        if judgement.role == "segment":
            groups[key] = max(profile.distinct_values for profile in found)
    numeric = [j.key_name for j in judgements if j.role == "numeric"]
    categorical = [j.key_name for j in judgements if j.role == "categorical"]
    segments = sorted(groups)
    candidates = sorted((count, name) for name, count in groups.items() if count >= 2)
    stratify_by = candidates[0][1] if candidates else None
    return Proposal(
        vars={
            "drift_features": {"numeric": numeric, "categorical": categorical},
            "segment_attributes": segments,
            "stratify_by": stratify_by,
            "bias_intersections": [],
        },
        judgements=judgements,
    )


def apply(path: Path, proposal: Proposal) -> tuple[config_file.ConfigFile, list[str], bool]:
    """Write the proposal into the configuration file at ``path``, keeping every value the user
    edited there (a value that differs from what discovery last wrote). A pinned file is left as
    it is. Returns the file as it now is, what was kept, as lines, and whether it was written."""
    current = config_file.read(path)
    if current.pin:
        return current, [f"{path} is pinned (pin: true): discovery changed nothing"], False
    values = dict(current.vars)
    notes = []
    for name in DISCOVERED_VARS:
        found = proposal.vars[name]
        edited = name in current.vars and current.vars[name] != current.discovered.get(name)
        if edited:
            notes.append(f"kept your {name}: {current.vars[name]!r} (discovered {found!r})")
            continue
        values[name] = found
    updated = config_file.ConfigFile(
        path=path,
        vars=values,
        discovered={name: proposal.vars[name] for name in DISCOVERED_VARS},
        discovered_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        pin=False,
    )
    config_file.write(updated, HEADER)
    return updated, notes, True

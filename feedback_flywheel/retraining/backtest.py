"""The backtest of a retraining policy: the decisions it would have made, day by day, over the
stored history, without retraining anything.

Drift: the drift timeline's current view (``ml.drift_timeline``, the newest batch's row of each
day), each test gated again by the policy replayed: significance at its ``alpha``, effect floors,
``min_samples``, and persistence (k of the last m evaluated days). Performance: every served day
checked again from the daily counts (``marts.fct_performance_daily``), as a daily batch would
have checked it that day: the batch windows (``performance_current_days`` against
``performance_reference_days``) for ``performance_drop`` (overall) and ``concept_drift`` (the
within-segment drops, Benjamini-Hochberg across the day's segments), the fast window
(``performance_fast_days``) for ``fast_performance_drop`` at its own alpha. Then the verdict of
:func:`.decision.verdict` (``retrain_when``) and the cooldown, simulated from the replayed
retrainings (assumed deployed: the backtest trains nothing). What it cannot replay is said, not
guessed: ``estimated_performance_drop`` and ``label_drift`` are not on the timeline (they count as
not fired), the concept decomposition is not replayed, and a day's labels are read as they stand
now, matured since, so a label signal's delay is counted in served days.

Given known changes (the demo's ``truth.json``, or a change log of your own), the report says for
each change how many days after its start its signal first flagged and the policy first
retrained, and counts the false alarms: warnings and retrainings on the stable stretch before
the first change, and drift flags on features no change names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import yaml

from feedback_flywheel.config.policies import Policy
from feedback_flywheel.retraining import decision, performance_timeline, signals
from feedback_flywheel.warehouse.catalogue import DRIFT_TIMELINE, FCT_PERFORMANCE_DAILY

_PERFORMANCE_KEYS = [
    "model_name",
    "model_version",
    "check_name",
    "segment_attribute",
    "segment_value",
]

#: the signals the timeline can replay
REPLAYED = (
    "covariate_drift",
    "prediction_drift",
    "performance_drop",
    "concept_drift",
    "fast_performance_drop",
)
#: the signals it cannot (not on the timeline): replayed as not fired
NOT_ON_TIMELINE = ("label_drift", "estimated_performance_drop")


class ChangeLogError(ValueError):
    """The change log cannot be read; the message names the file, the entry and what to fix."""


@dataclass(frozen=True)
class KnownChange:
    """A change the world is known to have had: an input's distribution (covariate) or the
    label relationship in a segment (concept; ``__all__`` for the whole population)."""

    kind: str
    start: date
    feature: str | None = None
    segment_attribute: str = "__all__"
    segment_value: str = "__all__"

    @property
    def label(self) -> str:
        if self.kind == "covariate":
            return f"covariate {self.feature}"
        if self.segment_attribute == "__all__":
            return "concept (overall)"
        return f"concept {self.segment_attribute}={self.segment_value}"


def load_changes(path: Path) -> list[KnownChange]:
    """The known changes of ``path``: a demo ``truth.json`` (its ``covariate_drift`` and
    ``concept_drift`` entries) or a change log (YAML or JSON): a list of entries with ``kind``
    (covariate or concept), ``start_date`` and ``feature`` (covariate) or ``segment_attribute``
    and ``segment_value`` (concept; omitted: the whole population)."""
    try:
        document = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as problem:
        raise ChangeLogError(f"cannot read the change log {path}: {problem}") from None
    if isinstance(document, dict) and {"covariate_drift", "concept_drift"} & set(document):
        # truth.json's own "kind" says numeric or categorical: the change kind is the section's
        entries = [{**item, "kind": "covariate"} for item in document.get("covariate_drift") or []]
        entries += [{**item, "kind": "concept"} for item in document.get("concept_drift") or []]
    elif isinstance(document, list):
        entries = document
    else:
        raise ChangeLogError(
            f"{path}: expected a truth.json (with covariate_drift / concept_drift) or a list of "
            "changes, each {kind, start_date, feature | segment_attribute, segment_value}"
        )
    return [_change(path, number, entry) for number, entry in enumerate(entries, start=1)]


def _change(path: Path, number: int, entry: Any) -> KnownChange:
    where = f"{path}: change {number}"
    if not isinstance(entry, dict):
        raise ChangeLogError(f"{where}: expected a mapping, got {entry!r}")
    kind = entry.get("kind")
    if kind not in ("covariate", "concept"):
        raise ChangeLogError(f"{where}: kind must be covariate or concept (got {kind!r})")
    try:
        start = date.fromisoformat(str(entry.get("start_date")))
    except ValueError:
        raise ChangeLogError(
            f"{where}: start_date must be an ISO date such as 2026-02-05 "
            f"(got {entry.get('start_date')!r})"
        ) from None
    if kind == "covariate":
        if not isinstance(entry.get("feature"), str) or not entry["feature"]:
            raise ChangeLogError(f"{where}: a covariate change needs its feature")
        return KnownChange("covariate", start, feature=entry["feature"])
    attribute = entry.get("segment_attribute", "__all__")
    value = entry.get("segment_value", "__all__")
    if not isinstance(attribute, str) or not isinstance(value, str):
        raise ChangeLogError(f"{where}: segment_attribute and segment_value must be text")
    return KnownChange("concept", start, segment_attribute=attribute, segment_value=value)


def _current_view(con: duckdb.DuckDBPyConnection, relation: str, keys: str) -> pd.DataFrame:
    """The newest batch's row of every day of a timeline."""
    frame = con.execute(
        f"""
        select * from {relation}
        qualify row_number() over (partition by {keys} order by batch_id desc) = 1
        """
    ).df()
    frame["evaluation_date"] = pd.to_datetime(frame.evaluation_date).dt.date
    return frame


def _drift_flags(drift: pd.DataFrame, policy: Policy) -> pd.DataFrame:
    """The drift timeline's tests gated again by the policy (significance at its alpha, effect
    floor, min_samples, persistence over the evaluated days)."""
    floors = policy.drift.effect_size_floors.model_dump()
    rows = drift.sort_values(["model_name", "feature_name", "test", "evaluation_date"]).copy()
    floor = rows.test.map(floors).astype(float)
    large = rows.effect_size.fillna(0) >= floor
    significant = large.where(rows.p_value.isna(), rows.p_adjusted.fillna(1.0) < policy.drift.alpha)
    enough = (rows.n_ref >= policy.drift.min_samples) & (rows.n_cur >= policy.drift.min_samples)
    rows["flag"] = (significant.astype(bool) & large & enough).astype(int)
    k, m = policy.drift.persistence.k, policy.drift.persistence.m
    held = rows.groupby(["model_name", "feature_name", "test"]).flag.transform(
        lambda flags: flags.rolling(m, min_periods=1).sum()
    )
    rows["is_drift"] = held >= k
    rows["measured"] = rows.test.isin(("ks", "chi2")) & enough
    return rows


@dataclass(frozen=True)
class Windows:
    """The performance windows of the project (vars): the batch check's current and reference
    days, and the fast window's days."""

    current_days: int
    reference_days: int
    fast_days: int


def _performance_days(
    con: duckdb.DuckDBPyConnection, policy: Policy, windows: Windows
) -> pd.DataFrame:
    """Every served day's performance checks, computed again from the daily counts
    (``marts.fct_performance_daily``) under the policy: the batch check's windows for
    ``performance_drop`` (overall) and ``concept_drift`` (per segment value), the fast window
    for ``fast_performance_drop`` (at its own alpha and floors)."""
    first, last = con.execute(
        f"select min(served_date), max(served_date) from {FCT_PERFORMANCE_DAILY}"
    ).fetchone()
    if first is None:
        return pd.DataFrame()
    days = [first + timedelta(days=offset) for offset in range((last - first).days + 1)]
    keys = [*_PERFORMANCE_KEYS, "evaluation_date"]
    weekly = performance_timeline.timeline_checks(
        con,
        "backtest",
        days,
        policy,
        fast_days=windows.current_days,
        reference_days=windows.reference_days,
    )
    fast = performance_timeline.timeline_checks(
        con,
        "backtest",
        days,
        policy,
        fast_days=windows.fast_days,
        reference_days=windows.reference_days,
    )
    overall = weekly.check_name == "accuracy_change"
    weekly["performance_drop"] = overall & weekly.is_flagged
    weekly["concept_drift"] = ~overall & weekly.is_flagged
    fast["fast_performance_drop"] = signals.fast_drops(fast, policy)
    rows = weekly[[*keys, "n_ref", "n_cur", "performance_drop", "concept_drift"]].merge(
        fast[[*keys, "fast_performance_drop"]], on=keys, how="outer", validate="1:1"
    )
    flags = ["performance_drop", "concept_drift", "fast_performance_drop"]
    rows[flags] = rows[flags].eq(True)  # a check missing on one side did not fire
    minimum = policy.signals.performance_drop.min_labelled
    rows["measured"] = (rows.n_ref.fillna(0) >= minimum) & (rows.n_cur.fillna(0) >= minimum)
    rows["evaluation_date"] = pd.to_datetime(rows.evaluation_date).dt.date
    return rows


@dataclass
class DayDecision:
    model_name: str
    day: date
    decision: str
    fired: list[str]
    drifted: list[str] = field(default_factory=list)  # covariate features
    dropped: list[str] = field(default_factory=list)


def _segment(row: Any) -> str:
    if row.segment_attribute == "__all__":
        return "__all__"
    return f"{row.segment_attribute}={row.segment_value}"


def _day_signals(drift: pd.DataFrame, performance: pd.DataFrame, policy: Policy) -> pd.DataFrame:
    """Per (model, day): the replayed signals that fired, the drifted features (by kind) and
    the segments that dropped, and whether any replayed signal had data."""
    records: dict[tuple[str, date], dict[str, Any]] = {}

    def day(model: str, when: date) -> dict[str, Any]:
        return records.setdefault(
            (model, when), {"fired": set(), "drifted": set(), "dropped": set(), "data": False}
        )

    configured = policy.signals
    for row in drift.itertuples(index=False):
        record = day(row.model_name, row.evaluation_date)
        record["data"] |= bool(row.measured)
        if row.is_drift:
            record["drifted"].add((row.kind, row.feature_name))
    for record in records.values():
        for kind, name in (("covariate", "covariate_drift"), ("prediction", "prediction_drift")):
            count = len({feature for k, feature in record["drifted"] if k == kind})
            if count >= getattr(configured, name).min_features:
                record["fired"].add(name)
    for row in performance.itertuples(index=False) if not performance.empty else ():
        record = day(row.model_name, row.evaluation_date)
        record["data"] |= bool(row.measured)
        for name in ("performance_drop", "concept_drift", "fast_performance_drop"):
            if getattr(row, name):
                record["fired"].add(name)
                record["dropped"].add(_segment(row))
    return pd.DataFrame(
        [
            {"model_name": model, "day": when, **record}
            for (model, when), record in sorted(records.items())
        ]
    )


def replay(con: duckdb.DuckDBPyConnection, policy: Policy, windows: Windows) -> list[DayDecision]:
    """The decision of every (model, day) of the stored history under ``policy``, in order."""
    drift = _drift_flags(
        _current_view(con, DRIFT_TIMELINE, "model_name, evaluation_date, feature_name, test"),
        policy,
    )
    performance = _performance_days(con, policy, windows)
    days = _day_signals(drift, performance, policy)
    names = (*REPLAYED, *NOT_ON_TIMELINE)
    enabled = {name: True for name in names if getattr(policy.signals, name).enabled}
    cooldown = timedelta(days=policy.cooldown_days)
    decisions: list[DayDecision] = []
    last: dict[str, date] = {}
    for row in days.itertuples(index=False) if not days.empty else ():
        fired = sorted(name for name in row.fired if name in enabled)
        wanted, warnings = decision.verdict(policy, enabled, fired)
        if not row.data:
            outcome = "insufficient_data"
        elif warnings:
            outcome = "warning"
        elif not wanted:
            outcome = "hold"
        elif row.model_name in last and row.day - last[row.model_name] < cooldown:
            outcome = "hold (cooldown)"
        else:
            outcome = "retrain"
            last[row.model_name] = row.day
        decisions.append(
            DayDecision(
                row.model_name,
                row.day,
                outcome,
                fired,
                sorted(feature for kind, feature in row.drifted if kind == "covariate"),
                sorted(row.dropped),
            )
        )
    return decisions


def _first(decisions: list[DayDecision], start: date, hit: Any) -> date | None:
    return next((d.day for d in decisions if d.day >= start and hit(d)), None)


def _detected(change: KnownChange, day: DayDecision) -> bool:
    if change.kind == "covariate":
        return change.feature in day.drifted
    segment = (
        "__all__"
        if change.segment_attribute == "__all__"
        else f"{change.segment_attribute}={change.segment_value}"
    )
    return segment in day.dropped


def report(decisions: list[DayDecision], changes: list[KnownChange]) -> dict[str, Any]:
    """Per model: the days replayed, the decisions counted, the retrainings with their signals,
    and against the known changes the detection delays and the false alarms."""
    out: dict[str, Any] = {}
    for model in sorted({d.model_name for d in decisions}):
        days = [d for d in decisions if d.model_name == model]
        counts = pd.Series([d.decision for d in days]).value_counts().to_dict()
        entry: dict[str, Any] = {
            "first_day": days[0].day.isoformat(),
            "last_day": days[-1].day.isoformat(),
            "days": len(days),
            "decisions": {key: int(value) for key, value in counts.items()},
            "retrainings": [
                {"day": d.day.isoformat(), "signals": d.fired}
                for d in days
                if d.decision == "retrain"
            ],
        }
        if changes:
            entry |= _against(days, changes)
        out[model] = entry
    return out


def _against(days: list[DayDecision], changes: list[KnownChange]) -> dict[str, Any]:
    stable_until = min(change.start for change in changes)
    stable = [d for d in days if d.day < stable_until]
    named = {change.feature for change in changes if change.kind == "covariate"}
    delays = []
    for change in changes:
        flagged = _first(days, change.start, lambda d, c=change: _detected(c, d))
        retrained = _first(days, change.start, lambda d: d.decision == "retrain")
        delays.append(
            {
                "change": change.label,
                "start_date": change.start.isoformat(),
                "first_flag": flagged.isoformat() if flagged else None,
                "flag_delay_days": (flagged - change.start).days if flagged else None,
                "first_retrain": retrained.isoformat() if retrained else None,
                "retrain_delay_days": (retrained - change.start).days if retrained else None,
            }
        )
    unnamed = sorted({f for d in days for f in d.drifted if f not in named} - {None})
    return {
        "stable_days": len(stable),
        "false_alarms": {
            "retrain": sum(d.decision == "retrain" for d in stable),
            "warning": sum(d.decision == "warning" for d in stable),
            "days_with_unnamed_drift": sum(any(f not in named for f in d.drifted) for d in days),
            "unnamed_features": unnamed,
        },
        "changes": delays,
    }


def as_json(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=2, sort_keys=True)

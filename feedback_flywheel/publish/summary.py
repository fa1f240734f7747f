"""The end-of-run summary (``make run``, ``flywheel summary``, ``flywheel run``): what the
warehouse holds, in a screenful of text. Reads the read model (:mod:`.queries`) only."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from feedback_flywheel.publish import queries
from feedback_flywheel.warehouse.catalogue import REPLAY_VERSIONS, REWARD_MODELS, RPT_SEGMENT_BIAS


def _fmt_rate(value: float | None, lower: float | None, upper: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f} [{lower:.3f}, {upper:.3f}]"


def kpi_lines(con: duckdb.DuckDBPyConnection, batch_id: str, days: int = 7) -> list[str]:
    """Daily KPIs per model version for the last ``days`` served days before the batch's watermark
    that have matured labels. Recent days show a low labelled share: their labels are still
    arriving (up to the label delay), so read their accuracy with its interval."""
    rows = queries.kpi_days(con, batch_id, days)
    if not rows:
        return ["  (no day with matured labels yet)"]
    lines = [
        f"  {'day':<10} {'model':<24} {'predictions':>11} {'labelled':>8}  "
        f"{'accuracy [95% Wilson]':<23} {'macro F1':>8} {'rating':>6}"
    ]
    for name, version, day, volume, share, acc, lo, hi, f1, rating in rows:
        model = f"{name} {version}"
        f1_text = "n/a" if f1 is None else f"{f1:.3f}"
        rating_text = "n/a" if rating is None else f"{rating:.2f}"
        lines.append(
            f"  {day!s:<10} {model:<24} {volume:>11,} {share:>8.0%}  "
            f"{_fmt_rate(acc, lo, hi):<23} {f1_text:>8} {rating_text:>6}"
        )
    return lines


def _raw_lines(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Raw rows and where they are: every raw feedback row accepted, quarantined, held or not
    in a batch yet."""
    totals = queries.raw_reconciliation(con)
    inferences = sum(totals.get("inference_log", {}).values())
    feedback = totals.get("feedback_events", {})
    lines = [
        f"  inferences in raw: {inferences:,}",
        f"  feedback in raw: {sum(feedback.values()):,}: accepted "
        f"{feedback.get('accepted', 0):,}, quarantined {feedback.get('quarantined', 0):,}, held "
        f"for retry {feedback.get('held', 0):,}",
    ]
    if feedback.get("unclassified"):
        lines.append(
            f"  not yet in a batch (received after the watermark): {feedback['unclassified']:,}"
        )
    reasons = queries.quarantine_reasons(con)
    if reasons:
        lines.append("  quarantined by reason:")
        lines += [f"    {reason:<28} {count:>9,}" for reason, count in reasons]
    return lines


def _bias_lines(con: duckdb.DuckDBPyConnection, most: int = 3) -> list[str]:
    """The worst flagged accuracy gaps over all time, all versions pooled."""
    if not queries.relation_exists(con, RPT_SEGMENT_BIAS):
        return []
    flagged = queries.flagged_accuracy_gaps(con, most)
    if not flagged:
        return ["  segment bias: no accuracy gap flagged (all time, all versions)"]
    lines = ["  segment bias: accuracy gaps flagged (all time, all versions; 95% interval):"]
    lines += [
        f"    {attribute}={value} vs {reference}: {diff:+.3f} [{lower:+.3f}, {upper:+.3f}]"
        for attribute, value, reference, diff, lower, upper in flagged
    ]
    return lines


def _reward_lines(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The reward model in use and what the latest batch did with it."""
    if not queries.relation_exists(con, REWARD_MODELS):
        return []
    latest = queries.latest_reward_model(con)
    if latest is None:
        return []
    batch_id, status, current, reason, accuracy, pairs = latest
    line = f"  reward model: current {current or 'none yet'}"
    if accuracy is not None:
        line += f" (held-out pairwise accuracy {accuracy:.3f} on {pairs:,} pairs)"
    return [line, f"    batch {batch_id}: {status}: {reason}"]


def _replay_lines(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The replay buffer's latest version: size, what it took and let go, its warnings."""
    if not queries.relation_exists(con, REPLAY_VERSIONS):
        return []
    rows = con.execute(
        f"select buffer_version, size, capacity, inserted, evictions_json, warnings "
        f"from {REPLAY_VERSIONS} order by batch_id desc limit 1"
    ).fetchall()
    if not rows:
        return []
    version, size, capacity, inserted, evictions_json, warnings = rows[0]
    evicted = {reason: count for reason, count in json.loads(evictions_json).items() if count}
    lines = [
        f"  replay buffer {version}: {size:,} transitions (capacity {capacity:,}), {inserted:,} "
        "inserted"
        + (
            ", evicted " + ", ".join(f"{reason} {count:,}" for reason, count in evicted.items())
            if evicted
            else ""
        )
        + " (`flywheel replay status`)"
    ]
    lines += [f"    warning: {warning}" for warning in (warnings or "").split("; ") if warning]
    return lines


def run_summary(con: duckdb.DuckDBPyConnection, db_path: Path, serving_path: Path) -> str:
    """The short summary printed at the end of ``make run`` / ``flywheel summary``."""
    batch_count, first_start, last_end, last_batch = queries.batch_span(con)
    if not batch_count:
        return f"No successful batch yet in {db_path}. Run `flywheel run`."
    lines = [
        "feedback_flywheel summary",
        f"  database: {db_path}",
        f"  batches: {batch_count} successful, covering {first_start} .. {last_end} "
        f"(latest {last_batch})",
        *_raw_lines(con),
    ]
    examples = queries.dataset_version_of_batch(con, last_batch)
    if examples:
        version, total, added, sample, stratified, uncertain, by_policy, weak = examples[0]
        lines.append(
            f"  dataset {version}: {total:,} training examples ({added:,} new), training sample "
            f"{sample:,} ({stratified:,} stratified, {uncertain:,} uncertainty"
            + (f", {by_policy:,} by the evaluated policy" if by_policy else "")
            + (f", {weak:,} weak labels weighted by their signal's fidelity)" if weak else ")")
        )
    for model, evaluated, policy, budget, _ in queries.sampling_policies_in_force(con):
        lines.append(
            f"  sampling policy for {model}: {policy}, {budget:,} labels (chosen from the "
            f"evaluation of {evaluated}; the dashboard's Feedback loop page says why)"
        )
    lines.append("  KPIs per day (last 7 days with matured labels; recent days are still filling):")
    lines += kpi_lines(con, last_batch)
    lines += _bias_lines(con) + _reward_lines(con) + _replay_lines(con)
    lines.append(f"  dashboard: `flywheel dashboard` (reads the serving copy {serving_path})")
    return "\n".join(lines)

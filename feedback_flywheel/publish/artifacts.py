"""The batch's Prefect artifact (key ``batch-summary``) as markdown: window and counts, the
quarantine reasons, the KPIs, the retraining decision with its drift table and KPI check, and the
verified head of the audit chain. Reads the read model (:mod:`.queries`) only."""

from __future__ import annotations

import duckdb

from feedback_flywheel import audit
from feedback_flywheel.publish import queries
from feedback_flywheel.publish.summary import kpi_lines


def _fmt(number: float | None, spec: str = ".3f") -> str:
    return "–" if number is None or number != number else format(number, spec)


def batch_markdown(con: duckdb.DuckDBPyConnection, batch_id: str, *, audit_key: bytes) -> str:
    """The Prefect artifact for one batch: window, counts, quarantine reasons, KPIs."""
    start, end, status, fin, acc, quar, held, inf, added, version, seconds = queries.batch_run(
        con, batch_id
    )
    reasons = queries.quarantine_reasons(con, batch_id)
    lines = [
        f"# Batch {batch_id}",
        f"Window over `received_at`: **{start} .. {end}** · status **{status}** · "
        f"dbt build {seconds or 0:.1f} s",
        "",
        "| measure | rows |",
        "|---|---:|",
        f"| inferences logged in window | {inf:,} |",
        f"| feedback received in window | {fin:,} |",
        f"| feedback accepted (this batch) | {acc:,} |",
        f"| feedback quarantined (this batch) | {quar:,} |",
        f"| feedback held for retry (now) | {held:,} |",
        f"| training examples added ({version}) | {added:,} |",
        "",
    ]
    if reasons:
        lines += ["| quarantine reason | rows |", "|---|---:|"]
        lines += [f"| `{reason}` | {count:,} |" for reason, count in reasons]
        lines.append("")
    warnings = queries.recorded_warnings(con, batch_id)
    if warnings:
        lines += ["## Warnings", *[f"- {warning}" for warning in warnings], ""]
    lines.append("## KPIs per day (last 7 days with matured labels)")
    lines += ["```", *kpi_lines(con, batch_id), "```", ""]
    lines += monitoring_markdown(con, batch_id)
    lines += _sampling_policy_lines(con)
    lines += audit_lines(con, batch_id, audit_key)
    return "\n".join(lines)


def _sampling_policy_lines(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The query policy each model's latest evaluation chose, and why."""
    chosen = queries.sampling_policies_in_force(con)
    if not chosen:
        return []
    lines = ["## Sampling policy (this batch's training sample under sampling_policy: auto)"]
    lines += [
        f"- **{model}**: `{policy}`, {budget:,} labels, chosen from the evaluation of batch "
        f"{evaluated}. {why}"
        for model, evaluated, policy, budget, why in chosen
    ]
    return [*lines, ""]


def audit_lines(con: duckdb.DuckDBPyConnection, batch_id: str, key: bytes) -> list[str]:
    """The audit chain checked now (chain, recorded heads, audited tables), and the head this
    batch recorded: note it to catch a later cut or rewrite with ``flywheel audit verify --head
    HASH --count N``."""
    result = audit.verify(con, key=key)
    if result.count == 0:
        return []
    if result.broken is None:
        state = f"verified: {result.count:,} rows, {result.tables_checked} audited tables agree"
    else:
        state = f"**BROKEN at seq {result.broken.seq}** ({result.broken.problem})"
    recorded = queries.batch_audit_head(con, batch_id)
    head = (
        f"head of batch {batch_id}: seq {recorded[0]}, `{recorded[1]}`"
        if recorded
        else f"head `{result.head_hash}` (seq {result.count})"
    )
    return ["## Audit log", f"`ml.audit_log` {state}; {head}", ""]


def _decision_lines(con: duckdb.DuckDBPyConnection, batch_id: str) -> list[str]:
    lines = ["## Retraining decision"]
    decisions = queries.decisions(con, batch_id=batch_id, limit=1000)
    if not decisions:
        lines.append("No decision recorded for this batch.")
    for _, model, outcome, status, run_id, reason, policy_version in decisions:
        triggered = f" → `{run_id}`" if run_id else ""
        lines.append(
            f"- **{model}: {outcome}** ({status}{triggered}; policy `{policy_version}`): {reason}"
        )
    return lines


def _drift_lines(con: duckdb.DuckDBPyConnection, batch_id: str) -> list[str]:
    lines = ["", "## Drift (BH-adjusted p-values; drift = significant and above the floor)"]
    drift = queries.drift_rows(con, batch_id)
    if not drift:
        return [*lines, "No drift tests for this batch."]
    lines += [
        "| model | feature | kind | test | statistic | p adj. | effect / floor | n ref | "
        "n cur | drift |",
        "|---|---|---|---|---:|---:|---|---:|---:|---|",
    ]
    for model, feature, kind, test, stat, p_adj, metric, effect, floor, n_ref, n_cur, flag in drift:
        lines.append(
            f"| {model} | {feature} | {kind} | {test} | {_fmt(stat, '.4g')} | "
            f"{_fmt(p_adj, '.2g')} | {metric} {_fmt(effect, '.3g')} / {floor:g} | {n_ref:,} | "
            f"{n_cur:,} | {'**yes**' if flag else 'no'} |"
        )
    return lines


def _check_lines(con: duckdb.DuckDBPyConnection, batch_id: str) -> list[str]:
    lines = ["", "## KPI check (labelled accuracy, current vs reference window)"]
    checks = queries.performance_checks(con, batch_id)
    if not checks:
        return [*lines, "No labelled performance to compare yet."]
    lines += [
        "| model | version | check | segment | n ref | n cur | acc. ref | acc. cur | change "
        "| concept part | p adj. |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in checks:
        model, version, check, attribute, value, n_ref, n_cur, a_ref, a_cur, change = row[:10]
        concept, p_adj = row[10], row[11]
        lines.append(
            f"| {model} | {version} | {check} | {attribute}={value} | {n_ref:,} | {n_cur:,} "
            f"| {_fmt(a_ref)} | {_fmt(a_cur)} | {_fmt(change, '+.3f')} | "
            f"{_fmt(concept, '+.3f')} | {_fmt(p_adj, '.2g')} |"
        )
    return lines


def monitoring_markdown(con: duckdb.DuckDBPyConnection, batch_id: str) -> list[str]:
    """The batch's decision, its drift table and its performance check, as markdown."""
    return (
        _decision_lines(con, batch_id) + _drift_lines(con, batch_id) + _check_lines(con, batch_id)
    )

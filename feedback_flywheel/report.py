"""Human summaries of what the warehouse holds: the end-of-run text and the batch artifact.

Everything here reads small aggregates from the marts; nothing pulls row-level data into Python.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from feedback_flywheel import paths


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[tuple]:
    return con.execute(sql, params or []).fetchall()


def _fmt_rate(value: float | None, lower: float | None, upper: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f} [{lower:.3f}, {upper:.3f}]"


def kpi_lines(con: duckdb.DuckDBPyConnection, batch_id: str, days: int = 7) -> list[str]:
    """Daily KPIs per model version for the last ``days`` served days before the batch's watermark
    that have matured labels. Recent days show a low labelled share: their labels are still
    arriving (up to the label delay), so read their accuracy with its interval."""
    rows = _rows(
        con,
        """
        with watermark as (
            select cast(window_end as date) as end_date from ml.batch_runs
            where batch_id = ? and status = 'success' order by attempt desc limit 1
        ),
        labelled_days as (
            select distinct kpi_date from marts.rpt_kpi_daily
            where labelled_count > 0 and kpi_date < (select end_date from watermark)
            order by kpi_date desc limit ?
        )
        select model_name, model_version, kpi_date, inference_count, labelled_share,
            accuracy, accuracy_lower, accuracy_upper, f1_macro, rating_mean
        from marts.rpt_kpi_daily
        where kpi_date in (select kpi_date from labelled_days)
        order by kpi_date desc, model_name, model_version
        """,
        [batch_id, days],
    )
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


def run_summary(con: duckdb.DuckDBPyConnection, db_path: Path) -> str:
    """The short summary printed at the end of ``make run`` / ``flywheel summary``."""
    batch_rows = _rows(
        con,
        """
        select count(distinct batch_id), min(window_start), max(window_end), max(batch_id)
        from ml.batch_runs where status = 'success'
        """,
    )
    batch_count, first_start, last_end, last_batch = batch_rows[0]
    if not batch_count:
        return f"No successful batch yet in {db_path}. Run `flywheel run`."
    raw_count = _rows(con, "select count(*) from raw.feedback_events")[0][0]
    statuses = dict(
        _rows(
            con,
            "select status, count(*) from intermediate.int_feedback_events_classified group by 1",
        )
    )
    reasons = _rows(
        con,
        "select reason_code, count(*) from marts.fct_feedback_quarantine "
        "group by 1 order by 2 desc",
    )
    inference_count = _rows(con, "select count(*) from raw.inference_log")[0][0]
    examples = _rows(
        con,
        """
        select dataset_version, example_count, examples_added, sample_count, stratified_count,
            uncertainty_count
        from marts.fct_dataset_versions where batch_id = ?
        """,
        [last_batch],
    )
    lines = [
        "feedback_flywheel summary",
        f"  database: {db_path}",
        f"  batches: {batch_count} successful, covering {first_start} .. {last_end} "
        f"(latest {last_batch})",
        f"  inferences in raw: {inference_count:,}",
        f"  feedback in raw: {raw_count:,}: accepted {statuses.get('accepted', 0):,}, "
        f"quarantined {statuses.get('quarantined', 0):,}, held for retry "
        f"{statuses.get('held', 0):,}",
    ]
    unprocessed = raw_count - sum(statuses.values())
    if unprocessed:
        lines.append(f"  not yet in a batch (received after the watermark): {unprocessed:,}")
    if reasons:
        lines.append("  quarantined by reason:")
        lines += [f"    {reason:<28} {count:>9,}" for reason, count in reasons]
    if examples:
        version, total, added, sample, stratified, uncertain = examples[0]
        lines.append(
            f"  dataset {version}: {total:,} training examples ({added:,} new), training sample "
            f"{sample:,} ({stratified:,} stratified, {uncertain:,} uncertainty)"
        )
    lines.append("  KPIs per day (last 7 days with matured labels; recent days are still filling):")
    lines += kpi_lines(con, last_batch)
    lines += _bias_lines(con) + _reward_lines(con)
    serving = paths.published_path(db_path)
    lines.append(f"  dashboard: `flywheel dashboard` (reads the serving copy {serving})")
    return "\n".join(lines)


def _table_exists(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    return bool(
        _rows(
            con,
            "select count(*) from information_schema.tables "
            "where table_schema = ? and table_name = ?",
            [schema, name],
        )[0][0]
    )


def _bias_lines(con: duckdb.DuckDBPyConnection, most: int = 3) -> list[str]:
    """The worst flagged accuracy gaps over all time, all versions pooled."""
    if not _table_exists(con, "marts", "rpt_segment_bias"):
        return []
    flagged = _rows(
        con,
        f"""
        select segment_attribute, segment_value, reference_group, difference, difference_lower,
            difference_upper
        from marts.rpt_segment_bias
        where is_flagged and time_bucket = 'all' and model_version = '__all__'
            and metric = 'accuracy'
        order by difference, segment_attribute, segment_value
        limit {int(most)}
        """,
    )
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
    if not _table_exists(con, "ml", "reward_models"):
        return []
    latest = _rows(
        con,
        """
        select batch_id, status, current_version, reason
        from ml.reward_models order by batch_id desc limit 1
        """,
    )
    if not latest:
        return []
    batch_id, status, current, reason = latest[0]
    line = f"  reward model: current {current or 'none yet'}"
    promoted = _rows(
        con,
        """
        select heldout_accuracy, heldout_pairs from ml.reward_models
        where is_promoted and reward_model_version = ?
        """,
        [current],
    )
    if promoted and promoted[0][0] is not None:
        line += f" (held-out pairwise accuracy {promoted[0][0]:.3f} on {promoted[0][1]:,} pairs)"
    return [line, f"    batch {batch_id}: {status}: {reason}"]


def batch_markdown(con: duckdb.DuckDBPyConnection, batch_id: str) -> str:
    """The Prefect artifact for one batch: window, counts, quarantine reasons, KPIs."""
    row = _rows(
        con,
        """
        select window_start, window_end, status, feedback_in, feedback_accepted,
            feedback_quarantined, feedback_held, inferences_in, training_examples_added,
            dataset_version, dbt_seconds
        from ml.batch_runs where batch_id = ? order by attempt desc limit 1
        """,
        [batch_id],
    )[0]
    start, end, status, fin, acc, quar, held, inf, added, version, seconds = row
    reasons = _rows(
        con,
        """
        select reason_code, count(*) from marts.fct_feedback_quarantine
        where batch_id = ? group by 1 order by 2 desc
        """,
        [batch_id],
    )
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
    lines.append("## KPIs per day (last 7 days with matured labels)")
    lines += ["```", *kpi_lines(con, batch_id), "```", ""]
    lines += monitoring_markdown(con, batch_id)
    lines += audit_lines(con)
    return "\n".join(lines)


def audit_lines(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The audit chain checked now, and its head: note the head to catch later truncation with
    ``flywheel audit verify --head HASH``."""
    from feedback_flywheel import audit

    result = audit.verify(con)
    if result.count == 0:
        return []
    if result.broken is None:
        state = f"verified, {result.count:,} rows"
    else:
        state = f"**BROKEN at seq {result.broken.seq}** ({result.broken.problem})"
    return ["## Audit log", f"`ml.audit_log` {state}; head `{result.head_hash}`", ""]


def monitoring_markdown(con: duckdb.DuckDBPyConnection, batch_id: str) -> list[str]:
    """The batch's decision, its drift table and its performance check, as markdown."""
    lines: list[str] = []
    decisions = _rows(
        con,
        """
        select model_name, decision, reason, trigger_status, triggered_run_id, policy_version
        from ml.retraining_decisions where batch_id = ? order by model_name
        """,
        [batch_id],
    )
    lines.append("## Retraining decision")
    if not decisions:
        lines.append("No decision recorded for this batch.")
    for model, outcome, reason, status, run_id, policy_version in decisions:
        triggered = f" → `{run_id}`" if run_id else ""
        lines.append(
            f"- **{model}: {outcome}** ({status}{triggered}; policy `{policy_version}`): {reason}"
        )
    drift = drift_rows(con, batch_id)
    lines += ["", "## Drift (BH-adjusted p-values; drift = significant and above the floor)"]
    if drift:
        lines += [
            "| model | feature | kind | test | statistic | p adj. | effect / floor | n ref | "
            "n cur | drift |",
            "|---|---|---|---|---:|---:|---|---:|---:|---|",
        ]
        for (
            model,
            feature,
            kind,
            test,
            stat,
            p_adj,
            metric,
            effect,
            floor,
            n_ref,
            n_cur,
            flag,
        ) in drift:
            p_text = "–" if p_adj is None or p_adj != p_adj else f"{p_adj:.2g}"
            effect_text = "–" if effect is None or effect != effect else f"{effect:.3g}"
            stat_text = "–" if stat is None or stat != stat else f"{stat:.4g}"
            lines.append(
                f"| {model} | {feature} | {kind} | {test} | {stat_text} | {p_text} | "
                f"{metric} {effect_text} / {floor:g} | {n_ref:,} | {n_cur:,} | "
                f"{'**yes**' if flag else 'no'} |"
            )
    else:
        lines.append("No drift tests for this batch.")
    checks = _rows(
        con,
        """
        select model_name, model_version, check_name, segment_attribute, segment_value, n_ref,
            n_cur, accuracy_ref, accuracy_cur, accuracy_change, concept_part, p_adjusted
        from ml.performance_checks
        where batch_id = ? and (check_name = 'accuracy_change' or is_flagged)
        order by model_name, model_version, check_name
        """,
        [batch_id],
    )
    lines += ["", "## KPI check (labelled accuracy, current vs reference window)"]
    if checks:
        lines += [
            "| model | version | check | segment | n ref | n cur | acc. ref | acc. cur | change "
            "| concept part | p adj. |",
            "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in checks:
            model, version, check, attribute, value, n_ref, n_cur, a_ref, a_cur, change = row[:10]
            concept, p_adj = row[10], row[11]

            def fmt(number: float | None, spec: str = ".3f") -> str:
                return "–" if number is None or number != number else format(number, spec)

            lines.append(
                f"| {model} | {version} | {check} | {attribute}={value} | {n_ref:,} | {n_cur:,} "
                f"| {fmt(a_ref)} | {fmt(a_cur)} | {fmt(change, '+.3f')} | "
                f"{fmt(concept, '+.3f')} | {fmt(p_adj, '.2g')} |"
            )
    else:
        lines.append("No labelled performance to compare yet.")
    return lines


def drift_rows(
    con: duckdb.DuckDBPyConnection, batch_id: str, *, drifted_only: bool = False
) -> list[tuple]:
    """A batch's drift tests, drifted first: model, feature, kind, test, statistic, adjusted
    p-value, effect metric, effect size, floor, n_ref, n_cur, is_drift."""
    return _rows(
        con,
        """
        select model_name, feature_name, kind, test, statistic, p_adjusted, effect_metric,
            effect_size, threshold, n_ref, n_cur, is_drift
        from ml.drift_results where batch_id = ? and (is_drift or not ?)
        order by is_drift desc, kind, feature_name, test
        """,
        [batch_id, drifted_only],
    )

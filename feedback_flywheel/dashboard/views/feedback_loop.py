"""Feedback loop: how far each feedback signal can be trusted (rpt_feedback_fidelity), overall,
week by week, and by model version and segment; how long labels take to arrive (label coverage
by age, fct_label_coverage) and the maturation window the performance checks use
(fct_label_maturation); how long each stage of the loop takes, from serving to deployment
(fct_feedback_latency); which labels the next training sample takes: the query policy chosen
from the offline label-efficiency curves, and why (fct_sampling_policy_scores, _curves); and the
weak labels implicit signals give where a label is missing, weighted by their measured fidelity
(rpt_weak_labels)."""

import altair as alt
import pandas as pd
import streamlit as st

from feedback_flywheel.dashboard import charts, common, queries

REFERENCES = {"correctness": "ground truth (label = prediction)", "rating": "the rating"}
MEASURES = {
    "agreement_rate": "agreement",
    "cohen_kappa": "Cohen's kappa",
    "recall_rate": "P(signal positive | reference positive)",
    "false_positive_rate": "P(signal positive | reference negative)",
    "precision_rate": "precision",
    "rank_correlation": "Spearman's rho",
}

common.page_header(
    "Feedback loop",
    "How far each signal can be trusted as a stand-in for the label: every implicit signal "
    "(click, conversion, thumbs, dwell) against the rating and against ground-truth "
    "correctness, and the rating against correctness, on the predictions that received both. "
    "Agreement, Cohen's kappa (agreement beyond chance), precision, recall and the "
    "false-positive rate each carry a 95% interval; groups with too few predictions are "
    "suppressed.",
)

model_name = common.model_picker("loop_model")
overall: pd.DataFrame = (
    common.load(queries.fidelity_overall, model_name) if model_name else pd.DataFrame()
)
if overall.empty:
    st.info(
        "`marts.rpt_feedback_fidelity` is not in this snapshot yet: it appears once a batch has "
        "built it (`flywheel run`) and published the snapshot."
    )
    st.stop()

reference = st.radio(
    "Compared with",
    list(REFERENCES),
    format_func=REFERENCES.get,
    horizontal=True,
    key="loop_reference",
)
shown = overall[(overall.reference_name == reference) & ~overall.is_suppressed]
columns = st.columns(max(len(shown), 1))
for column, row in zip(columns, shown.itertuples(index=False), strict=False):
    kappa = "-" if pd.isna(row.cohen_kappa) else f"{row.cohen_kappa:.2f}"
    column.metric(
        row.signal_name,
        f"kappa {kappa}",
        f"agreement {row.agreement_rate:.1%}",
        delta_color="off",
        help=f"{row.overlap_count:,} predictions with both signals",
    )

st.subheader("Over all time")
measure = st.selectbox("Measure", list(MEASURES), format_func=MEASURES.get, key="loop_measure")
ranked = shown.dropna(subset=[measure])
if ranked.empty:
    st.caption(f"No {MEASURES[measure]} for this reference (it needs a numeric side).")
else:
    st.altair_chart(
        charts.interval_dots(
            ranked,
            group="signal_name",
            value=measure,
            lower=f"{measure}_lower",
            upper=f"{measure}_upper",
            title=MEASURES[measure],
        ),
        width="stretch",
    )

st.subheader("Week by week")
weekly: pd.DataFrame = common.load(queries.fidelity_weekly, model_name, reference)
weekly = weekly.dropna(subset=[measure])
if weekly.empty:
    st.caption("No week has enough predictions with both signals yet.")
else:
    base = alt.Chart(weekly).encode(
        x=alt.X("week_start_date:T", title="week served"),
        color=alt.Color("signal_name:N", title="signal"),
    )
    band = base.mark_area(opacity=0.15).encode(
        y=alt.Y(f"{measure}_lower:Q", title=MEASURES[measure]), y2=f"{measure}_upper:Q"
    )
    line = base.mark_line(point=True).encode(
        y=f"{measure}:Q",
        tooltip=["signal_name", "week_start_date:T", alt.Tooltip(f"{measure}:Q", format=".3f")],
    )
    st.altair_chart(alt.layer(band, line), width="stretch")

st.subheader("By model version and segment")
signal = st.selectbox("Signal", shown.signal_name.tolist(), key="loop_signal")
groups: pd.DataFrame = common.load(queries.fidelity_breakdowns, model_name, signal, reference)
reported = groups[~groups.is_suppressed].dropna(subset=[measure])
if not reported.empty:
    reported = reported.assign(group=reported.breakdown + " = " + reported.breakdown_value)
    st.altair_chart(
        charts.interval_dots(
            reported,
            group="group",
            value=measure,
            lower=f"{measure}_lower",
            upper=f"{measure}_upper",
            title=MEASURES[measure],
        ),
        width="stretch",
    )
suppressed = int(groups.is_suppressed.sum())
if suppressed:
    st.caption(f"{suppressed} group(s) suppressed: too few predictions with both signals.")
common.table(overall, "Fidelity over all time")

st.subheader("How long labels take")
maturation: pd.DataFrame = common.load(queries.label_maturation, model_name)
coverage: pd.DataFrame = common.load(queries.label_coverage, model_name)
if maturation.empty or coverage.empty:
    st.caption("No label coverage yet: it needs predictions at least a day old.")
else:
    latest = maturation.iloc[-1]
    how = {
        "derived": f"derived: the first age with {latest.maturation_share:.0%} of the plateau",
        "configured": "configured (var label_maturation_days)"
        + (
            f"; the coverage curve says {int(latest.derived_maturation_days)}"
            if pd.notna(latest.derived_maturation_days)
            else ""
        ),
        "too_few_labels": "auto, but too few labels to derive it yet",
    }[latest.maturation_source]
    left, right = st.columns(2)
    left.metric(
        "Maturation window",
        f"{int(latest.maturation_days)} days",
        how,
        delta_color="off",
        help="The performance check and concept drift compare days at least this old.",
    )
    if pd.notna(latest.plateau_coverage):
        right.metric(
            "Label coverage plateau",
            f"{latest.plateau_coverage:.1%}",
            f"at {int(latest.plateau_age_days)} days",
            delta_color="off",
            help=f"{int(latest.plateau_eligible_count):,} predictions that old",
        )
    overall_curve = coverage[coverage.breakdown == "overall"]
    band = (
        alt.Chart(overall_curve)
        .mark_area(opacity=0.2)
        .encode(
            x=alt.X("age_days:Q", title="days since serving"),
            y=alt.Y("coverage_lower:Q", title="share with a label", axis=alt.Axis(format="%")),
            y2="coverage_upper:Q",
        )
    )
    line = (
        alt.Chart(overall_curve)
        .mark_line(point=True)
        .encode(
            x="age_days:Q",
            y="coverage:Q",
            tooltip=["age_days", alt.Tooltip("coverage:Q", format=".1%"), "eligible_count"],
        )
    )
    window = (
        alt.Chart(pd.DataFrame({"age_days": [latest.maturation_days]}))
        .mark_rule(strokeDash=[4, 4])
        .encode(x="age_days:Q")
    )
    st.altair_chart(alt.layer(band, line, window), width="stretch")
    weekly_curves = coverage[coverage.breakdown == "week"]
    if not weekly_curves.empty:
        st.caption("By week served (the last twelve weeks):")
        st.altair_chart(
            alt.Chart(weekly_curves)
            .mark_line()
            .encode(
                x=alt.X("age_days:Q", title="days since serving"),
                y=alt.Y("coverage:Q", title="share with a label", axis=alt.Axis(format="%")),
                color=alt.Color("served_week_start_date:O", title="week served"),
            ),
            width="stretch",
        )
    common.table(maturation, "Maturation window, batch by batch")

st.subheader("How long the loop takes")
latency: pd.DataFrame = common.load(queries.feedback_latency, model_name)
path = latency[latency.event_type == "__labels__"] if not latency.empty else latency
if path.empty:
    st.caption("No latency yet: it needs feedback received in a batch.")
else:
    slowest = path[path.is_bottleneck]
    left, right = st.columns(2)
    if not slowest.empty:
        bottleneck = slowest.iloc[0]
        left.metric(
            "Bottleneck",
            common.md(str(bottleneck.stage).replace("_", " ")),
            f"median {bottleneck.p50_hours:,.1f} h",
            delta_color="off",
            help="The stage from serving to deployment with the largest median latency "
            "(labels and corrections).",
        )
    pending = path[path.stage == "dataset_to_training"]
    if not pending.empty:
        right.metric(
            "Examples no training run used yet",
            f"{pending.iloc[0].pending_share:.0%}",
            f"{int(pending.iloc[0].pending_count):,} examples",
            delta_color="off",
        )
    completed = path.dropna(subset=["p50_hours"])
    st.altair_chart(
        alt.Chart(completed)
        .mark_bar()
        .encode(
            x=alt.X("p50_hours:Q", title="median hours (p90 in the tooltip)"),
            y=alt.Y("stage:N", sort=alt.SortField("stage_order"), title=None),
            color=alt.Color("is_bottleneck:N", title="bottleneck"),
            tooltip=[
                "stage",
                "clock",
                alt.Tooltip("p50_hours:Q", format=",.1f"),
                alt.Tooltip("p90_hours:Q", format=",.1f"),
                alt.Tooltip("p99_hours:Q", format=",.1f"),
                "completed_count",
                "pending_count",
            ],
        ),
        width="stretch",
    )
    common.table(latency, "Latency per stage and event type (hours)")

st.subheader("Which labels the training sample takes")
policy_scores: pd.DataFrame = common.load(queries.sampling_policy_scores, model_name)
curves: pd.DataFrame = common.load(queries.sampling_policy_curves, model_name)
if policy_scores.empty or curves.empty:
    st.caption("No sampling-policy evaluation yet: it needs two batches in which labels entered.")
else:
    chosen = policy_scores[policy_scores.is_chosen].iloc[0]
    mode = chosen.sampling_policy
    left, right = st.columns(2)
    left.metric(
        "Chosen query policy",
        common.md(f"{chosen.policy}, {int(chosen.chosen_budget):,} labels"),
        "in use (sampling_policy: auto)"
        if mode == "auto"
        else "advice only (sampling_policy: fixed keeps the configured sample)",
        delta_color="off",
        help="The draw of the Exp3 bandit over the policies (sampling_policy_chooser: exp3)."
        if chosen.chooser == "exp3"
        else "The largest area under the label-efficiency curve among random and the policies "
        "whose gain over random has a 95% interval above 0.",
    )
    if pd.notna(chosen.gain_lower):
        right.metric(
            "Gain over random (AULC)",
            f"{chosen.gain_mean:+.3f}",
            f"95% CI {chosen.gain_lower:+.3f} to {chosen.gain_upper:+.3f}",
            delta_color="off",
            help=f"Seed by seed over {int(chosen.seeds)} seeds and {int(chosen.pairs)} pair(s) "
            f"of batches, {chosen.first_train_batch_id} to {chosen.last_test_batch_id}.",
        )
    st.caption(common.md(chosen.choice_reason))
    st.caption(
        common.md(
            f"Chosen from the evaluation of batch {chosen.batch_id} (batch pairs from "
            f"{chosen.first_train_batch_id} to {chosen.last_test_batch_id}); under "
            "sampling_policy: auto the training samples of the batches after it use it."
        )
    )
    band = (
        alt.Chart(curves)
        .mark_area(opacity=0.15)
        .encode(
            x=alt.X("budget:Q", title="labels picked", scale=alt.Scale(type="log")),
            y=alt.Y("accuracy_lower:Q", title="accuracy on the next batch"),
            y2="accuracy_upper:Q",
            color=alt.Color("policy:N", title="policy"),
        )
    )
    lines = (
        alt.Chart(curves)
        .mark_line(point=True)
        .encode(
            x="budget:Q",
            y=alt.Y("accuracy_mean:Q", scale=alt.Scale(zero=False)),
            color="policy:N",
            tooltip=[
                "policy",
                "budget",
                alt.Tooltip("accuracy_mean:Q", format=".3f"),
                alt.Tooltip("accuracy_lower:Q", format=".3f"),
                alt.Tooltip("accuracy_upper:Q", format=".3f"),
            ],
        )
    )
    st.altair_chart(alt.layer(band, lines), width="stretch")
    common.table(
        policy_scores.drop(columns=["sampling_policy"]), "Every policy of the latest evaluation"
    )

st.subheader("Weak labels: signals standing in for a missing label")
weak: pd.DataFrame = common.load(queries.weak_labels, model_name)
if weak.empty:
    st.caption("No weak-label fidelity yet: it appears once a batch has built it.")
else:
    usable = weak[weak.is_usable]
    left, right = st.columns(2)
    left.metric(
        "Weak labels in use",
        f"{int(weak.current_weak_labels.sum()):,}",
        f"{int(weak.weak_labels_formed.sum()):,} formed in batch {weak.batch_id.iloc[0]}",
        delta_color="off",
        help="Predictions without a label whose implicit signal stands in for it "
        "(fct_weak_label_examples, current); each is weighted by its signal's fidelity.",
    )
    right.metric(
        "Usable signals",
        f"{len(usable)} of {len(weak)}",
        "weak_label_signals names none: off"
        if (weak.usability == "not_configured").all()
        else "signal and polarity pairs",
        delta_color="off",
        help="A signal is usable when weak_label_signals names it, the model is two-class (for "
        "a negative signal), it overlaps enough labels in the window and the lower end of its "
        "fidelity's 95% interval reaches weak_label_min_fidelity.",
    )
    common.table(
        weak.drop(columns=["batch_id"]),
        "Fidelity of each signal as a weak label (the chance it is right), latest batch",
    )

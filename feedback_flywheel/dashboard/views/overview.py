"""Overview: the latest numbers per model, the latest decision, and the batch runs."""

import altair as alt
import pandas as pd
import streamlit as st

from feedback_flywheel.dashboard import charts, common, queries

common.page_header(
    "feedback_flywheel",
    "Where the models stand after the latest batch. Every page reads the published serving "
    "snapshot (read-only), so the dashboard never blocks a running build.",
)

warnings: pd.DataFrame = common.load(queries.latest_warnings)
if not warnings.empty:
    st.subheader(f"Warnings of batch {common.md(warnings.batch_id.iloc[0])}")
    for warning in warnings.warning:
        # st.text: a warning quotes file names and keys from the logs, never rendered as markdown
        st.text(f"⚠ {warning}")

latest: pd.DataFrame = common.load(queries.kpi_latest)
decisions: pd.DataFrame = common.load(queries.decisions)
for row in latest.itertuples(index=False):
    st.subheader(common.md(row.model_name))
    left, middle, right = st.columns(3)
    delta = None
    if pd.notna(row.previous_accuracy):
        delta = f"{(row.accuracy - row.previous_accuracy) * 100:+.1f} pts vs day before"
    left.metric(
        f"Accuracy {common.md(row.model_version)}, {pd.Timestamp(row.kpi_date):%Y-%m-%d}",
        f"{row.accuracy:.1%}",
        delta,
        help="Latest day served with matured labels; the delta is against the day before.",
    )
    left.caption(
        f"95% interval [{row.accuracy_lower:.1%}, {row.accuracy_upper:.1%}] "
        f"over {row.labelled_count:,} matured labels"
    )
    middle.metric("Predictions that day", f"{row.inference_count:,}")
    model_decisions = (
        decisions[decisions.model_name == row.model_name] if not decisions.empty else decisions
    )
    if not model_decisions.empty:
        newest = model_decisions.iloc[0]
        right.metric(
            f"Decision of {common.md(newest.batch_id)}",
            common.md(newest.decision),
            f"trigger: {common.md(newest.trigger_status)}",
            delta_color="off",
            delta_arrow="off",
        )
        st.caption(f"Reason: {common.md(newest.reason)}")
    accuracy = common.load(queries.kpi_daily, "accuracy", row.model_name)
    st.altair_chart(
        charts.kpi_with_interval(
            accuracy, common.load(queries.deployments, row.model_name), "Accuracy", is_rate=True
        ),
        width="stretch",
    )

runs: pd.DataFrame = common.load(queries.batch_runs)
if not runs.empty:
    st.subheader("Batch runs")
    counts = runs[runs.status == "success"].melt(
        id_vars=["batch_id"],
        value_vars=["feedback_accepted", "feedback_quarantined", "feedback_held"],
        var_name="outcome",
        value_name="rows",
    )
    st.altair_chart(
        alt.Chart(counts)
        .mark_bar()
        .encode(
            x=alt.X("batch_id:N", title="batch"),
            y=alt.Y("rows:Q", title="feedback rows"),
            color=alt.Color("outcome:N"),
            tooltip=["batch_id:N", "outcome:N", alt.Tooltip("rows:Q", format=",")],
        )
        .properties(height=260),
        width="stretch",
    )
    common.table(runs, "Batch runs")

common.table(common.load(queries.snapshot_info), "Tables in this snapshot")

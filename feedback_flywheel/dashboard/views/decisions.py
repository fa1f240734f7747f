"""Retraining decisions with their reasons and the signals they weighed."""

import pandas as pd
import streamlit as st

from feedback_flywheel.dashboard import charts, common, queries

common.page_header(
    "Retraining decisions",
    "One decision per model and batch (`ml.retraining_decisions`): retrain, hold or "
    "insufficient data, the reason in words, every signal against its threshold, and what was "
    "triggered. Decisions are data: an auditor can replay each one from its inputs.",
)

decisions: pd.DataFrame = common.load(queries.decisions)
if decisions.empty:
    st.info("No retraining decisions in this snapshot yet: the batch cycle records them.")
    st.stop()

st.altair_chart(charts.decisions_timeline(decisions), width="stretch")

counts = decisions.decision.value_counts()
columns = st.columns(len(charts.DECISION_COLOURS))
for column, outcome in zip(columns, charts.DECISION_COLOURS, strict=True):
    column.metric(outcome.replace("_", " "), int(counts.get(outcome, 0)))

st.subheader("Reasons")
for row in decisions.head(20).itertuples(index=False):
    with st.container(border=True):
        st.markdown(
            f"**{common.md(row.batch_id)}** · {common.md(row.model_name)} · "
            f"**{common.md(row.decision)}** · trigger: {common.md(row.trigger_status)}"
            + (f" → {common.md(row.triggered_run_id)}" if row.triggered_run_id else "")
        )
        st.text(row.reason)
        signals: pd.DataFrame = common.load(queries.decision_signals, row.decision_id)
        with st.expander(f"Signals of {common.md(row.decision_id)}"):
            st.dataframe(signals, width="stretch", hide_index=True)

common.table(decisions, "All decisions")

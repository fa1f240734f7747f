"""Quarantined feedback over time, by reason code."""

import pandas as pd
import streamlit as st

from feedback_flywheel.dashboard import charts, common, queries

common.page_header(
    "Quarantine",
    "Every raw feedback row ends either accepted or quarantined with a reason code "
    "(`marts.fct_feedback_quarantine`, raw value and payload kept verbatim with the file and "
    "row). Here: quarantined rows per day received, by reason.",
)

daily: pd.DataFrame = common.load(queries.quarantine_daily)
if daily.empty:
    st.success("Nothing quarantined in this snapshot.")
    st.stop()

st.altair_chart(charts.quarantine_stacked(daily), width="stretch")
reasons: pd.DataFrame = common.load(queries.quarantine_reasons)
left, right = st.columns([1, 2])
left.metric("Rows quarantined", f"{int(reasons.quarantined_rows.sum()):,}")
left.metric("Reason codes seen", len(reasons))
right.altair_chart(charts.reasons_bar(reasons), width="stretch")
common.table(reasons, "By reason (with an example file:row to look at)")
common.table(daily, "Per day and reason")

"""Drift by feature and batch, from the Python stage's tests (ml.drift_results)."""

import pandas as pd
import streamlit as st

from feedback_flywheel.dashboard import charts, common, queries

common.page_header(
    "Drift",
    "Each batch compares the current window with its reference window. A feature **drifts** "
    "only when its Benjamini-Hochberg-adjusted p-value is below alpha *and* its effect size is "
    "above the floor of its test; the colour is the strongest effect relative to that floor "
    "(above 1 = past the floor), a dot marks drift.",
)

overview: pd.DataFrame = common.load(queries.drift_overview)
if overview.empty:
    st.info("No drift tests in this snapshot yet: they are written by the batch cycle.")
    st.stop()

models = sorted(overview.model_name.unique())
model_name = st.selectbox("Model", models, key="drift_model") if len(models) > 1 else models[0]
overview = overview[overview.model_name == model_name]

timeline: pd.DataFrame = common.load(queries.drift_timeline)
timeline = timeline[timeline.model_name == model_name] if not timeline.empty else timeline
if not timeline.empty:
    st.subheader("Timeline")
    st.caption(
        "Every day tested as a daily batch at that day's end would have tested it (a backfill's "
        "past days included); a red tick is where a flagged change is estimated to have started."
    )
    st.altair_chart(charts.drift_timeline(timeline), width="stretch")
    starts = timeline[timeline.change_point_date.notna()]
    if not starts.empty:
        columns = ["feature_name", "kind", "evaluation_date", "change_point_date", "drifted_tests"]
        common.table(starts[columns], "Changes: first flagged day and estimated start")
    st.subheader("By batch")
st.altair_chart(charts.drift_heatmap(overview), width="stretch")
st.altair_chart(charts.drifted_per_batch(overview), width="stretch")

batches = sorted(overview.batch_id.unique(), reverse=True)
batch_id = st.selectbox("Tests of batch", batches, key="drift_batch")
tests: pd.DataFrame = common.load(queries.drift_tests, batch_id, model_name)
drifted = tests[tests.is_drift]
if drifted.empty:
    st.success(f"No feature drifted in {common.md(batch_id)}.")
else:
    st.warning(
        f"{drifted.feature_name.nunique()} feature(s) drifted in {common.md(batch_id)}: "
        + ", ".join(common.md(name) for name in sorted(drifted.feature_name.unique()))
    )
common.table(tests, f"Drift tests of {batch_id}")
common.table(overview, "Per feature and batch")

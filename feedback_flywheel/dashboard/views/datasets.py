"""Dataset versions: the Incremental Dataset's growth and the training sample of each version."""

import pandas as pd
import streamlit as st

from feedback_flywheel.dashboard import charts, common, queries

common.page_header(
    "Dataset versions",
    "One dataset version per batch (`marts.fct_dataset_versions`): the matured examples it "
    "holds, what the batch added and superseded, and the deterministic training sample drawn "
    "from it. `flywheel dataset verify VERSION` rebuilds a version's sample and proves it is "
    "identical.",
)

versions: pd.DataFrame = common.load(queries.dataset_versions)
if versions.empty:
    st.info("No dataset versions in this snapshot yet.")
    st.stop()

newest = versions.iloc[-1]
left, middle, right = st.columns([2, 1, 1])
left.metric("Latest version", common.md(newest.dataset_version))
middle.metric("Examples", f"{int(newest.example_count):,}", f"+{int(newest.examples_added):,}")
right.metric("Training sample", f"{int(newest.sample_count):,}")
st.altair_chart(charts.dataset_growth(versions), width="stretch")
common.table(versions, "Dataset versions")

runs: pd.DataFrame = common.load(queries.training_runs)
if not runs.empty:
    st.subheader("Retraining runs")
    common.table(runs, "Training runs")

"""Replay buffer: size over time against capacity, evictions by reason, composition and
priorities of a version, samples per insert, and the composition warnings."""

import altair as alt
import pandas as pd
import streamlit as st

from feedback_flywheel.dashboard import common, queries


def _lines(frame: pd.DataFrame, values: list[str], name: str, title: str, fmt: str) -> None:
    """One line per column of ``values`` over the batches."""
    long = frame.melt(id_vars=["batch_id"], value_vars=values, var_name="series", value_name=name)
    st.altair_chart(
        alt.Chart(long)
        .mark_line(point=True)
        .encode(
            x=alt.X("batch_id:N", title="batch"),
            y=alt.Y(f"{name}:Q", title=title),
            color=alt.Color("series:N", title=None),
            tooltip=["batch_id", "series", alt.Tooltip(f"{name}:Q", format=fmt)],
        ),
        width="stretch",
    )


common.page_header(
    "Replay buffer",
    "The experience replay buffer kept by every batch (`ml.replay_versions`, "
    "policies/replay.yml): transitions from the logged sessions, evicted with a reason code "
    "(stale, retracted, over-sampled, over capacity), sampled by trainers with "
    "`flywheel replay sample` and reprioritised with `flywheel replay priorities`.",
)

versions: pd.DataFrame = common.load(queries.replay_versions)
if versions.empty:
    st.info("No replay buffer version in this snapshot yet: sessions with rewards fill it.")
    st.stop()

newest = versions.iloc[-1]
first, second, third, fourth = st.columns(4)
first.metric("Latest version", common.md(newest.buffer_version))
second.metric("Transitions", f"{int(newest['size']):,}", f"capacity {int(newest.capacity):,}")
third.metric("Inserted / evicted", f"{int(newest.inserted):,} / {int(newest.evicted):,}")
ratio = newest.samples_per_insert
fourth.metric("Samples per insert", "-" if pd.isna(ratio) else f"{ratio:.2f}")
if newest.warnings:
    for warning in str(newest.warnings).split("; "):
        st.warning(common.md(warning))

st.subheader("Size over time")
_lines(versions, ["size", "capacity"], "transitions", "transitions", ",")

st.subheader("Evictions by reason")
evictions = queries.replay_evictions(versions)
if evictions.empty:
    st.caption("Nothing evicted yet.")
else:
    st.altair_chart(
        alt.Chart(evictions)
        .mark_bar()
        .encode(
            x=alt.X("batch_id:N", title="batch"),
            y=alt.Y("evicted:Q", title="transitions evicted"),
            color=alt.Color("reason_code:N", title="reason"),
            tooltip=["batch_id", "reason_code", alt.Tooltip("evicted:Q", format=",")],
        ),
        width="stretch",
    )

st.subheader("Composition")
composition: pd.DataFrame = common.load(queries.replay_composition)
if not composition.empty:
    chosen = st.selectbox("Version", versions.batch_id.tolist()[::-1], key="replay_version")
    shown = composition[composition.batch_id == chosen]
    dimensions = sorted(shown.dimension.unique())
    for column, dimension in zip(st.columns(2) * len(dimensions), dimensions, strict=False):
        part = shown[shown.dimension == dimension]
        column.altair_chart(
            alt.Chart(part, title=dimension)
            .mark_bar()
            .encode(
                x=alt.X("share:Q", title="share of the buffer", axis=alt.Axis(format=".0%")),
                y=alt.Y("bucket:N", title=None, sort=None),
                tooltip=["bucket", alt.Tooltip("transitions:Q", format=","), "share"],
            ),
            width="stretch",
        )
    common.table(shown, "Composition")

st.subheader("Priorities")
_lines(
    versions,
    ["priority_min", "priority_mean", "priority_max"],
    "priority",
    "priority p (before alpha)",
    ".3f",
)
common.table(versions.drop(columns=["evictions_json"]), "Buffer versions")

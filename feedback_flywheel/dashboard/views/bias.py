"""Segment bias: per-group rates with intervals, disparity against the reference group, over
time and per model version (rpt_segment_bias and its summary, rpt_feedback_skew)."""

import pandas as pd
import streamlit as st

from feedback_flywheel.dashboard import charts, common, queries

common.page_header(
    "Segment bias",
    "Per segment group: selection rate, accuracy, TPR, FPR, mean rating and feedback rates, "
    "each with its 95% interval, against the attribute's reference group. A gap is "
    "**flagged** when it is significant after Benjamini-Hochberg across the family of tests "
    "*and* its disparity ratio is outside the fairness band; a group below the minimum count "
    "is suppressed rather than shown as noise.",
)

model_name = common.model_picker("bias_model")
choices: pd.DataFrame = (
    common.load(queries.bias_choices, model_name) if model_name else pd.DataFrame()
)
if choices.empty:
    st.info(
        "`marts.rpt_segment_bias` is not in this snapshot yet: it appears once a batch has "
        "built the analytics marts (`flywheel run`) and published the snapshot."
    )
    st.stop()

flags: pd.DataFrame = common.load(queries.bias_flags, model_name)
if flags.empty:
    st.success("No flagged disparity over the whole period.")
else:
    lines = [
        f"- **{common.md(row.segment_attribute)} = {common.md(row.segment_value)}** "
        f"({'all versions' if row.model_version == '__all__' else common.md(row.model_version)}): "
        f"{row.metric}"
        f"{'' if pd.isna(row.class_label) else ' [' + common.md(row.class_label) + ']'} "
        f"{row.metric_value:.3f} vs {row.reference_metric_value:.3f} for "
        f"{common.md(row.reference_group)}, difference {row.difference:+.3f} "
        f"[{row.difference_lower:+.3f}, {row.difference_upper:+.3f}], "
        f"BH p = {row.p_value_adjusted:.2g}"
        for row in flags.head(12).itertuples(index=False)
    ]
    st.warning(f"{len(flags)} flagged disparities over the whole period:\n\n" + "\n".join(lines))

versions = sorted(choices.model_version.unique(), key=lambda v: (v != "__all__", v))
left, middle, right = st.columns(3)
model_version = left.selectbox(
    "Model version",
    versions,
    format_func=lambda v: "all versions" if v == "__all__" else v,
    key="bias_version",
)
attributes = sorted(choices.segment_attribute.unique())
default_attribute = attributes.index(flags.segment_attribute.iloc[0]) if not flags.empty else 0
segment_attribute = middle.selectbox(
    "Segment attribute", attributes, index=default_attribute, key="bias_attribute"
)
metrics = sorted(choices.metric.unique(), key=lambda m: (m != "accuracy", m))
metric = right.selectbox("Metric", metrics, key="bias_metric")
class_label = None
if metric in queries.BIAS_CLASS_METRICS:
    classes = sorted(choices[choices.metric == metric].class_label.dropna().unique())
    class_label = st.selectbox("Positive class", classes, key="bias_class")

groups: pd.DataFrame = common.load(
    queries.bias_groups, model_name, model_version, segment_attribute, metric, class_label
)
reference = groups[groups.is_reference].metric_value
st.altair_chart(
    charts.interval_dots(
        groups[groups.metric_value.notna()],
        group="segment_value",
        value="metric_value",
        lower="metric_lower",
        upper="metric_upper",
        title=f"{metric} (95% interval), dashed: reference group",
        colour="status",
        reference=float(reference.iloc[0]) if not reference.empty else None,
    ),
    width="stretch",
)
common.table(groups, f"{metric} by {segment_attribute}")

over_time: pd.DataFrame = common.load(
    queries.bias_over_time, model_name, segment_attribute, metric, class_label
)
if not over_time.empty:
    st.subheader("Disparity over time, per model version")
    st.caption(
        "Difference from the reference group per week with its 95% interval: a deployment "
        "that widens a gap shows up as the series moving away from 0."
    )
    st.altair_chart(charts.disparity_over_time(over_time), width="stretch")
    common.table(over_time, "Disparity per week")

summary: pd.DataFrame = common.load(queries.bias_summary, model_name)
if not summary.empty:
    common.table(summary, "Fairlearn-style summary (demographic parity, equalized odds)")
skew: pd.DataFrame = common.load(queries.feedback_skew, model_name)
if not skew.empty:
    common.table(skew, "Feedback skew: who gives feedback, beside the accuracy gap")

"""KPI trends: a KPI per day and model version with its 95% interval and deployment markers."""

import pandas as pd
import streamlit as st

from feedback_flywheel.dashboard import charts, common, queries

common.page_header(
    "KPI trends",
    "Daily KPIs per model version (by the day the prediction was served) with 95% intervals "
    "(Wilson for rates, normal for means). Dashed lines mark deployments. Labelled metrics use "
    "matured labels only, so the most recent days fill in as labels arrive.",
)

model_name = common.model_picker("kpi_model")
metric = st.selectbox(
    "KPI",
    list(queries.KPI_METRICS),
    format_func=lambda key: queries.KPI_METRICS[key].label,
    key="kpi_metric",
)
spec = queries.KPI_METRICS[metric]
series: pd.DataFrame = common.load(queries.kpi_daily, metric, model_name)
deployments: pd.DataFrame = common.load(queries.deployments, model_name)

if series.empty:
    st.info(
        f"No {spec.label.lower()} yet for {common.md(model_name)}: nothing counted for it so far."
    )
else:
    st.altair_chart(
        charts.kpi_with_interval(series, deployments, spec.label, spec.is_rate),
        width="stretch",
    )
    common.table(series, f"{spec.label} per day")

if model_name:
    rolling: pd.DataFrame = common.load(queries.kpi_rolling, model_name)
    if not rolling.empty:
        st.subheader("Accuracy over all versions: day, 7 and 28 days")
        st.caption(
            "From `marts.rpt_kpi_trends_daily`: each window pools its labelled predictions "
            "(never an average of daily rates), with its Wilson 95% interval."
        )
        st.altair_chart(charts.rolling_accuracy(rolling, deployments), width="stretch")
        common.table(rolling, "Rolling accuracy")

    impact: pd.DataFrame = common.load(queries.deployment_impact, model_name)
    if not impact.empty:
        st.subheader("What each deployment changed")
        st.caption(
            "From `marts.rpt_deployment_impact`: the KPI in a window after each deployment "
            "minus the same weekdays before it, with the 95% interval of the difference "
            "(0 = no change)."
        )
        for metric_name, rows in impact.groupby("metric", sort=False):
            st.altair_chart(
                charts.interval_dots(
                    rows,
                    group="deployment",
                    value="difference",
                    lower="difference_lower",
                    upper="difference_upper",
                    title=f"{metric_name}: after - before",
                    colour="is_significant",
                    reference=0.0,
                ),
                width="stretch",
            )
        common.table(impact, "Deployment impact")

    profile: pd.DataFrame = common.load(queries.weekday_profile, model_name)
    if not profile.empty:
        st.subheader("Weekday profile")
        st.caption(
            "From `marts.rpt_kpi_weekday_profile`: mean daily volume per weekday against the "
            "average day (1 = average), and the weekday's pooled accuracy."
        )
        left, right = st.columns(2)
        left.altair_chart(charts.weekday_volume(profile), width="stretch")
        right.altair_chart(
            charts.interval_dots(
                profile,
                group="weekday",
                value="accuracy",
                lower="accuracy_lower",
                upper="accuracy_upper",
                title="accuracy on the weekday",
                reference=float(profile.series_accuracy.dropna().iloc[0])
                if profile.series_accuracy.notna().any()
                else None,
                sort=list(profile.weekday),
            ),
            width="stretch",
        )
        common.table(profile, "Weekday profile")

if not deployments.empty:
    common.table(deployments, "Deployments")

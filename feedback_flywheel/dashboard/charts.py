"""Altair charts for the dashboard pages: functions of the small frames ``data`` returns."""

from __future__ import annotations

import altair as alt
import pandas as pd

STATUS_COLOURS = {
    "flagged": "#d62728",
    "reference": "#7f7f7f",
    "not flagged": "#1f77b4",
    "suppressed (too few)": "#c7c7c7",
    True: "#d62728",
    False: "#1f77b4",
}

DECISION_COLOURS = {
    "retrain": "#d62728",
    "hold": "#2ca02c",
    "warning": "#ff7f0e",
    "insufficient_data": "#7f7f7f",
}


def kpi_with_interval(
    series: pd.DataFrame, deployments: pd.DataFrame, title: str, is_rate: bool
) -> alt.LayerChart:
    """A KPI per day and model version: the 95% interval as a band, the value as a line, and a
    dashed rule where each version was deployed."""
    axis_format = ".0%" if is_rate else ".2f"
    base = alt.Chart(series).encode(
        x=alt.X("kpi_date:T", title="day served"),
        color=alt.Color("model_version:N", title="version", scale=alt.Scale(scheme="tableau10")),
    )
    band = base.mark_area(opacity=0.2).encode(
        y=alt.Y("lower:Q", title=title, axis=alt.Axis(format=axis_format)),
        y2="upper:Q",
    )
    line = base.mark_line(point=True).encode(
        y="value:Q",
        tooltip=[
            alt.Tooltip("kpi_date:T", title="day"),
            alt.Tooltip("model_version:N", title="version"),
            alt.Tooltip("value:Q", title=title, format=".3f"),
            alt.Tooltip("lower:Q", title="95% lower", format=".3f"),
            alt.Tooltip("upper:Q", title="95% upper", format=".3f"),
            alt.Tooltip("n:Q", title="n", format=","),
        ],
    )
    layers: list[alt.Chart] = [band, line, *deployment_rules(deployments, series.kpi_date)]
    return alt.layer(*layers).properties(height=340)


def deployment_rules(deployments: pd.DataFrame, dates: pd.Series) -> list[alt.Chart]:
    """Dashed vertical rules, labelled, at the deployments that fall inside ``dates``."""
    if deployments.empty or dates.empty:
        return []
    first, last = pd.Timestamp(dates.min()), pd.Timestamp(dates.max())
    shown = deployments[
        (deployments.deployed_at >= first)
        & (deployments.deployed_at <= last + pd.Timedelta(days=1))
    ]
    if shown.empty:
        return []
    rule = (
        alt.Chart(shown)
        .mark_rule(strokeDash=[6, 4], color="#444")
        .encode(
            x="deployed_at:T",
            tooltip=[
                alt.Tooltip("model_version:N", title="deployed"),
                alt.Tooltip("deployed_at:T", title="at", format="%Y-%m-%d %H:%M"),
            ],
        )
    )
    label = (
        alt.Chart(shown)
        .transform_calculate(label="'deploy ' + datum.model_version")
        .mark_text(align="left", dx=4, dy=4, baseline="top", color="#444")
        .encode(x="deployed_at:T", y=alt.value(0), text="label:N")
    )
    return [rule, label]


def rolling_accuracy(rolling: pd.DataFrame, deployments: pd.DataFrame) -> alt.LayerChart:
    """Daily, 7-day and 28-day pooled accuracy with their intervals."""
    order = ["day", "7 days", "28 days"]
    base = alt.Chart(rolling).encode(
        x=alt.X("kpi_date:T", title="day served"),
        color=alt.Color(
            "window_name:N", title="window", sort=order, scale=alt.Scale(scheme="tableau10")
        ),
    )
    band = base.mark_area(opacity=0.15).encode(
        y=alt.Y("lower:Q", title="accuracy", axis=alt.Axis(format=".0%")), y2="upper:Q"
    )
    line = base.mark_line(point=True).encode(
        y="value:Q",
        tooltip=[
            "kpi_date:T",
            "window_name:N",
            alt.Tooltip("value:Q", format=".3f"),
            alt.Tooltip("lower:Q", format=".3f"),
            alt.Tooltip("upper:Q", format=".3f"),
            alt.Tooltip("n:Q", format=","),
        ],
    )
    rules = deployment_rules(deployments, rolling.kpi_date)
    return alt.layer(band, line, *rules).properties(height=320)


def weekday_volume(profile: pd.DataFrame) -> alt.LayerChart:
    """Mean daily volume per weekday relative to the average day (1 = average)."""
    bars = (
        alt.Chart(profile)
        .mark_bar()
        .encode(
            x=alt.X("weekday:N", sort=list(profile.weekday), title=None),
            y=alt.Y("volume_index:Q", title="volume vs average day"),
            color=alt.condition(
                "datum.iso_weekday >= 6", alt.value("#ff7f0e"), alt.value("#1f77b4")
            ),
            tooltip=["weekday:N", alt.Tooltip("volume_index:Q", format=".2f"), "day_count:Q"],
        )
    )
    one = alt.Chart(pd.DataFrame({"y": [1.0]})).mark_rule(strokeDash=[4, 4]).encode(y="y:Q")
    return alt.layer(bars, one).properties(height=240)


def drift_heatmap(overview: pd.DataFrame) -> alt.Chart:
    """Feature × batch: colour is the strongest effect relative to its floor (1 = at the
    floor), a ring marks a test that called drift."""
    base = alt.Chart(overview).encode(
        x=alt.X("batch_id:N", title="batch"),
        y=alt.Y("feature_name:N", title="feature"),
    )
    cells = base.mark_rect().encode(
        color=alt.Color(
            "effect_ratio:Q",
            title="effect / floor",
            scale=alt.Scale(scheme="orangered", domainMin=0),
        ),
        tooltip=[
            "batch_id:N",
            "feature_name:N",
            "kind:N",
            alt.Tooltip("effect_ratio:Q", format=".2f", title="effect / floor"),
            alt.Tooltip("p_adjusted_min:Q", format=".2g", title="min BH p"),
            "is_drift:N",
            "drifted_tests:N",
        ],
    )
    marks = (
        base.transform_filter("datum.is_drift").mark_text(text="●", color="black", size=14).encode()
    )
    return (cells + marks).properties(height=max(160, 28 * overview.feature_name.nunique()))


def drift_timeline(timeline: pd.DataFrame) -> alt.Chart:
    """Feature × day of the drift timeline: colour is the strongest effect relative to its
    floor, a dot marks drift, a red rule the estimated start of a flagged change."""
    base = alt.Chart(timeline).encode(
        x=alt.X("evaluation_date:T", title="day"),
        y=alt.Y("feature_name:N", title="feature"),
    )
    cells = base.mark_rect().encode(
        color=alt.Color(
            "effect_ratio:Q",
            title="effect / floor",
            scale=alt.Scale(scheme="orangered", domainMin=0),
        ),
        tooltip=[
            alt.Tooltip("evaluation_date:T", title="day"),
            "feature_name:N",
            "kind:N",
            alt.Tooltip("effect_ratio:Q", format=".2f", title="effect / floor"),
            alt.Tooltip("p_adjusted_min:Q", format=".2g", title="min BH p"),
            "is_drift:N",
            "drifted_tests:N",
            alt.Tooltip("change_point_date:T", title="change started"),
        ],
    )
    marks = base.transform_filter("datum.is_drift").mark_text(text="●", color="black", size=12)
    changes = (
        alt.Chart(timeline[timeline.change_point_date.notna()])
        .mark_tick(color="red", thickness=3, size=24)
        .encode(
            x=alt.X("change_point_date:T"),
            y=alt.Y("feature_name:N"),
            tooltip=["feature_name:N", alt.Tooltip("change_point_date:T", title="change started")],
        )
    )
    height = max(160, 28 * timeline.feature_name.nunique())
    return (cells + marks + changes).properties(height=height)


def drifted_per_batch(overview: pd.DataFrame) -> alt.Chart:
    """How many features drifted in each batch, by kind."""
    counts = (
        overview[overview.is_drift]
        .groupby(["batch_id", "kind"], as_index=False)
        .size()
        .rename(columns={"size": "features"})
    )
    all_batches = sorted(overview.batch_id.unique())
    return (
        alt.Chart(counts)
        .mark_bar()
        .encode(
            x=alt.X("batch_id:N", title="batch", scale=alt.Scale(domain=all_batches)),
            y=alt.Y("features:Q", title="features drifted"),
            color=alt.Color("kind:N"),
            tooltip=["batch_id:N", "kind:N", "features:Q"],
        )
        .properties(height=220)
    )


def decisions_timeline(decisions: pd.DataFrame) -> alt.Chart:
    """One mark per decision, on its watermark, coloured by the outcome."""
    return (
        alt.Chart(decisions)
        .mark_point(filled=True, size=160)
        .encode(
            x=alt.X("watermark_at:T", title="batch watermark"),
            y=alt.Y("model_name:N", title="model"),
            color=alt.Color(
                "decision:N",
                scale=alt.Scale(
                    domain=list(DECISION_COLOURS), range=list(DECISION_COLOURS.values())
                ),
            ),
            tooltip=["batch_id:N", "decision:N", "trigger_status:N", "reason:N"],
        )
        .properties(height=max(120, 60 * decisions.model_name.nunique()))
    )


def quarantine_stacked(daily: pd.DataFrame) -> alt.Chart:
    """Quarantined rows per day received, stacked by reason code."""
    return (
        alt.Chart(daily)
        .mark_bar()
        .encode(
            x=alt.X("received_date:T", title="day received"),
            y=alt.Y("quarantined_rows:Q", title="rows quarantined", stack="zero"),
            color=alt.Color("reason_code:N", title="reason"),
            tooltip=["received_date:T", "reason_code:N", "quarantined_rows:Q"],
        )
        .properties(height=320)
    )


def reasons_bar(reasons: pd.DataFrame) -> alt.Chart:
    """Quarantined rows per reason code over the whole snapshot, largest first."""
    return (
        alt.Chart(reasons)
        .mark_bar()
        .encode(
            y=alt.Y("reason_code:N", sort="-x", title=None, axis=alt.Axis(labelLimit=260)),
            x=alt.X("quarantined_rows:Q", title="rows quarantined"),
            color=alt.Color("reason_code:N", legend=None),
            tooltip=["reason_code:N", "reason_description:N", "quarantined_rows:Q"],
        )
        .properties(height=36 * len(reasons) + 20)
    )


def dataset_growth(versions: pd.DataFrame) -> alt.Chart:
    """Examples in each dataset version (line) and the training sample drawn from it (bars)."""
    long = versions.melt(
        id_vars=["dataset_version", "as_of_at"],
        value_vars=["example_count", "sample_count", "examples_added"],
        var_name="measure",
        value_name="rows",
    )
    return (
        alt.Chart(long)
        .mark_line(point=True)
        .encode(
            x=alt.X("as_of_at:T", title="dataset as of"),
            y=alt.Y("rows:Q", title="rows"),
            color=alt.Color("measure:N"),
            tooltip=["dataset_version:N", "measure:N", alt.Tooltip("rows:Q", format=",")],
        )
        .properties(height=300)
    )


def interval_dots(
    frame: pd.DataFrame,
    *,
    group: str,
    value: str,
    lower: str,
    upper: str,
    title: str,
    colour: str | None = None,
    reference: float | None = None,
    sort: list[str] | None = None,
) -> alt.LayerChart:
    """A point per group with its interval as a bar; an optional reference line (e.g. parity)."""
    base = alt.Chart(frame).encode(
        y=alt.Y(f"{group}:N", title=None, sort=sort, axis=alt.Axis(labelOverlap=False))
    )
    colour_encoding = {}
    if colour:
        values = [v.item() if hasattr(v, "item") else v for v in frame[colour].unique()]
        known = {value: STATUS_COLOURS[value] for value in values if value in STATUS_COLOURS}
        scale = (
            alt.Scale(domain=list(known), range=list(known.values()))
            if known and len(known) == len(values)
            else alt.Scale(scheme="tableau10")
        )
        colour_encoding = {"color": alt.Color(f"{colour}:N", title=None, scale=scale)}
    bars = base.mark_rule(strokeWidth=3).encode(
        x=alt.X(f"{lower}:Q", title=title, scale=alt.Scale(zero=False)),
        x2=f"{upper}:Q",
        **colour_encoding,
    )
    dots = base.mark_point(filled=True, size=80).encode(
        x=f"{value}:Q",
        tooltip=[
            f"{group}:N",
            alt.Tooltip(f"{value}:Q", format=".3f"),
            alt.Tooltip(f"{lower}:Q", format=".3f"),
            alt.Tooltip(f"{upper}:Q", format=".3f"),
        ],
        **colour_encoding,
    )
    layers: list[alt.Chart] = [bars, dots]
    if reference is not None:
        layers.append(
            alt.Chart(pd.DataFrame({"x": [reference]}))
            .mark_rule(strokeDash=[4, 4], color="#444")
            .encode(x="x:Q")
        )
    return alt.layer(*layers).properties(height=50 + 36 * frame[group].nunique())


def disparity_over_time(series: pd.DataFrame) -> alt.FacetChart:
    """Difference from the reference group per week and group, one panel per model version."""
    series = series.assign(
        version=series.model_version.replace({"__all__": "all versions"}),
        week=pd.to_datetime(series.bucket_start_date).dt.strftime("%Y-%m-%d"),
    )
    base = alt.Chart().encode(
        x=alt.X("week:O", title="week of", axis=alt.Axis(labelAngle=-45)),
        color=alt.Color("segment_value:N", title="group", scale=alt.Scale(scheme="tableau10")),
    )
    bars = base.mark_rule(strokeWidth=2, opacity=0.6).encode(
        y=alt.Y("difference_lower:Q", title="difference from reference"), y2="difference_upper:Q"
    )
    line = base.mark_line(point=alt.OverlayMarkDef(size=60, filled=True)).encode(
        y="difference:Q",
        tooltip=[
            "version:N",
            "week:O",
            "segment_value:N",
            alt.Tooltip("difference:Q", format="+.3f"),
            alt.Tooltip("difference_lower:Q", format="+.3f"),
            alt.Tooltip("difference_upper:Q", format="+.3f"),
            "is_flagged:N",
        ],
    )
    zero = alt.Chart().mark_rule(strokeDash=[4, 4], color="#444").encode(y=alt.datum(0))
    return (
        alt.layer(bars, line, zero, data=series)
        .properties(height=220, width=260)
        .facet(facet=alt.Facet("version:N", title=None), columns=3)
    )

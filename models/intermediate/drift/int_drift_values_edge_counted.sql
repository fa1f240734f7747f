{{ config(materialized='view') }}

-- The typed monitored values of the part days at the drift windows' edges, counted per window:
-- one row per (model, feature, value, window side). The reference and current windows are whole
-- days long and meet at current_start_at, so the three bounds share their time of day; when the
-- watermark is not midnight, the days they cut (the first day from the reference start, the day
-- current start cuts, the last day up to the watermark) are not whole days of either window, and
-- the drift windows (macro drift_window_values) take them from here instead of from the day
-- summaries (macro drift_window_day_split says which days are cut). At a midnight watermark this
-- is empty and reads nothing (the condition is false before any row is read). A view: the
-- categorical counts and the numeric drift read it, once each per batch.

{%- set inputs = feedback_flywheel.drift_input_features() %}
{%- set builtins = feedback_flywheel.drift_builtin_features() %}
{%- set bounds = feedback_flywheel.drift_window_bounds() %}
{%- set split = feedback_flywheel.drift_window_day_split() %}

with

edge_values as (

    select
        model_name,
        feature_name,
        feature_kind,
        value_type,
        string_value,
        numeric_value,
        case
            when logged_at >= {{ bounds.current_start_at }} then 'current'
            else 'reference'
        end as window_side
    from {{ ref('int_drift_values_typed') }}
    where
        {{ split.edge }}
        and ({{ feedback_flywheel.drift_typed_feature_filter(inputs + builtins[:2]) }})

),

final as (

    select
        model_name,
        feature_name,
        feature_kind,
        value_type,
        string_value,
        numeric_value,
        window_side,
        count(*) as value_count
    from edge_values
    group by
        model_name,
        feature_name,
        feature_kind,
        value_type,
        string_value,
        numeric_value,
        window_side

)

select * from final

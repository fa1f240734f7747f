{{ config(materialized='table') }}

-- The monitored values of the drift windows counted: one row per (model, feature, value) with
-- how many accepted inferences of each window had that value. Features: the inputs of var
-- drift_features, predicted_score and predicted_label (the current matured label is a mart's
-- concept: fct_drift_categorical adds it). Counting collapses ties and puts the missing values
-- in the null row, so the drift marts work on this much smaller table: numeric drift reads the
-- numeric features, the contingency tables the categorical ones. A table: both drift marts read
-- it and its tests scan it.
-- The windows are merged from day summaries: every day wholly inside one window is a sum of its
-- rows of int_drift_values_daily (counted once, by the batches that typed its values), and only
-- the part days at the edges, when the batch ends at another time of day than midnight, come
-- counted from their typed values (int_drift_values_edge_counted; empty at a midnight
-- watermark).

{%- set inputs = feedback_flywheel.drift_input_features() %}
{%- set builtins = feedback_flywheel.drift_builtin_features() %}
{%- set bounds = feedback_flywheel.drift_window_bounds() %}
{%- set features = feedback_flywheel.drift_typed_feature_filter(inputs + builtins[:2]) %}
{%- set day_start = 'cast(daily.logged_date as timestamp)' %}
{%- set day_end = dbt.dateadd('day', 1, day_start) %}
{#- a day wholly inside [reference start, current end) and on one side of current start #}
{%- set whole_day -%}
    {{ day_start }} >= {{ bounds.reference_start_at }}
    and {{ day_end }} <= {{ bounds.current_end_at }}
    and ({{ day_start }} >= {{ bounds.current_start_at }}
        or {{ day_end }} <= {{ bounds.current_start_at }})
{%- endset %}

with

whole_days as (

    select
        daily.model_name,
        daily.feature_name,
        daily.feature_kind,
        daily.value_type,
        daily.string_value,
        daily.numeric_value,
        daily.value_count,
        case
            when {{ day_start }} >= {{ bounds.current_start_at }} then 'current'
            else 'reference'
        end as window_side
    from {{ ref('int_drift_values_daily') }} as daily
    where
        {{ whole_day }}
        and ({{ features }})

),

edge_days as (

    select
        model_name,
        feature_name,
        feature_kind,
        value_type,
        string_value,
        numeric_value,
        value_count,
        window_side
    from {{ ref('int_drift_values_edge_counted') }}

),

window_values as (

    select * from whole_days
    union all
    select * from edge_days

),

final as (

    select
        model_name,
        feature_name,
        feature_kind,
        value_type,
        string_value,
        numeric_value,
        sum(case when window_side = 'reference' then value_count else 0 end) as ref_count,
        sum(case when window_side = 'current' then value_count else 0 end) as cur_count
    from window_values
    group by model_name, feature_name, feature_kind, value_type, string_value, numeric_value

)

select * from final

{{ config(materialized='table') }}

-- The monitored values of the drift windows counted: one row per (model, feature, value) with
-- how many accepted inferences of each window had that value. Features: the inputs of var
-- drift_features, predicted_score and predicted_label (the current matured label is a mart's
-- concept: fct_drift_categorical adds it). Counting collapses ties and puts the missing values
-- in the null row, so the drift marts work on this much smaller table: numeric drift reads the
-- numeric features, the contingency tables the categorical ones. The values come typed from
-- int_drift_values_typed (parsed once, by the batch that first saw them): this model only
-- filters the two windows and counts, it parses nothing. A table: both drift marts read it and
-- its tests scan it.

{%- set inputs = feedback_flywheel.drift_input_features() %}
{%- set builtins = feedback_flywheel.drift_builtin_features() %}
{%- set bounds = feedback_flywheel.drift_window_bounds() %}

with

window_values as (

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
        logged_at >= {{ bounds.reference_start_at }}
        and logged_at < {{ bounds.current_end_at }}
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
        sum(case when window_side = 'reference' then 1 else 0 end) as ref_count,
        sum(case when window_side = 'current' then 1 else 0 end) as cur_count
    from window_values
    group by model_name, feature_name, feature_kind, value_type, string_value, numeric_value

)

select * from final

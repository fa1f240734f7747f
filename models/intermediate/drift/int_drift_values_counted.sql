{{ config(materialized='table') }}

-- The monitored values of the drift windows counted: one row per (model, feature, value) with
-- how many accepted inferences of each window had that value. Features: the inputs of var
-- drift_features, predicted_score and predicted_label (the current matured label is a mart's
-- concept: fct_drift_categorical adds it). Counting collapses ties and puts the missing values
-- in the null row, so the drift marts work on this much smaller table: numeric drift reads the
-- numeric features, the contingency tables the categorical ones. The feature set is unpivoted by
-- a cross join with the feature list (one scan of the parsed inferences), not by a union of one
-- scan per feature. A table: both drift marts read it and its tests scan it.

{%- set inputs = feedback_flywheel.drift_input_features() %}
{%- set builtins = feedback_flywheel.drift_builtin_features() %}

with

inferences as (

    select * from {{ ref('int_drift_inputs_parsed') }}

),

monitored_features as (

    {%- for feature in inputs + builtins[:2] %}

        select
            {{ feedback_flywheel.sql_string(feature.name) }} as feature_name,
            '{{ feature.kind }}' as feature_kind,
            '{{ feature.value_type }}' as value_type
        {%- if not loop.last %}

            union all
        {%- endif %}
    {%- endfor %}

),

values_unpivoted as (

    select
        inferences.model_name,
        monitored_features.feature_name,
        monitored_features.feature_kind,
        monitored_features.value_type,
        inferences.window_side,
        case monitored_features.feature_name
            {%- for feature in inputs if feature.value_type == 'categorical' %}
                when {{ feedback_flywheel.sql_string(feature.name) }}
                    then inferences.input_{{ feature.name }}
            {%- endfor %}
            when 'predicted_label' then inferences.predicted_label
        end as string_value,
        case monitored_features.feature_name
            {%- for feature in inputs if feature.value_type == 'numeric' %}
                when {{ feedback_flywheel.sql_string(feature.name) }}
                    then inferences.input_{{ feature.name }}
            {%- endfor %}
            when 'predicted_score' then inferences.predicted_score
        end as numeric_value
    from inferences
    cross join monitored_features

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
    from values_unpivoted
    group by model_name, feature_name, feature_kind, value_type, string_value, numeric_value

)

select * from final

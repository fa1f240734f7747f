{{ config(materialized='table') }}

-- The monitored values of every accepted inference in the drift windows, long: one row per
-- (inference, feature). The configured inputs (var drift_features, parsed from inputs_json),
-- predicted_score and predicted_label, and the current matured label (fct_training_examples).
-- A table, not ephemeral: three marts read it, and parsing the JSON (the expensive part) must
-- happen once per batch, not once per reader. Rebuilt whole every batch, because both windows
-- move with the watermark (window_side changes as they slide), so not incremental.
-- The feature set is unpivoted by a cross join with the feature list (one scan of the inferences,
-- one JSON extraction per key and row), not by a union of one scan per feature.
-- Kept narrow on purpose, since writing it is a large part of its cost: no inference_id (so no
-- row key; a (inference_id, feature_name) key would add a third to the write and a uniqueness
-- test over every row each batch), and a value is stored once, as numeric_value for numeric
-- features and as string_value for categorical ones.

{%- set inputs = feedback_flywheel.drift_input_features() %}
{%- set builtins = feedback_flywheel.drift_builtin_features() %}
{%- set bounds = feedback_flywheel.drift_window_bounds() %}
{%- set score_position = inputs | length + 1 %}
{%- set predicted_label_position = inputs | length + 2 %}

with

inferences as (

    select
        model_name,
        inputs_json,
        predicted_label,
        predicted_score,
        logged_at
    from {{ ref('int_inferences_validated') }}
    where
        is_accepted
        and logged_at >= {{ bounds.reference_start_at }}
        and logged_at < {{ bounds.current_end_at }}

),

labels as (

    select
        model_name,
        label,
        inference_logged_at
    from {{ ref('fct_training_examples') }}
    where
        is_current
        and inference_logged_at >= {{ bounds.reference_start_at }}
        and inference_logged_at < {{ bounds.current_end_at }}

),

inputs_parsed as (

    select
        model_name,
        predicted_label,
        {%- for feature in inputs %}
            {%- if feature.value_type == 'numeric' %}
                {{ feedback_flywheel.json_get_double('inputs_json', feature.name) }}
                    as input_{{ loop.index }},
            {%- else %}
                {{ feedback_flywheel.json_get_string('inputs_json', feature.name) }}
                    as input_{{ loop.index }},
            {%- endif %}
        {%- endfor %}
        predicted_score,
        case
            when logged_at >= {{ bounds.current_start_at }} then 'current'
            else 'reference'
        end as window_side
    from inferences

),

monitored_features as (

    {%- for feature in inputs + builtins[:2] %}

        select
            '{{ feature.name }}' as feature_name,
            '{{ feature.kind }}' as feature_kind,
            '{{ feature.value_type }}' as value_type,
            {{ loop.index }} as feature_position
        {%- if not loop.last %}

            union all
        {%- endif %}
    {%- endfor %}

),

values_unpivoted as (

    select
        inputs_parsed.model_name,
        monitored_features.feature_name,
        monitored_features.feature_kind,
        monitored_features.value_type,
        inputs_parsed.window_side,
        case monitored_features.feature_position
            {%- for feature in inputs if feature.value_type == 'categorical' %}
                {%- set position = inputs.index(feature) + 1 %}
                when {{ position }} then inputs_parsed.input_{{ position }}
            {%- endfor %}
            when {{ predicted_label_position }} then inputs_parsed.predicted_label
        end as string_value,
        case monitored_features.feature_position
            {%- for feature in inputs if feature.value_type == 'numeric' %}
                {%- set position = inputs.index(feature) + 1 %}
                when {{ position }} then inputs_parsed.input_{{ position }}
            {%- endfor %}
            when {{ score_position }} then inputs_parsed.predicted_score
        end as parsed_number
    from inputs_parsed
    cross join monitored_features

),

inference_values as (

    -- Text that parses to NaN or +-inf ('NaN', 'inf', '1e999') counts as not a number (x - x is 0
    -- exactly for finite x only).
    select
        model_name,
        feature_name,
        feature_kind,
        value_type,
        window_side,
        string_value,
        case when parsed_number - parsed_number = 0 then parsed_number end as numeric_value
    from values_unpivoted

),

label_values as (

    select
        model_name,
        'label' as feature_name,
        'label' as feature_kind,
        'categorical' as value_type,
        case
            when inference_logged_at >= {{ bounds.current_start_at }} then 'current'
            else 'reference'
        end as window_side,
        label as string_value,
        cast(null as double) as numeric_value
    from labels

),

final as (

    select * from inference_values

    union all

    select * from label_values

)

select * from final

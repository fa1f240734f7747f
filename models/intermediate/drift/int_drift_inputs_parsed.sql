{{ config(materialized='table') }}

-- Every accepted inference in the two drift windows, wide: one row per inference with its
-- monitored inputs (var drift_features) parsed from inputs_json into one typed column each
-- (input_<key>: double for numeric keys, text for categorical ones), its prediction and the
-- window it falls in. A table, not a view: the drift models read it twice (value counts and
-- reference bins), and parsing the JSON (the expensive part) must happen once per batch, not once
-- per reader. Rebuilt whole every batch, because both windows move with the watermark
-- (window_side changes as they slide), so not incremental. Wide rather than one row per
-- (inference, feature): the row key is then one inference_id per inference, and each value is
-- written once, in a column of its own type.

{%- set inputs = feedback_flywheel.drift_input_features() %}
{%- set bounds = feedback_flywheel.drift_window_bounds() %}

with

inferences as (

    select
        inference_id,
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

inputs_parsed as (

    select
        inference_id,
        model_name,
        case
            when logged_at >= {{ bounds.current_start_at }} then 'current'
            else 'reference'
        end as window_side,
        predicted_label,
        {%- for feature in inputs %}
            {%- if feature.value_type == 'numeric' %}
                {{ feedback_flywheel.json_get_double('inputs_json', feature.name) }}
                    as input_{{ feature.name }},
            {%- else %}
                {{ feedback_flywheel.json_get_string('inputs_json', feature.name) }}
                    as input_{{ feature.name }},
            {%- endif %}
        {%- endfor %}
        predicted_score
    from inferences

),

final as (

    -- Text that parses to NaN or +-inf ('NaN', 'inf', '1e999') counts as not a number (x - x is 0
    -- exactly for finite x only).
    select
        inference_id,
        model_name,
        window_side,
        predicted_label,
        {%- for feature in inputs %}
            {%- if feature.value_type == 'numeric' %}
                case
                    when input_{{ feature.name }} - input_{{ feature.name }} = 0
                        then input_{{ feature.name }}
                end as input_{{ feature.name }},
            {%- else %}
                input_{{ feature.name }},
            {%- endif %}
        {%- endfor %}
        case when predicted_score - predicted_score = 0 then predicted_score end as predicted_score
    from inputs_parsed

)

select * from final

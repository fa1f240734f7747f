{{
    config(
        materialized='incremental',
        unique_key=['batch_id', 'model_name', 'payload', 'key_name'],
        incremental_strategy=feedback_flywheel.flywheel_incremental_strategy(),
        on_schema_change='fail',
    )
}}

-- Whether the configured keys are in the data: per batch and model, for every monitored feature
-- (var drift_features, in the current drift window) and every segment attribute (var
-- segment_attributes, over the same predictions), how many predictions had a usable value. A
-- feature absent from the window, or an attribute absent from `context`, is a warning of the
-- batch (CLI, artifact, dashboard) instead of a drift test or a bias report that silently says
-- nothing.
-- "New" for this model: the current batch's rows; a re-run of the batch replaces them.

{%- set batch_id = feedback_flywheel.batch_param('batch_id') %}
{%- set inputs = feedback_flywheel.drift_input_features() %}
{%- set segments = feedback_flywheel.setting('segment_attributes') %}
{%- set bounds = feedback_flywheel.drift_window_bounds() %}

with

current_values as (

    -- The typed values of the current drift window (int_drift_values_typed: every parsed
    -- inference has one row per monitored feature, null when the key is missing).
    select
        inference_id,
        model_name,
        feature_name,
        value_type,
        string_value,
        numeric_value
    from {{ ref('int_drift_values_typed') }}
    where
        logged_at >= {{ bounds.current_start_at }}
        and logged_at < {{ bounds.current_end_at }}

),

drift_inputs as (

    -- One row per inference of the window (predicted_label is there for every one).
    select
        inference_id,
        model_name
    from current_values
    where feature_name = 'predicted_label'

),

window_counts as (

    select
        model_name,
        count(*) as window_rows
    from drift_inputs
    group by model_name

),

input_values as (

    -- The configured inputs with a usable value, per model (a missing key is a null value).
    select
        model_name,
        feature_name,
        count(numeric_value) + count(string_value) as valued_rows
    from current_values
    where {{ feedback_flywheel.drift_typed_feature_filter(inputs) }}
    group by model_name, feature_name

),

inference_segments as (

    select
        inference_id,
        segment_attribute
    from {{ ref('fct_inference_segments') }}
    where
        segment_attribute in {{ feedback_flywheel.string_list(segments) }}
        and logged_at >= {{ bounds.current_start_at }}
        and logged_at < {{ bounds.current_end_at }}

),

feature_coverage as (

    {%- if inputs %}
        select
            window_counts.model_name,
            'inputs' as payload,
            configured_inputs.key_name,
            window_counts.window_rows,
            coalesce(input_values.valued_rows, 0) as valued_rows
        from window_counts
        cross join (
            {%- for feature in inputs %}
                select {{ feedback_flywheel.sql_string(feature.name) }} as key_name
                {%- if not loop.last %}
                    union all
                {%- endif %}
            {%- endfor %}
        ) as configured_inputs
        left join input_values
            on
                window_counts.model_name = input_values.model_name
                and configured_inputs.key_name = input_values.feature_name
    {%- else %}
        select
            cast(null as {{ dbt.type_string() }}) as model_name,
            'inputs' as payload,
            cast(null as {{ dbt.type_string() }}) as key_name,
            0 as window_rows,
            0 as valued_rows
        where false
    {%- endif %}

),

segment_coverage as (

    {%- for attribute in segments %}
        select
            drift_inputs.model_name,
            'context' as payload,
            {{ feedback_flywheel.sql_string(attribute) }} as key_name,
            count(*) as window_rows,
            count(inference_segments.inference_id) as valued_rows
        from drift_inputs
        left join inference_segments
            on
                drift_inputs.inference_id = inference_segments.inference_id
                and inference_segments.segment_attribute
                = {{ feedback_flywheel.sql_string(attribute) }}
        group by drift_inputs.model_name
        {%- if not loop.last %}

            union all

        {%- endif %}
    {%- else %}
        select
            cast(null as {{ dbt.type_string() }}) as model_name,
            'context' as payload,
            cast(null as {{ dbt.type_string() }}) as key_name,
            0 as window_rows,
            0 as valued_rows
        where false
    {%- endfor %}

),

coverage as (

    select * from feature_coverage
    union all
    select * from segment_coverage

),

final as (

    select
        {{ feedback_flywheel.surrogate_key([
            feedback_flywheel.sql_string(batch_id), 'model_name', 'payload', 'key_name',
        ]) }} as batch_coverage_id,
        {{ feedback_flywheel.sql_string(batch_id) }} as batch_id,
        model_name,
        payload,
        key_name,
        cast(window_rows as {{ dbt.type_bigint() }}) as window_rows,
        cast(valued_rows as {{ dbt.type_bigint() }}) as valued_rows,
        cast(valued_rows as double) / nullif(window_rows, 0) as valued_share
    from coverage

)

select * from final

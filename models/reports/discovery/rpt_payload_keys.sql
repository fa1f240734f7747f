{{ config(materialized='view') }}

-- What the recent inferences carry: one row per (model, payload, key) of the `inputs` and
-- `context` JSON of the inferences logged in the var discovery_days days before each model's
-- newest inference, with how often the key is present and with which JSON types, and how many
-- distinct values it has. `flywheel config discover` reads it to propose the monitored features
-- and segment attributes. A view: computed when read (on discovery), never in a batch.

{%- set days = feedback_flywheel.setting('discovery_days') %}

with

inference_logs as (

    select * from {{ ref('stg_raw__inference_logs') }}

),

newest as (

    select
        model_name,
        max(logged_at) as newest_logged_at
    from inference_logs
    where model_name is not null
    group by model_name

),

recent as (

    select
        inference_logs.model_name,
        inference_logs.inference_row_id,
        inference_logs.inputs_json,
        inference_logs.context_json
    from inference_logs
    inner join newest
        on inference_logs.model_name = newest.model_name
    where inference_logs.logged_at >= {{ dbt.dateadd('day', -days, 'newest.newest_logged_at') }}

),

sample_sizes as (

    select
        model_name,
        count(*) as sample_rows
    from recent
    group by model_name

),

input_entries as (

    {{ feedback_flywheel.json_object_entries(
        'recent', 'inputs_json', ['model_name', 'inference_row_id']
    ) }}

),

context_entries as (

    {{ feedback_flywheel.json_object_entries(
        'recent', 'context_json', ['model_name', 'inference_row_id']
    ) }}

),

entries as (

    select
        'inputs' as payload,
        *
    from input_entries

    union all

    select
        'context' as payload,
        *
    from context_entries

),

profiled as (

    select
        model_name,
        payload,
        entry_key as key_name,
        count(*) as present_rows,
        sum(case when entry_type = 'number' then 1 else 0 end) as numeric_rows,
        sum(case when entry_type = 'boolean' then 1 else 0 end) as boolean_rows,
        sum(case when entry_type = 'string' then 1 else 0 end) as text_rows,
        sum(case when entry_type = 'nested' then 1 else 0 end) as other_rows,
        sum(case when entry_type = 'null' then 1 else 0 end) as null_rows,
        count(distinct entry_value) as distinct_values
    from entries
    group by model_name, payload, entry_key

),

final as (

    select
        {{ feedback_flywheel.surrogate_key(['profiled.model_name', 'payload', 'key_name']) }}
            as payload_key_id,
        profiled.model_name,
        profiled.payload,
        profiled.key_name,
        cast(sample_sizes.sample_rows as {{ dbt.type_bigint() }}) as sample_rows,
        cast(profiled.present_rows as {{ dbt.type_bigint() }}) as present_rows,
        cast(profiled.numeric_rows as {{ dbt.type_bigint() }}) as numeric_rows,
        cast(profiled.boolean_rows as {{ dbt.type_bigint() }}) as boolean_rows,
        cast(profiled.text_rows as {{ dbt.type_bigint() }}) as text_rows,
        cast(profiled.other_rows as {{ dbt.type_bigint() }}) as other_rows,
        cast(profiled.null_rows as {{ dbt.type_bigint() }}) as null_rows,
        cast(profiled.distinct_values as {{ dbt.type_bigint() }}) as distinct_values
    from profiled
    inner join sample_sizes
        on profiled.model_name = sample_sizes.model_name

)

select * from final

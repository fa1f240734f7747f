{{
    config(
        materialized='incremental',
        unique_key=['inference_id', 'segment_attribute'],
        incremental_strategy=feedback_flywheel.flywheel_incremental_strategy(),
        on_schema_change='fail',
    )
}}

-- The segment context of every accepted prediction, long: one row per (inference, key of its
-- context JSON), every key whatever the configuration says, so the segment attributes are
-- configuration, not schema. Changing var segment_attributes (or stratify_by, or
-- bias_intersections) needs no rebuild here: every model that breaks down by segment picks the
-- configured attributes from this table. A key with a JSON null value has no row.
-- "New" for this model: the accepted predictions int_inferences_validated (re)validated in this
-- batch: logged in the batch window or its lookback, or loaded after the newest row here.

with

inferences as (

    select
        inference_id,
        model_name,
        context_json,
        logged_at,
        loaded_at
    from {{ ref('int_inferences_validated') }}
    where
        is_accepted
        and logged_at < {{ feedback_flywheel.var_timestamp('batch_end') }}
    {{ feedback_flywheel.lookback_or_late('logged_at') }}

),

entries as (

    {{ feedback_flywheel.json_object_entries(
        'inferences', 'context_json', ['inference_id', 'model_name', 'logged_at', 'loaded_at']
    ) }}

),

final as (

    select
        inference_id,
        entry_key as segment_attribute,
        model_name,
        entry_value as segment_value,
        cast(logged_at as date) as served_date,
        logged_at,
        loaded_at
    from entries
    where entry_value is not null

)

select * from final

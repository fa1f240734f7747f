-- Every raw feedback row that arrived before the batch watermark has exactly one status: nothing
-- is lost between staging and validation (unique feedback_row_id covers "at most one").
with

arrived as (

    select feedback_row_id
    from {{ ref('stg_raw__feedback_events') }}
    where
        coalesce(received_at, loaded_at)
        < {{ feedback_flywheel.var_timestamp('batch_end') }}

),

classified as (

    select feedback_row_id
    from {{ ref('int_feedback_events_classified') }}

),

missing as (

    select arrived.feedback_row_id
    from arrived
    left join classified
        on arrived.feedback_row_id = classified.feedback_row_id
    where classified.feedback_row_id is null

)

select * from missing

-- Every raw feedback row placed (or loaded) before the batch watermark has exactly one status:
-- nothing is lost between staging and validation (unique feedback_row_id covers "at most one").
with

arrived as (

    select feedback_row_id
    from {{ ref('stg_raw__feedback_events') }}
    where
        -- placed_at is never later than loaded_at: this covers every row loaded before the
        -- watermark, whatever its own timestamps say (year 2999, infinity, null)
        (
            placed_at < {{ feedback_flywheel.var_timestamp('batch_end') }}
            or loaded_at < {{ feedback_flywheel.var_timestamp('batch_end') }}
        )
        -- batch scope (macro batch_scope_filter): the rows placed in the batch window plus
        -- lookback_days; `flywheel check --full` reads every row
        and {{ feedback_flywheel.batch_scope_filter('placed_at') }}

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

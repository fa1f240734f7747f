-- Every raw inference row placed or loaded before the batch watermark has exactly one outcome in
-- int_inferences_validated (accepted, or refused with a reason code): nothing is lost between
-- staging and validation, whatever its logged_at says (unique inference_row_id covers "at most
-- one").
with

placed as (

    select inference_row_id
    from {{ ref('stg_raw__inference_logs') }}
    where
        (
            placed_at < {{ feedback_flywheel.var_timestamp('batch_end') }}
            or loaded_at < {{ feedback_flywheel.var_timestamp('batch_end') }}
        )
        -- batch scope (macro batch_scope_filter): the rows placed in the batch window plus
        -- lookback_days; `flywheel check --full` reads every row
        and {{ feedback_flywheel.batch_scope_filter('placed_at') }}

),

validated as (

    select inference_row_id
    from {{ ref('int_inferences_validated') }}

),

missing as (

    select placed.inference_row_id
    from placed
    left join validated
        on placed.inference_row_id = validated.inference_row_id
    where validated.inference_row_id is null

)

select * from missing

-- One row per estimate the Python stage wrote, as written.
with

source as (

    select * from {{ source('ml', 'performance_estimates') }}

),

renamed as (

    select
        {{ feedback_flywheel.surrogate_key(['batch_id', 'model_name', 'model_version']) }}
            as performance_estimate_id,
        batch_id,
        model_name,
        model_version,
        method,
        predictions,
        reference_labelled,
        estimated_accuracy,
        uncalibrated_estimate,
        reference_accuracy,
        window_start_at,
        window_end_at,
        computed_at

    from source

)

select * from renamed

-- One row per attempt of a training run the built-in trainer recorded (ml.training_runs), with
-- the columns the latency mart reads, as written.
with

source as (

    select * from {{ source('ml', 'training_runs') }}

),

renamed as (

    select
        {{ feedback_flywheel.surrogate_key(['training_run_id', 'attempt']) }}
            as training_run_attempt_id,
        training_run_id,
        attempt,
        decision_id,
        model_name,
        dataset_version,
        status,
        candidate_version,
        started_at,
        finished_at
    from source

)

select * from renamed

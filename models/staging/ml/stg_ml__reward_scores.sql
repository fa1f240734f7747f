-- One row per reward score the reward stage wrote (ml.reward_scores), as written.
with

source as (

    select * from {{ source('ml', 'reward_scores') }}

),

renamed as (

    select
        {{ feedback_flywheel.surrogate_key(['inference_id', 'reward_model_version']) }}
            as reward_score_id,
        inference_id,
        reward_model_version,
        batch_id,
        input_hash,
        score,
        scored_at
    from source

)

select * from renamed

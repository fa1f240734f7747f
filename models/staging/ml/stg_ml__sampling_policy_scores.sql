-- One row per (batch, model, query policy) the policy evaluation scored
-- (ml.sampling_policy_scores: its AULC and its gain over random, and the Exp3 bandit's round),
-- as written.
with

source as (

    select * from {{ source('ml', 'sampling_policy_scores') }}

),

renamed as (

    select
        {{ feedback_flywheel.surrogate_key(['batch_id', 'model_name', 'policy']) }}
            as sampling_policy_score_id,
        batch_id,
        model_name,
        policy,
        aulc_mean,
        aulc_lower,
        aulc_upper,
        gain_mean,
        gain_lower,
        gain_upper,
        first_train_batch_id,
        last_test_batch_id,
        pairs,
        seeds,
        exp3_log_weight,
        exp3_probability,
        exp3_reward,
        is_exp3_draw,
        exp3_gamma,
        computed_at
    from source

)

select * from renamed

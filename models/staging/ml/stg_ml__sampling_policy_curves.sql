-- One row per point of a label-efficiency curve the policy evaluation wrote
-- (ml.sampling_policy_curves: batch, model, query policy, budget), as written.
with

source as (

    select * from {{ source('ml', 'sampling_policy_curves') }}

),

renamed as (

    select
        {{ feedback_flywheel.surrogate_key(['batch_id', 'model_name', 'policy', 'budget']) }}
            as sampling_policy_curve_id,
        batch_id,
        model_name,
        policy,
        budget,
        accuracy_mean,
        accuracy_lower,
        accuracy_upper,
        picked_rows,
        first_train_batch_id,
        last_test_batch_id,
        pairs,
        seeds,
        computed_at
    from source

)

select * from renamed

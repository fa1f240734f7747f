{{ config(materialized='table') }}

-- The label-efficiency curves of the query policies, as the evaluations of the batches before
-- this one wrote them (ml.sampling_policy_curves): per evaluation batch, model, policy and
-- budget, the accuracy on batch t+1's labels of the built-in model trained on the policy's picks
-- from the pool as of t. Only batches before this one: the evaluation of this batch runs after
-- its build, so reading it here would make a re-run differ from the first run.

{%- set batch_id = feedback_flywheel.batch_param('batch_id') %}

with

curves as (

    select * from {{ ref('stg_ml__sampling_policy_curves') }}
    where batch_id < {{ feedback_flywheel.sql_string(batch_id) }}

),

final as (

    select
        sampling_policy_curve_id,
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
        seeds
    from curves

)

select * from final

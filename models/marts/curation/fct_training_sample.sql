{{
    config(
        materialized='incremental',
        unique_key='training_sample_id',
        incremental_strategy=feedback_flywheel.flywheel_incremental_strategy(),
        on_schema_change='fail',
    )
}}

-- The sampled training set for the next retraining, one sample per dataset version (= batch).
-- "New" for this model: the sample of the current batch's dataset version; samples of earlier
-- versions stay as they were (and can be rebuilt exactly: analyses/training_sample_for_version).

{%- set batch_id = feedback_flywheel.batch_param('batch_id') %}

with

training_examples as (

    select * from {{ ref('fct_training_examples') }}

),

inference_segments as (

    select * from {{ ref('fct_inference_segments') }}

),

{#- the evaluated policy (var sampling_policy: auto) is read from the relation itself -#}
{{ feedback_flywheel.training_sample(
    'training_examples', 'inference_segments', batch_id, ref('fct_sampling_policy_scores')
) }}

select * from final

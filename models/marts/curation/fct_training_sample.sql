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

{#- the evaluated policy (var sampling_policy: auto) and the weak labels (var weak_label_signals)
    are read from the relations themselves -#}
{{ feedback_flywheel.training_sample(
    'training_examples', 'inference_segments', batch_id, ref('fct_sampling_policy_scores'),
    ref('fct_weak_label_examples')
) }}

select * from final

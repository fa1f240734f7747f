-- Rebuild the training sample of any dataset version from fct_training_examples, e.g.
--   flywheel dataset verify ds-b20260301T000000
-- compiles this with --vars '{dataset_batch_id: b20260301T000000}' and compares the rows with
-- marts.fct_training_sample.
{%- set dataset_batch_id = feedback_flywheel.batch_param('dataset_batch_id') %}

with

training_examples as (

    select * from {{ ref('fct_training_examples') }}

),

inference_segments as (

    select * from {{ ref('fct_inference_segments') }}

),

{{ feedback_flywheel.training_sample(
    'training_examples', 'inference_segments', dataset_batch_id, ref('fct_sampling_policy_scores'),
    ref('fct_weak_label_examples')
) }}

select * from final

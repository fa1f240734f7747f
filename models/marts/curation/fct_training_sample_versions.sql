{{ config(materialized='view') }}

-- The training sample of each dataset version summed up: its size per sampling strategy and an
-- order-independent fingerprint of its rows. fct_dataset_versions records the current batch's
-- row from here in the catalogue of versions. A view: a small aggregate of fct_training_sample.

with

sample as (

    select
        training_sample_id,
        dataset_version,
        batch_id,
        sampling_strategy
    from {{ ref('fct_training_sample') }}

),

final as (

    select
        dataset_version,
        batch_id,
        count(*) as sample_count,
        sum(case when sampling_strategy = 'stratified' then 1 else 0 end) as stratified_count,
        sum(
            case when sampling_strategy like 'uncertainty%' then 1 else 0 end
        ) as uncertainty_count,
        sum(case when sampling_strategy like 'policy%' then 1 else 0 end) as policy_count,
        sum(case when sampling_strategy = 'weak_label' then 1 else 0 end) as weak_label_count,
        sum({{ feedback_flywheel.hex8_to_bigint(
            'substr(' ~ dbt.hash('training_sample_id') ~ ', 1, 8)'
        ) }}) as sample_fingerprint
    from sample
    group by dataset_version, batch_id

)

select * from final

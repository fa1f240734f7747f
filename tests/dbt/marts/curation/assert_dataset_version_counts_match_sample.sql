-- fct_dataset_versions records the size of each version's training sample; it must equal the rows
-- fct_training_sample holds for that version, per strategy.
with

versions as (

    select
        dataset_version,
        sample_count,
        stratified_count,
        uncertainty_count
    from {{ ref('fct_dataset_versions') }}

),

sample as (

    select
        dataset_version,
        sampling_strategy
    from {{ ref('fct_training_sample') }}

),

sample_counts as (

    select
        dataset_version,
        count(*) as sample_count,
        sum(case when sampling_strategy = 'stratified' then 1 else 0 end) as stratified_count,
        sum(
            case when sampling_strategy like 'uncertainty%' then 1 else 0 end
        ) as uncertainty_count
    from sample
    group by dataset_version

),

mismatched as (

    select
        versions.dataset_version,
        versions.sample_count as recorded_sample_count,
        versions.stratified_count as recorded_stratified_count,
        sample_counts.stratified_count as actual_stratified_count,
        versions.uncertainty_count as recorded_uncertainty_count,
        sample_counts.uncertainty_count as actual_uncertainty_count,
        coalesce(sample_counts.sample_count, 0) as actual_sample_count
    from versions
    left join sample_counts
        on versions.dataset_version = sample_counts.dataset_version
    where
        versions.sample_count <> coalesce(sample_counts.sample_count, 0)
        or versions.stratified_count <> coalesce(sample_counts.stratified_count, 0)
        or versions.uncertainty_count <> coalesce(sample_counts.uncertainty_count, 0)

)

select * from mismatched

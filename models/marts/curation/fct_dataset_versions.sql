{{
    config(
        materialized='incremental',
        unique_key='dataset_version',
        incremental_strategy=feedback_flywheel.flywheel_incremental_strategy(),
        on_schema_change='fail',
    )
}}

-- The catalogue of dataset versions: one row per batch, with the size of the Incremental Dataset
-- as of that batch, what the batch added and superseded, an order-independent fingerprint of its
-- rows, and the sampling settings its training sample was drawn with (so it can be rebuilt).
-- "New" for this model: the current batch's version.

{%- set batch_id = feedback_flywheel.batch_param('batch_id') %}

with

examples as (

    select * from {{ ref('fct_training_examples') }}

),

sample_versions as (

    select * from {{ ref('fct_training_sample_versions') }}
    where batch_id = '{{ batch_id }}'

),

version_rows as (

    select
        count(*) as example_count,
        sum(case when batch_id = '{{ batch_id }}' then 1 else 0 end) as examples_added,
        count(distinct label) as label_count,
        sum({{ feedback_flywheel.hex8_to_bigint(
            'substr(' ~ dbt.hash('training_example_id') ~ ', 1, 8)'
        ) }}) as example_fingerprint
    from examples
    where {{ feedback_flywheel.in_version_as_of(none, batch_id) }}

),

superseded as (

    select count(*) as examples_superseded
    from examples
    where superseded_in_batch_id = '{{ batch_id }}'

),

sampled as (

    -- One row even when the batch sampled nothing (then a sample of 0 rows).
    select
        coalesce(max(sample_count), 0) as sample_count,
        max(stratified_count) as stratified_count,
        max(uncertainty_count) as uncertainty_count,
        max(policy_count) as policy_count,
        max(weak_label_count) as weak_label_count,
        max(sample_fingerprint) as sample_fingerprint
    from sample_versions

),

final as (

    select
        'ds-{{ batch_id }}' as dataset_version,
        '{{ batch_id }}' as batch_id,
        {%- if feedback_flywheel.setting('stratify_by') %}
            {{ feedback_flywheel.sql_string(feedback_flywheel.setting('stratify_by')) }}
        {%- else %}
            cast(null as {{ dbt.type_string() }})
        {%- endif %} as stratify_by,
        {{ feedback_flywheel.sql_string(
            feedback_flywheel.setting('uncertainty_method')
        ) }} as uncertainty_method,
        version_rows.example_count,
        cast(coalesce(version_rows.examples_added, 0) as {{ dbt.type_bigint() }}) as examples_added,
        superseded.examples_superseded,
        version_rows.label_count,
        sampled.sample_count,
        cast(coalesce(sampled.stratified_count, 0) as {{ dbt.type_bigint() }}) as stratified_count,
        cast(coalesce(sampled.uncertainty_count, 0) as {{ dbt.type_bigint() }})
            as uncertainty_count,
        cast(coalesce(sampled.policy_count, 0) as {{ dbt.type_bigint() }}) as policy_count,
        cast(coalesce(sampled.weak_label_count, 0) as {{ dbt.type_bigint() }})
            as weak_label_count,
        {{ feedback_flywheel.sql_string(feedback_flywheel.setting('sampling_policy')) }}
            as sampling_policy,
        cast(
            {{ feedback_flywheel.setting('sampling_seed') }} as {{ dbt.type_bigint() }}
        ) as sampling_seed,
        cast(
            {{ feedback_flywheel.setting('stratified_quota_per_cell') }}
            as {{ dbt.type_bigint() }}
        )
            as stratified_quota_per_cell,
        cast(
            {{ feedback_flywheel.setting('uncertainty_budget') }} as {{ dbt.type_bigint() }}
        ) as uncertainty_budget,
        {%- if feedback_flywheel.setting('weak_label_signals') %}
            {{ feedback_flywheel.sql_string(
                feedback_flywheel.setting('weak_label_signals') | join(',')
            ) }}
        {%- else %}
            cast(null as {{ dbt.type_string() }})
        {%- endif %} as weak_label_signals,
        cast(
            {{ feedback_flywheel.setting('weak_label_budget') }} as {{ dbt.type_bigint() }}
        ) as weak_label_budget,
        cast(coalesce(version_rows.example_fingerprint, 0) as {{ dbt.type_string() }})
            as example_fingerprint,
        cast(coalesce(sampled.sample_fingerprint, 0) as {{ dbt.type_string() }})
            as sample_fingerprint,
        {{ feedback_flywheel.var_timestamp('batch_end') }} as as_of_at
    from version_rows
    cross join superseded
    cross join sampled

)

select * from final

{{
    config(
        materialized='incremental',
        unique_key=['batch_id', 'model_name', 'feature_name'],
        incremental_strategy=feedback_flywheel.flywheel_incremental_strategy(),
        on_schema_change='fail',
    )
}}

-- The contingency table of every categorical feature (configured inputs, predicted_label, label)
-- per model: reference vs current counts per bucket. Buckets: the var drift_top_k most frequent
-- reference categories (ties by category), __other__ (every other category seen in the reference
-- window, on both sides), __unseen__ (current values never seen in the reference window) and
-- __missing__ (no value). Only buckets with a count on either side are rows, so the table (less
-- __missing__) goes to scipy.stats.chi2_contingency as it is.
-- The values of the inference features come counted by (feature, value) with a count per window
-- (int_drift_values_counted); the current matured labels (fct_training_examples) are counted
-- here. One window pass over those counts ranks the reference categories.
-- "New" for this model: the current batch's rows. unique_key is (batch_id, model_name,
-- feature_name) rather than the row key drift_category_id, so a re-run replaces a feature's
-- whole table: a category that dropped out of the top k cannot linger from the first attempt.

{%- set batch_id = feedback_flywheel.batch_param('batch_id') %}
{%- set bounds = feedback_flywheel.drift_window_bounds() %}
{%- set label_bounds = feedback_flywheel.label_window_bounds() %}
{%- set top_k = feedback_flywheel.drift_int_var('drift_top_k', 1) %}

with

inference_value_counts as (

    select
        model_name,
        feature_name,
        feature_kind,
        string_value,
        ref_count,
        cur_count
    from {{ ref('int_drift_values_counted') }}
    where value_type = 'categorical'

),

current_labels as (

    -- The current matured label of every inference in the label windows (macro
    -- label_window_bounds: shifted back by the settle time, so they hold labels): label drift.
    select
        model_name,
        label,
        inference_logged_at
    from {{ ref('fct_training_examples') }}
    where
        is_current
        and inference_logged_at >= {{ label_bounds.reference_start_at }}
        and inference_logged_at < {{ label_bounds.current_end_at }}

),

label_values as (

    select
        model_name,
        label as string_value,
        case
            when inference_logged_at >= {{ label_bounds.current_start_at }} then 'current'
            else 'reference'
        end as window_side
    from current_labels

),

label_value_counts as (

    select
        model_name,
        'label' as feature_name,
        'label' as feature_kind,
        string_value,
        sum(case when window_side = 'reference' then 1 else 0 end) as ref_count,
        sum(case when window_side = 'current' then 1 else 0 end) as cur_count
    from label_values
    group by model_name, string_value

),

value_counts as (

    select * from inference_value_counts
    union all
    select * from label_value_counts

),

values_ranked as (

    select
        *,
        row_number() over (
            partition by model_name, feature_name
            order by
                case when string_value is null then 1 else 0 end asc,
                ref_count desc,
                string_value asc
        ) as reference_rank
    from value_counts

),

values_bucketed as (

    select
        model_name,
        feature_name,
        feature_kind,
        ref_count,
        cur_count,
        case
            when string_value is null then '__missing__'
            when ref_count = 0 then '__unseen__'
            when reference_rank <= {{ top_k }} then string_value
            else '__other__'
        end as category,
        case
            when string_value is not null and ref_count > 0 and reference_rank <= {{ top_k }}
                then reference_rank
        end as category_rank,
        case when string_value is not null and ref_count > 0 then 1 else 0 end as is_seen_ref,
        case when string_value is not null and cur_count > 0 then 1 else 0 end as is_seen_cur
    from values_ranked

),

buckets as (

    select
        model_name,
        feature_name,
        feature_kind,
        category,
        sum(ref_count) as n_ref,
        sum(cur_count) as n_cur,
        min(category_rank) as category_rank,
        sum(is_seen_ref) as distinct_values_ref,
        sum(is_seen_cur) as distinct_values_cur
    from values_bucketed
    group by model_name, feature_name, feature_kind, category

),

final as (

    select
        {{ feedback_flywheel.surrogate_key([
            "'" ~ batch_id ~ "'", 'model_name', 'feature_name', 'category',
        ]) }} as drift_category_id,
        '{{ batch_id }}' as batch_id,
        model_name,
        feature_name,
        feature_kind,
        category,
        cast(n_ref as {{ dbt.type_bigint() }}) as n_ref,
        cast(n_cur as {{ dbt.type_bigint() }}) as n_cur,
        cast(category_rank as integer) as category_rank,
        cast(distinct_values_ref as {{ dbt.type_bigint() }}) as distinct_values_ref,
        cast(distinct_values_cur as {{ dbt.type_bigint() }}) as distinct_values_cur,
        case
            when feature_kind = 'label' then {{ label_bounds['reference_start_at'] }}
            else {{ bounds['reference_start_at'] }}
        end as reference_start_at,
        case
            when feature_kind = 'label' then {{ label_bounds['reference_end_at'] }}
            else {{ bounds['reference_end_at'] }}
        end as reference_end_at,
        case
            when feature_kind = 'label' then {{ label_bounds['current_start_at'] }}
            else {{ bounds['current_start_at'] }}
        end as current_start_at,
        case
            when feature_kind = 'label' then {{ label_bounds['current_end_at'] }}
            else {{ bounds['current_end_at'] }}
        end as current_end_at
    from buckets

)

select * from final

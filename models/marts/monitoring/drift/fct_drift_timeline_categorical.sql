{{
    config(
        materialized='incremental',
        unique_key='drift_timeline_category_id',
        incremental_strategy=feedback_flywheel.flywheel_incremental_strategy(),
        on_schema_change='fail',
    )
}}

-- The drift timeline of every categorical feature (configured inputs and predicted_label): the
-- contingency table of each past day of the batch window (macro drift_timeline_days: a
-- backfill's history, none in a daily batch), evaluated at the day's end exactly as
-- fct_drift_categorical evaluates the watermark: the day's last drift_current_days days against
-- the drift_reference_days before them, from the day summaries (int_drift_values_daily), with
-- the same buckets (the var drift_top_k most frequent reference categories, ties by category;
-- __other__, __unseen__, __missing__). Only buckets with a count on either side are rows. The
-- chi-square test, shares and flags are the Python stage's (ml.drift_timeline).
-- "New" for this model: the current batch's rows (a re-run replaces them).

{%- set batch_id = feedback_flywheel.batch_param('batch_id') %}
{%- set top_k = feedback_flywheel.drift_int_var('drift_top_k', 1) %}
{%- set inputs = feedback_flywheel.drift_input_features() %}
{%- set builtins = feedback_flywheel.drift_builtin_features() %}
{%- set features = (inputs + builtins[:2])
    | selectattr('value_type', 'equalto', 'categorical') | list %}

with

{{ feedback_flywheel.drift_timeline_window_values(features) }}

value_counts as (

    select
        model_name,
        evaluation_date,
        feature_name,
        feature_kind,
        string_value,
        sum(ref_count) as ref_count,
        sum(cur_count) as cur_count
    from window_values
    group by model_name, evaluation_date, feature_name, feature_kind, string_value

),

values_ranked as (

    select
        *,
        row_number() over (
            partition by model_name, evaluation_date, feature_name
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
        evaluation_date,
        feature_name,
        feature_kind,
        ref_count,
        cur_count,
        case
            when string_value is null then '__missing__'
            when ref_count = 0 then '__unseen__'
            when reference_rank <= {{ top_k }} then string_value
            else '__other__'
        end as category
    from values_ranked

),

buckets as (

    select
        model_name,
        evaluation_date,
        feature_name,
        feature_kind,
        category,
        sum(ref_count) as n_ref,
        sum(cur_count) as n_cur
    from values_bucketed
    group by model_name, evaluation_date, feature_name, feature_kind, category

),

final as (

    select
        {{ feedback_flywheel.surrogate_key([
            "'" ~ batch_id ~ "'", 'model_name',
            'cast(evaluation_date as ' ~ dbt.type_string() ~ ')', 'feature_name', 'category',
        ]) }} as drift_timeline_category_id,
        '{{ batch_id }}' as batch_id,
        model_name,
        cast(evaluation_date as date) as evaluation_date,
        feature_name,
        feature_kind,
        category,
        cast(n_ref as {{ dbt.type_bigint() }}) as n_ref,
        cast(n_cur as {{ dbt.type_bigint() }}) as n_cur
    from buckets

)

select * from final

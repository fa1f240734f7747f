{{ config(materialized='table') }}

-- The daily series of every monitored feature (configured inputs, predicted_score and
-- predicted_label) per model, over the days the batch's drift windows and timeline reach: for a
-- numeric feature the count and exact sum of its values per day (category __value__) and the
-- count of missing ones (__missing__); for a categorical one the count of each value per day
-- (__missing__ for none). The Python stage locates the day a flagged change started from it
-- (ml.drift_timeline.change_point_date). A table, rebuilt each batch over the days it needs: the
-- earliest timeline day's reference start (or the watermark's) up to the watermark.

{%- set inputs = feedback_flywheel.drift_input_features() %}
{%- set builtins = feedback_flywheel.drift_builtin_features() %}
{%- set timeline = feedback_flywheel.drift_timeline_days('logged_date') %}
{%- set span = timeline.current_days + timeline.reference_days %}
{%- set batch_start = feedback_flywheel.var_timestamp('batch_start') %}
{%- set batch_end = feedback_flywheel.var_timestamp('batch_end') %}
{%- set first_day = dbt.dateadd('day', -span, dbt.date_trunc('day', batch_start)) %}
{%- set last_span_start = dbt.dateadd('day', -span, batch_end) %}

with

daily as (

    select
        model_name,
        logged_date,
        feature_name,
        feature_kind,
        value_type,
        string_value,
        numeric_value,
        value_count,
        -- the bound of the terms the exact sum of a day adds (macro exact_sum)
        coalesce(nullif(max(abs(numeric_value)) over (
            partition by model_name, feature_name, value_type, logged_date
        ), 0), 1.0) as value_scale
    from {{ ref('int_drift_values_daily') }}
    where
        ({{ feedback_flywheel.drift_typed_feature_filter(inputs + builtins[:2]) }})
        and cast(logged_date as timestamp) < {{ batch_end }}
        and cast(logged_date as timestamp) >= least(
            {{ first_day }},
            {{ dbt.date_trunc('day', last_span_start) }}
        )

),

numeric_days as (

    select
        model_name,
        logged_date,
        feature_name,
        feature_kind,
        value_type,
        case when numeric_value is null then '__missing__' else '__value__' end as category,
        sum(value_count) as value_count,
        {{ feedback_flywheel.exact_sum('value_count * numeric_value', 'value_scale') }}
            as value_sum
    from daily
    where value_type = 'numeric'
    group by
        model_name,
        logged_date,
        feature_name,
        feature_kind,
        value_type,
        case when numeric_value is null then '__missing__' else '__value__' end

),

categorical_days as (

    select
        model_name,
        logged_date,
        feature_name,
        feature_kind,
        value_type,
        coalesce(string_value, '__missing__') as category,
        sum(value_count) as value_count,
        cast(null as double) as value_sum
    from daily
    where value_type = 'categorical'
    group by
        model_name, logged_date, feature_name, feature_kind, value_type,
        coalesce(string_value, '__missing__')

),

profiled as (

    select * from numeric_days
    union all
    select * from categorical_days

),

final as (

    select
        {{ feedback_flywheel.surrogate_key([
            'model_name', 'cast(logged_date as ' ~ dbt.type_string() ~ ')',
            'feature_name', 'value_type', 'category',
        ]) }} as daily_profile_id,
        model_name,
        cast(logged_date as date) as logged_date,
        feature_name,
        feature_kind,
        value_type,
        category,
        cast(value_count as {{ dbt.type_bigint() }}) as value_count,
        cast(value_sum as double) as value_sum
    from profiled

)

select * from final

-- Every day summary of int_drift_values_daily counts exactly its typed values: per (model, day,
-- feature, value type), the sum of value_count equals the number of rows of
-- int_drift_values_typed logged that day, and no day or feature is in one and not the other.
-- The drift windows are merged from these sums, so a day counted short or twice would shift
-- every statistic that window feeds.
with

typed_days as (

    select
        model_name,
        cast(logged_at as date) as logged_date,
        feature_name,
        value_type
    from {{ ref('int_drift_values_typed') }}

),

typed as (

    select
        model_name,
        logged_date,
        feature_name,
        value_type,
        count(*) as typed_values
    from typed_days
    -- batch scope (macro batch_scope_filter): the days of the batch window plus lookback_days;
    -- `flywheel check --full` reads every day
    where {{ feedback_flywheel.batch_scope_filter('logged_date') }}
    group by model_name, logged_date, feature_name, value_type

),

counted as (

    select
        model_name,
        logged_date,
        feature_name,
        value_type,
        sum(value_count) as counted_values
    from {{ ref('int_drift_values_daily') }}
    where {{ feedback_flywheel.batch_scope_filter('logged_date') }}
    group by model_name, logged_date, feature_name, value_type

),

mismatched as (

    select
        typed.typed_values,
        counted.counted_values,
        coalesce(typed.model_name, counted.model_name) as model_name,
        coalesce(typed.logged_date, counted.logged_date) as logged_date,
        coalesce(typed.feature_name, counted.feature_name) as feature_name,
        coalesce(typed.value_type, counted.value_type) as value_type
    from typed
    full outer join counted
        on
            typed.model_name = counted.model_name
            and typed.logged_date = counted.logged_date
            and typed.feature_name = counted.feature_name
            and typed.value_type = counted.value_type
    where typed.typed_values is distinct from counted.counted_values

)

select * from mismatched

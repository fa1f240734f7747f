{{
    config(
        materialized='incremental',
        unique_key=['model_name', 'logged_date'],
        incremental_strategy=feedback_flywheel.flywheel_incremental_strategy(),
        on_schema_change='fail',
    )
}}

-- The typed monitored values counted per day: one row per (model, day logged, feature, value
-- type, value) with how many typed values of that day had it (the null value counts the missing
-- ones). The per-day summary every drift window is merged from: a window of whole days is a sum
-- of these rows, not a count over its typed rows again.
-- "New" for this model: the (model, day) of every value typed since the days here were last
-- counted: by this batch (its window and lookback, and late files), and by any batch after the
-- latest one that counted here (a batch that failed after typing values and before this model
-- ran: its values carry its own batch_id, and the next batch, with a new id, still counts their
-- days). Each such day is counted again from all its typed values and replaces the day's rows
-- (unique_key model_name, logged_date: the strategy deletes the day and inserts it), so a day is
-- exact whenever its typed values are: int_drift_values_typed is append-only, and a value is
-- typed once, by the first batch that sees its inference. A re-run of the batch counts the same
-- days to the same rows. Batch ids sort in time order (b + the window end).

{%- set batch_id = feedback_flywheel.batch_param('batch_id') %}

with

{% if is_incremental() %}
    touched_days as (

        select distinct
            model_name,
            cast(logged_at as date) as logged_date
        from {{ ref('int_drift_values_typed') }}
        where
            batch_id = '{{ batch_id }}'
            or batch_id > (
                select coalesce(max(counted.counted_by_batch_id), '')
                from {{ this }} as counted
            )

    ),
{% endif %}

typed_values as (

    select
        typed.model_name,
        cast(typed.logged_at as date) as logged_date,
        typed.feature_name,
        typed.feature_kind,
        typed.value_type,
        typed.string_value,
        typed.numeric_value
    from {{ ref('int_drift_values_typed') }} as typed
    {%- if is_incremental() %}
    inner join touched_days
        on
            typed.model_name = touched_days.model_name
            and cast(typed.logged_at as date) = touched_days.logged_date
    -- zone maps skip the history before the oldest day counted again
    where typed.logged_at >= (select min(touched_days.logged_date) from touched_days)
    {%- endif %}

),

final as (

    select
        model_name,
        logged_date,
        feature_name,
        feature_kind,
        value_type,
        string_value,
        numeric_value,
        count(*) as value_count,
        '{{ batch_id }}' as counted_by_batch_id
    from typed_values
    group by
        model_name,
        logged_date,
        feature_name,
        feature_kind,
        value_type,
        string_value,
        numeric_value

)

select * from final

-- KPI series by day served, per model version and over all versions of a model
-- (model_version '__all__'), on a dense calendar (a day without predictions is a row of zeros),
-- with rolling 7- and 28-day windows and the day-of-week seasonal profile with the residual after
-- it. Built from rpt_kpi_daily by summing its counts (never averaging its rates), so a window's
-- accuracy is its pooled correct / labelled. Small (days x versions): rebuilt whole each batch.

with

kpi_daily as (

    select
        model_name,
        model_version,
        kpi_date,
        inference_count,
        labelled_count,
        correct_count,
        thumbs_count,
        thumbs_up_count,
        rating_count,
        -- the day's rating total, from its exact mean; as a decimal, so sums over versions and
        -- windows are exact in any order and a re-run reproduces them bit for bit
        cast(round(coalesce(rating_mean * rating_count, 0), 6) as decimal(38, 6)) as rating_sum
    from {{ ref('rpt_kpi_daily') }}

),

series_days as (

    select * from kpi_daily

    union all

    select
        model_name,
        '__all__' as model_version,
        kpi_date,
        sum(inference_count) as inference_count,
        sum(labelled_count) as labelled_count,
        sum(correct_count) as correct_count,
        sum(thumbs_count) as thumbs_count,
        sum(thumbs_up_count) as thumbs_up_count,
        sum(rating_count) as rating_count,
        sum(rating_sum) as rating_sum
    from kpi_daily
    group by model_name, kpi_date

),

series_bounds as (

    select
        model_name,
        model_version,
        min(kpi_date) as first_date,
        max(kpi_date) as last_date
    from series_days
    group by model_name, model_version

),

digits as (

    select 0 as digit
    union all
    select 1
    union all
    select 2
    union all
    select 3
    union all
    select 4
    union all
    select 5
    union all
    select 6
    union all
    select 7
    union all
    select 8
    union all
    select 9

),

day_offsets as (

    -- 0 .. 99,999 days: far more than any history.
    select
        ones.digit + 10 * tens.digit + 100 * hundreds.digit + 1000 * thousands.digit
        + 10000 * ten_thousands.digit as day_offset
    from digits as ones
    cross join digits as tens
    cross join digits as hundreds
    cross join digits as thousands
    cross join digits as ten_thousands

),

calendar as (

    select
        series_bounds.model_name,
        series_bounds.model_version,
        cast(
            {{ dbt.dateadd('day', 'day_offsets.day_offset', 'series_bounds.first_date') }}
            as date
        ) as kpi_date
    from series_bounds
    inner join day_offsets
        on
            day_offsets.day_offset
            <= {{ dbt.datediff('series_bounds.first_date', 'series_bounds.last_date', 'day') }}

),

dense as (

    select
        calendar.model_name,
        calendar.model_version,
        calendar.kpi_date,
        {{ feedback_flywheel.iso_weekday('calendar.kpi_date') }} as iso_weekday,
        coalesce(series_days.inference_count, 0) as inference_count,
        coalesce(series_days.labelled_count, 0) as labelled_count,
        coalesce(series_days.correct_count, 0) as correct_count,
        coalesce(series_days.thumbs_count, 0) as thumbs_count,
        coalesce(series_days.thumbs_up_count, 0) as thumbs_up_count,
        coalesce(series_days.rating_count, 0) as rating_count,
        coalesce(series_days.rating_sum, cast(0 as decimal(38, 6))) as rating_sum
    from calendar
    left join series_days
        on
            calendar.model_name = series_days.model_name
            and calendar.model_version = series_days.model_version
            and calendar.kpi_date = series_days.kpi_date

),

windowed as (

    -- One row per calendar day, so "rows between 6 preceding" is exactly the last 7 days.
    select
        *,
        count(*) over seven_days as days_7d,
        sum(inference_count) over seven_days as inference_count_7d,
        sum(labelled_count) over seven_days as labelled_count_7d,
        sum(correct_count) over seven_days as correct_count_7d,
        count(*) over twenty_eight_days as days_28d,
        sum(inference_count) over twenty_eight_days as inference_count_28d,
        sum(labelled_count) over twenty_eight_days as labelled_count_28d,
        sum(correct_count) over twenty_eight_days as correct_count_28d,
        -- seasonal profile: the series' mean volume and pooled accuracy on this day of the week
        avg(inference_count * 1.0) over same_weekday as weekday_mean_inference_count,
        avg(inference_count * 1.0) over whole_series as mean_inference_count,
        sum(correct_count) over same_weekday as weekday_correct_count,
        sum(labelled_count) over same_weekday as weekday_labelled_count
    from dense
    window
        seven_days as (
            partition by model_name, model_version order by kpi_date
            rows between 6 preceding and current row
        ),
        twenty_eight_days as (
            partition by model_name, model_version order by kpi_date
            rows between 27 preceding and current row
        ),
        same_weekday as (partition by model_name, model_version, iso_weekday),
        whole_series as (partition by model_name, model_version)

),

final as (

    select
        {{ feedback_flywheel.surrogate_key(['model_name', 'model_version', 'kpi_date']) }}
            as kpi_trend_daily_id,
        model_name,
        model_version,
        cast(iso_weekday as integer) as iso_weekday,
        cast(inference_count as {{ dbt.type_bigint() }}) as inference_count,
        cast(labelled_count as {{ dbt.type_bigint() }}) as labelled_count,
        cast(correct_count as {{ dbt.type_bigint() }}) as correct_count,
        cast(thumbs_count as {{ dbt.type_bigint() }}) as thumbs_count,
        cast(thumbs_up_count as {{ dbt.type_bigint() }}) as thumbs_up_count,
        cast(rating_count as {{ dbt.type_bigint() }}) as rating_count,
        case when labelled_count > 0 then correct_count * 1.0 / labelled_count end as accuracy,
        {{ feedback_flywheel.wilson_lower('correct_count', 'labelled_count') }} as accuracy_lower,
        {{ feedback_flywheel.wilson_upper('correct_count', 'labelled_count') }} as accuracy_upper,
        case when thumbs_count > 0 then thumbs_up_count * 1.0 / thumbs_count end as thumbs_up_rate,
        {{ feedback_flywheel.wilson_lower('thumbs_up_count', 'thumbs_count') }}
            as thumbs_up_rate_lower,
        {{ feedback_flywheel.wilson_upper('thumbs_up_count', 'thumbs_count') }}
            as thumbs_up_rate_upper,
        case
            when rating_count > 0 then cast(rating_sum as double) / rating_count
        end as rating_mean,
        cast(days_7d as integer) as days_7d,
        cast(inference_count_7d as {{ dbt.type_bigint() }}) as inference_count_7d,
        cast(labelled_count_7d as {{ dbt.type_bigint() }}) as labelled_count_7d,
        cast(correct_count_7d as {{ dbt.type_bigint() }}) as correct_count_7d,
        case
            when labelled_count_7d > 0 then correct_count_7d * 1.0 / labelled_count_7d
        end as accuracy_7d,
        {{ feedback_flywheel.wilson_lower('correct_count_7d', 'labelled_count_7d') }}
            as accuracy_7d_lower,
        {{ feedback_flywheel.wilson_upper('correct_count_7d', 'labelled_count_7d') }}
            as accuracy_7d_upper,
        cast(days_28d as integer) as days_28d,
        cast(inference_count_28d as {{ dbt.type_bigint() }}) as inference_count_28d,
        cast(labelled_count_28d as {{ dbt.type_bigint() }}) as labelled_count_28d,
        cast(correct_count_28d as {{ dbt.type_bigint() }}) as correct_count_28d,
        case
            when labelled_count_28d > 0 then correct_count_28d * 1.0 / labelled_count_28d
        end as accuracy_28d,
        {{ feedback_flywheel.wilson_lower('correct_count_28d', 'labelled_count_28d') }}
            as accuracy_28d_lower,
        {{ feedback_flywheel.wilson_upper('correct_count_28d', 'labelled_count_28d') }}
            as accuracy_28d_upper,
        weekday_mean_inference_count as expected_inference_count,
        case
            when mean_inference_count > 0
                then weekday_mean_inference_count / mean_inference_count
        end as weekday_volume_index,
        inference_count - weekday_mean_inference_count as inference_count_residual,
        case
            when weekday_labelled_count > 0
                then weekday_correct_count * 1.0 / weekday_labelled_count
        end as expected_accuracy,
        case
            when labelled_count > 0 and weekday_labelled_count > 0
                then
                    correct_count * 1.0 / labelled_count
                    - weekday_correct_count * 1.0 / weekday_labelled_count
        end as accuracy_residual,
        iso_weekday >= 6 as is_weekend,
        kpi_date
    from windowed

)

select * from final

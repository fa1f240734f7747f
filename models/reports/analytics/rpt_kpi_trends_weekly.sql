-- KPI series by ISO week (weeks start on Monday), per model version and over all versions
-- ('__all__'): the daily counts of rpt_kpi_trends_daily summed over the week, so each rate is
-- pooled over the week's predictions, with Wilson intervals.

with

trends as (

    select
        model_name,
        model_version,
        inference_count,
        labelled_count,
        correct_count,
        thumbs_count,
        thumbs_up_count,
        rating_count,
        cast(round(coalesce(rating_mean * rating_count, 0), 6) as decimal(38, 6)) as rating_sum,
        cast({{ dbt.date_trunc('week', 'kpi_date') }} as date) as week_start_date
    from {{ ref('rpt_kpi_trends_daily') }}

),

weekly as (

    select
        model_name,
        model_version,
        week_start_date,
        count(*) as day_count,
        sum(inference_count) as inference_count,
        sum(labelled_count) as labelled_count,
        sum(correct_count) as correct_count,
        sum(thumbs_count) as thumbs_count,
        sum(thumbs_up_count) as thumbs_up_count,
        sum(rating_count) as rating_count,
        sum(rating_sum) as rating_sum
    from trends
    group by model_name, model_version, week_start_date

),

final as (

    select
        {{ feedback_flywheel.surrogate_key(['model_name', 'model_version', 'week_start_date']) }}
            as kpi_trend_weekly_id,
        model_name,
        model_version,
        cast(day_count as integer) as day_count,
        cast(inference_count as {{ dbt.type_bigint() }}) as inference_count,
        cast(labelled_count as {{ dbt.type_bigint() }}) as labelled_count,
        cast(correct_count as {{ dbt.type_bigint() }}) as correct_count,
        cast(thumbs_count as {{ dbt.type_bigint() }}) as thumbs_count,
        cast(thumbs_up_count as {{ dbt.type_bigint() }}) as thumbs_up_count,
        cast(rating_count as {{ dbt.type_bigint() }}) as rating_count,
        case
            when inference_count > 0 then labelled_count * 1.0 / inference_count
        end as labelled_share,
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
        week_start_date
    from weekly

)

select * from final

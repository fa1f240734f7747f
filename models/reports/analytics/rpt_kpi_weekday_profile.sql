-- The day-of-week seasonal profile of each KPI series (model version, or '__all__' versions):
-- the mean daily volume on each ISO weekday against the mean over all days, and the pooled
-- accuracy of the weekday against the series' pooled accuracy, with a Wilson interval. Calendar
-- days without predictions count as zero volume (rpt_kpi_trends_daily is dense).

with

trends as (

    select
        model_name,
        model_version,
        iso_weekday,
        is_weekend,
        inference_count,
        labelled_count,
        correct_count
    from {{ ref('rpt_kpi_trends_daily') }}

),

per_weekday as (

    select
        model_name,
        model_version,
        iso_weekday,
        is_weekend,
        count(*) as day_count,
        sum(inference_count) as inference_count,
        sum(labelled_count) as labelled_count,
        sum(correct_count) as correct_count
    from trends
    group by model_name, model_version, iso_weekday, is_weekend

),

per_series as (

    select
        model_name,
        model_version,
        count(*) as day_count,
        sum(inference_count) as inference_count,
        sum(labelled_count) as labelled_count,
        sum(correct_count) as correct_count
    from trends
    group by model_name, model_version

),

final as (

    select
        {{ feedback_flywheel.surrogate_key([
            'per_weekday.model_name', 'per_weekday.model_version', 'per_weekday.iso_weekday',
        ]) }} as kpi_weekday_profile_id,
        per_weekday.model_name,
        per_weekday.model_version,
        cast(per_weekday.iso_weekday as integer) as iso_weekday,
        cast(per_weekday.day_count as integer) as day_count,
        cast(per_weekday.inference_count as {{ dbt.type_bigint() }}) as inference_count,
        cast(per_weekday.labelled_count as {{ dbt.type_bigint() }}) as labelled_count,
        cast(per_weekday.correct_count as {{ dbt.type_bigint() }}) as correct_count,
        per_weekday.inference_count * 1.0 / per_weekday.day_count as mean_inference_count,
        per_series.inference_count * 1.0 / per_series.day_count as series_mean_inference_count,
        case
            when per_series.inference_count > 0
                then
                    (per_weekday.inference_count * 1.0 / per_weekday.day_count)
                    / (per_series.inference_count * 1.0 / per_series.day_count)
        end as volume_index,
        case
            when per_weekday.labelled_count > 0
                then per_weekday.correct_count * 1.0 / per_weekday.labelled_count
        end as accuracy,
        {{ feedback_flywheel.wilson_lower(
            'per_weekday.correct_count', 'per_weekday.labelled_count'
        ) }} as accuracy_lower,
        {{ feedback_flywheel.wilson_upper(
            'per_weekday.correct_count', 'per_weekday.labelled_count'
        ) }} as accuracy_upper,
        case
            when per_series.labelled_count > 0
                then per_series.correct_count * 1.0 / per_series.labelled_count
        end as series_accuracy,
        case
            when per_weekday.labelled_count > 0 and per_series.correct_count > 0
                then
                    (per_weekday.correct_count * 1.0 / per_weekday.labelled_count)
                    / (per_series.correct_count * 1.0 / per_series.labelled_count)
        end as accuracy_index,
        per_weekday.is_weekend
    from per_weekday
    inner join per_series
        on
            per_weekday.model_name = per_series.model_name
            and per_weekday.model_version = per_series.model_version

)

select * from final

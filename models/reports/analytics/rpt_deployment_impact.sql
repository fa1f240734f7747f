-- What each deployment changed: KPIs of the predictions served in a window before the deployment
-- against a window after it, overall and per segment, with the difference, its 95% interval and
-- whether it is significant. "Same weekdays": each window holds the days with predictions
-- within var deployment_impact_days calendar days of the deployment (stopping at the neighbouring
-- deployments of the model), and per ISO weekday both windows keep only as many days as the
-- poorer side has (the days nearest the deployment), so both windows have the same weekday mix
-- and a weekly rhythm cannot pose as an effect. The day of a deployment is left out unless it
-- happened at 00:00 UTC (it would mix both sides). Counts are summed over every version served.

{%- set window_days = feedback_flywheel.setting('deployment_impact_days') %}
{%- set min_count = feedback_flywheel.setting('bias_min_group_count') %}

with

deployments as (

    -- One row per registered version (dim_model_versions: the latest statement of a version
    -- gives its deployed_at).
    select
        model_name,
        model_version,
        deployed_at
    from {{ ref('dim_model_versions') }}
    where model_name is not null and model_version is not null and deployed_at is not null

),

deployment_days as (

    select
        model_name,
        model_version,
        deployed_at,
        cast(deployed_at as date) as before_end_date,
        case
            when deployed_at = cast(cast(deployed_at as date) as timestamp)
                then cast(deployed_at as date)
            else cast({{ dbt.dateadd('day', 1, 'cast(deployed_at as date)') }} as date)
        end as after_start_date
    from deployments

),

deployment_windows as (

    -- A window never reaches past the neighbouring deployment of the same model.
    select
        {{ feedback_flywheel.surrogate_key(['model_name', 'model_version', 'deployed_at']) }}
            as deployment_id,
        model_name,
        model_version,
        deployed_at,
        before_end_date,
        after_start_date,
        lag(after_start_date) over (
            partition by model_name order by deployed_at, model_version
        ) as previous_after_start_date,
        lead(before_end_date) over (
            partition by model_name order by deployed_at, model_version
        ) as next_before_end_date
    from deployment_days

),

outcomes as (

    select * from {{ ref('fct_segment_outcomes_daily') }}

),

served_days as (

    select
        model_name,
        served_date,
        {{ feedback_flywheel.iso_weekday('served_date') }} as iso_weekday
    from outcomes
    where segment_attribute = '__overall__'
    group by model_name, served_date

),

window_days as (

    select
        deployment_windows.deployment_id,
        served_days.model_name,
        served_days.served_date,
        served_days.iso_weekday,
        case
            when served_days.served_date < deployment_windows.before_end_date then 'before'
            else 'after'
        end as side,
        case
            when served_days.served_date < deployment_windows.before_end_date
                then {{ dbt.datediff(
                    'served_days.served_date', 'deployment_windows.before_end_date', 'day'
                ) }}
            else {{ dbt.datediff(
                'deployment_windows.after_start_date', 'served_days.served_date', 'day'
            ) }}
        end as days_from_deployment
    from deployment_windows
    inner join served_days
        on deployment_windows.model_name = served_days.model_name
    where
        (
            served_days.served_date < deployment_windows.before_end_date
            and served_days.served_date >= {{ dbt.dateadd(
                'day', -window_days, 'deployment_windows.before_end_date'
            ) }}
            and (
                deployment_windows.previous_after_start_date is null
                or served_days.served_date >= deployment_windows.previous_after_start_date
            )
        )
        or (
            served_days.served_date >= deployment_windows.after_start_date
            and served_days.served_date < {{ dbt.dateadd(
                'day', window_days, 'deployment_windows.after_start_date'
            ) }}
            and (
                deployment_windows.next_before_end_date is null
                or served_days.served_date < deployment_windows.next_before_end_date
            )
        )

),

window_days_ranked as (

    select
        *,
        row_number() over (
            partition by deployment_id, side, iso_weekday order by days_from_deployment
        ) as weekday_rank,
        sum(case when side = 'before' then 1 else 0 end) over (
            partition by deployment_id, iso_weekday
        ) as before_weekday_days,
        sum(case when side = 'after' then 1 else 0 end) over (
            partition by deployment_id, iso_weekday
        ) as after_weekday_days
    from window_days

),

matched_days as (

    select
        deployment_id,
        model_name,
        served_date,
        side
    from window_days_ranked
    where weekday_rank <= least(before_weekday_days, after_weekday_days)

),

matched_day_counts as (

    -- The window's days, counted once per deployment and side (a sparse segment without
    -- predictions on one of the days still compares the same days).
    select
        deployment_id,
        side,
        count(distinct served_date) as day_count,
        min(served_date) as first_date,
        max(served_date) as last_date
    from matched_days
    group by deployment_id, side

),

window_totals as (

    select
        matched_days.deployment_id,
        matched_days.side,
        outcomes.segment_attribute,
        outcomes.segment_value,
        max(matched_day_counts.day_count) as day_count,
        max(matched_day_counts.first_date) as first_date,
        max(matched_day_counts.last_date) as last_date,
        sum(outcomes.predicted_count) as inference_count,
        sum(outcomes.labelled_predicted_count) as labelled_count,
        sum(outcomes.true_positive_count) as correct_count,
        sum(outcomes.thumbs_count) as thumbs_count,
        sum(outcomes.thumbs_up_count) as thumbs_up_count,
        sum(outcomes.rating_count) as rating_count,
        sum(outcomes.rating_sum) as rating_sum,
        sum(outcomes.rating_sum_squares) as rating_sum_squares
    from matched_days
    inner join matched_day_counts
        on
            matched_days.deployment_id = matched_day_counts.deployment_id
            and matched_days.side = matched_day_counts.side
    inner join outcomes
        on
            matched_days.model_name = outcomes.model_name
            and matched_days.served_date = outcomes.served_date
    group by
        matched_days.deployment_id, matched_days.side, outcomes.segment_attribute,
        outcomes.segment_value

),

window_metrics as (

    -- Long format: one row per window side, segment and metric; proportions carry successes and
    -- trials, the mean carries its sums.
    select
        deployment_id,
        side,
        segment_attribute,
        segment_value,
        day_count,
        first_date,
        last_date,
        inference_count,
        'accuracy' as metric,
        'proportion' as metric_kind,
        labelled_count as trials,
        correct_count * 1.0 as successes,
        cast(null as double) as sum_squares
    from window_totals

    union all

    select
        deployment_id,
        side,
        segment_attribute,
        segment_value,
        day_count,
        first_date,
        last_date,
        inference_count,
        'thumbs_up_rate' as metric,
        'proportion' as metric_kind,
        thumbs_count as trials,
        thumbs_up_count * 1.0 as successes,
        cast(null as double) as sum_squares
    from window_totals

    union all

    select
        deployment_id,
        side,
        segment_attribute,
        segment_value,
        day_count,
        first_date,
        last_date,
        inference_count,
        'rating_mean' as metric,
        'mean' as metric_kind,
        rating_count as trials,
        rating_sum as successes,
        rating_sum_squares as sum_squares
    from window_totals

),

paired as (

    select
        deployment_windows.deployment_id,
        deployment_windows.model_name,
        deployment_windows.model_version,
        after_side.segment_attribute,
        after_side.segment_value,
        after_side.metric,
        after_side.metric_kind,
        before_side.day_count as before_day_count,
        before_side.first_date as before_first_date,
        before_side.last_date as before_last_date,
        before_side.inference_count as before_inference_count,
        before_side.trials as before_trials,
        before_side.successes as before_successes,
        before_side.sum_squares as before_sum_squares,
        after_side.day_count as after_day_count,
        after_side.first_date as after_first_date,
        after_side.last_date as after_last_date,
        after_side.inference_count as after_inference_count,
        after_side.trials as after_trials,
        after_side.successes as after_successes,
        after_side.sum_squares as after_sum_squares,
        deployment_windows.deployed_at
    from deployment_windows
    inner join window_metrics as after_side
        on
            deployment_windows.deployment_id = after_side.deployment_id
            and after_side.side = 'after'
    inner join window_metrics as before_side
        on
            after_side.deployment_id = before_side.deployment_id
            and after_side.segment_attribute = before_side.segment_attribute
            and after_side.segment_value = before_side.segment_value
            and after_side.metric = before_side.metric
            and before_side.side = 'before'

),

moments as (

    -- Means and their sampling variances (sample variance / n) for the mean metric.
    select
        *,
        case when before_trials > 0 then before_successes / before_trials end as before_value,
        case when after_trials > 0 then after_successes / after_trials end as after_value,
        case
            when metric_kind = 'mean' and before_trials > 1
                then {{ feedback_flywheel.mean_sampling_variance(
                    'before_successes', 'before_sum_squares', 'before_trials'
                ) }}
        end as before_mean_variance,
        case
            when metric_kind = 'mean' and after_trials > 1
                then {{ feedback_flywheel.mean_sampling_variance(
                    'after_successes', 'after_sum_squares', 'after_trials'
                ) }}
        end as after_mean_variance
    from paired

),

proportions_compared as (

    -- Wilson intervals per side; Newcombe's interval and the pooled z for the difference.
    select
        *,
        after_value - before_value as difference,
        {{ feedback_flywheel.wilson_lower('before_successes', 'before_trials') }} as before_lower,
        {{ feedback_flywheel.wilson_upper('before_successes', 'before_trials') }} as before_upper,
        {{ feedback_flywheel.wilson_lower('after_successes', 'after_trials') }} as after_lower,
        {{ feedback_flywheel.wilson_upper('after_successes', 'after_trials') }} as after_upper,
        {{ feedback_flywheel.newcombe_lower(
            'after_successes', 'after_trials', 'before_successes', 'before_trials'
        ) }} as difference_lower,
        {{ feedback_flywheel.newcombe_upper(
            'after_successes', 'after_trials', 'before_successes', 'before_trials'
        ) }} as difference_upper,
        {{ feedback_flywheel.two_proportion_z(
            'after_successes', 'after_trials', 'before_successes', 'before_trials'
        ) }} as z_statistic
    from moments
    where metric_kind = 'proportion'

),

means_compared as (

    -- Normal intervals per side; the Welch (unequal variances) normal interval and z.
    select
        *,
        after_value - before_value as difference,
        {{ feedback_flywheel.normal_interval_lower('before_value', 'before_mean_variance') }}
            as before_lower,
        {{ feedback_flywheel.normal_interval_upper('before_value', 'before_mean_variance') }}
            as before_upper,
        {{ feedback_flywheel.normal_interval_lower('after_value', 'after_mean_variance') }}
            as after_lower,
        {{ feedback_flywheel.normal_interval_upper('after_value', 'after_mean_variance') }}
            as after_upper,
        {{ feedback_flywheel.welch_difference_lower(
            'after_value', 'after_mean_variance', 'before_value', 'before_mean_variance'
        ) }} as difference_lower,
        {{ feedback_flywheel.welch_difference_upper(
            'after_value', 'after_mean_variance', 'before_value', 'before_mean_variance'
        ) }} as difference_upper,
        {{ feedback_flywheel.welch_z(
            'after_value', 'after_mean_variance', 'before_value', 'before_mean_variance'
        ) }} as z_statistic
    from moments
    where metric_kind = 'mean'

),

compared as (

    select * from proportions_compared
    union all
    select * from means_compared

),

final as (

    select
        {{ feedback_flywheel.surrogate_key([
            'deployment_id', 'segment_attribute', 'segment_value', 'metric',
        ]) }} as deployment_impact_id,
        deployment_id,
        model_name,
        model_version,
        segment_attribute,
        segment_value,
        metric,
        metric_kind,
        cast(before_day_count as integer) as before_day_count,
        cast(after_day_count as integer) as after_day_count,
        cast(before_inference_count as {{ dbt.type_bigint() }}) as before_inference_count,
        cast(after_inference_count as {{ dbt.type_bigint() }}) as after_inference_count,
        cast(before_trials as {{ dbt.type_bigint() }}) as before_trials,
        cast(after_trials as {{ dbt.type_bigint() }}) as after_trials,
        cast(before_value as double) as before_value,
        cast(before_lower as double) as before_lower,
        cast(before_upper as double) as before_upper,
        cast(after_value as double) as after_value,
        cast(after_lower as double) as after_lower,
        cast(after_upper as double) as after_upper,
        cast(difference as double) as difference,
        cast(difference_lower as double) as difference_lower,
        cast(difference_upper as double) as difference_upper,
        cast(z_statistic as double) as z_statistic,
        cast({{ feedback_flywheel.normal_two_sided_p('z_statistic') }} as double) as p_value,
        coalesce(
            before_trials >= {{ min_count }} and after_trials >= {{ min_count }}
            and (difference_lower > 0 or difference_upper < 0),
            false
        ) as is_significant,
        before_first_date,
        before_last_date,
        after_first_date,
        after_last_date,
        deployed_at
    from compared

)

select * from final

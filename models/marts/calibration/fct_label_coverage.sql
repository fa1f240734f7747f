{{ config(materialized='table') }}

-- Label coverage by age: of the accepted predictions served at least N days before the batch
-- end, the share that had a ground-truth label (label or correction, not retracted) received
-- within N days of being served, for N = 1 .. var label_coverage_max_days; per model over the
-- predictions served in the last var label_coverage_days, and per model and ISO week served.
-- A prediction younger than N days is not counted at age N (its label could still come), so
-- each age is measured on the predictions old enough to show it. fct_label_maturation reads the
-- overall curve to derive the maturation window. Rebuilt each batch (a bounded window).

{%- set batch_end = feedback_flywheel.var_timestamp('batch_end') %}
{%- set max_age = feedback_flywheel.setting('label_coverage_max_days') %}
{%- set history_start = dbt.dateadd(
    'day', -feedback_flywheel.setting('label_coverage_days'), batch_end
) %}
{%- set min_count = feedback_flywheel.setting('fidelity_min_group_count') %}

with

predictions as (

    select
        inference_id,
        model_name,
        logged_at
    from {{ ref('int_inferences_validated') }}
    where
        is_accepted
        and logged_at >= {{ history_start }}
        and logged_at < {{ batch_end }}

),

first_labels as (

    select
        inference_id,
        min(received_at) as label_received_at
    from {{ ref('fct_feedback') }}
    where
        is_ground_truth
        and not is_retracted
        and received_at < {{ batch_end }}
        and inference_logged_at >= {{ history_start }}
    group by inference_id

),

aged as (

    -- whole days since serving (capped: older than max_age counts at every age) and the label's
    -- delay rounded up to whole days (labelled within N days <=> delay_days <= N), both from
    -- the elapsed microseconds (a count of second boundaries would be off at a day's edge)
    select
        predictions.model_name,
        cast({{ dbt.date_trunc('week', 'predictions.logged_at') }} as date)
            as served_week_start_date,
        least(
            floor(
                {{ dbt.datediff('predictions.logged_at', batch_end, 'microsecond') }}
                / 86400000000.0
            ),
            {{ max_age }}
        ) as age_days,
        case
            -- greatest() skips nulls on some engines: an unlabelled prediction stays null here
            when first_labels.label_received_at is not null
                then greatest(
                    ceil({{ dbt.datediff(
                        'predictions.logged_at', 'first_labels.label_received_at', 'microsecond'
                    ) }} / 86400000000.0),
                    0
                )
        end as delay_days
    from predictions
    left join first_labels on predictions.inference_id = first_labels.inference_id

),

histogram as (

    select
        model_name,
        served_week_start_date,
        age_days,
        delay_days,
        count(*) as prediction_count
    from aged
    group by model_name, served_week_start_date, age_days, delay_days

),

ages as (

    {%- for age in range(1, max_age + 1) %}
        select {{ age }} as age_days
        {%- if not loop.last %}
            union all
        {%- endif %}
    {%- else %}
        select cast(null as integer) as age_days where false
    {%- endfor %}

),

by_week as (

    select
        histogram.model_name,
        'week' as breakdown,
        histogram.served_week_start_date,
        ages.age_days,
        sum(
            case when histogram.age_days >= ages.age_days then histogram.prediction_count else 0 end
        ) as eligible_count,
        sum(
            case
                when histogram.age_days >= ages.age_days and histogram.delay_days <= ages.age_days
                    then histogram.prediction_count
                else 0
            end
        ) as labelled_count
    from histogram
    cross join ages
    group by histogram.model_name, histogram.served_week_start_date, ages.age_days

),

overall as (

    select
        model_name,
        'overall' as breakdown,
        cast(null as date) as served_week_start_date,
        age_days,
        sum(eligible_count) as eligible_count,
        sum(labelled_count) as labelled_count
    from by_week
    group by model_name, age_days

),

curves as (

    select * from overall
    union all
    select * from by_week

),

final as (

    select
        {{ feedback_flywheel.surrogate_key([
            'model_name', 'breakdown', 'served_week_start_date', 'age_days'
        ]) }} as label_coverage_id,
        {{ feedback_flywheel.sql_string(feedback_flywheel.batch_param('batch_id')) }} as batch_id,
        model_name,
        breakdown,
        served_week_start_date,
        cast(age_days as integer) as age_days,
        cast(eligible_count as {{ dbt.type_bigint() }}) as eligible_count,
        cast(labelled_count as {{ dbt.type_bigint() }}) as labelled_count,
        eligible_count < {{ min_count }} as is_suppressed,
        case
            when eligible_count > 0 then cast(labelled_count as double) / eligible_count
        end as coverage,
        {{ feedback_flywheel.wilson_lower('labelled_count', 'eligible_count') }} as coverage_lower,
        {{ feedback_flywheel.wilson_upper('labelled_count', 'eligible_count') }} as coverage_upper
    from curves
    where eligible_count > 0

)

select * from final

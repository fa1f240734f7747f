-- Estimated accuracy beside realised accuracy: each estimate a batch made for a window before its
-- labels arrived (fct_performance_estimates), and what the matured labels of that window now say
-- (with how much of the window is labelled). Rebuilt each batch: realised values fill in as
-- labels mature.

with

estimates as (

    select * from {{ ref('fct_performance_estimates') }}

),

examples as (

    select
        model_name,
        model_version,
        is_correct,
        inference_logged_at
    from {{ ref('fct_training_examples') }}
    where is_current

),

realised as (

    select
        estimates.performance_estimate_id,
        count(examples.is_correct) as labelled_count,
        sum(case when examples.is_correct then 1 else 0 end) as correct_count
    from estimates
    left join examples
        on
            estimates.model_name = examples.model_name
            and estimates.model_version = examples.model_version
            and estimates.window_start_at <= examples.inference_logged_at
            and estimates.window_end_at > examples.inference_logged_at
    group by estimates.performance_estimate_id

),

final as (

    select
        estimates.performance_estimate_id,
        estimates.batch_id,
        estimates.model_name,
        estimates.model_version,
        estimates.estimate_method,
        estimates.predictions,
        cast(realised.labelled_count as {{ dbt.type_bigint() }}) as labelled_count,
        estimates.estimated_accuracy,
        estimates.uncalibrated_estimate,
        estimates.reference_accuracy,
        case
            when realised.labelled_count > 0
                then realised.correct_count * 1.0 / realised.labelled_count
        end as realised_accuracy,
        {{ feedback_flywheel.wilson_lower('realised.correct_count', 'realised.labelled_count') }}
            as realised_accuracy_lower,
        {{ feedback_flywheel.wilson_upper('realised.correct_count', 'realised.labelled_count') }}
            as realised_accuracy_upper,
        realised.labelled_count * 1.0 / nullif(estimates.predictions, 0) as labelled_share,
        estimates.window_start_at,
        estimates.window_end_at
    from estimates
    inner join realised
        on estimates.performance_estimate_id = realised.performance_estimate_id

)

select * from final

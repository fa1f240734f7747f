{{
    config(
        materialized='incremental',
        unique_key='performance_estimate_id',
        incremental_strategy=feedback_flywheel.flywheel_incremental_strategy(),
        on_schema_change='fail',
    )
}}

-- Confidence-based estimated accuracy of each batch's drift window per model version, made
-- before that window's labels arrive: every prediction counts with the accuracy its
-- predicted_score bin had on the reference window's matured labels (the bin's mean score where
-- the reference has no label in it), from fct_calibration_bins. Built here, in the batch's own
-- build, so a re-run of the batch rebuilds it with everything else and the serving copy of a
-- batch holds its estimates. "New" for this model: the current batch's rows.

{%- set batch_id = feedback_flywheel.batch_param('batch_id') %}

with

bins as (

    select * from {{ ref('fct_calibration_bins') }}
    where batch_id = {{ feedback_flywheel.sql_string(batch_id) }}

),

per_bin as (

    select
        *,
        case
            when reference_labelled > 0 then reference_correct * 1.0 / reference_labelled
            when current_predictions > 0 then current_score_sum / current_predictions
        end as bin_accuracy
    from bins

),

per_version as (

    select
        model_name,
        model_version,
        sum(coalesce(current_predictions, 0)) as predictions,
        sum(current_predictions * bin_accuracy) as weighted_correct,
        sum(current_score_sum) as score_sum,
        sum(coalesce(reference_correct, 0)) as reference_correct,
        sum(coalesce(reference_labelled, 0)) as reference_labelled,
        min(current_start_at) as window_start_at,
        max(current_end_at) as window_end_at
    from per_bin
    group by model_name, model_version
    having sum(coalesce(current_predictions, 0)) > 0

),

final as (

    select
        {{ feedback_flywheel.surrogate_key([
            feedback_flywheel.sql_string(batch_id), 'model_name', 'model_version'
        ]) }} as performance_estimate_id,
        {{ feedback_flywheel.sql_string(batch_id) }} as batch_id,
        model_name,
        model_version,
        'score_bin_calibration' as estimate_method,
        cast(predictions as {{ dbt.type_bigint() }}) as predictions,
        cast(reference_labelled as {{ dbt.type_bigint() }}) as reference_labelled,
        cast(
            case when reference_labelled > 0 then weighted_correct / predictions end as double
        ) as estimated_accuracy,
        cast(score_sum / predictions as double) as uncalibrated_estimate,
        cast(
            case when reference_labelled > 0 then reference_correct * 1.0 / reference_labelled end
            as double
        ) as reference_accuracy,
        window_start_at,
        window_end_at
    from per_version

)

select * from final

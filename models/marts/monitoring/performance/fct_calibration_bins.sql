{{
    config(
        materialized='incremental',
        unique_key='calibration_bin_id',
        incremental_strategy=feedback_flywheel.flywheel_incremental_strategy(),
        on_schema_change='fail',
    )
}}

-- Confidence calibration per model version, for estimating accuracy before labels arrive: for
-- each predicted_score bin, how often the reference window's labelled predictions were right,
-- and how many predictions the current drift window made in that bin. The estimate is
-- sum(current predictions x reference accuracy) / current predictions (done by the Python stage).
-- Reference = the performance reference window (matured labels; it ends the model's label
-- maturation window plus var performance_current_days before the watermark, as in
-- fct_performance_windows); current = the drift window.
-- "New" for this model: the current batch's rows.

{%- set batch_id = feedback_flywheel.batch_param('batch_id') %}
{%- set batch_end = feedback_flywheel.var_timestamp('batch_end') %}
{%- set bins = feedback_flywheel.setting('calibration_bins') %}
{%- set drift_current_days = feedback_flywheel.setting('drift_current_days') %}
{%- set drift_current_start = dbt.dateadd('day', -drift_current_days, batch_end) %}
{%- set bounds = feedback_flywheel.performance_window_bounds(
    feedback_flywheel.maturation_days_or_default('maturation.maturation_days')
) %}

with

maturation as (

    {{ feedback_flywheel.label_maturation_of_batch() }}

),

labelled_examples as (

    select
        training_examples.model_name,
        training_examples.model_version,
        training_examples.predicted_score,
        training_examples.is_correct
    from {{ ref('fct_training_examples') }} as training_examples
    left join maturation on training_examples.model_name = maturation.model_name
    where
        training_examples.is_current
        and training_examples.inference_logged_at >= {{ bounds.earliest_at }}
        and training_examples.inference_logged_at >= {{ bounds.reference_start_at }}
        and training_examples.inference_logged_at < {{ bounds.current_start_at }}

),

current_inferences as (

    select
        model_name,
        model_version,
        predicted_score
    from {{ ref('int_inferences_validated') }}
    where
        is_accepted
        and logged_at >= {{ drift_current_start }}
        and logged_at < {{ batch_end }}

),

reference as (

    select
        model_name,
        model_version,
        least(cast(floor(predicted_score * {{ bins }}) as integer), {{ bins - 1 }}) as score_bin,
        count(*) as reference_labelled,
        sum(case when is_correct then 1 else 0 end) as reference_correct
    from labelled_examples
    group by 1, 2, 3

),

current_predictions as (

    select
        model_name,
        model_version,
        least(cast(floor(predicted_score * {{ bins }}) as integer), {{ bins - 1 }}) as score_bin,
        count(*) as current_predictions,
        {{ feedback_flywheel.exact_sum('predicted_score', 'cast(1 as double)') }}
            as current_score_sum
    from current_inferences
    group by 1, 2, 3

),

joined as (

    select
        coalesce(reference.model_name, current_predictions.model_name) as model_name,
        coalesce(reference.model_version, current_predictions.model_version) as model_version,
        coalesce(reference.score_bin, current_predictions.score_bin) as score_bin,
        coalesce(reference.reference_labelled, 0) as reference_labelled,
        coalesce(reference.reference_correct, 0) as reference_correct,
        coalesce(current_predictions.current_predictions, 0) as current_predictions,
        coalesce(current_predictions.current_score_sum, 0) as current_score_sum
    from reference
    full outer join current_predictions
        on
            reference.model_name = current_predictions.model_name
            and reference.model_version = current_predictions.model_version
            and reference.score_bin = current_predictions.score_bin

),

final as (

    select
        {{ feedback_flywheel.surrogate_key([
            "'" ~ batch_id ~ "'", 'model_name', 'model_version', 'score_bin'
        ]) }} as calibration_bin_id,
        '{{ batch_id }}' as batch_id,
        model_name,
        model_version,
        cast(score_bin as {{ dbt.type_bigint() }}) as score_bin,
        cast(reference_labelled as {{ dbt.type_bigint() }}) as reference_labelled,
        cast(reference_correct as {{ dbt.type_bigint() }}) as reference_correct,
        cast(current_predictions as {{ dbt.type_bigint() }}) as current_predictions,
        cast(current_score_sum as double) as current_score_sum,
        {{ drift_current_start }} as current_start_at,
        {{ batch_end }} as current_end_at
    from joined

)

select * from final

{{
    config(
        materialized='incremental',
        unique_key='kpi_daily_id',
        incremental_strategy=feedback_flywheel.flywheel_incremental_strategy(),
        on_schema_change='fail',
    )
}}

-- Daily KPIs per model version, by the day the prediction was served. Labelled metrics use only
-- matured labels (fct_training_examples, current rows); every rate has a Wilson 95% interval and
-- every mean a normal-approximation 95% interval.
-- "New" for this model: the days this batch changed anything on (new inferences, training examples
-- added or superseded, feedback accepted or retracted); those days are recomputed whole, so a
-- label that arrives weeks late still updates the day it belongs to.

{%- set batch_end = feedback_flywheel.var_timestamp('batch_end') %}
{%- set z = feedback_flywheel.z95() %}

with

inferences_validated as (

    select
        model_name,
        model_version,
        is_accepted,
        logged_at
    from {{ ref('int_inferences_validated') }}
    where logged_at < {{ batch_end }}

),

training_examples as (

    select
        model_name,
        model_version,
        label,
        predicted_label,
        batch_id,
        superseded_in_batch_id,
        is_current,
        inference_logged_at
    from {{ ref('fct_training_examples') }}

),

accepted_feedback as (

    select
        model_name,
        model_version,
        event_type,
        batch_id,
        value_numeric,
        is_retracted,
        inference_logged_at,
        received_at
    from {{ ref('fct_feedback') }}

),

{% if is_incremental() %}
changed_days as (

    {{ feedback_flywheel.days_changed_by_batch(
        'kpi_date', 'inferences_validated', 'training_examples', 'accepted_feedback'
    ) }}

),
{% endif %}

inferences as (

    select
        model_name,
        model_version,
        cast(logged_at as date) as kpi_date
    from inferences_validated
    where
        is_accepted
    {%- if is_incremental() %}
            and cast(logged_at as date) in (select changed_days.kpi_date from changed_days)
        {%- endif %}

),

examples as (

    select
        model_name,
        model_version,
        label,
        predicted_label,
        cast(inference_logged_at as date) as kpi_date
    from training_examples
    where
        is_current
    {%- if is_incremental() %}
            and cast(inference_logged_at as date) in (
                select changed_days.kpi_date from changed_days
            )
        {%- endif %}

),

feedback as (

    select
        model_name,
        model_version,
        event_type,
        value_numeric,
        cast(inference_logged_at as date) as kpi_date
    from accepted_feedback
    where
        not is_retracted
        and event_type in ('rating', 'reward', 'thumbs', 'click', 'conversion')
        and received_at < {{ batch_end }}
    {%- if is_incremental() %}
            and cast(inference_logged_at as date) in (
                select changed_days.kpi_date from changed_days
            )
        {%- endif %}

),

volume as (

    select
        model_name,
        model_version,
        kpi_date,
        count(*) as inference_count
    from inferences
    group by model_name, model_version, kpi_date

),

labelled as (

    select
        model_name,
        model_version,
        kpi_date,
        count(*) as labelled_count,
        sum(case when label = predicted_label then 1 else 0 end) as correct_count
    from examples
    group by model_name, model_version, kpi_date

),

class_outcomes as (

    -- Each labelled prediction is a true positive for its label, or a false negative for the
    -- true label and a false positive for the predicted one.
    select
        model_name,
        model_version,
        kpi_date,
        label as class_label,
        case when label = predicted_label then 1 else 0 end as true_positive,
        0 as false_positive,
        case when label <> predicted_label then 1 else 0 end as false_negative
    from examples

    union all

    select
        model_name,
        model_version,
        kpi_date,
        predicted_label as class_label,
        0 as true_positive,
        1 as false_positive,
        0 as false_negative
    from examples
    where label <> predicted_label

),

per_class as (

    select
        model_name,
        model_version,
        kpi_date,
        class_label,
        sum(true_positive) as true_positives,
        sum(false_positive) as false_positives,
        sum(false_negative) as false_negatives
    from class_outcomes
    group by model_name, model_version, kpi_date, class_label

),

per_class_scores as (

    -- Zero where a denominator is zero, as scikit-learn's zero_division=0.
    select
        *,
        case
            when true_positives + false_positives > 0
                then true_positives * 1.0 / (true_positives + false_positives)
            else 0.0
        end as class_precision,
        case
            when true_positives + false_negatives > 0
                then true_positives * 1.0 / (true_positives + false_negatives)
            else 0.0
        end as class_recall,
        case
            when 2 * true_positives + false_positives + false_negatives > 0
                then 2.0 * true_positives
                    / (2 * true_positives + false_positives + false_negatives)
            else 0.0
        end as class_f1
    from per_class

),

macro_scores as (

    select
        model_name,
        model_version,
        kpi_date,
        count(*) as class_count,
        -- exact means: a re-run must reproduce the mart bit for bit, whatever order the
        -- parallel aggregate adds the classes in
        {{ feedback_flywheel.exact_mean('class_precision', 1) }} as precision_macro,
        {{ feedback_flywheel.exact_mean('class_recall', 1) }} as recall_macro,
        {{ feedback_flywheel.exact_mean('class_f1', 1) }} as f1_macro
    from per_class_scores
    group by model_name, model_version, kpi_date

),

signals as (

    select
        model_name,
        model_version,
        kpi_date,
        sum(case when event_type = 'rating' then 1 else 0 end) as rating_count,
        {{ feedback_flywheel.exact_mean(
            "case when event_type = 'rating' then value_numeric end", 5
        ) }} as rating_mean,
        {{ feedback_flywheel.exact_stddev_samp(
            "case when event_type = 'rating' then value_numeric end", 5
        ) }} as rating_stddev,
        sum(case when event_type = 'reward' then 1 else 0 end) as reward_count,
        {{ feedback_flywheel.exact_mean(
            "case when event_type = 'reward' then value_numeric end", 1
        ) }} as reward_mean,
        {{ feedback_flywheel.exact_stddev_samp(
            "case when event_type = 'reward' then value_numeric end", 1
        ) }} as reward_stddev,
        sum(case when event_type = 'thumbs' then 1 else 0 end) as thumbs_count,
        sum(
            case when event_type = 'thumbs' and value_numeric = 1 then 1 else 0 end
        ) as thumbs_up_count,
        sum(case when event_type = 'click' then 1 else 0 end) as click_signal_count,
        sum(case when event_type = 'click' and value_numeric = 1 then 1 else 0 end) as click_count,
        sum(case when event_type = 'conversion' then 1 else 0 end) as conversion_signal_count,
        sum(
            case when event_type = 'conversion' and value_numeric = 1 then 1 else 0 end
        ) as conversion_count
    from feedback
    group by model_name, model_version, kpi_date

),

joined as (

    select
        volume.model_name,
        volume.model_version,
        volume.kpi_date,
        volume.inference_count,
        macro_scores.class_count,
        macro_scores.precision_macro,
        macro_scores.recall_macro,
        macro_scores.f1_macro,
        signals.rating_mean,
        signals.rating_stddev,
        signals.reward_mean,
        signals.reward_stddev,
        coalesce(labelled.labelled_count, 0) as labelled_count,
        coalesce(labelled.correct_count, 0) as correct_count,
        coalesce(signals.rating_count, 0) as rating_count,
        coalesce(signals.reward_count, 0) as reward_count,
        coalesce(signals.thumbs_count, 0) as thumbs_count,
        coalesce(signals.thumbs_up_count, 0) as thumbs_up_count,
        coalesce(signals.click_signal_count, 0) as click_signal_count,
        coalesce(signals.click_count, 0) as click_count,
        coalesce(signals.conversion_signal_count, 0) as conversion_signal_count,
        coalesce(signals.conversion_count, 0) as conversion_count
    from volume
    left join labelled
        on
            volume.model_name = labelled.model_name
            and volume.model_version = labelled.model_version
            and volume.kpi_date = labelled.kpi_date
    left join macro_scores
        on
            volume.model_name = macro_scores.model_name
            and volume.model_version = macro_scores.model_version
            and volume.kpi_date = macro_scores.kpi_date
    left join signals
        on
            volume.model_name = signals.model_name
            and volume.model_version = signals.model_version
            and volume.kpi_date = signals.kpi_date

),

final as (

    select
        {{ feedback_flywheel.surrogate_key(['model_name', 'model_version', 'kpi_date']) }}
            as kpi_daily_id,
        model_name,
        model_version,
        inference_count,
        labelled_count,
        cast(correct_count as {{ dbt.type_bigint() }}) as correct_count,
        class_count,
        cast(rating_count as {{ dbt.type_bigint() }}) as rating_count,
        cast(reward_count as {{ dbt.type_bigint() }}) as reward_count,
        cast(thumbs_count as {{ dbt.type_bigint() }}) as thumbs_count,
        cast(thumbs_up_count as {{ dbt.type_bigint() }}) as thumbs_up_count,
        cast(click_signal_count as {{ dbt.type_bigint() }}) as click_signal_count,
        cast(click_count as {{ dbt.type_bigint() }}) as click_count,
        cast(conversion_signal_count as {{ dbt.type_bigint() }}) as conversion_signal_count,
        cast(conversion_count as {{ dbt.type_bigint() }}) as conversion_count,
        labelled_count * 1.0 / inference_count as labelled_share,
        {{ feedback_flywheel.wilson_lower('labelled_count', 'inference_count') }}
            as labelled_share_lower,
        {{ feedback_flywheel.wilson_upper('labelled_count', 'inference_count') }}
            as labelled_share_upper,
        case when labelled_count > 0 then correct_count * 1.0 / labelled_count end as accuracy,
        {{ feedback_flywheel.wilson_lower('correct_count', 'labelled_count') }} as accuracy_lower,
        {{ feedback_flywheel.wilson_upper('correct_count', 'labelled_count') }} as accuracy_upper,
        precision_macro,
        recall_macro,
        f1_macro,
        rating_mean,
        rating_mean - {{ z }} * rating_stddev / sqrt(rating_count) as rating_mean_lower,
        rating_mean + {{ z }} * rating_stddev / sqrt(rating_count) as rating_mean_upper,
        reward_mean,
        reward_mean - {{ z }} * reward_stddev / sqrt(reward_count) as reward_mean_lower,
        reward_mean + {{ z }} * reward_stddev / sqrt(reward_count) as reward_mean_upper,
        case when thumbs_count > 0 then thumbs_up_count * 1.0 / thumbs_count end as thumbs_up_rate,
        {{ feedback_flywheel.wilson_lower('thumbs_up_count', 'thumbs_count') }}
            as thumbs_up_rate_lower,
        {{ feedback_flywheel.wilson_upper('thumbs_up_count', 'thumbs_count') }}
            as thumbs_up_rate_upper,
        case
            when click_signal_count > 0 then click_count * 1.0 / click_signal_count
        end as click_rate,
        {{ feedback_flywheel.wilson_lower('click_count', 'click_signal_count') }}
            as click_rate_lower,
        {{ feedback_flywheel.wilson_upper('click_count', 'click_signal_count') }}
            as click_rate_upper,
        case
            when conversion_signal_count > 0 then conversion_count * 1.0 / conversion_signal_count
        end as conversion_rate,
        {{ feedback_flywheel.wilson_lower('conversion_count', 'conversion_signal_count') }}
            as conversion_rate_lower,
        {{ feedback_flywheel.wilson_upper('conversion_count', 'conversion_signal_count') }}
            as conversion_rate_upper,
        kpi_date
    from joined

)

select * from final

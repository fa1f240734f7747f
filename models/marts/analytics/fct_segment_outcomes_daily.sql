{{
    config(
        materialized='incremental',
        unique_key=['model_name', 'served_date'],
        incremental_strategy=feedback_flywheel.flywheel_incremental_strategy(),
        on_schema_change='fail',
    )
}}

-- Outcome counts per model version, day served, segment and class: the one scan of the
-- prediction-level tables that every analytics mart aggregates further (counts, never rates, so
-- any window or bucket is a plain sum). Each accepted prediction adds to the row of its predicted
-- class and, when it has a current matured label, to the row of its true class.
-- "New" for this model: the days this batch changed anything on (new inferences, training examples
-- added or superseded, feedback accepted); those days are replaced whole (delete+insert on
-- model_name and served_date), so a label that arrives weeks late still updates its day. Every
-- row records the segment configuration it was counted under (segment_config_hash: the
-- attributes and intersections); when the configuration changes, the next build finds rows of
-- another configuration and recounts every day, so no day mixes two configurations.

{%- set batch_end = feedback_flywheel.var_timestamp('batch_end') %}
{%- set segments = feedback_flywheel.setting('segment_attributes') %}
{%- set dimensions = feedback_flywheel.analytics_segment_dimensions() %}
{%- set config_hash = local_md5(tojson({
    'segments': segments, 'intersections': feedback_flywheel.setting('bias_intersections')
})) %}
{%- set recount_all = false %}
{%- if is_incremental() and execute %}
    {%- set stale = run_query(
        'select count(*) from ' ~ this ~ ' where segment_config_hash <> '
        ~ feedback_flywheel.sql_string(config_hash)
    ) %}
    {%- set recount_all = stale.columns[0].values()[0] > 0 %}
{%- endif %}
{%- set incremental = is_incremental() and not recount_all %}

with

inferences_validated as (

    select
        inference_id,
        model_name,
        model_version,
        predicted_label,
        is_accepted,
        logged_at
    from {{ ref('int_inferences_validated') }}
    where logged_at < {{ batch_end }}

),

inference_segments as (

    select
        inference_id,
        segment_attribute,
        segment_value,
        logged_at
    from {{ ref('fct_inference_segments') }}
    where
        segment_attribute in {{ feedback_flywheel.string_list(segments) }}
        and logged_at < {{ batch_end }}

),

training_examples as (

    select
        inference_id,
        label,
        batch_id,
        superseded_in_batch_id,
        is_current,
        inference_logged_at
    from {{ ref('fct_training_examples') }}

),

accepted_feedback as (

    select
        inference_id,
        event_type,
        batch_id,
        value_numeric,
        is_explicit,
        is_retracted,
        inference_logged_at,
        received_at
    from {{ ref('fct_feedback') }}

),

{% if incremental %}
changed_days as (

    {{ feedback_flywheel.days_changed_by_batch(
        'served_date', 'inferences_validated', 'training_examples', 'accepted_feedback'
    ) }}

),
{% endif %}

segment_values as (

    {{ feedback_flywheel.segment_columns('inference_segments', segments) }}

),

inferences as (

    select
        inferences_validated.inference_id,
        inferences_validated.model_name,
        inferences_validated.model_version,
        inferences_validated.predicted_label,
        {%- for attribute in segments %}
            segment_values.{{ attribute }},
        {%- endfor %}
        cast(inferences_validated.logged_at as date) as served_date
    from inferences_validated
    left join segment_values
        on inferences_validated.inference_id = segment_values.inference_id
    where
        inferences_validated.is_accepted
    {%- if incremental %}
            and cast(inferences_validated.logged_at as date) in (
                select changed_days.served_date from changed_days
            )
        {%- endif %}

),

labels as (

    select
        inference_id,
        label
    from training_examples
    where
        is_current
    {%- if incremental %}
            and cast(inference_logged_at as date) in (
                select changed_days.served_date from changed_days
            )
        {%- endif %}

),

explicit_feedback as (

    -- Per prediction: its non-retracted explicit feedback (ratings and thumbs).
    select
        inference_id,
        count(*) as explicit_event_count,
        sum(case when event_type = 'rating' then 1 else 0 end) as rating_count,
        sum(case when event_type = 'rating' then value_numeric else 0 end) as rating_sum,
        sum(
            case when event_type = 'rating' then value_numeric * value_numeric else 0 end
        ) as rating_sum_squares,
        sum(case when event_type = 'thumbs' then 1 else 0 end) as thumbs_count,
        sum(
            case when event_type = 'thumbs' and value_numeric = 1 then 1 else 0 end
        ) as thumbs_up_count
    from accepted_feedback
    where
        is_explicit
        and not is_retracted
        and received_at < {{ batch_end }}
    {%- if incremental %}
            and cast(inference_logged_at as date) in (
                select changed_days.served_date from changed_days
            )
        {%- endif %}
    group by inference_id

),

predictions as (

    select
        inferences.*,
        labels.label,
        case when labels.label is not null then 1 else 0 end as is_labelled,
        case when labels.label = inferences.predicted_label then 1 else 0 end as is_correct,
        case when explicit_feedback.explicit_event_count > 0 then 1 else 0 end as has_explicit,
        coalesce(explicit_feedback.rating_count, 0) as rating_count,
        coalesce(explicit_feedback.rating_sum, 0) as rating_sum,
        coalesce(explicit_feedback.rating_sum_squares, 0) as rating_sum_squares,
        coalesce(explicit_feedback.thumbs_count, 0) as thumbs_count,
        coalesce(explicit_feedback.thumbs_up_count, 0) as thumbs_up_count
    from inferences
    left join labels
        on inferences.inference_id = labels.inference_id
    left join explicit_feedback
        on inferences.inference_id = explicit_feedback.inference_id

),

dimensions as (

    {%- for name, expression in dimensions %}
        select {{ feedback_flywheel.sql_string(name) }} as segment_attribute
        {%- if not loop.last %}
            union all
        {%- endif %}
    {%- endfor %}

),

segmented as (

    -- Every prediction once per dimension (overall, each attribute, each intersection).
    select
        predictions.*,
        dimensions.segment_attribute,
        case dimensions.segment_attribute
            {%- for name, expression in dimensions %}
                when {{ feedback_flywheel.sql_string(name) }} then {{ expression }}
            {%- endfor %}
        end as segment_value
    from predictions
    cross join dimensions

),

class_contributions as (

    -- The predicted class's row gets the prediction; the true class's row gets the label.
    select
        model_name,
        model_version,
        served_date,
        segment_attribute,
        segment_value,
        predicted_label as class_label,
        1 as predicted_count,
        is_labelled as labelled_predicted_count,
        is_correct as true_positive_count,
        0 as labelled_actual_count,
        has_explicit,
        rating_count,
        rating_sum,
        rating_sum_squares,
        thumbs_count,
        thumbs_up_count
    from segmented

    union all

    select
        model_name,
        model_version,
        served_date,
        segment_attribute,
        segment_value,
        label as class_label,
        0 as predicted_count,
        0 as labelled_predicted_count,
        0 as true_positive_count,
        1 as labelled_actual_count,
        0 as has_explicit,
        0 as rating_count,
        0 as rating_sum,
        0 as rating_sum_squares,
        0 as thumbs_count,
        0 as thumbs_up_count
    from segmented
    where is_labelled = 1

),

aggregated as (

    select
        model_name,
        model_version,
        served_date,
        segment_attribute,
        segment_value,
        class_label,
        sum(predicted_count) as predicted_count,
        sum(labelled_predicted_count) as labelled_predicted_count,
        sum(true_positive_count) as true_positive_count,
        sum(labelled_actual_count) as labelled_actual_count,
        sum(has_explicit) as explicit_feedback_count,
        sum(rating_count) as rating_count,
        sum(rating_sum) as rating_sum,
        sum(rating_sum_squares) as rating_sum_squares,
        sum(thumbs_count) as thumbs_count,
        sum(thumbs_up_count) as thumbs_up_count
    from class_contributions
    group by model_name, model_version, served_date, segment_attribute, segment_value, class_label

),

final as (

    select
        {{ feedback_flywheel.surrogate_key([
            'model_name', 'model_version', 'served_date', 'segment_attribute', 'segment_value',
            'class_label',
        ]) }} as segment_outcome_id,
        model_name,
        model_version,
        segment_attribute,
        segment_value,
        class_label,
        cast(predicted_count as {{ dbt.type_bigint() }}) as predicted_count,
        cast(labelled_predicted_count as {{ dbt.type_bigint() }}) as labelled_predicted_count,
        cast(labelled_actual_count as {{ dbt.type_bigint() }}) as labelled_actual_count,
        cast(true_positive_count as {{ dbt.type_bigint() }}) as true_positive_count,
        cast(explicit_feedback_count as {{ dbt.type_bigint() }}) as explicit_feedback_count,
        cast(rating_count as {{ dbt.type_bigint() }}) as rating_count,
        cast(thumbs_count as {{ dbt.type_bigint() }}) as thumbs_count,
        cast(thumbs_up_count as {{ dbt.type_bigint() }}) as thumbs_up_count,
        cast(rating_sum as double) as rating_sum,
        cast(rating_sum_squares as double) as rating_sum_squares,
        {{ feedback_flywheel.sql_string(config_hash) }} as segment_config_hash,
        served_date
    from aggregated

)

select * from final

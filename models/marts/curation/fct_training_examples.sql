{{
    config(
        materialized='incremental',
        unique_key='training_example_id',
        incremental_strategy=feedback_flywheel.flywheel_incremental_strategy(),
        on_schema_change='fail',
    )
}}

-- The Incremental Dataset: one row per (inference, matured ground-truth label). A label matures
-- once it was received var label_settle_hours before the batch watermark; the latest matured,
-- non-retracted label or correction of an inference is its current label. A row is never edited
-- except to mark it superseded when a newer label replaces it, so dataset version V (= a batch_id)
-- is exactly the rows with batch_id <= V and (superseded_in_batch_id is null or > V).
-- "New" for this model: inferences with a ground-truth event or retraction accepted in this batch
-- or received within the settle + lookback window before the watermark.

{%- set batch_id = feedback_flywheel.batch_param('batch_id') %}
{%- set batch_end = feedback_flywheel.var_timestamp('batch_end') %}
{%- set settle_hours = feedback_flywheel.setting('label_settle_hours') %}
{%- set matured_before = dbt.dateadd('hour', -settle_hours, batch_end) %}
{%- set label_weights = feedback_flywheel.setting('label_weights') %}

with

feedback as (

    select * from {{ ref('fct_feedback') }}
    where received_at < {{ batch_end }}

),

inferences as (

    select * from {{ ref('int_inferences_validated') }}
    where is_accepted

),

candidate_inferences as (

    select distinct inference_id
    from feedback
    where
        (is_ground_truth or event_type = 'retraction')
    {%- if is_incremental() %}
            and (
                batch_id = '{{ batch_id }}'
                or received_at >= {{ dbt.dateadd(
                    'hour',
                    -(feedback_flywheel.setting('label_settle_hours') + 24 * feedback_flywheel.setting('lookback_days')),
                    feedback_flywheel.var_timestamp('batch_start'),
                ) }}
            )
        {%- endif %}

),

labels_matured as (

    select
        feedback.*,
        row_number() over (
            partition by feedback.inference_id
            order by feedback.occurred_at desc, feedback.received_at desc, feedback.event_id desc
        ) as label_recency
    from feedback
    inner join candidate_inferences
        on feedback.inference_id = candidate_inferences.inference_id
    where
        feedback.is_ground_truth
        and feedback.received_at <= {{ matured_before }}
        and not (feedback.is_retracted and feedback.retracted_at < {{ batch_end }})

),

current_labels as (

    select
        {{ feedback_flywheel.surrogate_key(
            ['labels_matured.inference_id', 'labels_matured.event_id']
        ) }}
            as training_example_id,
        labels_matured.inference_id,
        labels_matured.event_id as label_event_id,
        labels_matured.event_type as label_source,
        labels_matured.label_value as label,
        labels_matured.received_at as label_received_at
    from labels_matured
    where labels_matured.label_recency = 1

),

{% if is_incremental() %}
    existing as (

        select * from {{ this }}
        where inference_id in (select candidate_inferences.inference_id from candidate_inferences)

    ),

    superseded as (

    -- Rows that were current and are replaced (a correction, or every label retracted).
        select
            existing.training_example_id,
            '{{ batch_id }}' as superseded_in_batch_id
        from existing
        left join current_labels
            on existing.training_example_id = current_labels.training_example_id
        where
            current_labels.training_example_id is null
            and (
                existing.superseded_in_batch_id is null
                or existing.superseded_in_batch_id = '{{ batch_id }}'
            )

    ),
{% endif %}

examples as (

    select
        current_labels.training_example_id,
        current_labels.inference_id,
        current_labels.label_event_id,
        current_labels.label_source,
        current_labels.label,
        current_labels.label_received_at,
        {%- if is_incremental() %}
            coalesce(existing.batch_id, '{{ batch_id }}') as batch_id,
        {%- else %}
            '{{ batch_id }}' as batch_id,
        {%- endif %}
        cast(null as {{ dbt.type_string() }}) as superseded_in_batch_id
    from current_labels
    {%- if is_incremental() %}
    left join existing
        on current_labels.training_example_id = existing.training_example_id
    {%- endif %}

    {%- if is_incremental() %}

        union all

        select
            existing.training_example_id,
            existing.inference_id,
            existing.label_event_id,
            existing.label_source,
            existing.label,
            existing.label_received_at,
            existing.batch_id,
            superseded.superseded_in_batch_id
        from existing
        inner join superseded
            on existing.training_example_id = superseded.training_example_id
    {%- endif %}

),

final as (

    select
        examples.training_example_id,
        examples.inference_id,
        examples.label_event_id,
        inferences.model_name,
        inferences.model_version,
        inferences.subject_id,
        examples.label_source,
        examples.label,
        inferences.predicted_label,
        inferences.inputs_json as features_json,
        inferences.probabilities_json,
        'ds-' || examples.batch_id as dataset_version,
        examples.batch_id,
        examples.superseded_in_batch_id,
        inferences.predicted_score,
        inferences.probability_top1,
        inferences.probability_top2,
        inferences.probability_entropy,
        cast(
            case examples.label_source
                {%- for source_name, weight in label_weights.items() %}
                    when {{ feedback_flywheel.sql_string(source_name) }} then {{ weight }}
                {%- endfor %}
                else 1.0
            end as double
        ) as sample_weight,
        examples.label = inferences.predicted_label as is_correct,
        examples.superseded_in_batch_id is null as is_current,
        inferences.logged_at as inference_logged_at,
        examples.label_received_at
    from examples
    inner join inferences
        on examples.inference_id = inferences.inference_id

)

select * from final

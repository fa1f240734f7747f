{{
    config(
        materialized='incremental',
        unique_key='event_id',
        incremental_strategy=feedback_flywheel.flywheel_incremental_strategy(),
        on_schema_change='fail',
    )
}}

{%- set batch_id = feedback_flywheel.batch_param('batch_id') %}

-- Accepted feedback, one row per event_id (duplicates removed), joined to the inference it is
-- about, with retractions applied (a retracted event stays, flagged, so the audit trail is whole).
-- "New" for this model: events accepted in this batch, plus already-accepted events that a
-- retraction accepted in this batch withdraws (they are re-emitted with is_retracted = true).


with

accepted as (

    select * from {{ ref('int_feedback_events_classified') }}
    where status = 'accepted'

),

event_types as (

    select * from {{ ref('feedback_event_types') }}

),

retractions as (

    select
        event_id as retraction_event_id,
        value_text as retracted_event_id,
        received_at as retracted_at
    from accepted
    where event_type = 'retraction' and batch_id <= '{{ batch_id }}'

),

events_in_batch as (

    select accepted.*
    from accepted
    {%- if is_incremental() %}
        where
            accepted.batch_id = '{{ batch_id }}'
            or accepted.event_id in (
                select retractions.retracted_event_id from retractions
                inner join accepted as retraction_rows
                    on retractions.retraction_event_id = retraction_rows.event_id
                where retraction_rows.batch_id = '{{ batch_id }}'
            )
    {%- endif %}

),

inferences as (

    -- Only the inferences of the events this batch emits: the join stays the size of the batch.
    select * from {{ ref('int_inferences_validated') }}
    where
        is_accepted
        and inference_id in (select events_in_batch.inference_id from events_in_batch)

),

first_retractions as (

    -- An event retracted more than once counts as retracted by the first retraction.
    select
        retracted_event_id,
        min(retraction_event_id) as retraction_event_id,
        min(retracted_at) as retracted_at
    from retractions
    group by retracted_event_id

),

retractions_applied as (

    select
        events_in_batch.*,
        first_retractions.retraction_event_id,
        first_retractions.retracted_at
    from events_in_batch
    left join first_retractions
        on events_in_batch.event_id = first_retractions.retracted_event_id

),

final as (

    select
        retractions_applied.event_id,
        retractions_applied.inference_id,
        retractions_applied.feedback_row_id,
        retractions_applied.retraction_event_id,
        retractions_applied.event_type,
        inferences.model_name,
        inferences.model_version,
        inferences.subject_id,
        inferences.session_id,
        inferences.predicted_label,
        retractions_applied.value_text,
        case
            when event_types.value_kind = 'label' then retractions_applied.value_text
        end as label_value,
        retractions_applied.feedback_source,
        retractions_applied.schema_version,
        retractions_applied.load_id,
        retractions_applied.batch_id,
        retractions_applied.value_numeric,
        inferences.step_index,
        inferences.predicted_score,
        {{ dbt.datediff('inferences.logged_at', 'retractions_applied.received_at', 'second') }}
            as feedback_delay_seconds,
        event_types.is_ground_truth,
        event_types.is_explicit,
        retractions_applied.retraction_event_id is not null as is_retracted,
        inferences.logged_at as inference_logged_at,
        retractions_applied.occurred_at,
        retractions_applied.received_at,
        retractions_applied.retracted_at
    from retractions_applied
    inner join inferences
        on retractions_applied.inference_id = inferences.inference_id
    inner join event_types
        on retractions_applied.event_type = event_types.event_type

)

select * from final

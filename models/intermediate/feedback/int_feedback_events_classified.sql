{{
    config(
        materialized='incremental',
        unique_key='feedback_row_id',
        incremental_strategy=feedback_flywheel.flywheel_incremental_strategy(),
        on_schema_change='fail',
    )
}}

{%- set batch_id = feedback_flywheel.batch_param('batch_id') %}

-- The Feedback Validation Service: every raw feedback row gets exactly one status, accepted,
-- quarantined (with a reason_code from seeds/quarantine_reason_codes.csv) or held (its inference
-- is not in the log yet; it is re-tried each batch for var lookback_days, then quarantined).
-- "New" for this model: rows placed inside the batch window (placed_at: received_at when
-- plausible, else the load time; see macro placement_time), rows still held, and rows loaded
-- after the newest row already here. A decided row is never decided again, so its outcome
-- and batch_id are stable, and re-running the latest batch reproduces it exactly.

{%- set batch_start = feedback_flywheel.var_timestamp('batch_start') %}
{%- set batch_end = feedback_flywheel.var_timestamp('batch_end') %}

with

feedback as (

    select
        *,
        placed_at as arrived_at
    from {{ ref('stg_raw__feedback_events') }}
    where
        placed_at < {{ batch_end }}
    {%- if is_incremental() %}
            and (
                placed_at >= {{ batch_start }}
                or feedback_row_id in (
                    select held.feedback_row_id from {{ this }} as held
                    where held.status = 'held'
                )
                or loaded_at > (select max(this_batch.loaded_at) from {{ this }} as this_batch)
            )
        {%- endif %}

),

event_types as (

    select * from {{ ref('feedback_event_types') }}

),

accepted_inferences as (

    select
        inference_id,
        model_name,
        model_version,
        predicted_label,
        logged_at
    from {{ ref('int_inferences_validated') }}
    where is_accepted and logged_at < {{ batch_end }}

),

inferences as (

    -- Only the inferences this batch's feedback names: the lookup stays the size of the batch,
    -- not of the history.
    select accepted_inferences.*
    from accepted_inferences
    where accepted_inferences.inference_id in (select feedback.inference_id from feedback)

),

known_labels as (

    select distinct
        model_name,
        predicted_label as known_label
    from accepted_inferences

),

previously_accepted as (

    {%- if is_incremental() %}
        select
            event_id,
            inference_id,
            event_type
        from {{ this }}
        where
            status = 'accepted'
            and feedback_row_id not in (select feedback.feedback_row_id from feedback)
            -- only what this batch's rows can meet: their own event ids (duplicates) and the
            -- events their values name (retraction targets)
            and (
                event_id in (select feedback.event_id from feedback)
                or event_id in (select feedback.value_text from feedback)
            )
    {%- else %}
        select
            cast(null as {{ dbt.type_string() }}) as event_id,
            cast(null as {{ dbt.type_string() }}) as inference_id,
            cast(null as {{ dbt.type_string() }}) as event_type
        where 1 = 0
    {%- endif %}

),

row_checked as (

    -- Checks that need nothing but the row itself, in the order of the reason-code seed.
    select
        feedback.*,
        event_types.value_kind,
        case
            when
                feedback.event_id is null or feedback.inference_id is null
                or feedback.event_type is null or feedback.occurred_at is null
                or feedback.received_at is null
                then 'missing_required_field'
            {{ feedback_flywheel.timestamp_checks(
                ['feedback.occurred_at', 'feedback.received_at'],
                'feedback.received_at',
                'feedback.loaded_at',
            ) }}
            when
                feedback.schema_version is null
                or feedback.schema_version not in
                {{ feedback_flywheel.string_list(
                    feedback_flywheel.setting('supported_schema_versions')
                ) }}
                then 'unsupported_schema_version'
            when event_types.event_type is null then 'unknown_event_type'
            when
                feedback.raw_payload is not null
                and not {{ feedback_flywheel.json_is_object('feedback.raw_payload') }}
                then 'malformed_payload'
            when
                (
                    event_types.value_kind in ('integer', 'number', 'binary', 'sign')
                    and (
                        feedback.value_numeric is null
                        or feedback.value_numeric < event_types.min_value
                        or feedback.value_numeric > event_types.max_value
                    )
                )
                or (
                    event_types.value_kind in ('integer', 'binary', 'sign')
                    and feedback.value_numeric <> floor(feedback.value_numeric)
                )
                or (event_types.value_kind = 'sign' and feedback.value_numeric = 0)
                or (
                    event_types.value_kind in ('label', 'event_ref')
                    and coalesce(feedback.value_text, '') = ''
                )
                then 'value_out_of_range'
            when
                feedback.occurred_at > {{ dbt.dateadd(
                    'second', feedback_flywheel.setting('clock_skew_seconds'), 'feedback.received_at'
                ) }}
                then 'occurred_in_future'
        end as row_reason
    from feedback
    left join event_types
        on feedback.event_type = event_types.event_type

),

joined as (

    -- Checks that need the inference: only possible once it is in the log.
    select
        row_checked.*,
        inferences.model_name,
        inferences.model_version,
        inferences.logged_at as inference_logged_at,
        case
            when row_checked.row_reason is not null then row_checked.row_reason
            when inferences.logged_at is null then null
            when row_checked.occurred_at < inferences.logged_at then 'occurred_before_inference'
            when row_checked.value_kind = 'label' and known_labels.known_label is null
                then 'value_out_of_range'
        end as content_reason
    from row_checked
    left join inferences
        on row_checked.inference_id = inferences.inference_id
    left join known_labels
        on
            inferences.model_name = known_labels.model_name
            and row_checked.value_text = known_labels.known_label

),

deduplicated as (

    -- Among the copies of an event_id that pass every content check, the first (by arrival)
    -- whose inference is known counts; later copies are duplicates, as are copies of an event
    -- accepted in an earlier batch. A refused copy never blocks a valid re-send, nor does a held
    -- one (its inference unknown): a re-send naming a logged inference wins over it.
    select
        joined.*,
        previously_accepted.event_id is not null as was_accepted_before,
        case
            when joined.content_reason is null
                then row_number() over (
                        partition by joined.event_id, joined.content_reason
                        order by
                            case when joined.inference_logged_at is null then 1 else 0 end,
                            joined.received_at,
                            joined.loaded_at,
                            joined.load_id,
                            joined.file_row
                    )
        end as event_rank
    from joined
    left join previously_accepted
        on joined.event_id = previously_accepted.event_id

),

retraction_targets as (

    -- Events a retraction may withdraw: accepted before, or accepted in this batch.
    select
        event_id,
        inference_id
    from previously_accepted
    where event_type <> 'retraction'

    union all

    select
        event_id,
        inference_id
    from deduplicated
    where
        content_reason is null
        and event_rank = 1
        and not was_accepted_before
        and event_type <> 'retraction'
        and inference_logged_at is not null

),

classified as (

    select
        deduplicated.*,
        case
            when deduplicated.content_reason is not null then deduplicated.content_reason
            when deduplicated.was_accepted_before or deduplicated.event_rank > 1
                then 'duplicate_event_id'
            when
                deduplicated.inference_logged_at is null
                and deduplicated.arrived_at
                < {{ dbt.dateadd('day', -feedback_flywheel.setting('lookback_days'), batch_end) }}
                then 'unknown_inference_id'
            when deduplicated.inference_logged_at is null then null
            when
                deduplicated.event_type = 'retraction'
                and not exists (
                    select 1 from retraction_targets
                    where
                        retraction_targets.event_id = deduplicated.value_text
                        and retraction_targets.inference_id = deduplicated.inference_id
                )
                then 'unknown_retraction_target'
        end as reason_code
    from deduplicated

),

final as (

    select
        feedback_row_id,
        event_id,
        inference_id,
        event_type,
        case
            when reason_code is not null then 'quarantined'
            when inference_logged_at is null then 'held'
            else 'accepted'
        end as status,
        reason_code,
        model_name,
        model_version,
        value_text,
        raw_payload,
        feedback_source,
        schema_version,
        load_id,
        '{{ batch_id }}' as batch_id,
        value_numeric,
        file_row,
        inference_logged_at,
        occurred_at,
        received_at,
        loaded_at
    from classified

)

select * from final

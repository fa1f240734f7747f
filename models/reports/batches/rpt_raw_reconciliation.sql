{{ config(materialized='view') }}

-- Every raw row accounted for: per raw table, how many rows validation accepted, refused
-- (quarantined or, for inferences, refused) or holds, by reason code, and how many it has not
-- seen yet ('unclassified': arrived at or after the watermark). The totals per table are the raw
-- row counts, so the end-of-run summary reads them here instead of counting the raw tables.
-- A view: a handful of rows, always current.

with

inference_log as (

    select inference_row_id
    from {{ ref('stg_raw__inference_logs') }}

),

inferences_validated as (

    select
        inference_row_id,
        reason_code,
        is_accepted
    from {{ ref('int_inferences_validated') }}

),

feedback_events as (

    select feedback_row_id
    from {{ ref('stg_raw__feedback_events') }}

),

feedback_classified as (

    select
        feedback_row_id,
        status,
        reason_code
    from {{ ref('int_feedback_events_classified') }}

),

preference_events as (

    select preference_row_id
    from {{ ref('stg_raw__preference_events') }}

),

preferences_classified as (

    select
        preference_row_id,
        status,
        reason_code
    from {{ ref('int_preference_events_classified') }}

),

inference_statuses as (

    select
        'inference_log' as raw_table,
        case
            when inferences_validated.inference_row_id is null then 'unclassified'
            when inferences_validated.is_accepted then 'accepted'
            else 'refused'
        end as status,
        inferences_validated.reason_code
    from inference_log
    left join inferences_validated
        on inference_log.inference_row_id = inferences_validated.inference_row_id

),

feedback_statuses as (

    select
        'feedback_events' as raw_table,
        coalesce(feedback_classified.status, 'unclassified') as status,
        feedback_classified.reason_code
    from feedback_events
    left join feedback_classified
        on feedback_events.feedback_row_id = feedback_classified.feedback_row_id

),

preference_statuses as (

    select
        'preference_events' as raw_table,
        coalesce(preferences_classified.status, 'unclassified') as status,
        preferences_classified.reason_code
    from preference_events
    left join preferences_classified
        on preference_events.preference_row_id = preferences_classified.preference_row_id

),

statuses as (

    select * from inference_statuses
    union all
    select * from feedback_statuses
    union all
    select * from preference_statuses

),

counted as (

    select
        raw_table,
        status,
        coalesce(reason_code, '__none__') as reason_code,
        count(*) as row_count
    from statuses
    group by raw_table, status, coalesce(reason_code, '__none__')

),

final as (

    select
        {{ feedback_flywheel.surrogate_key(['raw_table', 'status', 'reason_code']) }}
            as raw_reconciliation_id,
        raw_table,
        status,
        reason_code,
        row_count
    from counted

)

select * from final

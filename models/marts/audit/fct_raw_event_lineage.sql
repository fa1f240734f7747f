{{ config(materialized='view') }}

-- Every raw inference and feedback row with the file and line it came from and what validation
-- made of it: the raw side of `flywheel dataset trace` (feedback_flywheel/lineage.py picks the
-- rows behind a dataset version or a training example from here). Values are as they were sent:
-- the inference log's own columns, the feedback's event type and value untouched. A view: it is
-- read a few rows at a time, by inference_id.

with

inference_log as (

    select
        inference_row_id,
        inference_id,
        load_id,
        file_row,
        logged_at
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

    select
        feedback_row_id,
        event_id,
        inference_id,
        raw_event_type,
        raw_value,
        load_id,
        file_row,
        received_at
    from {{ ref('stg_raw__feedback_events') }}

),

feedback_classified as (

    select
        feedback_row_id,
        status,
        reason_code
    from {{ ref('int_feedback_events_classified') }}

),

load_ledger as (

    select
        load_id,
        file_path,
        file_name
    from {{ ref('stg_raw__load_ledger') }}

),

inference_rows as (

    -- A row validation has not seen yet (logged at or after the watermark) reads as refused,
    -- with no reason code.
    select
        'inference_log:' || inference_log.inference_row_id as raw_row_id,
        'inference_log' as table_name,
        inference_log.inference_id,
        cast(null as {{ dbt.type_string() }}) as event_id,
        cast(null as {{ dbt.type_string() }}) as event_type,
        cast(null as {{ dbt.type_string() }}) as value_text,
        case when inferences_validated.is_accepted then 'accepted' else 'refused' end as status,
        inferences_validated.reason_code,
        inference_log.load_id,
        inference_log.file_row,
        inference_log.logged_at as event_at
    from inference_log
    left join inferences_validated
        on inference_log.inference_row_id = inferences_validated.inference_row_id

),

feedback_rows as (

    -- A row validation has not seen yet (received at or after the watermark) has no status.
    select
        'feedback_events:' || feedback_events.feedback_row_id as raw_row_id,
        'feedback_events' as table_name,
        feedback_events.inference_id,
        feedback_events.event_id,
        feedback_events.raw_event_type as event_type,
        feedback_events.raw_value as value_text,
        feedback_classified.status,
        feedback_classified.reason_code,
        feedback_events.load_id,
        feedback_events.file_row,
        feedback_events.received_at as event_at
    from feedback_events
    left join feedback_classified
        on feedback_events.feedback_row_id = feedback_classified.feedback_row_id

),

raw_rows as (

    select * from inference_rows
    union all
    select * from feedback_rows

),

final as (

    select
        raw_rows.raw_row_id,
        raw_rows.table_name,
        raw_rows.inference_id,
        raw_rows.event_id,
        raw_rows.event_type,
        raw_rows.value_text,
        raw_rows.status,
        raw_rows.reason_code,
        raw_rows.load_id,
        load_ledger.file_name,
        load_ledger.file_path,
        raw_rows.file_row,
        raw_rows.event_at
    from raw_rows
    left join load_ledger
        on raw_rows.load_id = load_ledger.load_id

)

select * from final

-- rpt_raw_reconciliation accounts for every raw row exactly once: per raw table its rows add up
-- to the staging row count, and its classified rows to what validation holds. Returns the raw
-- tables whose counts disagree.
with

reconciliation as (

    select
        raw_table,
        status,
        row_count
    from {{ ref('rpt_raw_reconciliation') }}

),

inference_log as (

    select inference_row_id from {{ ref('stg_raw__inference_logs') }}

),

feedback_events as (

    select feedback_row_id from {{ ref('stg_raw__feedback_events') }}

),

preference_events as (

    select preference_row_id from {{ ref('stg_raw__preference_events') }}

),

inferences_validated as (

    select inference_row_id from {{ ref('int_inferences_validated') }}

),

feedback_classified as (

    select feedback_row_id from {{ ref('int_feedback_events_classified') }}

),

preferences_classified as (

    select preference_row_id from {{ ref('int_preference_events_classified') }}

),

expected as (

    select
        'inference_log' as raw_table,
        (select count(*) from inference_log) as raw_rows,
        (select count(*) from inferences_validated) as classified_rows
    union all
    select
        'feedback_events' as raw_table,
        (select count(*) from feedback_events) as raw_rows,
        (select count(*) from feedback_classified) as classified_rows
    union all
    select
        'preference_events' as raw_table,
        (select count(*) from preference_events) as raw_rows,
        (select count(*) from preferences_classified) as classified_rows

),

reported as (

    select
        raw_table,
        sum(row_count) as raw_rows,
        sum(case when status <> 'unclassified' then row_count else 0 end) as classified_rows
    from reconciliation
    group by raw_table

),

mismatched as (

    select
        expected.raw_table,
        expected.raw_rows,
        reported.raw_rows as reported_raw_rows,
        expected.classified_rows,
        reported.classified_rows as reported_classified_rows
    from expected
    left join reported
        on expected.raw_table = reported.raw_table
    where
        coalesce(reported.raw_rows, 0) <> expected.raw_rows
        or coalesce(reported.classified_rows, 0) <> expected.classified_rows

)

select * from mismatched

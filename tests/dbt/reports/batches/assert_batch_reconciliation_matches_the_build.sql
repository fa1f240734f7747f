-- The current batch's row of rpt_batch_reconciliation says what the build left: the feedback
-- validation decided in this batch and the feedback still held. A re-run of the batch must
-- replace the row, not keep the first attempt's counts. Returns the row when it disagrees (or is
-- missing).
{%- set batch_id = feedback_flywheel.batch_param('batch_id') %}

with

reconciliation as (

    select
        batch_id,
        feedback_accepted,
        feedback_quarantined,
        feedback_held
    from {{ ref('rpt_batch_reconciliation') }}
    where batch_id = '{{ batch_id }}'

),

classified as (

    select
        batch_id,
        status
    from {{ ref('int_feedback_events_classified') }}

),

expected as (

    select
        count(
            case when batch_id = '{{ batch_id }}' and status = 'accepted' then 1 end
        ) as feedback_accepted,
        count(
            case when batch_id = '{{ batch_id }}' and status = 'quarantined' then 1 end
        ) as feedback_quarantined,
        count(case when status = 'held' then 1 end) as feedback_held
    from classified

),

mismatched as (

    select
        expected.*,
        reconciliation.batch_id as reported_batch_id,
        reconciliation.feedback_accepted as reported_accepted,
        reconciliation.feedback_quarantined as reported_quarantined,
        reconciliation.feedback_held as reported_held
    from expected
    left join reconciliation
        on 1 = 1
    where
        reconciliation.batch_id is null
        or reconciliation.feedback_accepted <> expected.feedback_accepted
        or reconciliation.feedback_quarantined <> expected.feedback_quarantined
        or reconciliation.feedback_held <> expected.feedback_held

)

select * from mismatched

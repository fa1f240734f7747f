-- Every raw feedback row placed (or loaded) before the watermark is in exactly one of fct_feedback
-- (accepted) and fct_feedback_quarantine, or still held because its inference has not arrived
-- and it is younger than var lookback_days. Returns the rows that break this.
{%- set batch_end = feedback_flywheel.var_timestamp('batch_end') %}

with

arrived as (

    select
        feedback_row_id,
        placed_at as arrived_at
    from {{ ref('stg_raw__feedback_events') }}
    where
        (placed_at < {{ batch_end }} or loaded_at < {{ batch_end }})
        -- batch scope (macro batch_scope_filter): the rows placed in the batch window plus
        -- lookback_days; `flywheel check --full` reads every row
        and {{ feedback_flywheel.batch_scope_filter('placed_at') }}

),

accepted as (

    select feedback_row_id from {{ ref('fct_feedback') }}

),

quarantined as (

    select feedback_row_id from {{ ref('fct_feedback_quarantine') }}

),

held as (

    select feedback_row_id from {{ ref('int_feedback_events_classified') }}
    where status = 'held'

),

placed as (

    select
        arrived.feedback_row_id,
        arrived.arrived_at,
        accepted.feedback_row_id is not null as is_accepted,
        quarantined.feedback_row_id is not null as is_quarantined,
        held.feedback_row_id is not null as is_held
    from arrived
    left join accepted
        on arrived.feedback_row_id = accepted.feedback_row_id
    left join quarantined
        on arrived.feedback_row_id = quarantined.feedback_row_id
    left join held
        on arrived.feedback_row_id = held.feedback_row_id

),

violations as (

    select
        *,
        case
            when is_accepted and is_quarantined then 'both accepted and quarantined'
            when is_held and (is_accepted or is_quarantined) then 'held and also placed'
            when
                is_held
                and arrived_at < {{ dbt.dateadd(
                    'day', -feedback_flywheel.setting('lookback_days'), batch_end
                ) }}
                then 'held past the lookback'
            when
                not (is_accepted or is_quarantined or is_held)
                then 'neither accepted nor quarantined'
        end as violation
    from placed

)

select * from violations
where violation is not null

-- Every raw preference row placed (or loaded) before the watermark is exactly one of: accepted (and
-- then in fct_preference_pairs, possibly merged with an earlier judgement of the same pair by the
-- same judge), quarantined (fct_preference_quarantine), or held because an output has not arrived
-- and it is younger than var lookback_days. Returns the rows that break this.
{%- set batch_end = feedback_flywheel.var_timestamp('batch_end') %}

with

arrived as (

    select
        preference_row_id,
        placed_at as arrived_at
    from {{ ref('stg_raw__preference_events') }}
    where
        (placed_at < {{ batch_end }} or loaded_at < {{ batch_end }})
        -- batch scope (macro batch_scope_filter): the rows placed in the batch window plus
        -- lookback_days; `flywheel check --full` reads every row
        and {{ feedback_flywheel.batch_scope_filter('placed_at') }}

),

classified as (

    select * from {{ ref('int_preference_events_classified') }}

),

quarantined as (

    select preference_row_id from {{ ref('fct_preference_quarantine') }}

),

pairs as (

    select
        context_id,
        inference_id_low,
        inference_id_high,
        pair_source,
        annotator_id
    from {{ ref('fct_preference_pairs') }}

),

accepted as (

    -- Accepted rows and whether their judgement is in the pairs mart (as itself or merged).
    select
        classified.preference_row_id,
        exists(
            select 1 from pairs
            where
                pairs.context_id = classified.context_id
                and pairs.inference_id_low = least(
                    classified.inference_id_a, classified.inference_id_b
                )
                and pairs.inference_id_high = greatest(
                    classified.inference_id_a, classified.inference_id_b
                )
                and pairs.pair_source = classified.preference_source
                and pairs.annotator_id is not distinct from classified.annotator_id
        ) as is_in_pairs
    from classified
    where classified.status = 'accepted'

),

held as (

    select preference_row_id from classified
    where status = 'held'

),

placed as (

    select
        arrived.preference_row_id,
        arrived.arrived_at,
        accepted.preference_row_id is not null as is_accepted,
        coalesce(accepted.is_in_pairs, false) as is_in_pairs,
        quarantined.preference_row_id is not null as is_quarantined,
        held.preference_row_id is not null as is_held
    from arrived
    left join accepted
        on arrived.preference_row_id = accepted.preference_row_id
    left join quarantined
        on arrived.preference_row_id = quarantined.preference_row_id
    left join held
        on arrived.preference_row_id = held.preference_row_id

),

violations as (

    select
        *,
        case
            when is_accepted and is_quarantined then 'both accepted and quarantined'
            when is_accepted and not is_in_pairs then 'accepted but not in fct_preference_pairs'
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

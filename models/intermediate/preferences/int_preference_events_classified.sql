{{
    config(
        materialized='incremental',
        unique_key='preference_row_id',
        incremental_strategy=feedback_flywheel.flywheel_incremental_strategy(),
        on_schema_change='fail',
    )
}}

{%- set batch_id = feedback_flywheel.batch_param('batch_id') %}

-- Preference validation: every raw preference_events row gets exactly one status, accepted,
-- quarantined (with a preference_* reason_code from seeds/quarantine_reason_codes.csv) or held
-- (an output it names is not in the log yet; re-tried each batch for var lookback_days, then
-- quarantined as preference_unknown_inference).
-- "New" for this model: rows placed inside the batch window (placed_at: received_at when
-- plausible, else the load time), rows still held, and rows loaded after the newest row already
-- here. A decided row is never decided again, so its outcome
-- and batch_id are stable, and re-running the latest batch reproduces it exactly.

{%- set batch_start = feedback_flywheel.var_timestamp('batch_start') %}
{%- set batch_end = feedback_flywheel.var_timestamp('batch_end') %}

with

preferences as (

    select
        *,
        placed_at as arrived_at
    from {{ ref('stg_raw__preference_events') }}
    where
        placed_at < {{ batch_end }}
    {%- if is_incremental() %}
            and (
                placed_at >= {{ batch_start }}
                or preference_row_id in (
                    select held.preference_row_id from {{ this }} as held
                    where held.status = 'held'
                )
                or loaded_at > (select max(this_batch.loaded_at) from {{ this }} as this_batch)
            )
        {%- endif %}

),

inferences as (

    select
        inference_id,
        model_name,
        model_version,
        context_id,
        logged_at
    from {{ ref('int_inferences_validated') }}
    where is_accepted and logged_at < {{ batch_end }}

),

previously_accepted as (

    {%- if is_incremental() %}
        select preference_id
        from {{ this }}
        where
            status = 'accepted'
            and preference_row_id not in (select preferences.preference_row_id from preferences)
    {%- else %}
        select cast(null as {{ dbt.type_string() }}) as preference_id
        where 1 = 0
    {%- endif %}

),

row_checked as (

    -- Checks that need nothing but the row itself, in the order of the reason-code seed.
    select
        *,
        case
            when
                preference_id is null or context_id is null or inference_id_a is null
                or inference_id_b is null or preferred is null or preference_source is null
                or occurred_at is null or received_at is null
                then 'preference_missing_field'
            {{ feedback_flywheel.timestamp_checks(
                ['occurred_at', 'received_at'], 'received_at', 'loaded_at', prefix='preference_'
            ) }}
            when
                preferred not in ('a', 'b', 'tie')
                or preference_source not in ('human', 'ai_judge', 'reward_model')
                then 'preference_invalid_value'
            when inference_id_a = inference_id_b then 'preference_same_output'
            when
                occurred_at > {{ dbt.dateadd(
                    'second', feedback_flywheel.setting('clock_skew_seconds'), 'received_at'
                ) }}
                then 'preference_in_future'
        end as row_reason
    from preferences

),

joined as (

    -- Checks that need both outputs: only possible once both are in the log.
    select
        row_checked.*,
        inferences_a.model_name as model_name_a,
        inferences_a.model_version as model_version_a,
        inferences_b.model_name as model_name_b,
        inferences_b.model_version as model_version_b,
        inferences_a.logged_at as logged_at_a,
        inferences_b.logged_at as logged_at_b,
        case
            when row_checked.row_reason is not null then row_checked.row_reason
            when inferences_a.logged_at is null or inferences_b.logged_at is null then null
            when
                row_checked.occurred_at < inferences_a.logged_at
                or row_checked.occurred_at < inferences_b.logged_at
                then 'preference_before_inference'
            when
                inferences_a.context_id <> row_checked.context_id
                or inferences_b.context_id <> row_checked.context_id
                then 'preference_context_mismatch'
        end as content_reason
    from row_checked
    left join inferences as inferences_a
        on row_checked.inference_id_a = inferences_a.inference_id
    left join inferences as inferences_b
        on row_checked.inference_id_b = inferences_b.inference_id

),

deduplicated as (

    -- Among the copies of a preference_id that pass every content check, the first (by arrival)
    -- whose two outputs are both logged counts; later copies, and copies of a judgement accepted
    -- in an earlier batch, are duplicates. A refused or held copy never blocks a valid re-send.
    select
        joined.*,
        previously_accepted.preference_id is not null as was_accepted_before,
        case
            when joined.content_reason is null
                then row_number() over (
                        partition by joined.preference_id, joined.content_reason
                        order by
                            case
                                when joined.logged_at_a is null or joined.logged_at_b is null
                                    then 1
                                else 0
                            end,
                            joined.received_at,
                            joined.loaded_at,
                            joined.load_id,
                            joined.file_row
                    )
        end as preference_rank
    from joined
    left join previously_accepted
        on joined.preference_id = previously_accepted.preference_id

),

classified as (

    select
        *,
        case
            when content_reason is not null then content_reason
            when was_accepted_before or preference_rank > 1 then 'preference_duplicate_id'
            when
                (logged_at_a is null or logged_at_b is null)
                and arrived_at < {{ dbt.dateadd(
                    'day', -feedback_flywheel.setting('lookback_days'), batch_end
                ) }}
                then 'preference_unknown_inference'
        end as reason_code
    from deduplicated

),

final as (

    select
        preference_row_id,
        preference_id,
        context_id,
        inference_id_a,
        inference_id_b,
        case
            when reason_code is not null then 'quarantined'
            when logged_at_a is null or logged_at_b is null then 'held'
            else 'accepted'
        end as status,
        reason_code,
        preferred,
        annotator_id,
        preference_source,
        model_name_a,
        model_version_a,
        model_name_b,
        model_version_b,
        load_id,
        '{{ batch_id }}' as batch_id,
        file_row,
        logged_at_a,
        logged_at_b,
        occurred_at,
        received_at,
        loaded_at
    from classified

)

select * from final

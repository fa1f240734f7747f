{{
    config(
        materialized='incremental',
        unique_key='preference_row_id',
        incremental_strategy=feedback_flywheel.flywheel_incremental_strategy(),
        on_schema_change='fail',
    )
}}

{%- set batch_id = feedback_flywheel.batch_param('batch_id') %}

-- Every raw preference row that was refused, with its reason code, the raw choice kept verbatim,
-- and the file and row it came from, so it can be fixed and re-sent.
-- "New" for this model: rows quarantined in this batch.

with

quarantined as (

    select * from {{ ref('int_preference_events_classified') }}
    where
        status = 'quarantined'
    {%- if is_incremental() %}
            and batch_id = '{{ batch_id }}'
        {%- endif %}

),

ledger as (

    select * from {{ ref('stg_raw__load_ledger') }}

),

reason_codes as (

    select * from {{ ref('quarantine_reason_codes') }}

),

final as (

    select
        quarantined.preference_row_id,
        quarantined.preference_id,
        quarantined.context_id,
        quarantined.inference_id_a,
        quarantined.inference_id_b,
        quarantined.reason_code,
        reason_codes.description as reason_description,
        reason_codes.what_to_do,
        quarantined.preferred as raw_preferred,
        quarantined.annotator_id,
        quarantined.preference_source,
        quarantined.load_id,
        ledger.file_name,
        quarantined.batch_id,
        quarantined.file_row,
        quarantined.occurred_at,
        quarantined.received_at,
        quarantined.loaded_at
    from quarantined
    left join ledger
        on quarantined.load_id = ledger.load_id
    left join reason_codes
        on quarantined.reason_code = reason_codes.reason_code

)

select * from final

{{ config(materialized='table') }}

-- How much of each loaded feedback file was quarantined, per reason: a file whose rows were all
-- (or mostly) quarantined for one reason — logs written with an unsupported schema_version, an
-- exporter that drops a required field — is a warning of the batch that decided its rows
-- (batch cycle, CLI, dashboard), with the reason and what to do, not a count in a summary.
-- Rebuilt every batch from the quarantine and the load ledger (small: one row per file and
-- reason), so the serving copy the dashboard reads has it too.

with

quarantine as (

    select
        load_id,
        reason_code,
        batch_id
    from {{ ref('int_feedback_events_classified') }}
    where status = 'quarantined'

),

ledger as (

    select
        load_id,
        file_name,
        file_path,
        row_count
    from {{ ref('stg_raw__load_ledger') }}
    where table_name = 'feedback_events'

),

reason_codes as (

    select * from {{ ref('quarantine_reason_codes') }}

),

per_file as (

    select
        load_id,
        reason_code,
        count(*) as quarantined_rows,
        max(batch_id) as last_batch_id
    from quarantine
    group by load_id, reason_code

),

final as (

    select
        {{ feedback_flywheel.surrogate_key(['per_file.load_id', 'per_file.reason_code']) }}
            as file_quarantine_id,
        per_file.load_id,
        per_file.reason_code,
        ledger.file_name,
        ledger.file_path,
        reason_codes.what_to_do,
        per_file.last_batch_id,
        cast(ledger.row_count as {{ dbt.type_bigint() }}) as file_rows,
        cast(per_file.quarantined_rows as {{ dbt.type_bigint() }}) as quarantined_rows,
        cast(per_file.quarantined_rows as double) / nullif(ledger.row_count, 0)
            as quarantined_share
    from per_file
    inner join ledger
        on per_file.load_id = ledger.load_id
    left join reason_codes
        on per_file.reason_code = reason_codes.reason_code

)

select * from final

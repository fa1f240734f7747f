-- One row per raw feedback_events row, typed: ids trimmed (blank is missing, in every file
-- format), and the time that places the row in a batch; the text value is also offered as a
-- number. The
-- payload stays raw text here: validation (intermediate) decides whether it is usable. The event
-- type and value are also kept exactly as sent (raw_*), for lineage.
with

source as (

    select * from {{ source('raw', 'feedback_events') }}

),

renamed as (

    select
        _load_id || ':' || cast(_file_row as {{ dbt.type_string() }}) as feedback_row_id,
        {{ feedback_flywheel.clean_id('event_id') }} as event_id,
        {{ feedback_flywheel.clean_id('inference_id') }} as inference_id,
        lower(trim(event_type)) as event_type,
        trim(value) as value_text,
        event_type as raw_event_type,
        value as raw_value,
        payload as raw_payload,
        source as feedback_source,
        trim(schema_version) as schema_version,
        _load_id as load_id,
        {{ feedback_flywheel.try_to_double('trim(value)') }} as value_numeric,
        _file_row as file_row,
        occurred_at,
        received_at,
        {{ feedback_flywheel.placement_time('received_at', '_loaded_at') }} as placed_at,
        _loaded_at as loaded_at

    from source

)

select * from renamed

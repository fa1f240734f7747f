-- One row per raw preference_events row, typed and normalised (lower-cased choices and sources):
-- ids trimmed (blank is missing), the annotator pseudonymised when var personal_columns lists it,
-- and the time that places the row in a batch.
with

source as (

    select * from {{ source('raw', 'preference_events') }}

),

renamed as (

    select
        _load_id || ':' || cast(_file_row as {{ dbt.type_string() }}) as preference_row_id,
        {{ feedback_flywheel.clean_id('preference_id') }} as preference_id,
        {{ feedback_flywheel.clean_id('context_id') }} as context_id,
        {{ feedback_flywheel.clean_id('inference_id_a') }} as inference_id_a,
        {{ feedback_flywheel.clean_id('inference_id_b') }} as inference_id_b,
        {{ feedback_flywheel.id_column('annotator_id') }} as annotator_id,
        lower(trim(preferred)) as preferred,
        lower(trim(source)) as preference_source,
        _load_id as load_id,
        _file_row as file_row,
        occurred_at,
        received_at,
        {{ feedback_flywheel.placement_time('received_at', '_loaded_at') }} as placed_at,
        _loaded_at as loaded_at

    from source

)

select * from renamed

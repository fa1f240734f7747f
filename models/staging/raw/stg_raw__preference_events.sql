-- One row per raw preference_events row, typed and normalised (lower-cased choices and sources).
with

source as (

    select * from {{ source('raw', 'preference_events') }}

),

renamed as (

    select
        _load_id || ':' || cast(_file_row as {{ dbt.type_string() }}) as preference_row_id,
        preference_id,
        context_id,
        inference_id_a,
        inference_id_b,
        annotator_id,
        lower(trim(preferred)) as preferred,
        lower(trim(source)) as preference_source,
        _load_id as load_id,
        _file_row as file_row,
        occurred_at,
        received_at,
        _loaded_at as loaded_at

    from source

)

select * from renamed

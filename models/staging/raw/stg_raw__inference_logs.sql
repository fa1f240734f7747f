-- One row per raw inference_log row, typed and with its segment context parsed. No filtering and no
-- deduplication here: validation happens in intermediate, so every raw row stays accounted for.
with

source as (

    select * from {{ source('raw', 'inference_log') }}

),

renamed as (

    select
        _load_id || ':' || cast(_file_row as {{ dbt.type_string() }}) as inference_row_id,
        inference_id,
        model_name,
        model_version,
        subject_id,
        session_id,
        predicted_label,
        context as context_json,
        inputs as inputs_json,
        probabilities as probabilities_json,
        output_text,
        _load_id as load_id,
        step_index,
        _file_row as file_row,
        predicted_score,
        logged_at,
        _loaded_at as loaded_at

    from source

)

select * from renamed

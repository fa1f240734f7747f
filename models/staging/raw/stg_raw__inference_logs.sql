-- One row per raw inference_log row, typed: ids trimmed (blank is missing), personal ids (var
-- personal_columns) pseudonymised, and the time that places the row in a batch. No filtering and
-- no deduplication here: validation happens in intermediate, so every raw row stays accounted for.
with

source as (

    select * from {{ source('raw', 'inference_log') }}

),

renamed as (

    select
        _load_id || ':' || cast(_file_row as {{ dbt.type_string() }}) as inference_row_id,
        {{ feedback_flywheel.clean_id('inference_id') }} as inference_id,
        {{ feedback_flywheel.clean_id('model_name') }} as model_name,
        {{ feedback_flywheel.clean_id('model_version') }} as model_version,
        {{ feedback_flywheel.id_column('subject_id') }} as subject_id,
        {{ feedback_flywheel.id_column('session_id') }} as session_id,
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
        {{ feedback_flywheel.placement_time('logged_at', '_loaded_at') }} as placed_at,
        _loaded_at as loaded_at

    from source

)

select * from renamed

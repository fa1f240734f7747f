-- One row per raw model_deployments row: the model registry as events.
with

source as (

    select * from {{ source('raw', 'model_deployments') }}

),

renamed as (

    select
        _load_id || ':' || cast(_file_row as {{ dbt.type_string() }}) as deployment_row_id,
        model_name,
        model_version,
        training_run_id,
        _load_id as load_id,
        _file_row as file_row,
        deployed_at,
        retired_at,
        _loaded_at as loaded_at

    from source

)

select * from renamed

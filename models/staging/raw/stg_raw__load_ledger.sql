-- One row per file ingest appended to a raw table, so marts can name the file a row came from.
with

source as (

    select * from {{ source('raw', 'load_ledger') }}

),

renamed as (

    select
        load_id,
        table_name,
        file_path,
        file_name,
        file_format,
        content_sha256,
        row_count,
        loaded_at

    from source

)

select * from renamed

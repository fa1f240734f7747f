{{ config(materialized='view') }}

-- The raw preference rows by judge source and validation status: how many of each source were
-- accepted, quarantined or are held, for the quality report (rpt_preference_quality). A view: a
-- small aggregate of int_preference_events_classified, read once per batch.

with

classified as (

    select
        preference_source,
        status
    from {{ ref('int_preference_events_classified') }}

),

final as (

    select
        status,
        coalesce(preference_source, 'unknown') as preference_source,
        count(*) as row_count
    from classified
    group by status, coalesce(preference_source, 'unknown')

)

select * from final

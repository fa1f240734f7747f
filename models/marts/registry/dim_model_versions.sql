-- The model registry as a state: one row per (model, version), from the append-only registry
-- events in raw.model_deployments. The latest row loaded for a version states it (a user retires
-- a version by appending a row with retired_at set); superseded_at is when the model's next
-- version started serving. The snapshot model_registry_snapshot keeps the history of this state;
-- rpt_deployment_impact and the dashboard read the deployments from here.
with

deployments as (

    select * from {{ ref('stg_raw__model_deployments') }}

),

latest_per_version as (

    select
        *,
        row_number() over (
            partition by model_name, model_version
            -- the last row of the last file loaded; file rows compared as numbers (as text,
            -- row 9 would come after row 10)
            order by loaded_at desc, load_id desc, file_row desc
        ) as statement_recency
    from deployments

),

versions as (

    select * from latest_per_version
    where statement_recency = 1

),

successions as (

    select
        *,
        lead(deployed_at) over (
            partition by model_name
            order by deployed_at, model_version
        ) as superseded_at
    from versions

),

states as (

    select
        *,
        model_name || ':' || model_version as model_version_key,
        retired_at is null and superseded_at is null as is_serving
    from successions

),

final as (

    select
        model_version_key,
        model_name,
        model_version,
        training_run_id,
        deployment_row_id,
        load_id,
        is_serving,
        deployed_at,
        retired_at,
        superseded_at,
        loaded_at
    from states

)

select * from final

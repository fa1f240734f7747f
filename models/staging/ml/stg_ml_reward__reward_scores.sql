-- One row per reward score the reward stage wrote, as written. The table is created by the first
-- reward step (feedback_flywheel/reward.py); before that this model is empty, so a fresh
-- warehouse still builds.
{%- set scores = source('ml_reward', 'reward_scores') %}
{%- set existing = adapter.get_relation(
    database=scores.database, schema=scores.schema, identifier=scores.identifier
) if execute else none %}

with

source as (

    {%- if existing is not none %}
        select
            inference_id,
            reward_model_version,
            batch_id,
            score,
            input_hash,
            scored_at
        from {{ scores }}
    {%- else %}
        select
            cast(null as {{ dbt.type_string() }}) as inference_id,
            cast(null as {{ dbt.type_string() }}) as reward_model_version,
            cast(null as {{ dbt.type_string() }}) as batch_id,
            cast(null as double) as score,
            cast(null as {{ dbt.type_string() }}) as input_hash,
            cast(null as timestamp) as scored_at
        where 1 = 0
    {%- endif %}

),

renamed as (

    select
        {{ feedback_flywheel.surrogate_key(['inference_id', 'reward_model_version']) }}
            as reward_score_id,
        inference_id,
        reward_model_version,
        batch_id,
        input_hash,
        score,
        scored_at
    from source

)

select * from renamed

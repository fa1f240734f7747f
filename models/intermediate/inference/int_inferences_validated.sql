{{
    config(
        materialized='incremental',
        unique_key='inference_row_id',
        incremental_strategy=feedback_flywheel.flywheel_incremental_strategy(),
        on_schema_change='fail',
    )
}}

-- Every raw inference row, validated once, with its uncertainty measures computed from its
-- probabilities. Its segment context is parsed into the long fct_inference_segments (every key,
-- so the configured segment attributes are not columns of this table).
-- "New" for this model: raw rows placed before the batch watermark (placed_at: logged_at when
-- plausible, else the load time) that were placed within the batch window plus lookback, or
-- loaded after the newest row already here (a late file). Rows seen
-- before are recomputed identically (delete+insert on inference_row_id).

with

inferences as (

    select * from {{ ref('stg_raw__inference_logs') }}
    where
        placed_at < {{ feedback_flywheel.var_timestamp('batch_end') }}
    {{ feedback_flywheel.lookback_or_late('placed_at') }}

),

{% if is_incremental() %}
    previously_accepted as (

        select
            inference_id,
            inference_row_id
        from {{ this }}
        where
            reason_code is null
            and inference_row_id not in (select inferences.inference_row_id from inferences)
            -- only the ids this batch's rows carry can be duplicates of an earlier row
            and inference_id in (select inferences.inference_id from inferences)

    ),
{% endif %}

checked as (

    select
        *,
        case
            when
                inference_id is null or logged_at is null or model_name is null
                or model_version is null
                then 'missing_required_field'
            {{ feedback_flywheel.timestamp_checks(['logged_at'], 'logged_at', 'loaded_at') }}
            when
                not {{ feedback_flywheel.json_is_object('context_json') }}
                or not {{ feedback_flywheel.json_is_object('inputs_json') }}
                then 'malformed_context'
            when
                predicted_label is null or predicted_score is null
                or predicted_score < 0 or predicted_score > 1
                then 'invalid_prediction'
        end as row_reason
    from inferences

),

ranked as (

    select
        checked.*,
        case
            when checked.row_reason is not null then null
            else row_number() over (
                    partition by checked.inference_id, checked.row_reason
                    order by checked.loaded_at, checked.load_id, checked.file_row
                )
        end as id_rank
    from checked

),

validated as (

    select
        ranked.*,
        case
            when ranked.row_reason is not null then ranked.row_reason
            {%- if is_incremental() %}
                when previously_accepted.inference_id is not null then 'duplicate_inference_id'
            {%- endif %}
            when ranked.id_rank > 1 then 'duplicate_inference_id'
        end as reason_code
    from ranked
    {%- if is_incremental() %}
    left join previously_accepted
        on ranked.inference_id = previously_accepted.inference_id
    {%- endif %}

),

final as (

    select
        inference_row_id,
        inference_id,
        model_name,
        model_version,
        subject_id,
        session_id,
        predicted_label,
        {{ feedback_flywheel.json_get_string('context_json', 'context_id') }} as context_id,
        context_json,
        inputs_json,
        probabilities_json,
        output_text,
        reason_code,
        load_id,
        step_index,
        file_row,
        predicted_score,
        {{ feedback_flywheel.probability_summary('probabilities_json') }},
        reason_code is null as is_accepted,
        logged_at,
        loaded_at
    from validated

)

select * from final

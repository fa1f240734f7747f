{%- set batch_id = feedback_flywheel.batch_param('batch_id') %}
{%- set weights = feedback_flywheel.setting('preference_source_weights') %}
{%- set split_fraction = feedback_flywheel.hash_fraction(
    'deduplicated.context_id', feedback_flywheel.setting('sampling_seed')
) %}

-- The preference dataset: one row per judgement of a pair of outputs for the same context, from
-- three origins, each marked in pair_source:
--   human / ai_judge / reward_model  accepted preference_events (by their source);
--   feedback_rating                  two outputs of the same context_id with different current
--                                    explicit ratings (margin = the rating difference);
--   reward_model                     (var preference_reward_model_pairs) two outputs of the same
--                                    context scored by the reward model at least
--                                    var reward_model_pair_min_margin apart, only for contexts no
--                                    other origin judged.
-- A pair is stored in canonical order (inference_id_low < inference_id_high), so the same
-- context and the same two outputs judged in either order are one pair; a judge who judged it
-- twice counts once (the first judgement). Ties are kept (preferred_output = 'tie'). The split is
-- deterministic by context_id: md5(context_id:sampling_seed), never random().
-- A table rebuilt every batch from stable inputs: every row keeps the batch that completed it.

with

events as (

    select * from {{ ref('int_preference_events_classified') }}
    where status = 'accepted'

),

inferences as (

    select
        inference_id,
        model_name,
        model_version,
        context_id
    from {{ ref('int_inferences_validated') }}
    where is_accepted

),

ratings as (

    select
        event_id,
        inference_id,
        batch_id,
        value_numeric as rating,
        occurred_at,
        received_at
    from {{ ref('fct_feedback') }}
    where event_type = 'rating' and not is_retracted

),

reward_scores as (

    -- Scores of earlier batches only: the reward stage scores this batch's outputs after this
    -- build, so reading them here would make a re-run of the batch differ from its first run.
    select * from {{ ref('stg_ml__reward_scores') }}
    where batch_id < '{{ batch_id }}'

),

event_pairs as (

    select
        context_id,
        least(inference_id_a, inference_id_b) as inference_id_low,
        greatest(inference_id_a, inference_id_b) as inference_id_high,
        inference_id_a as first_shown_inference_id,
        case
            when preferred = 'tie' then 'tie'
            when (preferred = 'a') = (inference_id_a < inference_id_b) then 'low'
            else 'high'
        end as preferred_output,
        preference_source as pair_source,
        annotator_id,
        preference_id as origin_id,
        batch_id,
        cast(null as double) as margin,
        occurred_at,
        received_at
    from events

),

current_ratings as (

    -- The current rating of an output: its latest accepted, non-retracted rating.
    select
        ratings.*,
        inferences.context_id,
        row_number() over (
            partition by ratings.inference_id
            order by ratings.occurred_at desc, ratings.received_at desc, ratings.event_id desc
        ) as rating_rank
    from ratings
    inner join inferences
        on ratings.inference_id = inferences.inference_id
    where inferences.context_id is not null

),

rating_pairs as (

    select
        low.context_id,
        low.inference_id as inference_id_low,
        high.inference_id as inference_id_high,
        cast(null as {{ dbt.type_string() }}) as first_shown_inference_id,
        case when low.rating > high.rating then 'low' else 'high' end as preferred_output,
        'feedback_rating' as pair_source,
        cast(null as {{ dbt.type_string() }}) as annotator_id,
        low.event_id || '|' || high.event_id as origin_id,
        greatest(low.batch_id, high.batch_id) as batch_id,
        abs(low.rating - high.rating) as margin,
        greatest(low.occurred_at, high.occurred_at) as occurred_at,
        greatest(low.received_at, high.received_at) as received_at
    from current_ratings as low
    inner join current_ratings as high
        on
            low.context_id = high.context_id
            and low.inference_id < high.inference_id
            and low.rating <> high.rating
    where low.rating_rank = 1 and high.rating_rank = 1

),

latest_scores as (

    -- The latest score of an output (by the reward model version that scored it last).
    select
        reward_scores.*,
        inferences.context_id,
        row_number() over (
            partition by reward_scores.inference_id
            order by reward_scores.scored_at desc, reward_scores.reward_model_version desc
        ) as score_rank
    from reward_scores
    inner join inferences
        on reward_scores.inference_id = inferences.inference_id
    where inferences.context_id is not null

),

{%- if feedback_flywheel.setting('preference_reward_model_pairs') %}

    judged_contexts as (

        select distinct context_id from event_pairs
        where pair_source <> 'reward_model'
        union all
        select distinct context_id from rating_pairs

    ),

{%- endif %}

reward_model_pairs as (

    {%- if feedback_flywheel.setting('preference_reward_model_pairs') %}
        select
            low.context_id,
            low.inference_id as inference_id_low,
            high.inference_id as inference_id_high,
            cast(null as {{ dbt.type_string() }}) as first_shown_inference_id,
            case when low.score > high.score then 'low' else 'high' end as preferred_output,
            'reward_model' as pair_source,
            low.reward_model_version as annotator_id,
            low.reward_score_id || '|' || high.reward_score_id as origin_id,
            greatest(low.batch_id, high.batch_id) as batch_id,
            abs(low.score - high.score) as margin,
            greatest(low.scored_at, high.scored_at) as occurred_at,
            greatest(low.scored_at, high.scored_at) as received_at
        from latest_scores as low
        inner join latest_scores as high
            on
                low.context_id = high.context_id
                and low.inference_id < high.inference_id
                and low.reward_model_version = high.reward_model_version
                and abs(low.score - high.score) >= {{ feedback_flywheel.setting('reward_model_pair_min_margin') }}
        where
            low.score_rank = 1 and high.score_rank = 1
            and low.context_id not in (select judged_contexts.context_id from judged_contexts)
    {%- else %}
        select
            cast(null as {{ dbt.type_string() }}) as context_id,
            cast(null as {{ dbt.type_string() }}) as inference_id_low,
            cast(null as {{ dbt.type_string() }}) as inference_id_high,
            cast(null as {{ dbt.type_string() }}) as first_shown_inference_id,
            cast(null as {{ dbt.type_string() }}) as preferred_output,
            cast(null as {{ dbt.type_string() }}) as pair_source,
            cast(null as {{ dbt.type_string() }}) as annotator_id,
            cast(null as {{ dbt.type_string() }}) as origin_id,
            cast(null as {{ dbt.type_string() }}) as batch_id,
            cast(null as double) as margin,
            cast(null as timestamp) as occurred_at,
            cast(null as timestamp) as received_at
        from latest_scores
        where 1 = 0
    {%- endif %}

),

unioned as (

    select * from event_pairs
    union all
    select * from rating_pairs
    union all
    select * from reward_model_pairs

),

deduplicated as (

    -- The same judge judging the same two outputs of a context again (in either order) is one
    -- judgement: the first (by occurred_at) counts.
    select
        *,
        count(*) over (
            partition by pair_source, context_id, inference_id_low, inference_id_high, annotator_id
        ) as copies_merged,
        row_number() over (
            partition by pair_source, context_id, inference_id_low, inference_id_high, annotator_id
            order by occurred_at, received_at, origin_id
        ) as copy_rank
    from unioned

),

final as (

    select
        {{ feedback_flywheel.surrogate_key([
            'deduplicated.pair_source', 'deduplicated.context_id',
            'deduplicated.inference_id_low', 'deduplicated.inference_id_high',
            'deduplicated.annotator_id',
        ]) }} as preference_pair_id,
        {{ feedback_flywheel.surrogate_key([
            'deduplicated.context_id', 'deduplicated.inference_id_low',
            'deduplicated.inference_id_high',
        ]) }} as pair_key,
        deduplicated.context_id,
        deduplicated.inference_id_low,
        deduplicated.inference_id_high,
        case deduplicated.preferred_output
            when 'low' then deduplicated.inference_id_low
            when 'high' then deduplicated.inference_id_high
        end as chosen_inference_id,
        case deduplicated.preferred_output
            when 'low' then deduplicated.inference_id_high
            when 'high' then deduplicated.inference_id_low
        end as rejected_inference_id,
        deduplicated.first_shown_inference_id,
        deduplicated.origin_id,
        deduplicated.preferred_output,
        deduplicated.pair_source,
        deduplicated.annotator_id,
        inferences_low.model_name,
        inferences_low.model_version as model_version_low,
        inferences_high.model_version as model_version_high,
        case
            when
                {{ split_fraction }}
                < {{ feedback_flywheel.setting('preference_validation_share') }}
                then 'validation'
            else 'train'
        end as split,
        deduplicated.batch_id,
        deduplicated.margin,
        case deduplicated.pair_source
            {%- for source_name, weight in weights.items() %}
                when {{ feedback_flywheel.sql_string(source_name) }}
                    then cast({{ weight }} as double)
            {%- endfor %}
            else cast(1.0 as double)
        end as pair_weight,
        deduplicated.copies_merged,
        deduplicated.preferred_output = 'tie' as is_tie,
        case
            when
                deduplicated.first_shown_inference_id is not null
                and deduplicated.preferred_output <> 'tie'
                then (
                    (deduplicated.preferred_output = 'low')
                    = (deduplicated.first_shown_inference_id = deduplicated.inference_id_low)
                )
        end as is_first_shown_preferred,
        deduplicated.occurred_at,
        deduplicated.received_at
    from deduplicated
    inner join inferences as inferences_low
        on deduplicated.inference_id_low = inferences_low.inference_id
    inner join inferences as inferences_high
        on deduplicated.inference_id_high = inferences_high.inference_id
    where deduplicated.copy_rank = 1 and deduplicated.batch_id <= '{{ batch_id }}'

)

select * from final

{{ config(materialized='view') }}

-- The features phi(x) of every accepted output that the reward model scores, computed here in SQL
-- (Python only reads them): word, character and sentence counts of output_text, whether it asks
-- a question, one 0/1 flag per LIKE pattern of var reward_text_keywords (matched on the
-- lower-cased text), and the model's own confidence (predicted_score). A view: the text functions
-- are cheap, and the reward stage reads only the outputs it trains on or scores. Public: the reward
-- stage (feedback_flywheel/reward.py) reads it as marts.fct_output_features.

{%- set keywords = feedback_flywheel.setting('reward_text_keywords') %}

with

inferences as (

    select
        inference_id,
        model_name,
        model_version,
        context_id,
        output_text,
        predicted_score,
        logged_at
    from {{ ref('int_inferences_validated') }}
    where is_accepted and output_text is not null

),

normalised as (

    select
        *,
        lower(trim(output_text)) as text_lower
    from inferences

),

final as (

    select
        inference_id,
        model_name,
        model_version,
        context_id,
        cast(
            case
                when text_lower = '' then 0
                else length(text_lower) - length(replace(text_lower, ' ', '')) + 1
            end as double
        ) as n_words,
        cast(length(text_lower) as double) as n_chars,
        cast(
            length(text_lower)
            - length(replace(replace(replace(text_lower, '.', ''), '!', ''), '?', ''))
            as double
        ) as n_sentences,
        case when text_lower like '%?%' then 1.0 else 0.0 end as has_question,
        {%- for name, pattern in keywords.items() %}
            case
                when text_lower like {{ feedback_flywheel.sql_string(pattern) }} then 1.0 else 0.0
            end as {{ name }},
        {%- endfor %}
        cast(predicted_score as double) as predicted_score,
        logged_at
    from normalised

)

select * from final

{{ config(materialized='table') }}

-- Every signal one prediction received, side by side: one row per accepted prediction with any
-- non-retracted feedback, its latest click, conversion, thumbs, dwell and rating (the latest
-- occurred_at of each type wins, event_id breaking ties) and whether its current ground-truth
-- label (fct_training_examples: matured, corrections applied) says the prediction was right.
-- The fidelity report pairs these columns; a signal the prediction did not receive is null.

{%- set signal_types = ['click', 'conversion', 'thumbs', 'dwell_seconds', 'rating'] %}

with

feedback as (

    select
        inference_id,
        model_name,
        model_version,
        inference_logged_at,
        event_type,
        value_numeric,
        row_number() over (
            partition by inference_id, event_type
            order by occurred_at desc, event_id desc
        ) as recency
    from {{ ref('fct_feedback') }}
    where
        not is_retracted
        and event_type in ('click', 'conversion', 'thumbs', 'dwell_seconds', 'rating')

),

signals as (

    select
        inference_id,
        max(model_name) as model_name,
        max(model_version) as model_version,
        max(inference_logged_at) as inference_logged_at,
        {%- for signal in signal_types %}
            max(case when event_type = '{{ signal }}' then value_numeric end) as {{ signal }}
            {%- if not loop.last %},{% endif %}
        {%- endfor %}
    from feedback
    where recency = 1
    group by inference_id

),

labels as (

    select
        inference_id,
        is_correct,
        label_received_at
    from {{ ref('fct_training_examples') }}
    where is_current

),

final as (

    select
        signals.inference_id,
        signals.model_name,
        signals.model_version,
        signals.inference_logged_at,
        cast({{ dbt.date_trunc('week', 'signals.inference_logged_at') }} as date)
            as served_week_start_date,
        {%- for signal in signal_types %}
            cast(signals.{{ signal }} as double) as {{ signal }},
        {%- endfor %}
        labels.is_correct,
        labels.label_received_at
    from signals
    left join labels on signals.inference_id = labels.inference_id

)

select * from final

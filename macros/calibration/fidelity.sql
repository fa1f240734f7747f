{#- The signal pairs the fidelity reports assess, and when each signal counts as positive. -#}


{#- (signal, reference) pairs: every implicit signal against the explicit rating and against
    ground-truth correctness, and the rating against correctness. -#}
{% macro fidelity_pair_names() -%}
    {%- set pairs = [] -%}
    {%- for signal in ['click', 'conversion', 'thumbs', 'dwell_seconds'] -%}
        {%- do pairs.append((signal, 'rating')) -%}
        {%- do pairs.append((signal, 'correctness')) -%}
    {%- endfor -%}
    {%- do pairs.append(('rating', 'correctness')) -%}
    {{ return(pairs) }}
{%- endmacro %}


{#- When each signal of fct_feedback_signals counts as positive, as SQL conditions on its column:
    click / conversion 1, thumbs up, dwell >= var fidelity_dwell_positive_seconds, rating >= var
    fidelity_rating_positive_at, correctness: the current label equals the prediction. The
    fidelity report and the weak labels (fct_weak_label_fidelity) read the same rules. -#}
{% macro signal_positive_conditions() -%}
    {%- set dwell_at = feedback_flywheel.setting('fidelity_dwell_positive_seconds') -%}
    {%- set rating_at = feedback_flywheel.setting('fidelity_rating_positive_at') -%}
    {{ return({
        'click': 'click = 1',
        'conversion': 'conversion = 1',
        'thumbs': 'thumbs > 0',
        'dwell_seconds': 'dwell_seconds >= ' ~ dwell_at,
        'rating': 'rating >= ' ~ rating_at,
        'correctness': 'is_correct',
    }) }}
{%- endmacro %}


{#- A select over `signals` (shaped like fct_feedback_signals): one row per prediction and pair
    whose two signals it received, with both values (correctness as 0 / 1), whether each is
    positive (click / conversion 1, thumbs up, dwell >= var fidelity_dwell_positive_seconds,
    rating >= var fidelity_rating_positive_at, correctness: label = prediction) and is_ranked:
    whether a side is numeric (dwell, rating), so a rank correlation means something. -#}
{% macro fidelity_pairs(signals) -%}
    {%- set positive = feedback_flywheel.signal_positive_conditions() -%}
    {%- set column = {'correctness': 'is_correct'} -%}
    {%- set value = {'correctness': 'case when is_correct then 1.0 else 0.0 end'} -%}
    {%- set ranked = ['dwell_seconds', 'rating'] -%}
    {%- for signal, reference in feedback_flywheel.fidelity_pair_names() %}
    select
        inference_id,
        model_name,
        model_version,
        inference_logged_at,
        served_week_start_date,
        '{{ signal }}' as signal_name,
        '{{ reference }}' as reference_name,
        {{ 'true' if signal in ranked or reference in ranked else 'false' }} as is_ranked,
        cast({{ value.get(signal, signal) }} as double) as signal_value,
        cast({{ value.get(reference, reference) }} as double) as reference_value,
        case when {{ positive[signal] }} then 1 else 0 end as signal_positive,
        case when {{ positive[reference] }} then 1 else 0 end as reference_positive
    from {{ signals }}
    where
        {{ column.get(signal, signal) }} is not null
        and {{ column.get(reference, reference) }} is not null
    {%- if not loop.last %}

    union all
    {% endif %}
    {%- endfor %}
{%- endmacro %}

{{
    config(
        materialized='incremental',
        unique_key='weak_label_fidelity_id',
        incremental_strategy=feedback_flywheel.flywheel_incremental_strategy(),
        on_schema_change='fail',
    )
}}

-- How far each implicit signal can stand in for a missing label, measured every batch: per model,
-- signal (click, conversion, thumbs, dwell_seconds) and polarity, the share of predictions whose
-- matured label agrees with the weak label that signal would give, over the predictions served
-- in the var weak_label_fidelity_days before the watermark that received both.
-- - positive signal: the prediction was right, so the weak label is the predicted label;
--   fidelity = P(correct | positive), the signal's precision as a proxy for correctness.
-- - negative signal: the prediction was wrong; only a two-class model has one other label, so
--   only there is there a weak label; fidelity = P(wrong | negative).
-- A (signal, polarity) is usable when var weak_label_signals names the signal, the overlap
-- reaches var fidelity_min_group_count and the 95% Wilson lower bound of the fidelity reaches var
-- weak_label_min_fidelity. fct_weak_label_examples weighs each weak label by the fidelity of the
-- batch that formed it. "New" for this model: the current batch's measurements.

{%- set batch_id = feedback_flywheel.batch_param('batch_id') %}
{%- set batch_end = feedback_flywheel.var_timestamp('batch_end') %}
{%- set window_start = dbt.dateadd(
    'day', -feedback_flywheel.setting('weak_label_fidelity_days'), batch_end
) %}
{%- set configured = feedback_flywheel.setting('weak_label_signals') %}
{%- set positive = feedback_flywheel.signal_positive_conditions() %}
{%- set implicit_signals = ['click', 'conversion', 'thumbs', 'dwell_seconds'] %}

with

signals as (

    select * from {{ ref('fct_feedback_signals') }}
    where inference_logged_at < {{ batch_end }}

),

label_sets as (

    -- the labels each model's current examples hold: two of them make a two-class model
    select
        model_name,
        count(distinct label) as label_count,
        min(label) as first_label,
        max(label) as second_label
    from {{ ref('fct_training_examples') }}
    where is_current and label is not null
    group by model_name

),

observed as (

    {%- for signal in implicit_signals %}
        select
            model_name,
            '{{ signal }}' as signal_name,
            case when {{ positive[signal] }} then 'positive' else 'negative' end
                as signal_polarity,
            case when ({{ positive[signal] }}) = is_correct then 1 else 0 end as is_right
        from signals
        where
            {{ signal }} is not null
            and is_correct is not null
            and inference_logged_at >= {{ window_start }}
        {%- if not loop.last %}

            union all
        {%- endif %}
    {%- endfor %}

),

counted as (

    select
        model_name,
        signal_name,
        signal_polarity,
        count(*) as overlap_count,
        sum(is_right) as right_count
    from observed
    group by model_name, signal_name, signal_polarity

),

signal_names as (

    {%- for signal in implicit_signals %}
        select '{{ signal }}' as signal_name
        {%- if not loop.last %}

            union all
        {%- endif %}
    {%- endfor %}

),

polarities as (

    select 'positive' as signal_polarity

    union all

    select 'negative' as signal_polarity

),

signal_models as (

    select distinct model_name from signals

),

grid as (

    -- every model with signals x signal x polarity, measured or not
    select
        signal_models.model_name,
        signal_names.signal_name,
        polarities.signal_polarity
    from signal_models
    cross join signal_names
    cross join polarities

),

measured as (

    select
        grid.model_name,
        grid.signal_name,
        grid.signal_polarity,
        coalesce(counted.overlap_count, 0) as overlap_count,
        coalesce(counted.right_count, 0) as right_count,
        coalesce(label_sets.label_count = 2, false) as is_two_class_model,
        case when label_sets.label_count = 2 then label_sets.first_label end as first_label,
        case when label_sets.label_count = 2 then label_sets.second_label end as second_label
    from grid
    left join counted
        on
            grid.model_name = counted.model_name
            and grid.signal_name = counted.signal_name
            and grid.signal_polarity = counted.signal_polarity
    left join label_sets on grid.model_name = label_sets.model_name

),

rated as (

    select
        *,
        case when overlap_count > 0 then right_count * 1.0 / overlap_count end as fidelity_rate,
        {{ feedback_flywheel.wilson_lower('right_count', 'overlap_count') }}
            as fidelity_rate_lower,
        {{ feedback_flywheel.wilson_upper('right_count', 'overlap_count') }}
            as fidelity_rate_upper
    from measured

),

final as (

    select
        {{ feedback_flywheel.surrogate_key([
            "'" ~ batch_id ~ "'", 'model_name', 'signal_name', 'signal_polarity',
        ]) }} as weak_label_fidelity_id,
        '{{ batch_id }}' as batch_id,
        model_name,
        signal_name,
        signal_polarity,
        case when signal_polarity = 'positive' then 'predicted_label' else 'other_label' end
            as weak_label_rule,
        cast(overlap_count as {{ dbt.type_bigint() }}) as overlap_count,
        cast(right_count as {{ dbt.type_bigint() }}) as right_count,
        cast(fidelity_rate as double) as fidelity_rate,
        cast(fidelity_rate_lower as double) as fidelity_rate_lower,
        cast(fidelity_rate_upper as double) as fidelity_rate_upper,
        is_two_class_model,
        first_label,
        second_label,
        case
            {%- if configured %}
                when signal_name not in {{ feedback_flywheel.string_list(configured) }}
                    then 'not_configured'
            {%- else %}
                when true then 'not_configured'
            {%- endif %}
            when signal_polarity = 'negative' and not is_two_class_model then 'not_two_class'
            when overlap_count < {{ feedback_flywheel.setting('fidelity_min_group_count') }}
                then 'too_few_overlaps'
            when fidelity_rate_lower < {{ feedback_flywheel.setting('weak_label_min_fidelity') }}
                then 'below_min_fidelity'
            else 'usable'
        end as usability,
        {{ window_start }} as window_start_at,
        {{ batch_end }} as as_of_at
    from rated

)

select
    *,
    usability = 'usable' as is_usable
from final

{{
    config(
        materialized='incremental',
        unique_key='performance_window_id',
        incremental_strategy=feedback_flywheel.flywheel_incremental_strategy(),
        on_schema_change='fail',
    )
}}

-- Labelled performance of each model version in a reference and a current window, overall and
-- per segment value: the summary the concept-drift check reads (it re-weights reference accuracy
-- by the current segment mix to split an accuracy change into its covariate and concept parts).
-- Windows are over the day the prediction was served; labels are matured ones (current rows of
-- fct_training_examples). "New" for this model: the current batch's rows.

{%- set batch_id = feedback_flywheel.batch_param('batch_id') %}
{%- set batch_end = feedback_flywheel.var_timestamp('batch_end') %}
{%- set current_start = dbt.dateadd('day', -feedback_flywheel.setting('performance_current_days'), batch_end) %}
{%- set reference_start = dbt.dateadd(
    'day', -(feedback_flywheel.setting('performance_current_days') + feedback_flywheel.setting('performance_reference_days')), batch_end
) %}

with

examples as (

    select
        *,
        case
            when inference_logged_at >= {{ current_start }} then 'current'
            else 'reference'
        end as window_side
    from {{ ref('fct_training_examples') }}
    where
        is_current
        and inference_logged_at >= {{ reference_start }}
        and inference_logged_at < {{ batch_end }}

),

segments as (

    select
        inference_id,
        segment_attribute,
        segment_value
    from {{ ref('fct_inference_segments') }}
    where
        segment_attribute in {{ feedback_flywheel.string_list(feedback_flywheel.setting('segment_attributes')) }}
        and logged_at >= {{ reference_start }}
        and logged_at < {{ batch_end }}

),

attributes as (

    {%- for attribute in feedback_flywheel.setting('segment_attributes') %}
        select {{ feedback_flywheel.sql_string(attribute) }} as segment_attribute
        {%- if not loop.last %}
            union all
        {%- endif %}
    {%- else %}
        select cast(null as {{ dbt.type_string() }}) as segment_attribute where false
    {%- endfor %}

),

segmented as (

    select
        model_name,
        model_version,
        window_side,
        '__all__' as segment_attribute,
        '__all__' as segment_value,
        is_correct
    from examples

    union all

    -- every configured attribute of every example, '__missing__' where its context lacks it
    select
        examples.model_name,
        examples.model_version,
        examples.window_side,
        attributes.segment_attribute,
        coalesce(segments.segment_value, '__missing__') as segment_value,
        examples.is_correct
    from examples
    cross join attributes
    left join segments
        on
            examples.inference_id = segments.inference_id
            and attributes.segment_attribute = segments.segment_attribute

),

aggregated as (

    select
        model_name,
        model_version,
        segment_attribute,
        segment_value,
        window_side,
        count(*) as labelled_count,
        sum(case when is_correct then 1 else 0 end) as correct_count
    from segmented
    group by model_name, model_version, segment_attribute, segment_value, window_side

),

final as (

    select
        {{ feedback_flywheel.surrogate_key([
            "'" ~ batch_id ~ "'", 'model_name', 'model_version',
            'segment_attribute', 'segment_value', 'window_side'
        ]) }} as performance_window_id,
        '{{ batch_id }}' as batch_id,
        model_name,
        model_version,
        segment_attribute,
        segment_value,
        window_side,
        cast(labelled_count as {{ dbt.type_bigint() }}) as labelled_count,
        cast(correct_count as {{ dbt.type_bigint() }}) as correct_count,
        {{ reference_start }} as reference_start_at,
        {{ current_start }} as current_start_at,
        {{ batch_end }} as current_end_at
    from aggregated

)

select * from final

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
-- fct_training_examples). The current window is the var performance_current_days days that end
-- the model's label maturation window before the watermark (fct_label_maturation: 0 days unless
-- var label_maturation_days says otherwise, derived from label coverage under `auto`), the
-- reference the var performance_reference_days before it. "New" for this model: the current
-- batch's rows.

{%- set batch_id = feedback_flywheel.batch_param('batch_id') %}
{%- set batch_end = feedback_flywheel.var_timestamp('batch_end') %}
{%- set bounds = feedback_flywheel.performance_window_bounds('maturation_days') %}

with

maturation as (

    {{ feedback_flywheel.label_maturation_of_batch() }}

),

recent_examples as (

    select
        training_examples.*,
        {{ feedback_flywheel.maturation_days_or_default('maturation.maturation_days') }}
            as maturation_days
    from {{ ref('fct_training_examples') }} as training_examples
    left join maturation on training_examples.model_name = maturation.model_name
    where
        training_examples.is_current
        and training_examples.inference_logged_at >= {{ bounds.earliest_at }}
        and training_examples.inference_logged_at < {{ batch_end }}

),

bounded_examples as (

    select
        *,
        {{ bounds.reference_start_at }} as reference_start_at,
        {{ bounds.current_start_at }} as current_start_at,
        {{ bounds.current_end_at }} as current_end_at
    from recent_examples

),

examples as (

    select
        *,
        case
            when inference_logged_at >= current_start_at then 'current'
            else 'reference'
        end as window_side
    from bounded_examples
    where
        inference_logged_at >= reference_start_at
        and inference_logged_at < current_end_at

),

segments as (

    select
        inference_id,
        segment_attribute,
        segment_value
    from {{ ref('fct_inference_segments') }}
    where
        segment_attribute in {{ feedback_flywheel.string_list(feedback_flywheel.setting('segment_attributes')) }}
        and logged_at >= {{ bounds.earliest_at }}
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

model_bounds as (

    select distinct
        model_name,
        reference_start_at,
        current_start_at,
        current_end_at
    from bounded_examples

),

final as (

    select
        {{ feedback_flywheel.surrogate_key([
            "'" ~ batch_id ~ "'", 'aggregated.model_name', 'aggregated.model_version',
            'aggregated.segment_attribute', 'aggregated.segment_value', 'aggregated.window_side'
        ]) }} as performance_window_id,
        '{{ batch_id }}' as batch_id,
        aggregated.model_name,
        aggregated.model_version,
        aggregated.segment_attribute,
        aggregated.segment_value,
        aggregated.window_side,
        cast(aggregated.labelled_count as {{ dbt.type_bigint() }}) as labelled_count,
        cast(aggregated.correct_count as {{ dbt.type_bigint() }}) as correct_count,
        cast(model_bounds.reference_start_at as {{ dbt.type_timestamp() }}) as reference_start_at,
        cast(model_bounds.current_start_at as {{ dbt.type_timestamp() }}) as current_start_at,
        cast(model_bounds.current_end_at as {{ dbt.type_timestamp() }}) as current_end_at
    from aggregated
    inner join model_bounds on aggregated.model_name = model_bounds.model_name

)

select * from final

{{
    config(
        materialized='incremental',
        unique_key=['served_date'],
        incremental_strategy=feedback_flywheel.flywheel_incremental_strategy(),
        on_schema_change='fail',
    )
}}

-- Labelled performance per day the predictions were served: labelled and correct counts per
-- model version, overall (segment __all__) and per value of every configured segment attribute
-- (__missing__ where the context lacks it), over matured labels (current rows of
-- fct_training_examples). The daily series the performance timeline (ml.performance_timeline)
-- sums into windows, and locates a change of accuracy in.
-- "New" for this model: the days this batch changed a label or a prediction on (inferences logged
-- in the window or its lookback, training examples added or superseded); those days are counted
-- again whole and replace their rows, so a label that matures weeks late updates its day.

{%- set batch_id = feedback_flywheel.batch_param('batch_id') %}
{%- set batch_start = feedback_flywheel.var_timestamp('batch_start') %}
{%- set batch_end = feedback_flywheel.var_timestamp('batch_end') %}
{%- set attributes = feedback_flywheel.setting('segment_attributes') %}

with

training_examples as (

    select
        inference_id,
        model_name,
        model_version,
        is_correct,
        is_current,
        batch_id,
        superseded_in_batch_id,
        inference_logged_at
    from {{ ref('fct_training_examples') }}

),

segments as (

    select
        inference_id,
        segment_attribute,
        segment_value,
        logged_at
    from {{ ref('fct_inference_segments') }}
    where segment_attribute in {{ feedback_flywheel.string_list(attributes) }}

),

{% if is_incremental() %}
changed_days as (

    select cast(logged_at as date) as served_date
    from segments
    where
        logged_at >= {{ dbt.dateadd('day', -feedback_flywheel.setting('lookback_days'), batch_start) }}
        and logged_at < {{ batch_end }}

    union

    select cast(inference_logged_at as date) as served_date
    from training_examples
    where batch_id = '{{ batch_id }}' or superseded_in_batch_id = '{{ batch_id }}'

),
{% endif %}

examples as (

    select
        inference_id,
        model_name,
        model_version,
        is_correct,
        cast(inference_logged_at as date) as served_date
    from training_examples
    where
        is_current
        and inference_logged_at < {{ batch_end }}
        {%- if is_incremental() %}
            and cast(inference_logged_at as date) in (
                select changed_days.served_date from changed_days
            )
        {%- endif %}

),

attribute_names as (

    {%- for attribute in attributes %}
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
        served_date,
        '__all__' as segment_attribute,
        '__all__' as segment_value,
        is_correct
    from examples

    union all

    select
        examples.model_name,
        examples.model_version,
        examples.served_date,
        attribute_names.segment_attribute,
        coalesce(segments.segment_value, '__missing__') as segment_value,
        examples.is_correct
    from examples
    cross join attribute_names
    left join segments
        on
            examples.inference_id = segments.inference_id
            and attribute_names.segment_attribute = segments.segment_attribute

),

final as (

    select
        {{ feedback_flywheel.surrogate_key([
            'model_name', 'model_version', 'cast(served_date as ' ~ dbt.type_string() ~ ')',
            'segment_attribute', 'segment_value',
        ]) }} as performance_daily_id,
        model_name,
        model_version,
        served_date,
        segment_attribute,
        segment_value,
        cast(count(*) as {{ dbt.type_bigint() }}) as labelled_count,
        cast(sum(case when is_correct then 1 else 0 end) as {{ dbt.type_bigint() }})
            as correct_count
    from segmented
    group by model_name, model_version, served_date, segment_attribute, segment_value

)

select * from final

{#- The label maturation window of every model in this batch, as the body of a CTE to join on
    model_name: fct_label_maturation's rows for the batch (model_name, maturation_days). -#}
{% macro label_maturation_of_batch() -%}
    select
        model_name,
        maturation_days
    from {{ ref('fct_label_maturation') }}
    where batch_id = {{ feedback_flywheel.sql_string(feedback_flywheel.batch_param('batch_id')) }}
{%- endmacro %}


{#- The days a model's performance windows end before the watermark, as SQL over the joined
    maturation column: the batch's recorded window, or for a model it recorded none for (no
    prediction in the coverage window) the configured days, 0 under `auto`. -#}
{% macro maturation_days_or_default(column) -%}
    {%- set configured = feedback_flywheel.setting('label_maturation_days') -%}
    coalesce({{ column }}, {{ 0 if configured == 'auto' else configured }})
{%- endmacro %}


{#- The most days any model's performance windows can end before the watermark (to bound the
    rows a model scans): the configured days, or var label_coverage_max_days under `auto`. -#}
{% macro maturation_days_bound() -%}
    {%- set configured = feedback_flywheel.setting('label_maturation_days') -%}
    {{ return(
        feedback_flywheel.setting('label_coverage_max_days') if configured == 'auto' else configured
    ) }}
{%- endmacro %}


{#- The bounds of the performance windows of one model as SQL expressions over its maturation
    days (an SQL expression): current = the var performance_current_days days that end
    `maturation_days` before the watermark, reference = the var performance_reference_days days
    before it. -#}
{% macro performance_window_bounds(maturation_days) -%}
    {%- set batch_end = feedback_flywheel.var_timestamp('batch_end') -%}
    {%- set current_days = feedback_flywheel.setting('performance_current_days') -%}
    {%- set reference_days = feedback_flywheel.setting('performance_reference_days') -%}
    {{ return({
        'reference_start_at': dbt.dateadd(
            'day', '-(' ~ maturation_days ~ ' + ' ~ (current_days + reference_days) ~ ')', batch_end
        ),
        'current_start_at': dbt.dateadd(
            'day', '-(' ~ maturation_days ~ ' + ' ~ current_days ~ ')', batch_end
        ),
        'current_end_at': dbt.dateadd('day', '-(' ~ maturation_days ~ ')', batch_end),
        'earliest_at': dbt.dateadd(
            'day',
            -(feedback_flywheel.maturation_days_bound() + current_days + reference_days),
            batch_end
        ),
    }) }}
{%- endmacro %}

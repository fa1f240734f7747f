{#- A cast that yields null instead of failing on text that is not a number. -#}
{% macro try_to_double(expression) -%}
    {{ return(adapter.dispatch('try_to_double', 'feedback_flywheel')(expression)) }}
{%- endmacro %}

{% macro default__try_to_double(expression) -%}
    try_cast({{ expression }} as double)
{%- endmacro %}

{% macro spark__try_to_double(expression) -%}
    cast({{ expression }} as double)
{%- endmacro %}

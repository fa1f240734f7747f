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


{#- A batch parameter (batch_start / batch_end) or var holding a timestamp, as a timestamp. -#}
{% macro var_timestamp(name) -%}
    {%- if name in ['batch_start', 'batch_end'] -%}
        cast('{{ feedback_flywheel.batch_param(name) }}' as timestamp)
    {%- else -%}
        cast('{{ var(name) }}' as timestamp)
    {%- endif -%}
{%- endmacro %}


{#- A list var as a SQL in-list of string literals: ('1.0', '1.1'). -#}
{% macro string_list(values) -%}
    ({%- for value in values -%}'{{ value }}'{%- if not loop.last %}, {% endif -%}{%- endfor -%})
{%- endmacro %}

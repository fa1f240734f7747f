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


{#- A var holding a timestamp as text, as a timestamp literal. -#}
{% macro var_timestamp(name) -%}
    cast('{{ var(name) }}' as timestamp)
{%- endmacro %}


{#- A list var as a SQL in-list of string literals: ('1.0', '1.1'). -#}
{% macro string_list(values) -%}
    ({%- for value in values -%}'{{ value }}'{%- if not loop.last %}, {% endif -%}{%- endfor -%})
{%- endmacro %}

{#- A list var as a SQL in-list of string literals: ('1.0', '1.1'). -#}
{% macro string_list(values) -%}
    ({%- for value in values -%}'{{ value }}'{%- if not loop.last %}, {% endif -%}{%- endfor -%})
{%- endmacro %}

{#- A value as a SQL string literal: single quotes doubled, so no value (a var, a name from the
    configuration) can end the literal and become SQL. Every string a var puts into SQL goes
    through here. -#}
{% macro sql_string(value) -%}
    '{{ (value | string).replace("'", "''") }}'
{%- endmacro %}


{#- A list var as a SQL in-list of string literals: ('1.0', '1.1'); an empty list matches nothing
    ((null)). -#}
{% macro string_list(values) -%}
    {%- if values | length == 0 -%}
        (null)
    {%- else -%}
        ({%- for value in values -%}
            {{ feedback_flywheel.sql_string(value) }}{%- if not loop.last %}, {% endif -%}
        {%- endfor -%})
    {%- endif -%}
{%- endmacro %}

{#- A value as a SQL string literal that no value (a var, a name from the configuration) can end
    and so become SQL. Every string a var puts into SQL goes through here. DuckDB (standard SQL)
    doubles single quotes and takes backslashes literally; Spark SQL reads backslash escapes, so
    there both the backslash and the quote are escaped. -#}
{% macro sql_string(value) -%}
    {{ return(adapter.dispatch('sql_string', 'feedback_flywheel')(value)) }}
{%- endmacro %}

{% macro default__sql_string(value) -%}
    '{{ (value | string).replace("\\", "\\\\").replace("'", "\\'") }}'
{%- endmacro %}

{% macro duckdb__sql_string(value) -%}
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

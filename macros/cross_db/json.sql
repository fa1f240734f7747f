{#- JSON access. Raw JSON columns are text; these parse them. Parse once, into typed columns of a
    materialized model, and let everything downstream read those: JSON extraction is the most
    expensive thing the warehouse does per row. -#}

{% macro json_is_valid(expression) -%}
    {{ return(adapter.dispatch('json_is_valid', 'feedback_flywheel')(expression)) }}
{%- endmacro %}

{% macro default__json_is_valid(expression) -%}
    (get_json_object({{ expression }}, '$') is not null)
{%- endmacro %}

{% macro duckdb__json_is_valid(expression) -%}
    coalesce(json_valid({{ expression }}), false)
{%- endmacro %}


{% macro json_is_object(expression) -%}
    {{ return(adapter.dispatch('json_is_object', 'feedback_flywheel')(expression)) }}
{%- endmacro %}

{% macro default__json_is_object(expression) -%}
    (substr(trim({{ expression }}), 1, 1) = '{{ '{' }}' and get_json_object({{ expression }}, '$') is not null)
{%- endmacro %}

{% macro duckdb__json_is_object(expression) -%}
    (coalesce(json_valid({{ expression }}), false)
        and json_type(try_cast({{ expression }} as json)) = 'OBJECT')
{%- endmacro %}


{% macro json_get_string(expression, key) -%}
    {{ return(adapter.dispatch('json_get_string', 'feedback_flywheel')(expression, key)) }}
{%- endmacro %}

{% macro default__json_get_string(expression, key) -%}
    get_json_object({{ expression }}, '$.{{ key }}')
{%- endmacro %}

{% macro duckdb__json_get_string(expression, key) -%}
    json_extract_string(try_cast({{ expression }} as json), '$.{{ key }}')
{%- endmacro %}


{% macro json_get_double(expression, key) -%}
    {{ feedback_flywheel.try_to_double(feedback_flywheel.json_get_string(expression, key)) }}
{%- endmacro %}


{#- Top-1 / top-2 probability and entropy (nats) of a JSON object label -> probability. Emits
    three select expressions with the given column prefix. Null when the JSON is null or invalid. -#}
{% macro probability_summary(expression, prefix='probability') -%}
    {{ return(adapter.dispatch('probability_summary', 'feedback_flywheel')(expression, prefix)) }}
{%- endmacro %}

{% macro default__probability_summary(expression, prefix) -%}
    sort_array(map_values(from_json({{ expression }}, 'map<string,double>')), false)[0]
        as {{ prefix }}_top1,
    sort_array(map_values(from_json({{ expression }}, 'map<string,double>')), false)[1]
        as {{ prefix }}_top2,
    aggregate(
        map_values(from_json({{ expression }}, 'map<string,double>')),
        cast(0.0 as double),
        (acc, p) -> acc - case when p > 0 then p * ln(p) else 0.0 end
    ) as {{ prefix }}_entropy
{%- endmacro %}

{% macro duckdb__probability_summary(expression, prefix) -%}
    list_sort(
        map_values(try_cast(try_cast({{ expression }} as json) as map(varchar, double))),
        'DESC'
    )[1] as {{ prefix }}_top1,
    list_sort(
        map_values(try_cast(try_cast({{ expression }} as json) as map(varchar, double))),
        'DESC'
    )[2] as {{ prefix }}_top2,
    list_sum(
        list_transform(
            map_values(try_cast(try_cast({{ expression }} as json) as map(varchar, double))),
            lambda p: case when p > 0 then -p * ln(p) else 0.0 end
        )
    ) as {{ prefix }}_entropy
{%- endmacro %}

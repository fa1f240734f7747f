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
    {%- if not feedback_flywheel.is_identifier(key) -%}
        {{ exceptions.raise_compiler_error(
            "json_get_string: the key must be a lower-case identifier; got " ~ tojson(key)
        ) }}
    {%- endif -%}
    {{ return(adapter.dispatch('json_get_string', 'feedback_flywheel')(expression, key)) }}
{%- endmacro %}

{% macro default__json_get_string(expression, key) -%}
    get_json_object({{ expression }}, '$.{{ key }}')
{%- endmacro %}

{% macro duckdb__json_get_string(expression, key) -%}
    json_extract_string(try_cast({{ expression }} as json), '$.{{ key }}')
{%- endmacro %}


{#- The values of several keys of a JSON object column as one array of text (element i is key
    i, as json_get_string gives it: null when absent or JSON null), parsing the JSON once for all
    of them: one extraction per key parses the document once per key, the largest cost of reading
    a payload. Pick the elements with array_element (1-based). -#}
{% macro json_get_strings(expression, keys) -%}
    {%- if keys | length == 0 -%}
        {{ exceptions.raise_compiler_error("json_get_strings: no keys given") }}
    {%- endif -%}
    {%- for key in keys if not feedback_flywheel.is_identifier(key) -%}
        {{ exceptions.raise_compiler_error(
            "json_get_strings: every key must be a lower-case identifier; got " ~ tojson(key)
        ) }}
    {%- endfor -%}
    {{ return(adapter.dispatch('json_get_strings', 'feedback_flywheel')(expression, keys)) }}
{%- endmacro %}

{% macro default__json_get_strings(expression, keys) -%}
    array(
        {%- for key in keys -%}
            get_json_object({{ expression }}, '$.{{ key }}'){%- if not loop.last %}, {% endif -%}
        {%- endfor -%}
    )
{%- endmacro %}

{% macro duckdb__json_get_strings(expression, keys) -%}
    json_extract_string(
        try_cast({{ expression }} as json),
        [{%- for key in keys -%}
            '$.{{ key }}'{%- if not loop.last %}, {% endif -%}
        {%- endfor -%}]
    )
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


{#- Every key of a JSON object column, one row each: a select over `relation` (a CTE name) that
    carries `columns` and adds `entry_key`, `entry_value` (the value as text: strings unquoted,
    numbers and booleans as written; nested objects and arrays as JSON text; JSON null as null)
    and `entry_type` (number, string, boolean, nested or null). Rows whose column is not a JSON
    object give no rows. -#}
{% macro json_object_entries(relation, expression, columns) -%}
    {{ return(adapter.dispatch('json_object_entries', 'feedback_flywheel')(
        relation, expression, columns
    )) }}
{%- endmacro %}

{% macro default__json_object_entries(relation, expression, columns) -%}
    select
        {%- for column in columns %}
            {{ column }},
        {%- endfor %}
        entry_key,
        entry_value,
        case
            when entry_value is null then 'null'
            when entry_value in ('true', 'false') then 'boolean'
            when entry_value rlike '^-?[0-9]+([.][0-9]+)?([eE][-+]?[0-9]+)?$' then 'number'
            when substr(entry_value, 1, 1) in ('{{ '{' }}', '[') then 'nested'
            else 'string'
        end as entry_type
    from {{ relation }}
    lateral view explode(from_json({{ expression }}, 'map<string,string>'))
        entries as entry_key, entry_value
{%- endmacro %}

{% macro duckdb__json_object_entries(relation, expression, columns) -%}
    select
        {%- for column in columns %}
            {{ column }},
        {%- endfor %}
        entry.key as entry_key,
        case
            when json_type(entry.value) in ('OBJECT', 'ARRAY') then cast(entry.value as varchar)
            else json_extract_string(entry.value, '$')
        end as entry_value,
        case
            when entry.value is null then 'null'
            when json_type(entry.value) in ('OBJECT', 'ARRAY') then 'nested'
            when json_type(entry.value) = 'BOOLEAN' then 'boolean'
            when json_type(entry.value) = 'VARCHAR' then 'string'
            else 'number'
        end as entry_type
    from (
        select
            {%- for column in columns %}
                {{ column }},
            {%- endfor %}
            unnest(map_entries(
                try_cast(try_cast({{ expression }} as json) as map(varchar, json))
            )) as entry
        from {{ relation }}
    ) as exploded
{%- endmacro %}

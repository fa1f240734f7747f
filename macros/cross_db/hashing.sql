{#- Deterministic pseudo-random number in [0, 1) from a key and a seed: the first 32 bits of
    md5(key || ':' || seed). Same key and seed give the same number on every engine, so a sample
    rebuilds exactly; never random(). -#}
{% macro hash_fraction(key_expression, seed) -%}
    (
        {{ feedback_flywheel.hex8_to_bigint(
            'substr(' ~ dbt.hash(dbt.concat([key_expression, "':'", "'" ~ seed ~ "'"])) ~ ', 1, 8)'
        ) }} / 4294967296.0
    )
{%- endmacro %}

{% macro hex8_to_bigint(hex_expression) -%}
    {{ return(adapter.dispatch('hex8_to_bigint', 'feedback_flywheel')(hex_expression)) }}
{%- endmacro %}

{% macro default__hex8_to_bigint(hex_expression) -%}
    cast(conv({{ hex_expression }}, 16, 10) as bigint)
{%- endmacro %}

{% macro duckdb__hex8_to_bigint(hex_expression) -%}
    cast(('0x' || {{ hex_expression }}) as ubigint)
{%- endmacro %}


{#- A stable surrogate key from several columns (md5 of their text joined by '|'; null as '<null>'). -#}
{% macro surrogate_key(columns) -%}
    {%- set parts = [] -%}
    {%- for column in columns -%}
        {%- do parts.append("coalesce(cast(" ~ column ~ " as " ~ dbt.type_string() ~ "), '<null>')") -%}
        {%- if not loop.last %}{% do parts.append("'|'") %}{% endif -%}
    {%- endfor -%}
    {{ dbt.hash(dbt.concat(parts)) }}
{%- endmacro %}

{#- ISO day of the week of a date (1 = Monday ... 7 = Sunday), by arithmetic on the days since
    Monday 2001-01-01, so it means the same on every engine (date_part('dow') does not). -#}
{% macro iso_weekday(date_expression) -%}
    (
        mod(
            mod({{ dbt.datediff("cast('2001-01-01' as date)", date_expression, 'day') }}, 7) + 7,
            7
        ) + 1
    )
{%- endmacro %}

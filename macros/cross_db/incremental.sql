{#- The incremental strategy every incremental model uses. delete+insert on DuckDB (and other
    engines that have it); Spark without Delta/Iceberg has neither delete+insert nor merge, so it
    falls back to insert_overwrite, which the Spark models must then partition for. -#}
{% macro flywheel_incremental_strategy() -%}
    {%- if target.type == 'spark' -%}
        {{ return('insert_overwrite') }}
    {%- else -%}
        {{ return('delete+insert') }}
    {%- endif -%}
{%- endmacro %}

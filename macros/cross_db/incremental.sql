{#- The incremental strategy every incremental model uses, by engine: delete+insert where the
    engine has it (DuckDB and the default), insert_overwrite on Spark, which without
    Delta/Iceberg/Hudi has neither delete+insert nor merge (the Spark models must then partition
    for it). -#}
{% macro flywheel_incremental_strategy() -%}
    {{ return(adapter.dispatch('flywheel_incremental_strategy', 'feedback_flywheel')()) }}
{%- endmacro %}

{% macro default__flywheel_incremental_strategy() -%}
    {{ return('delete+insert') }}
{%- endmacro %}

{% macro spark__flywheel_incremental_strategy() -%}
    {{ return('insert_overwrite') }}
{%- endmacro %}

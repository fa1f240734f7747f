{#-
    The batch being built: batch_id, batch_start or batch_end.

    The flow passes them as environment variables (FLYWHEEL_BATCH_ID, FLYWHEEL_BATCH_START,
    FLYWHEEL_BATCH_END): dbt re-parses only the files that read an environment variable when its
    value changes, whereas a change of --vars forces a full re-parse of the project on every batch.
    Without the environment variables the dbt vars of the same names apply, so
    `dbt build --vars '{batch_id: ..., batch_start: ..., batch_end: ...}'` works by hand too.
-#}
{% macro batch_param(name) -%}
    {%- if name not in ['batch_id', 'batch_start', 'batch_end'] -%}
        {{ exceptions.raise_compiler_error("batch_param: unknown batch parameter " ~ name) }}
    {%- endif -%}
    {{ return(env_var('FLYWHEEL_' ~ name | upper, var(name))) }}
{%- endmacro %}

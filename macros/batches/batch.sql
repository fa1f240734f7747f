{#-
    The batch being built: batch_id, batch_start or batch_end.

    The flow passes them as environment variables (FLYWHEEL_BATCH_ID, FLYWHEEL_BATCH_START,
    FLYWHEEL_BATCH_END): dbt re-parses only the files that read an environment variable when its
    value changes, whereas a change of --vars forces a full re-parse of the project on every batch.
    Without the environment variables the dbt vars of the same names apply, so
    `dbt build --vars '{batch_id: ..., batch_start: ..., batch_end: ...}'` works by hand too.
-#}
{% macro batch_param(name) -%}
    {%- set patterns = {
        'batch_id': '^b[0-9]{8}T[0-9]{6}$',
        'batch_start': '^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$',
        'batch_end': '^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$',
        'dataset_batch_id': '^b[0-9]{8}T[0-9]{6}$',
    } -%}
    {%- if name not in patterns -%}
        {{ exceptions.raise_compiler_error("batch_param: unknown batch parameter " ~ name) }}
    {%- endif -%}
    {%- if name == 'dataset_batch_id' -%}
        {%- set value = var(name, feedback_flywheel.batch_param('batch_id')) | string -%}
    {%- else -%}
        {%- set value = env_var('FLYWHEEL_' ~ name | upper, var(name)) | string -%}
    {%- endif -%}
    {%- if not modules.re.match(patterns[name], value) -%}
        {{ exceptions.raise_compiler_error(
            name ~ " must match " ~ patterns[name] ~ " (e.g. b20260301T000000, 2026-03-01 00:00:00); "
            ~ "got " ~ tojson(value)
        ) }}
    {%- endif -%}
    {{ return(value) }}
{%- endmacro %}


{#- A batch parameter (batch_start / batch_end) or var holding a timestamp, as a timestamp. -#}
{% macro var_timestamp(name) -%}
    {%- if name in ['batch_start', 'batch_end'] -%}
        cast('{{ feedback_flywheel.batch_param(name) }}' as timestamp)
    {%- else -%}
        cast({{ feedback_flywheel.sql_string(feedback_flywheel.setting(name)) }} as timestamp)
    {%- endif -%}
{%- endmacro %}


{#- The days (by the day a prediction was served, named `column`) that the current batch changed
    anything on: inferences logged in the batch window or up to lookback_days before it, training
    examples the batch added or superseded, feedback it accepted. Incremental marts keyed by day
    recompute exactly these days, so a label that arrives weeks late still updates its day. A
    select statement, for a CTE. The three inputs are the calling model's import CTEs (or
    relations) of int_inferences_validated (logged_at), fct_training_examples
    (inference_logged_at, batch_id, superseded_in_batch_id) and fct_feedback (inference_logged_at,
    batch_id), unfiltered or filtered no further than these columns need. -#}
{% macro days_changed_by_batch(column, inferences, training_examples, feedback) -%}
    {%- set batch_id = feedback_flywheel.batch_param('batch_id') %}
    {%- set batch_start = feedback_flywheel.var_timestamp('batch_start') %}
    {%- set batch_end = feedback_flywheel.var_timestamp('batch_end') %}
    select cast(logged_at as date) as {{ column }}
    from {{ inferences }}
    where
        logged_at >= {{ dbt.dateadd('day', -feedback_flywheel.setting('lookback_days'), batch_start) }}
        and logged_at < {{ batch_end }}

    union

    select cast(inference_logged_at as date) as {{ column }}
    from {{ training_examples }}
    where batch_id = '{{ batch_id }}' or superseded_in_batch_id = '{{ batch_id }}'

    union

    select cast(inference_logged_at as date) as {{ column }}
    from {{ feedback }}
    where batch_id = '{{ batch_id }}'
{%- endmacro %}


{#- The rows an incremental model takes up again in a batch, as a condition to `and` onto its
    import CTE's where clause: `column` (a time) within lookback_days before batch_start, or the
    row loaded after the newest row already in the model (a late file). Empty on a first build
    (everything is new then). The caller selects loaded_at. -#}
{% macro lookback_or_late(column) -%}
    {%- if not feedback_flywheel.is_identifier(column) -%}
        {{ exceptions.raise_compiler_error(
            "lookback_or_late: the column must be a lower-case identifier; got " ~ tojson(column)
        ) }}
    {%- endif -%}
    {%- if is_incremental() -%}
        and (
            {{ column }} >= {{ dbt.dateadd(
                'day', -feedback_flywheel.setting('lookback_days'),
                feedback_flywheel.var_timestamp('batch_start')
            ) }}
            or loaded_at > (select max(this_batch.loaded_at) from {{ this }} as this_batch)
        )
    {%- endif -%}
{%- endmacro %}

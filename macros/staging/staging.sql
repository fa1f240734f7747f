{#-
    What staging does to every raw row, the same for every file format: ids trimmed (blank is
    missing), personal ids pseudonymised, and the time that places the row in a batch.
-#}

{#- An id column with leading and trailing whitespace (spaces, tabs, line breaks) removed, and ''
    or whitespace-only read as null (missing): a JSON-lines "" and a CSV empty field are the
    same record. -#}
{% macro clean_id(column) -%}
    {{ return(adapter.dispatch('clean_id', 'feedback_flywheel')(column)) }}
{%- endmacro %}

{% macro duckdb__clean_id(column) -%}
    nullif(regexp_replace({{ column }}, '^\s+|\s+$', '', 'g'), '')
{%- endmacro %}

{#- Spark: regexp_replace replaces every match; the literal's backslash is escaped. -#}
{% macro default__clean_id(column) -%}
    nullif(regexp_replace({{ column }}, '^\\s+|\\s+$', ''), '')
{%- endmacro %}


{#- A raw id column as staging exposes it: pseudonymised when var personal_columns lists it,
    else trimmed (clean_id). `name` is the raw column name. -#}
{% macro id_column(name) -%}
    {%- if name in feedback_flywheel.setting('personal_columns') -%}
        {{ feedback_flywheel.pseudonym(feedback_flywheel.clean_id(name)) }}
    {%- else -%}
        {{ feedback_flywheel.clean_id(name) }}
    {%- endif -%}
{%- endmacro %}


{#- A keyed pseudonym of a text value: 'p_' and 32 hex digits of sha256(key ':' sha256(key ':'
    value)) (the nested form is not open to length extension), null for null. The key is the
    DuckDB variable flywheel_pseudonym_key, which the project's dbt plugin sets on every
    connection from the run's secret, so it is never in compiled SQL. Without it the build fails
    with a message instead of writing unkeyed hashes. Equal values get equal pseudonyms, so counts
    and joins by person still work; without the key the raw value cannot be recomputed. -#}
{% macro pseudonym(expression) -%}
    {{ return(adapter.dispatch('pseudonym', 'feedback_flywheel')(expression)) }}
{%- endmacro %}

{% macro default__pseudonym(expression) -%}
    {{ exceptions.raise_compiler_error(
        "pseudonym(): no keyed hash for the " ~ target.type ~ " adapter yet; remove the column from "
        ~ "var personal_columns to run without pseudonymisation"
    ) }}
{%- endmacro %}

{% macro duckdb__pseudonym(expression) -%}
    case
        when {{ expression }} is null then null
        when getvariable('flywheel_pseudonym_key') is null
            then error('no pseudonym key: run dbt with the feedback_flywheel plugin (profiles.yml)')
        else 'p_' || left(sha256(
            getvariable('flywheel_pseudonym_key') || ':'
            || sha256(getvariable('flywheel_pseudonym_key') || ':' || {{ expression }})
        ), 32)
    end
{%- endmacro %}


{#- Whether a timestamp is finite (not infinity / -infinity). -#}
{% macro is_finite_timestamp(expression) -%}
    {{ return(adapter.dispatch('is_finite_timestamp', 'feedback_flywheel')(expression)) }}
{%- endmacro %}

{% macro default__is_finite_timestamp(expression) -%}
    ({{ expression }} is not null)
{%- endmacro %}

{% macro duckdb__is_finite_timestamp(expression) -%}
    isfinite({{ expression }})
{%- endmacro %}


{#- Whether an event's own timestamp can be believed: set, finite, not before var
    timestamp_floor, and not after the row was loaded (plus var clock_skew_seconds). -#}
{% macro is_plausible_time(event_at, loaded_at) -%}
    (
        {{ event_at }} is not null
        and {{ feedback_flywheel.is_finite_timestamp(event_at) }}
        and {{ event_at }} >= {{ feedback_flywheel.var_timestamp('timestamp_floor') }}
        and {{ event_at }} <= {{ dbt.dateadd(
            'second', feedback_flywheel.setting('clock_skew_seconds'), loaded_at
        ) }}
    )
{%- endmacro %}


{#- The time that places a raw row in a batch: its own timestamp (received_at, logged_at) when
    plausible, never later than its load time; else its load time. A row is therefore decided by
    the first batch whose watermark is past it and never waits for a watermark that cannot come
    (year 2999, infinity), and every row loaded before a watermark is decided by then.
    feedback_flywheel/ingest/registry.py plans batches by the same rule. -#}
{% macro placement_time(event_at, loaded_at) -%}
    case
        when {{ feedback_flywheel.is_plausible_time(event_at, loaded_at) }}
            then least({{ event_at }}, {{ loaded_at }})
        else {{ loaded_at }}
    end
{%- endmacro %}


{#- The timestamp checks of a row, as CASE branches ("when ... then 'reason'"): any of
    `timestamps` infinite (timestamp_not_finite) or before var timestamp_floor
    (timestamp_before_floor), or `arrival` later than the load time plus var clock_skew_seconds
    (timestamp_after_load). Nulls are left to the missing-field check. `prefix` goes before each
    reason code (the preference codes are preference_*). -#}
{% macro timestamp_checks(timestamps, arrival, loaded_at, prefix='') -%}
    {%- set floor = feedback_flywheel.var_timestamp('timestamp_floor') -%}
    when
        {%- for column in timestamps %}
            ({{ column }} is not null and not {{ feedback_flywheel.is_finite_timestamp(column) }})
            {%- if not loop.last %} or{% endif %}
        {%- endfor %}
        then '{{ prefix }}timestamp_not_finite'
    when
        {%- for column in timestamps %}
            {{ column }} < {{ floor }}{% if not loop.last %} or{% endif %}
        {%- endfor %}
        then '{{ prefix }}timestamp_before_floor'
    when {{ arrival }} > {{ dbt.dateadd(
        'second', feedback_flywheel.setting('clock_skew_seconds'), loaded_at
    ) }}
        then '{{ prefix }}timestamp_after_load'
{%- endmacro %}

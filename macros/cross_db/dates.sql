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


{#- The watermark (batch end) a batch id names: b<YYYYMMDDTHHMMSS> (batches.batch_id_for) as a
    timestamp; the dataset version ds-<batch id> of a batch has the same watermark. -#}
{% macro batch_watermark(batch_id_expression) -%}
    {{ return(adapter.dispatch('batch_watermark', 'feedback_flywheel')(batch_id_expression)) }}
{%- endmacro %}

{% macro default__batch_watermark(batch_id_expression) -%}
    to_timestamp(substr({{ batch_id_expression }}, 2, 15), "yyyyMMdd'T'HHmmss")
{%- endmacro %}

{% macro duckdb__batch_watermark(batch_id_expression) -%}
    strptime(substr({{ batch_id_expression }}, 2, 15), '%Y%m%dT%H%M%S')
{%- endmacro %}

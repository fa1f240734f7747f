{#-
    Fails once for every listed column that holds a null, with the number of null rows: the
    not-null checks of a model in one query (one node and one scan instead of one per column).
    Restrict the rows checked with config: where.
-#}
{% test not_null_columns(model, columns) %}

    {%- if columns is string or columns | length == 0 -%}
        {{ exceptions.raise_compiler_error(
            "not_null_columns needs a non-empty list of column names, got " ~ columns
        ) }}
    {%- endif -%}
    {%- for column in columns -%}
        {%- if not feedback_flywheel.is_identifier(column) -%}
            {{ exceptions.raise_compiler_error(
                "not_null_columns: " ~ column ~ " is not a lower-case column name"
            ) }}
        {%- endif -%}
    {%- endfor %}

    with null_counts as (
        select
        {%- for column in columns %}
            sum(case when {{ column }} is null then 1 else 0 end) as nulls_{{ loop.index }}
            {{- ',' if not loop.last }}
        {%- endfor %}
        from {{ model }}
    )

    {% for column in columns -%}
    select
        '{{ column }}' as column_name,
        nulls_{{ loop.index }} as null_rows
    from null_counts
    where nulls_{{ loop.index }} > 0
    {% if not loop.last %}union all{% endif %}
    {% endfor %}

{% endtest %}

{#-
    Fails on every row where the boolean SQL expression is not true (false or null). Used on a
    model (expression over its columns) or on a column (the column name is put in front of the
    expression, e.g. expression: '>= 0'). Restrict the rows checked with config: where.
-#}
{% test expression_is_true(model, expression, column_name=none) %}

    select *
    from {{ model }}
    where not coalesce(({{ column_name ~ ' ' if column_name }}{{ expression }}), false)

{% endtest %}

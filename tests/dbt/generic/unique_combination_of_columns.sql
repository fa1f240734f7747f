{#-
    Fails once for every combination of the given columns that occurs on more than one row: a
    primary key made of several columns. Nulls compare equal here (group by treats them so).
-#}
{% test unique_combination_of_columns(model, combination_of_columns) %}

    {%- set columns_csv = combination_of_columns | join(', ') %}

    select
        {{ columns_csv }},
        count(*) as row_count
    from {{ model }}
    group by {{ columns_csv }}
    having count(*) > 1

{% endtest %}

{#-
    Like the built-in relationships test, but with a filter on either side: every value of
    column_name in the rows of model matching from_condition is a value of field in the rows of
    `to` matching to_condition. config: where only filters the model under test; use to_condition
    when the parent may only be matched on some of its rows (e.g. accepted inferences only).
-#}
{% test relationships_where(model, column_name, to, field, from_condition='1 = 1',
    to_condition='1 = 1') %}

    with

    children as (

        select {{ column_name }} as child_value
        from {{ model }}
        where
            {{ column_name }} is not null
            and ({{ from_condition }})

    ),

    parents as (

        select {{ field }} as parent_value
        from {{ to }}
        where {{ to_condition }}

    )

    select children.child_value
    from children
    left join parents
        on children.child_value = parents.parent_value
    where parents.parent_value is null

{% endtest %}

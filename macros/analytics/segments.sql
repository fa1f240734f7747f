{#- The segment dimensions the analytics marts break down by, from the vars: overall
    ('__overall__' / '__all__'), every attribute of var segment_attributes, and every intersection
    of var bias_intersections (named 'a|b', its values 'value_a|value_b'). Returns a list of
    (name, SQL expression over the segment columns) pairs. -#}
{% macro analytics_segment_dimensions() -%}
    {%- set dimensions = [("__overall__", "'__all__'")] -%}
    {%- for attribute in feedback_flywheel.setting('segment_attributes') -%}
        {%- do dimensions.append((attribute, "coalesce(" ~ attribute ~ ", '__missing__')")) -%}
    {%- endfor -%}
    {%- for intersection in feedback_flywheel.setting('bias_intersections') -%}
        {%- set parts = [] -%}
        {%- for attribute in intersection -%}
            {%- if attribute not in feedback_flywheel.setting('segment_attributes') -%}
                {{ exceptions.raise_compiler_error(
                    "var bias_intersections: " ~ attribute ~ " is not one of segment_attributes ("
                    ~ feedback_flywheel.setting('segment_attributes') | join(', ') ~ "); fix dbt_project.yml or --vars"
                ) }}
            {%- endif -%}
            {%- do parts.append("coalesce(" ~ attribute ~ ", '__missing__')") -%}
            {%- if not loop.last %}{% do parts.append("'|'") %}{% endif -%}
        {%- endfor -%}
        {%- do dimensions.append((intersection | join('|'), dbt.concat(parts))) -%}
    {%- endfor -%}
    {{ return(dimensions) }}
{%- endmacro %}


{#- The configured segment attributes of each prediction as columns: a select over the long
    segments (`segments`, a CTE or relation shaped like fct_inference_segments) giving
    inference_id and one column per attribute. A prediction none of whose configured attributes
    is in its context has no row: left-join it and read a missing attribute as '__missing__'. -#}
{% macro segment_columns(segments, attributes) -%}
    select
        inference_id
        {%- for attribute in attributes %},
            max(
                case
                    when segment_attribute = {{ feedback_flywheel.sql_string(attribute) }}
                        then segment_value
                end
            ) as {{ attribute }}
        {%- endfor %}
    from {{ segments }}
    where segment_attribute in {{ feedback_flywheel.string_list(attributes) }}
    group by inference_id
{%- endmacro %}

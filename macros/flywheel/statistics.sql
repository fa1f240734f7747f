{#- Wilson score interval for a proportion successes / trials at confidence z (default 95%).
    Null when there are no trials. Pure arithmetic, the same on every engine. -#}
{% macro wilson_lower(successes, trials, z=1.959963984540054) -%}
    case when {{ trials }} > 0 then
        (
            ({{ successes }}) * 1.0 / ({{ trials }}) + {{ z }} * {{ z }} / (2.0 * ({{ trials }}))
            - {{ z }} * sqrt(
                ({{ successes }}) * 1.0 / ({{ trials }})
                * (1 - ({{ successes }}) * 1.0 / ({{ trials }})) / ({{ trials }})
                + {{ z }} * {{ z }} / (4.0 * ({{ trials }}) * ({{ trials }}))
            )
        ) / (1 + {{ z }} * {{ z }} / ({{ trials }}))
    end
{%- endmacro %}

{% macro wilson_upper(successes, trials, z=1.959963984540054) -%}
    case when {{ trials }} > 0 then
        (
            ({{ successes }}) * 1.0 / ({{ trials }}) + {{ z }} * {{ z }} / (2.0 * ({{ trials }}))
            + {{ z }} * sqrt(
                ({{ successes }}) * 1.0 / ({{ trials }})
                * (1 - ({{ successes }}) * 1.0 / ({{ trials }})) / ({{ trials }})
                + {{ z }} * {{ z }} / (4.0 * ({{ trials }}) * ({{ trials }}))
            )
        ) / (1 + {{ z }} * {{ z }} / ({{ trials }}))
    end
{%- endmacro %}

{#- Wilson score interval for a proportion successes / trials at confidence z (default 95%).
    Null when there are no trials. Pure arithmetic, the same on every engine. Clamped to [0, 1]:
    at 0 successes (or successes = trials) rounding leaves ~1e-18 outside the unit interval,
    which would fail "lower <= rate <= upper". -#}
{% macro wilson_lower(successes, trials, z=1.959963984540054) -%}
    case when {{ trials }} > 0 then
        greatest(0.0, (
            ({{ successes }}) * 1.0 / ({{ trials }}) + {{ z }} * {{ z }} / (2.0 * ({{ trials }}))
            - {{ z }} * sqrt(
                ({{ successes }}) * 1.0 / ({{ trials }})
                * (1 - ({{ successes }}) * 1.0 / ({{ trials }})) / ({{ trials }})
                + {{ z }} * {{ z }} / (4.0 * ({{ trials }}) * ({{ trials }}))
            )
        ) / (1 + {{ z }} * {{ z }} / ({{ trials }})))
    end
{%- endmacro %}

{% macro wilson_upper(successes, trials, z=1.959963984540054) -%}
    case when {{ trials }} > 0 then
        least(1.0, (
            ({{ successes }}) * 1.0 / ({{ trials }}) + {{ z }} * {{ z }} / (2.0 * ({{ trials }}))
            + {{ z }} * sqrt(
                ({{ successes }}) * 1.0 / ({{ trials }})
                * (1 - ({{ successes }}) * 1.0 / ({{ trials }})) / ({{ trials }})
                + {{ z }} * {{ z }} / (4.0 * ({{ trials }}) * ({{ trials }}))
            )
        ) / (1 + {{ z }} * {{ z }} / ({{ trials }})))
    end
{%- endmacro %}

{#- Mean of a double expression over a group, reproducible bit for bit (see exact_sum): null
    when the group has no non-null value. bound: a constant >= max |value|. -#}
{% macro exact_mean(expression, bound) -%}
    (
        {{ feedback_flywheel.exact_sum(expression, 'cast(' ~ bound ~ ' as double)') }}
        / nullif(count({{ expression }}), 0)
    )
{%- endmacro %}

{#- Sample standard deviation (n - 1 denominator, as stddev_samp) of a double expression over a
    group, from exact sums of x and x^2, so it is reproducible bit for bit: null below 2 values; a
    rounding residue below 0 counts as 0. bound: a constant >= max |value|. Meant for bounded
    signals (ratings, rewards), where sum(x^2) - sum(x)^2 / n loses nothing that matters. -#}
{% macro exact_stddev_samp(expression, bound) -%}
    {%- set n = 'count(' ~ expression ~ ')' -%}
    {%- set sum_x = feedback_flywheel.exact_sum(expression, 'cast(' ~ bound ~ ' as double)') -%}
    {%- set sum_x2 = feedback_flywheel.exact_sum(
        '(' ~ expression ~ ') * (' ~ expression ~ ')', 'cast(' ~ bound * bound ~ ' as double)'
    ) -%}
    case
        when {{ n }} > 1
            then sqrt(greatest(({{ sum_x2 }} - {{ sum_x }} * {{ sum_x }} / {{ n }}) / ({{ n }} - 1), 0))
    end
{%- endmacro %}

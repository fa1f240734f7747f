{#- Aggregates over doubles that are reproducible bit for bit: a re-run of a batch must reproduce
    every mart exactly, whatever order a parallel aggregate adds the rows in. -#}


{#- sum() of a double expression, reproducible bit for bit: every term is scaled to a 38-digit
    integer (term / scale * 2^90, rounded) and the integers are added exactly, so the result does
    not depend on the order the rows are added in (a parallel hash aggregate adds them in a
    different order on every run, which changes the last bits of a plain floating-point sum and
    would break "a re-run reproduces every mart exactly"). It is also more accurate than a plain
    sum: each term is rounded to 2^-90 of the scale, nothing else is lost.
    scale: a positive column, the same on every row of a group, that bounds |term| up to a
    factor the group's row count can multiply (e.g. max |x| for terms count * x). Portable:
    decimal(38, 0) sums are exact on DuckDB and Spark. 1.2379400392853803e27 is 2^90 exactly. -#}
{% macro exact_sum(expression, scale) -%}
    (
        cast(
            sum(
                cast(
                    ({{ expression }}) / ({{ scale }}) * 1.2379400392853803e27
                    as decimal(38, 0)
                )
            ) as double
        )
        / 1.2379400392853803e27 * max({{ scale }})
    )
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

{#- 95% intervals, as SQL expressions. Pure arithmetic on sqrt / power / greatest / least, so the
    same SQL runs on every engine. Arguments are columns or simple expressions: they are repeated
    in the expression. -#}


{#- Wilson score interval for a proportion successes / trials at confidence z (default the 95%
    z). Null when there are no trials. Clamped to [0, 1]: at 0 successes (or successes = trials)
    rounding leaves ~1e-18 outside the unit interval, which would fail "lower <= rate <= upper". -#}
{% macro wilson_lower(successes, trials, z=none) -%}
    {%- set z = z if z is not none else feedback_flywheel.z95() -%}
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

{% macro wilson_upper(successes, trials, z=none) -%}
    {%- set z = z if z is not none else feedback_flywheel.z95() -%}
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


{#- Newcombe's hybrid score interval (Newcombe 1998, method 10) for the difference of two
    independent proportions p_a - p_b, from the 95% Wilson intervals of each:
    lower = d - sqrt((p_a - l_a)^2 + (u_b - p_b)^2),
    upper = d + sqrt((u_a - p_a)^2 + (p_b - l_b)^2), with d = p_a - p_b.
    Unlike the Wald interval it keeps its coverage near 0 and 1 and with small counts. Null when
    either side has no trials. -#}
{% macro newcombe_lower(x_a, n_a, x_b, n_b) -%}
    {%- set p_a = '(' ~ x_a ~ ') * 1.0 / (' ~ n_a ~ ')' -%}
    {%- set p_b = '(' ~ x_b ~ ') * 1.0 / (' ~ n_b ~ ')' -%}
    case when ({{ n_a }}) > 0 and ({{ n_b }}) > 0 then
        {{ p_a }} - {{ p_b }} - sqrt(
            power({{ p_a }} - {{ feedback_flywheel.wilson_lower(x_a, n_a) }}, 2)
            + power({{ feedback_flywheel.wilson_upper(x_b, n_b) }} - {{ p_b }}, 2)
        )
    end
{%- endmacro %}

{% macro newcombe_upper(x_a, n_a, x_b, n_b) -%}
    {%- set p_a = '(' ~ x_a ~ ') * 1.0 / (' ~ n_a ~ ')' -%}
    {%- set p_b = '(' ~ x_b ~ ') * 1.0 / (' ~ n_b ~ ')' -%}
    case when ({{ n_a }}) > 0 and ({{ n_b }}) > 0 then
        {{ p_a }} - {{ p_b }} + sqrt(
            power({{ feedback_flywheel.wilson_upper(x_a, n_a) }} - {{ p_a }}, 2)
            + power({{ p_b }} - {{ feedback_flywheel.wilson_lower(x_b, n_b) }}, 2)
        )
    end
{%- endmacro %}


{#- The sampling variance of a mean (sample variance / n) from the count, sum and sum of squares
    of the values: ((sum_squares - sum^2 / n) / (n - 1)) / n, a rounding residue below 0 counting
    as 0. Only meaningful for n > 1: guard the call with it. -#}
{% macro mean_sampling_variance(value_sum, sum_squares, n) -%}
    greatest(
        (({{ sum_squares }}) - ({{ value_sum }}) * ({{ value_sum }}) / ({{ n }}))
        / (({{ n }}) - 1),
        0
    ) / ({{ n }})
{%- endmacro %}


{#- Normal-approximation 95% interval of an estimate from its sampling variance:
    estimate -/+ z95 * sqrt(variance). Null when either is null. -#}
{% macro normal_interval_lower(estimate, variance) -%}
    ({{ estimate }}) - {{ feedback_flywheel.z95() }} * sqrt({{ variance }})
{%- endmacro %}

{% macro normal_interval_upper(estimate, variance) -%}
    ({{ estimate }}) + {{ feedback_flywheel.z95() }} * sqrt({{ variance }})
{%- endmacro %}


{#- Welch's (unequal variances) normal 95% interval for the difference of two independent means
    mean_a - mean_b, from each mean's sampling variance:
    mean_a - mean_b -/+ z95 * sqrt(variance_a + variance_b). -#}
{% macro welch_difference_lower(mean_a, variance_a, mean_b, variance_b) -%}
    ({{ mean_a }}) - ({{ mean_b }})
    - {{ feedback_flywheel.z95() }} * sqrt(({{ variance_a }}) + ({{ variance_b }}))
{%- endmacro %}

{% macro welch_difference_upper(mean_a, variance_a, mean_b, variance_b) -%}
    ({{ mean_a }}) - ({{ mean_b }})
    + {{ feedback_flywheel.z95() }} * sqrt(({{ variance_a }}) + ({{ variance_b }}))
{%- endmacro %}

{#- Statistics the analytics marts (models/marts/analytics) compute in SQL. Pure arithmetic on
    exp / sqrt / abs, so the same SQL runs on every engine (no engine has a portable normal CDF:
    DuckDB has no erf at all). -#}


{#- Two-sided p-value of a standard-normal statistic z: P(|Z| >= |z|) = erfc(|z| / sqrt(2)).
    erfc from the Chebyshev fit of Numerical Recipes (2nd ed., section 6.2, `erfcc`), whose
    fractional error is below 1.2e-7 everywhere, so small p-values keep their relative precision
    (Abramowitz-Stegun 7.1.26 only bounds the absolute error, 1.5e-7, which is useless for a
    p-value of 1e-9). Null when z is null (least() alone would turn a null into 1). Pass a column
    or a simple expression: it is repeated. -#}
{% macro normal_two_sided_p(z) -%}
    {%- set x = '(abs(' ~ z ~ ') / sqrt(2.0))' -%}
    {%- set t = '(1.0 / (1.0 + 0.5 * ' ~ x ~ '))' -%}
    case when ({{ z }}) is not null then least(1.0, {{ t }} * exp(
        -{{ x }} * {{ x }} - 1.26551223 + {{ t }} * (1.00002368 + {{ t }} * (0.37409196
        + {{ t }} * (0.09678418 + {{ t }} * (-0.18628806 + {{ t }} * (0.27886807
        + {{ t }} * (-1.13520398 + {{ t }} * (1.48851587 + {{ t }} * (-0.82215223
        + {{ t }} * 0.17087277))))))))
    )) end
{%- endmacro %}


{#- Pooled two-proportion z statistic of x_a / n_a against x_b / n_b (positive when a is higher).
    Null when either side has no trials or the pooled proportion is 0 or 1 (no variance). -#}
{% macro two_proportion_z(x_a, n_a, x_b, n_b) -%}
    case
        when
            ({{ n_a }}) > 0 and ({{ n_b }}) > 0
            and ({{ x_a }}) + ({{ x_b }}) > 0
            and ({{ x_a }}) + ({{ x_b }}) < ({{ n_a }}) + ({{ n_b }})
            then (({{ x_a }}) * 1.0 / ({{ n_a }}) - ({{ x_b }}) * 1.0 / ({{ n_b }})) / sqrt(
                (({{ x_a }}) + ({{ x_b }})) * 1.0 / (({{ n_a }}) + ({{ n_b }}))
                * (1.0 - (({{ x_a }}) + ({{ x_b }})) * 1.0 / (({{ n_a }}) + ({{ n_b }})))
                * (1.0 / ({{ n_a }}) + 1.0 / ({{ n_b }}))
            )
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


{#- The segment dimensions the analytics marts break down by, from the vars: overall
    ('__overall__' / '__all__'), every attribute of var segment_attributes, and every intersection
    of var bias_intersections (named 'a|b', its values 'value_a|value_b'). Returns a list of
    (name, SQL expression over the segment columns) pairs. -#}
{% macro analytics_segment_dimensions() -%}
    {%- set dimensions = [("__overall__", "'__all__'")] -%}
    {%- for attribute in var('segment_attributes') -%}
        {%- do dimensions.append((attribute, "coalesce(" ~ attribute ~ ", '__missing__')")) -%}
    {%- endfor -%}
    {%- for intersection in var('bias_intersections', []) -%}
        {%- set parts = [] -%}
        {%- for attribute in intersection -%}
            {%- if attribute not in var('segment_attributes') -%}
                {{ exceptions.raise_compiler_error(
                    "var bias_intersections: " ~ attribute ~ " is not one of segment_attributes ("
                    ~ var('segment_attributes') | join(', ') ~ "); fix dbt_project.yml or --vars"
                ) }}
            {%- endif -%}
            {%- do parts.append("coalesce(" ~ attribute ~ ", '__missing__')") -%}
            {%- if not loop.last %}{% do parts.append("'|'") %}{% endif -%}
        {%- endfor -%}
        {%- do dimensions.append((intersection | join('|'), dbt.concat(parts))) -%}
    {%- endfor -%}
    {{ return(dimensions) }}
{%- endmacro %}

{#- Test statistics, p-values and multiplicity correction, in SQL. Pure arithmetic on exp / sqrt /
    abs and window functions, so the same SQL runs on every engine (no engine has a portable normal
    CDF: DuckDB has no erf at all). -#}


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


{#- Welch's z statistic for the difference of two independent means (normal approximation):
    (mean_a - mean_b) / sqrt(variance_a + variance_b), from each mean's sampling variance. Null
    when the summed variance is not positive. -#}
{% macro welch_z(mean_a, variance_a, mean_b, variance_b) -%}
    case
        when ({{ variance_a }}) + ({{ variance_b }}) > 0
            then
                (({{ mean_a }}) - ({{ mean_b }}))
                / sqrt(({{ variance_a }}) + ({{ variance_b }}))
    end
{%- endmacro %}


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


{#- Benjamini-Hochberg adjusted p-values within families of tests: a select statement (for a CTE)
    returning every row of `relation` with three columns added:
    - <count_name>: the number of non-null p-values of the row's family (the rows sharing the
      values of `partition_by`);
    - bh_rank: the rank of the row's p-value inside its family (nulls ranked apart), ties broken by
      `tiebreak_by` so the adjustment is deterministic;
    - <adjusted_name>: the step-up adjusted p-value min over ranks k >= rank of p_(k) * m / k,
      capped at 1; null where the p-value is null.
    A row is flagged at FDR level alpha when its adjusted p-value is below alpha. -#}
{% macro benjamini_hochberg(
    relation, p_value, partition_by, tiebreak_by=[], adjusted_name='p_value_adjusted',
    count_name='family_test_count'
) -%}
    {%- set family = partition_by | join(', ') %}
    {%- set ordering = [p_value] + tiebreak_by %}
    select
        *,
        case
            when {{ p_value }} is not null then least(1.0, bh_stepped)
        end as {{ adjusted_name }}
    from (
        select
            *,
            min({{ p_value }} * {{ count_name }} / bh_rank) over (
                partition by {{ family }}, {{ p_value }} is null
                order by bh_rank desc
                rows between unbounded preceding and current row
            ) as bh_stepped
        from (
            select
                *,
                count({{ p_value }}) over (partition by {{ family }}) as {{ count_name }},
                row_number() over (
                    partition by {{ family }}, {{ p_value }} is null
                    order by {{ ordering | join(', ') }}
                ) as bh_rank
            from {{ relation }}
        ) as bh_ranked
    ) as bh_stepped_rows
{%- endmacro %}


{#- The average rank of `value` inside `partition_by` (a list of columns), as
    scipy.stats.rankdata's default: ties share the mean of the positions they occupy,
    rank() + (ties - 1) / 2. Spearman's rho is the Pearson correlation of two such ranks. -#}
{% macro average_rank(value, partition_by) -%}
    rank() over (partition by {{ partition_by | join(', ') }} order by {{ value }})
    + (count(*) over (partition by {{ (partition_by + [value]) | join(', ') }}) - 1) / 2.0
{%- endmacro %}

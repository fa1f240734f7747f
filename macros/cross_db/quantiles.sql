{#- The n - 1 interior cut points that split the values of an expression into n equal-frequency
    bins, as an array (1-based element i is the i/n quantile). An aggregate: use it with group by.

    Discrete quantiles, so every cut point is a value that occurs in the data (no interpolation):
    on DuckDB quantile_disc, the smallest value whose empirical CDF reaches i/n, which is
    numpy.quantile(values, i / n, method='inverted_cdf') exactly; on Spark percentile_approx with
    a high accuracy, which has the same definition up to its documented relative error (1 /
    accuracy of the row count). Discrete cut points make bin assignment exact: a value lies on an
    edge only when it equals it, never off by the last bit of an interpolation. -#}
{% macro quantiles(expression, n) -%}
    {%- if n is not integer or n < 2 -%}
        {{ exceptions.raise_compiler_error(
            "quantiles: n must be an integer >= 2 (number of bins); got " ~ n
        ) }}
    {%- endif -%}
    {{ return(adapter.dispatch('quantiles', 'feedback_flywheel')(expression, n)) }}
{%- endmacro %}

{% macro default__quantiles(expression, n) -%}
    percentile_approx(
        {{ expression }},
        array({%- for i in range(1, n) -%}
            cast({{ i / n }} as double){%- if not loop.last %}, {% endif -%}
        {%- endfor -%}),
        1000000
    )
{%- endmacro %}

{% macro duckdb__quantiles(expression, n) -%}
    quantile_disc(
        {{ expression }},
        [{%- for i in range(1, n) -%}
            cast({{ i / n }} as double){%- if not loop.last %}, {% endif -%}
        {%- endfor -%}]
    )
{%- endmacro %}


{#- Element `index` (1-based, may be an expression) of an array; null when out of range. -#}
{% macro array_element(array_expression, index) -%}
    {{ return(adapter.dispatch('array_element', 'feedback_flywheel')(array_expression, index)) }}
{%- endmacro %}

{% macro default__array_element(array_expression, index) -%}
    try_element_at({{ array_expression }}, {{ index }})
{%- endmacro %}

{% macro duckdb__array_element(array_expression, index) -%}
    list_extract({{ array_expression }}, {{ index }})
{%- endmacro %}


{#- The discrete p-quantile of an expression (an aggregate): the smallest value whose empirical
    CDF reaches p, numpy.quantile(values, p, method='inverted_cdf'); nulls are skipped. On Spark,
    percentile_approx with a high accuracy (the same definition up to its relative error). -#}
{% macro percentile(expression, p) -%}
    {%- if p is not number or p <= 0 or p >= 1 -%}
        {{ exceptions.raise_compiler_error("percentile: p must be a number in (0, 1); got " ~ p) }}
    {%- endif -%}
    {{ return(adapter.dispatch('percentile', 'feedback_flywheel')(expression, p)) }}
{%- endmacro %}

{% macro default__percentile(expression, p) -%}
    percentile_approx({{ expression }}, cast({{ p }} as double), 1000000)
{%- endmacro %}

{% macro duckdb__percentile(expression, p) -%}
    quantile_disc({{ expression }}, cast({{ p }} as double))
{%- endmacro %}

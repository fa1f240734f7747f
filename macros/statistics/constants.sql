{#- The two-sided 95% quantile of the standard normal distribution, Phi^-1(0.975), to the last
    digit a double holds. Every 95% interval and test in SQL takes it from here. -#}
{% macro z95() -%}
    {{ return('1.959963984540054') }}
{%- endmacro %}

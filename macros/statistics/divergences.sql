{#- Divergences between two distributions given as one row per bucket with their shares, as
    aggregates over the buckets. Defined to equal scipy's on the same shares
    (tests/python/test_drift_sql.py proves it); the sums are exact_sum, so reproducible bit for
    bit. -#}


{#- Jensen-Shannon distance between two distributions given as one row per bucket with shares p
    and q (each summing to 1): sqrt(JS divergence), natural log, as
    scipy.spatial.distance.jensenshannon(p, q). An aggregate over the buckets; null when the shares
    are null (an empty window); a rounding residue below 0 counts as 0. -#}
{% macro js_distance(p, q) -%}
    {%- set divergence = feedback_flywheel.exact_sum(
        feedback_flywheel.js_terms(p, q), 'cast(1 as double)'
    ) %}
    case
        when {{ divergence }} > 0 then sqrt({{ divergence }} / 2)
        when {{ divergence }} <= 0 then 0.0
    end
{%- endmacro %}

{#- One bucket's part of the JS divergence (sum over buckets, then halved); at most 2 ln 2. -#}
{% macro js_terms(p, q) -%}
    (
        case
            when {{ p }} > 0 then {{ p }} * ln({{ p }} / (({{ p }} + {{ q }}) / 2))
            when {{ p }} = 0 then 0.0
        end
        + case
            when {{ q }} > 0 then {{ q }} * ln({{ q }} / (({{ p }} + {{ q }}) / 2))
            when {{ q }} = 0 then 0.0
        end
    )
{%- endmacro %}


{#- Population stability index over buckets with shares p (reference) and q (current):
    sum((q - p) * ln(q / p)), a share of 0 replaced by epsilon (default 1e-4) so an empty bucket
    gives a large but finite term (at most ln(1 / epsilon), < 16 for epsilon >= 1e-6). An
    aggregate; null when the shares are null. -#}
{% macro psi(p, q, epsilon=0.0001) -%}
    {%- set q_floored = 'case when ' ~ q ~ ' = 0 then cast(' ~ epsilon ~ ' as double) else '
        ~ q ~ ' end' %}
    {%- set p_floored = 'case when ' ~ p ~ ' = 0 then cast(' ~ epsilon ~ ' as double) else '
        ~ p ~ ' end' %}
    {{ feedback_flywheel.exact_sum(
        '(' ~ q_floored ~ ' - ' ~ p_floored ~ ') * ln((' ~ q_floored ~ ') / (' ~ p_floored ~ '))',
        'cast(16 as double)',
    ) }}
{%- endmacro %}

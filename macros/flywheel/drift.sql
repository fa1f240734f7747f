{#-
    Drift monitoring (models/intermediate/drift/, models/marts/monitoring/drift/): the monitored
    features, the two windows, and the divergences over shares. The statistics are defined to equal
    scipy's on the same values (tests/python/test_drift_sql.py proves it).
-#}

{#- Features always monitored besides the configured inputs; an input may not use these names. -#}
{% macro drift_builtin_features() -%}
    {{ return([
        {'name': 'predicted_score', 'kind': 'prediction', 'value_type': 'numeric'},
        {'name': 'predicted_label', 'kind': 'prediction', 'value_type': 'categorical'},
        {'name': 'label', 'kind': 'label', 'value_type': 'categorical'},
    ]) }}
{%- endmacro %}


{#- The monitored keys of inference_log.inputs (var drift_features), validated: a list of
    {name, kind: 'input', value_type: 'numeric' | 'categorical'} in var order, numeric first. -#}
{% macro drift_input_features() -%}
    {%- set configured = var('drift_features') -%}
    {%- if configured is not mapping -%}
        {{ exceptions.raise_compiler_error(
            "var drift_features must be a mapping {numeric: [...], categorical: [...]}; got "
            ~ configured
        ) }}
    {%- endif -%}
    {%- set unknown = configured.keys() | reject('in', ['numeric', 'categorical']) | list -%}
    {%- if unknown -%}
        {{ exceptions.raise_compiler_error(
            "var drift_features: unknown key(s) " ~ unknown | join(', ')
            ~ "; allowed: numeric, categorical"
        ) }}
    {%- endif -%}
    {%- set reserved = feedback_flywheel.drift_builtin_features() | map(attribute='name') | list -%}
    {%- set features = [] -%}
    {%- set seen = [] -%}
    {%- for value_type in ['numeric', 'categorical'] -%}
        {%- for name in configured.get(value_type) or [] -%}
            {%- if not modules.re.match('^[A-Za-z_][A-Za-z0-9_]*$', name | string) -%}
                {{ exceptions.raise_compiler_error(
                    "var drift_features." ~ value_type ~ ": '" ~ name ~ "' is not a plain key "
                    ~ "(letters, digits and _, not starting with a digit)"
                ) }}
            {%- endif -%}
            {%- if name in reserved or name in seen -%}
                {{ exceptions.raise_compiler_error(
                    "var drift_features: '" ~ name ~ "' is listed twice or is reserved ("
                    ~ reserved | join(', ') ~ " are always monitored)"
                ) }}
            {%- endif -%}
            {%- do seen.append(name) -%}
            {%- do features.append(
                {'name': name, 'kind': 'input', 'value_type': value_type}
            ) -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(features) }}
{%- endmacro %}


{#- The two windows over logged_at, as SQL timestamp expressions: current = [batch_end -
    drift_current_days, batch_end), reference = the drift_reference_days before it. -#}
{% macro drift_window_bounds() -%}
    {%- set current_days = var('drift_current_days') -%}
    {%- set reference_days = var('drift_reference_days') -%}
    {%- for name, value in [
        ('drift_current_days', current_days), ('drift_reference_days', reference_days)
    ] -%}
        {%- if value is not integer or value < 1 -%}
            {{ exceptions.raise_compiler_error(
                "var " ~ name ~ " must be a whole number of days >= 1; got " ~ value
            ) }}
        {%- endif -%}
    {%- endfor -%}
    {%- set batch_end = feedback_flywheel.var_timestamp('batch_end') -%}
    {{ return({
        'reference_start_at': 'cast(' ~ dbt.dateadd(
            'day', -(current_days + reference_days), batch_end
        ) ~ ' as timestamp)',
        'reference_end_at': 'cast(' ~ dbt.dateadd('day', -current_days, batch_end)
            ~ ' as timestamp)',
        'current_start_at': 'cast(' ~ dbt.dateadd('day', -current_days, batch_end)
            ~ ' as timestamp)',
        'current_end_at': batch_end,
    }) }}
{%- endmacro %}


{#- A whole-number var >= minimum, or a compiler error naming it. -#}
{% macro drift_int_var(name, minimum) -%}
    {%- set value = var(name) -%}
    {%- if value is not integer or value < minimum -%}
        {{ exceptions.raise_compiler_error(
            "var " ~ name ~ " must be a whole number >= " ~ minimum ~ "; got " ~ value
        ) }}
    {%- endif -%}
    {{ return(value) }}
{%- endmacro %}


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

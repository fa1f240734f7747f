{#-
    Drift monitoring (models/intermediate/drift/, models/marts/monitoring/drift/): the monitored
    features and the two windows. The divergences over shares are statistics
    (macros/statistics/divergences.sql).
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
    {%- set configured = feedback_flywheel.setting('drift_features') -%}
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
            {%- if not feedback_flywheel.is_identifier(name) -%}
                {{ exceptions.raise_compiler_error(
                    "var drift_features." ~ value_type ~ ": " ~ tojson(name) ~ " is not a "
                    ~ "lower-case identifier (^[a-z_][a-z0-9_]*$)"
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
    {%- set current_days = feedback_flywheel.setting('drift_current_days') -%}
    {%- set reference_days = feedback_flywheel.setting('drift_reference_days') -%}
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


{#- The windows of label drift: labels are only there once they matured (var label_settle_hours
    before the watermark) and arrive days after the prediction, so the windows of the drift test
    of the *inputs* (the last drift_current_days) would never hold a label. Label drift compares
    the labels of the predictions served in the var performance_current_days days that end
    ceil(label_settle_hours / 24) days before the watermark (the current window) with those of the
    var drift_reference_days days before them; only matured labels count. Returns the four bounds
    like drift_window_bounds. -#}
{% macro label_window_bounds() -%}
    {%- set settle_days = ((feedback_flywheel.setting('label_settle_hours') + 23) // 24) | int -%}
    {%- set current_days = feedback_flywheel.setting('performance_current_days') -%}
    {%- set reference_days = feedback_flywheel.setting('drift_reference_days') -%}
    {%- set batch_end = feedback_flywheel.var_timestamp('batch_end') -%}
    {%- set current_end = dbt.dateadd('day', -settle_days, batch_end) -%}
    {%- set current_start = dbt.dateadd('day', -(settle_days + current_days), batch_end) -%}
    {{ return({
        'reference_start_at': 'cast(' ~ dbt.dateadd(
            'day', -(settle_days + current_days + reference_days), batch_end
        ) ~ ' as timestamp)',
        'reference_end_at': 'cast(' ~ current_start ~ ' as timestamp)',
        'current_start_at': 'cast(' ~ current_start ~ ' as timestamp)',
        'current_end_at': 'cast(' ~ current_end ~ ' as timestamp)',
    }) }}
{%- endmacro %}


{#- A whole-number var >= minimum, or a compiler error naming it. -#}
{% macro drift_int_var(name, minimum) -%}
    {%- set value = feedback_flywheel.setting(name) -%}
    {%- if value is not integer or value < minimum -%}
        {{ exceptions.raise_compiler_error(
            "var " ~ name ~ " must be a whole number >= " ~ minimum ~ "; got " ~ value
        ) }}
    {%- endif -%}
    {{ return(value) }}
{%- endmacro %}


{#- A where condition over int_drift_values_typed rows keeping the features given (a list of
    {name, value_type}, as drift_input_features returns) under their configured type; `false`
    for none. -#}
{% macro drift_typed_feature_filter(features) -%}
    {%- for feature in features -%}
        (
            feature_name = {{ feedback_flywheel.sql_string(feature.name) }}
            and value_type = '{{ feature.value_type }}'
        ){% if not loop.last %} or {% endif %}
    {%- else -%}
        false
    {%- endfor -%}
{%- endmacro %}

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
    for none. relation: the alias the columns are qualified with (none: unqualified). -#}
{% macro drift_typed_feature_filter(features, relation=none) -%}
    {%- set prefix = relation ~ '.' if relation else '' -%}
    {%- for feature in features -%}
        (
            {{ prefix }}feature_name = {{ feedback_flywheel.sql_string(feature.name) }}
            and {{ prefix }}value_type = '{{ feature.value_type }}'
        ){% if not loop.last %} or {% endif %}
    {%- else -%}
        false
    {%- endfor -%}
{%- endmacro %}


{#- The drift timeline of a batch: the past days of its window, each evaluated at its own end the
    way the watermark is (fct_drift_numeric, fct_drift_categorical_summary): the day's last
    drift_current_days days against the drift_reference_days before them. A day qualifies when it
    ends after batch_start, at least a day before batch_end (the watermark's own evaluation is the
    drift at the watermark) and at most var drift_timeline_days before batch_end. A daily batch
    (a window of one day) has none; a backfill has every day of its history. Returns a where
    condition on a date column and the window lengths in days. -#}
{% macro drift_timeline_days(date_column) -%}
    {%- set timeline_days = feedback_flywheel.drift_int_var('drift_timeline_days', 0) -%}
    {%- set batch_start = feedback_flywheel.var_timestamp('batch_start') -%}
    {%- set batch_end = feedback_flywheel.var_timestamp('batch_end') -%}
    {%- set day = 'cast(' ~ date_column ~ ' as timestamp)' -%}
    {%- set condition -%}
        {{ day }} >= {{ dbt.date_trunc('day', batch_start) }}
        and {{ day }} <= {{ dbt.dateadd('day', -2, batch_end) }}
        and {{ day }} >= {{ dbt.dateadd('day', -(timeline_days + 1), batch_end) }}
    {%- endset -%}
    {{ return({
        'condition': condition,
        'current_days': feedback_flywheel.setting('drift_current_days'),
        'reference_days': feedback_flywheel.setting('drift_reference_days'),
    }) }}
{%- endmacro %}


{#- The day summaries of every timeline day's two windows (see drift_timeline_days): one row per
    (model, evaluation day, day of its windows, feature, value) with its window side, from
    int_drift_values_daily. features: as drift_typed_feature_filter takes them. -#}
{% macro drift_timeline_window_values(features) -%}
    {%- set timeline = feedback_flywheel.drift_timeline_days('daily.logged_date') -%}
    {%- set span = timeline.current_days + timeline.reference_days -%}

evaluation_days as (

    select distinct
        daily.model_name,
        daily.logged_date as evaluation_date
    from {{ ref('int_drift_values_daily') }} as daily
    where {{ timeline.condition }}

),

window_values as (

    select
        evaluation_days.model_name,
        evaluation_days.evaluation_date,
        daily.feature_name,
        daily.feature_kind,
        daily.string_value,
        daily.numeric_value,
        case
            when
                daily.logged_date > {{ dbt.dateadd(
                    'day', -timeline.current_days, 'evaluation_days.evaluation_date'
                ) }}
                then daily.value_count
            else 0
        end as cur_count,
        case
            when
                daily.logged_date <= {{ dbt.dateadd(
                    'day', -timeline.current_days, 'evaluation_days.evaluation_date'
                ) }}
                then daily.value_count
            else 0
        end as ref_count
    from evaluation_days
    inner join {{ ref('int_drift_values_daily') }} as daily
        on
            evaluation_days.model_name = daily.model_name
            and daily.logged_date <= evaluation_days.evaluation_date
            and daily.logged_date > {{ dbt.dateadd(
                'day', -span, 'evaluation_days.evaluation_date'
            ) }}
    where {{ feedback_flywheel.drift_typed_feature_filter(features, 'daily') }}

),
{%- endmacro %}


{#- How the drift windows split into days (see drift_window_bounds): `whole_day`, a where
    condition over an int_drift_values_daily row aliased `daily` whose day lies wholly inside
    [reference start, current end) and on one side of current start (a day summary serves it);
    `edge`, a where condition over the logged_at of a typed value on a part day the bounds cut
    (the first day from the reference start, the day current start cuts, the last day up to the
    watermark), false before any row is read at a midnight watermark, when no day is cut. -#}
{% macro drift_window_day_split() -%}
    {%- set bounds = feedback_flywheel.drift_window_bounds() -%}
    {%- set day_start = 'cast(daily.logged_date as timestamp)' -%}
    {%- set day_end = dbt.dateadd('day', 1, day_start) -%}
    {%- set whole_day -%}
        {{ day_start }} >= {{ bounds.reference_start_at }}
        and {{ day_end }} <= {{ bounds.current_end_at }}
        and ({{ day_start }} >= {{ bounds.current_start_at }}
            or {{ day_end }} <= {{ bounds.current_start_at }})
    {%- endset -%}
    {%- set edge -%}
        {{ dbt.date_trunc('day', bounds.current_end_at) }} <> {{ bounds.current_end_at }}
        and (
            (
                logged_at >= {{ bounds.reference_start_at }}
                and logged_at < {{ dbt.dateadd(
                    'day', 1, dbt.date_trunc('day', bounds.reference_start_at)
                ) }}
            )
            or (
                logged_at >= {{ dbt.date_trunc('day', bounds.current_start_at) }}
                and logged_at < {{ dbt.dateadd(
                    'day', 1, dbt.date_trunc('day', bounds.current_start_at)
                ) }}
            )
            or (
                logged_at >= {{ dbt.date_trunc('day', bounds.current_end_at) }}
                and logged_at < {{ bounds.current_end_at }}
            )
        )
    {%- endset -%}
    {{ return({'whole_day': whole_day, 'edge': edge}) }}
{%- endmacro %}


{#- One CTE (window_values, followed by a comma): the counted values of the two drift windows
    at the watermark, not merged: the day summaries of the whole days (int_drift_values_daily)
    and the edge days' counts (int_drift_values_edge_counted), one row per (model, feature,
    value, source day or edge side) with ref_count and cur_count, so a value may come in several
    rows. A count over the rows is the window's; a caller that needs one row per value groups
    them (int_drift_values_counted), one that only sums or orders them (the numeric statistics,
    drift_numeric_distance_ctes) reads them as they are and skips the merge.
    features: as drift_typed_feature_filter takes them. -#}
{% macro drift_window_values(features) -%}
    {%- set bounds = feedback_flywheel.drift_window_bounds() -%}
    {%- set split = feedback_flywheel.drift_window_day_split() -%}

window_values as (

    select
        daily.model_name,
        daily.feature_name,
        daily.feature_kind,
        daily.value_type,
        daily.string_value,
        daily.numeric_value,
        case
            when cast(daily.logged_date as timestamp) < {{ bounds.current_start_at }}
                then daily.value_count
            else 0
        end as ref_count,
        case
            when cast(daily.logged_date as timestamp) >= {{ bounds.current_start_at }}
                then daily.value_count
            else 0
        end as cur_count
    from {{ ref('int_drift_values_daily') }} as daily
    where
        {{ split.whole_day }}
        and ({{ feedback_flywheel.drift_typed_feature_filter(features, 'daily') }})

    union all

    select
        edge.model_name,
        edge.feature_name,
        edge.feature_kind,
        edge.value_type,
        edge.string_value,
        edge.numeric_value,
        case when edge.window_side = 'reference' then edge.value_count else 0 end as ref_count,
        case when edge.window_side = 'current' then edge.value_count else 0 end as cur_count
    from {{ ref('int_drift_values_edge_counted') }} as edge
    where {{ feedback_flywheel.drift_typed_feature_filter(features, 'edge') }}

),
{%- endmacro %}

{{
    config(
        materialized='incremental',
        unique_key=['inference_id', 'feature_name', 'value_type'],
        incremental_strategy='append',
        on_schema_change='fail',
    )
}}

-- The monitored values of every accepted inference, parsed once in its life: one row per
-- (inference, monitored feature) with the value typed (numeric_value for a numeric feature, null
-- when missing, not a number or not finite; string_value for a categorical one, null when
-- missing). Features: the keys of inputs listed in var drift_features, predicted_score and
-- predicted_label. Every drift window, the reference bins and the batch coverage read these typed
-- values; nothing downstream parses inputs_json again.
-- "New" for this model: the accepted inferences of the batch window plus lookback, or loaded
-- after the newest one here (a late file), that have no row here yet for a feature (and its
-- value type: a feature configured as the other type is parsed again). So each
-- (inference, feature) is parsed by the first batch that sees it and never again, a re-run of the
-- batch adds nothing, and a feature added to var drift_features starts being parsed with the
-- batch that configures it (for the inferences that batch sees; a backfill of older ones is a
-- full refresh of this model, see the model's docs). Append-only: rows are never changed, so the
-- batch writes only its new rows (no delete over a table that grows with the history; the
-- unique_key documents the grain, the append strategy does not use it).
-- The JSON is parsed once per inference for all its monitored keys (macro json_get_strings), not
-- once per key, and only for inferences not yet typed under the current configuration (the
-- feature list and types, as configuration_key): the lookback days a batch revisits are not
-- parsed again, and finding them reads one row per inference, not one per feature.

{%- set batch_id = feedback_flywheel.batch_param('batch_id') %}
{%- set inputs = feedback_flywheel.drift_input_features() %}
{%- set builtins = feedback_flywheel.drift_builtin_features()[:2] %}
{%- set configured = [] %}
{%- for feature in inputs + builtins %}
    {%- do configured.append(feature.name ~ ':' ~ feature.value_type) %}
{%- endfor %}
{%- set configuration_key = 'md5(' ~ feedback_flywheel.sql_string(configured | join(',')) ~ ')' %}

with

inferences as (

    select
        inference_id,
        model_name,
        model_version,
        inputs_json,
        predicted_label,
        predicted_score,
        logged_at,
        loaded_at
    from {{ ref('int_inferences_validated') }}
    where
        is_accepted
        and logged_at < {{ feedback_flywheel.var_timestamp('batch_end') }}
    {{ feedback_flywheel.lookback_or_late('logged_at') }}

),

monitored_features as (

    {%- for feature in inputs + builtins %}

        select
            {{ feedback_flywheel.sql_string(feature.name) }} as feature_name,
            '{{ feature.kind }}' as feature_kind,
            '{{ feature.value_type }}' as value_type,
            {{ loop.index if feature.kind == 'input' else 'cast(null as integer)' }}
                as input_position
        {%- if not loop.last %}

            union all
        {%- endif %}
    {%- endfor %}

),

{% if is_incremental() %}
    fully_parsed as (

        -- Inferences typed under the current configuration already: their predicted_label row
        -- (every typed inference has one) carries the configuration it was typed under. Only
        -- rows logged since the oldest candidate can match (zone maps prune the history).
        select inference_id
        from {{ this }}
        where
            feature_name = 'predicted_label'
            and configuration_key = {{ configuration_key }}
            and logged_at >= (select min(inferences.logged_at) from inferences)

    ),
{% endif %}

inputs_parsed as (

    select
        inference_id,
        model_name,
        model_version,
        predicted_label,
        predicted_score,
        logged_at,
        {%- if inputs %}
            {{ feedback_flywheel.json_get_strings(
                'inputs_json', inputs | map(attribute='name') | list
            ) }} as input_values,
        {%- endif %}
        loaded_at
    from inferences
    {%- if is_incremental() %}
    where inference_id not in (select fully_parsed.inference_id from fully_parsed)
    {%- endif %}

),

{% if is_incremental() %}
    already_parsed as (

        -- What earlier batches typed of the inferences parsed here (after a configuration change,
        -- the features they have already): those rows are not written twice.
        select
            inference_id,
            feature_name,
            value_type
        from {{ this }}
        where
            logged_at >= (select min(inferences.logged_at) from inferences)
            and inference_id in (select inputs_parsed.inference_id from inputs_parsed)

    ),
{% endif %}

values_unpivoted as (

    select
        inputs_parsed.inference_id,
        inputs_parsed.model_name,
        inputs_parsed.model_version,
        monitored_features.feature_name,
        monitored_features.feature_kind,
        monitored_features.value_type,
        case
            when monitored_features.feature_name = 'predicted_label'
                then inputs_parsed.predicted_label
            {%- if inputs %}
                when monitored_features.value_type = 'categorical'
                    then {{ feedback_flywheel.array_element(
                        'inputs_parsed.input_values', 'monitored_features.input_position'
                    ) }}
            {%- endif %}
        end as string_value,
        case
            when monitored_features.feature_name = 'predicted_score'
                then inputs_parsed.predicted_score
            {%- if inputs %}
                when monitored_features.value_type = 'numeric'
                    then {{ feedback_flywheel.try_to_double(feedback_flywheel.array_element(
                        'inputs_parsed.input_values', 'monitored_features.input_position'
                    )) }}
            {%- endif %}
        end as parsed_value,
        inputs_parsed.logged_at,
        inputs_parsed.loaded_at
    from inputs_parsed
    cross join monitored_features
    {%- if is_incremental() %}
    left join already_parsed
        on
            inputs_parsed.inference_id = already_parsed.inference_id
            and monitored_features.feature_name = already_parsed.feature_name
            and monitored_features.value_type = already_parsed.value_type
    where already_parsed.inference_id is null
    {%- endif %}

),

final as (

    -- Text that parses to NaN or +-inf ('NaN', 'inf', '1e999') counts as not a number (x - x is 0
    -- exactly for finite x only).
    select
        inference_id,
        feature_name,
        model_name,
        model_version,
        feature_kind,
        value_type,
        string_value,
        case when parsed_value - parsed_value = 0 then parsed_value end as numeric_value,
        '{{ batch_id }}' as batch_id,
        {{ configuration_key }} as configuration_key,
        logged_at,
        loaded_at
    from values_unpivoted

)

select * from final

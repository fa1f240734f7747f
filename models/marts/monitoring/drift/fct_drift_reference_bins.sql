{{
    config(
        materialized='incremental',
        unique_key='reference_bin_id',
        incremental_strategy=feedback_flywheel.flywheel_incremental_strategy(),
        on_schema_change='fail',
    )
}}

-- The bins PSI and Jensen-Shannon distance of a numeric feature are computed over: var drift_bins
-- equal-frequency bins per (model, feature, reference window), cut at the discrete i / drift_bins
-- quantiles of the reference values (macro quantiles: every edge is a reference value). Bin i is
-- [lower_edge, upper_edge); the first has no lower edge, the last no upper edge. Tied quantiles
-- give empty bins [v, v), which add nothing to PSI or JS.
-- "New" for this model: reference windows (per model and feature) that have no bins here yet. A
-- window's bins are computed once, by the first batch that sees reference values in it, and never
-- recomputed, so re-running a batch reuses them. A window is identified by both of its bounds, so
-- a change of var drift_current_days or drift_reference_days starts new windows.

{%- set batch_id = feedback_flywheel.batch_param('batch_id') %}
{%- set bounds = feedback_flywheel.drift_window_bounds() %}
{%- set bin_count = feedback_flywheel.drift_int_var('drift_bins', 2) %}
{%- set numeric_features = [] %}
{%- for feature in feedback_flywheel.drift_input_features() if feature.value_type == 'numeric' %}
    {%- do numeric_features.append(feature.name) %}
{%- endfor %}
{%- do numeric_features.append('predicted_score') %}

with

reference_values as (

    -- The numeric features long (the numeric inputs of var drift_features and predicted_score),
    -- typed once by int_drift_values_typed.
    select
        model_name,
        feature_name,
        numeric_value
    from {{ ref('int_drift_values_typed') }}
    where
        logged_at >= {{ bounds.reference_start_at }}
        and logged_at < {{ bounds.reference_end_at }}
        and value_type = 'numeric'
        and feature_name in {{ feedback_flywheel.string_list(numeric_features) }}
        and numeric_value is not null

),

{% if is_incremental() %}
    frozen_features as (

        select distinct
            model_name,
            feature_name
        from {{ this }}
        where
            reference_start_at = {{ bounds.reference_start_at }}
            and reference_end_at = {{ bounds.reference_end_at }}

    ),
{% endif %}

reference_values_unbinned as (

    select reference_values.*
    from reference_values
    {%- if is_incremental() %}
    left join frozen_features
        on
            reference_values.model_name = frozen_features.model_name
            and reference_values.feature_name = frozen_features.feature_name
    where frozen_features.feature_name is null
    {%- endif %}

),

cut_points as (

    select
        model_name,
        feature_name,
        {{ feedback_flywheel.quantiles('numeric_value', bin_count) }} as cut_point_list,
        count(*) as reference_value_count
    from reference_values_unbinned
    group by model_name, feature_name

),

bin_indexes as (

    {%- for bin_index in range(1, bin_count + 1) %}

        select {{ bin_index }} as bin_index
        {%- if not loop.last %}

            union all
        {%- endif %}
    {%- endfor %}

),

final as (

    select
        {{ feedback_flywheel.surrogate_key([
            'cut_points.model_name',
            'cut_points.feature_name',
            bounds.reference_start_at,
            bounds.reference_end_at,
            'bin_indexes.bin_index',
        ]) }} as reference_bin_id,
        cut_points.model_name,
        cut_points.feature_name,
        '{{ batch_id }}' as batch_id,
        cast(bin_indexes.bin_index as integer) as bin_index,
        cast({{ bin_count }} as integer) as bin_count,
        cast(cut_points.reference_value_count as {{ dbt.type_bigint() }}) as reference_value_count,
        cast(
            case
                when bin_indexes.bin_index > 1
                    then {{ feedback_flywheel.array_element(
                        'cut_points.cut_point_list', 'bin_indexes.bin_index - 1'
                    ) }}
            end as double
        ) as lower_edge,
        cast(
            case
                when bin_indexes.bin_index < {{ bin_count }}
                    then {{ feedback_flywheel.array_element(
                        'cut_points.cut_point_list', 'bin_indexes.bin_index'
                    ) }}
            end as double
        ) as upper_edge,
        {{ bounds.reference_start_at }} as reference_start_at,
        {{ bounds.reference_end_at }} as reference_end_at
    from cut_points
    cross join bin_indexes

)

select * from final

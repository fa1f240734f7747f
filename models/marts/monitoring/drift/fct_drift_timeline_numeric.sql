{{
    config(
        materialized='incremental',
        unique_key='drift_timeline_numeric_id',
        incremental_strategy=feedback_flywheel.flywheel_incremental_strategy(),
        on_schema_change='fail',
    )
}}

-- The drift timeline of every numeric feature (configured inputs and predicted_score): each past
-- day of the batch window (macro drift_timeline_days: a backfill's history, none in a daily
-- batch) evaluated at its own end exactly as fct_drift_numeric evaluates the watermark: the
-- day's last drift_current_days days against the drift_reference_days before them, with the same
-- exact KS D and W1 (macro drift_numeric_distance_ctes) over the day summaries of the two
-- windows (int_drift_values_daily), so a backfill sees the change where it happened and not only
-- at its last day. The p-values and flags are the Python stage's (ml.drift_timeline).
-- "New" for this model: the current batch's rows (a re-run replaces them).

{%- set batch_id = feedback_flywheel.batch_param('batch_id') %}
{%- set inputs = feedback_flywheel.drift_input_features() %}
{%- set builtins = feedback_flywheel.drift_builtin_features() %}
{%- set features = (inputs + builtins[:1])
    | selectattr('value_type', 'equalto', 'numeric') | list %}
{%- set keys = ['model_name', 'evaluation_date', 'feature_name'] %}

with

{{ feedback_flywheel.drift_timeline_window_values(features) }}

{{ feedback_flywheel.drift_numeric_distance_ctes('window_values', keys) }}

final as (

    select
        {{ feedback_flywheel.surrogate_key([
            "'" ~ batch_id ~ "'", 'feature_totals.model_name',
            'cast(feature_totals.evaluation_date as ' ~ dbt.type_string() ~ ')',
            'feature_totals.feature_name',
        ]) }} as drift_timeline_numeric_id,
        '{{ batch_id }}' as batch_id,
        feature_totals.model_name,
        cast(feature_totals.evaluation_date as date) as evaluation_date,
        feature_totals.feature_name,
        feature_totals.feature_kind,
        cast(feature_totals.n_ref as {{ dbt.type_bigint() }}) as n_ref,
        cast(feature_totals.n_cur as {{ dbt.type_bigint() }}) as n_cur,
        cast(feature_totals.missing_ref as {{ dbt.type_bigint() }}) as missing_ref,
        cast(feature_totals.missing_cur as {{ dbt.type_bigint() }}) as missing_cur,
        cast(ecdf_distances.ks_d as double) as ks_d,
        cast(ecdf_distances.wasserstein as double) as wasserstein,
        cast(
            ecdf_distances.wasserstein / nullif(ecdf_distances.ref_std, 0) as double
        ) as wasserstein_norm,
        cast(feature_totals.ref_mean as double) as ref_mean,
        cast(ecdf_distances.ref_std as double) as ref_std,
        cast(feature_totals.cur_mean as double) as cur_mean
    from feature_totals
    left join ecdf_distances
        on {{ feedback_flywheel.drift_keys_join('feature_totals', 'ecdf_distances', keys) }}

)

select * from final

{{
    config(
        materialized='incremental',
        unique_key='drift_numeric_id',
        incremental_strategy=feedback_flywheel.flywheel_incremental_strategy(),
        on_schema_change='fail',
    )
}}

-- Drift of every numeric feature (configured inputs and predicted_score) per model: the current
-- window against the reference window, with exact two-sample statistics equal to scipy's on the
-- same values: KS D (scipy.stats.ks_2samp), W1 (scipy.stats.wasserstein_distance), and PSI and
-- JS distance over the frozen reference bins (fct_drift_reference_bins).
-- How: the values come counted per window from the day summaries of the whole days and the
-- counts of the cut edge days (macro drift_window_values: a value may come in several rows, one
-- per day, the missing values in the null rows), not merged first; one window pass over those
-- rows, with every row of a value in its frame, gives both empirical CDFs after each distinct
-- value (right-continuous, as scipy evaluates them) and the gap to the next distinct value. KS D
-- is the largest |F_ref - F_cur| at a distinct value, W1 the sum of |F_ref - F_cur| times the gap.
-- No self-join, no per-feature query. That SQL is the macro drift_numeric_distance_ctes, which the
-- drift timeline (fct_drift_timeline_numeric) shares.
-- D is maximised in integers, max |c_ref * n_cur - c_cur * n_ref| / (n_ref * n_cur) (c the
-- cumulative counts), so it is the correctly rounded exact value: bit for bit what ks_2samp
-- reports when it computes the exact p-value (both samples <= 10,000), within an ulp above.
-- Every floating-point sum is an exact_sum (macro): the terms are added as integers, so the
-- result does not depend on the order a parallel aggregate adds rows in; a re-run is identical bit
-- for bit.
-- Empty window (no non-missing value on a side): ks_d, wasserstein, psi, js_distance and that
-- side's mean are null. The same single value in both windows: ks_d = wasserstein = psi = 0.
-- "New" for this model: the current batch's rows (a re-run replaces them).

{%- set batch_id = feedback_flywheel.batch_param('batch_id') %}
{%- set bounds = feedback_flywheel.drift_window_bounds() %}
{%- set inputs = feedback_flywheel.drift_input_features() %}
{%- set builtins = feedback_flywheel.drift_builtin_features() %}
{%- set features = (inputs + builtins[:1])
    | selectattr('value_type', 'equalto', 'numeric') | list %}

with

{{ feedback_flywheel.drift_window_values(features) }}

value_counts as (

    select
        model_name,
        feature_name,
        feature_kind,
        numeric_value,
        ref_count,
        cur_count
    from window_values

),

reference_bins as (

    select
        model_name,
        feature_name,
        bin_index,
        lower_edge,
        upper_edge
    from {{ ref('fct_drift_reference_bins') }}
    where
        reference_start_at = {{ bounds.reference_start_at }}
        and reference_end_at = {{ bounds.reference_end_at }}

),

{{ feedback_flywheel.drift_numeric_distance_ctes('value_counts', ['model_name', 'feature_name']) }}

binned_counts as (

    select
        reference_bins.model_name,
        reference_bins.feature_name,
        reference_bins.bin_index,
        sum(value_counts.ref_count) as ref_count,
        sum(value_counts.cur_count) as cur_count
    from value_counts
    inner join reference_bins
        on
            value_counts.model_name = reference_bins.model_name
            and value_counts.feature_name = reference_bins.feature_name
            and (
                reference_bins.lower_edge is null
                or value_counts.numeric_value >= reference_bins.lower_edge
            )
            and (
                reference_bins.upper_edge is null
                or value_counts.numeric_value < reference_bins.upper_edge
            )
    where value_counts.numeric_value is not null
    group by reference_bins.model_name, reference_bins.feature_name, reference_bins.bin_index

),

bin_shares as (

    select
        reference_bins.model_name,
        reference_bins.feature_name,
        cast(coalesce(binned_counts.ref_count, 0) as double)
        / cast(feature_totals.n_ref_compared as double) as ref_share,
        cast(coalesce(binned_counts.cur_count, 0) as double)
        / cast(feature_totals.n_cur_compared as double) as cur_share
    from reference_bins
    inner join feature_totals
        on
            reference_bins.model_name = feature_totals.model_name
            and reference_bins.feature_name = feature_totals.feature_name
    left join binned_counts
        on
            reference_bins.model_name = binned_counts.model_name
            and reference_bins.feature_name = binned_counts.feature_name
            and reference_bins.bin_index = binned_counts.bin_index

),

bin_divergences as (

    select
        model_name,
        feature_name,
        {{ feedback_flywheel.psi('ref_share', 'cur_share') }} as psi,
        {{ feedback_flywheel.js_distance('ref_share', 'cur_share') }} as js_distance
    from bin_shares
    group by model_name, feature_name

),

final as (

    select
        {{ feedback_flywheel.surrogate_key([
            "'" ~ batch_id ~ "'", 'feature_totals.model_name', 'feature_totals.feature_name',
        ]) }} as drift_numeric_id,
        '{{ batch_id }}' as batch_id,
        feature_totals.model_name,
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
        cast(bin_divergences.psi as double) as psi,
        cast(bin_divergences.js_distance as double) as js_distance,
        cast(feature_totals.ref_mean as double) as ref_mean,
        cast(ecdf_distances.ref_std as double) as ref_std,
        cast(feature_totals.cur_mean as double) as cur_mean,
        {{ bounds.reference_start_at }} as reference_start_at,
        {{ bounds.reference_end_at }} as reference_end_at,
        {{ bounds.current_start_at }} as current_start_at,
        {{ bounds.current_end_at }} as current_end_at
    from feature_totals
    left join ecdf_distances
        on
            feature_totals.model_name = ecdf_distances.model_name
            and feature_totals.feature_name = ecdf_distances.feature_name
    left join bin_divergences
        on
            feature_totals.model_name = bin_divergences.model_name
            and feature_totals.feature_name = bin_divergences.feature_name

)

select * from final

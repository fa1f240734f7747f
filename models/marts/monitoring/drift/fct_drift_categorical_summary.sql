{{
    config(
        materialized='incremental',
        unique_key='drift_categorical_summary_id',
        incremental_strategy=feedback_flywheel.flywheel_incremental_strategy(),
        on_schema_change='fail',
    )
}}

-- One row per categorical feature and model: its contingency table (fct_drift_categorical)
-- summed up. Shares are over the non-missing values of a window, across the buckets other than
-- __missing__ (top-k categories, __other__, __unseen__): L-infinity distance max |p_ref - p_cur|,
-- Jensen-Shannon distance (as scipy.spatial.distance.jensenshannon, natural log) and the share of
-- current values never seen in the reference window. Empty window (no non-missing value on a
-- side): linf and js_distance are null, and unseen_share_cur too when the current window is empty.
-- "New" for this model: the current batch's rows (a re-run replaces them).

{%- set batch_id = feedback_flywheel.batch_param('batch_id') %}

with

categories as (

    select * from {{ ref('fct_drift_categorical') }}
    where batch_id = '{{ batch_id }}'

),

feature_totals as (

    select
        model_name,
        feature_name,
        feature_kind,
        sum(case when category <> '__missing__' then n_ref else 0 end) as n_ref,
        sum(case when category <> '__missing__' then n_cur else 0 end) as n_cur,
        sum(case when category = '__missing__' then n_ref else 0 end) as missing_ref,
        sum(case when category = '__missing__' then n_cur else 0 end) as missing_cur,
        sum(case when category = '__unseen__' then n_cur else 0 end) as unseen_cur,
        sum(distinct_values_ref) as category_count_ref,
        max(reference_start_at) as reference_start_at,
        max(reference_end_at) as reference_end_at,
        max(current_start_at) as current_start_at,
        max(current_end_at) as current_end_at
    from categories
    group by model_name, feature_name, feature_kind

),

category_shares as (

    select
        categories.model_name,
        categories.feature_name,
        -- Shares are null unless both windows have values, so are the distances then.
        case
            when feature_totals.n_ref > 0 and feature_totals.n_cur > 0
                then cast(categories.n_ref as double) / cast(feature_totals.n_ref as double)
        end as ref_share,
        case
            when feature_totals.n_ref > 0 and feature_totals.n_cur > 0
                then cast(categories.n_cur as double) / cast(feature_totals.n_cur as double)
        end as cur_share
    from categories
    inner join feature_totals
        on
            categories.model_name = feature_totals.model_name
            and categories.feature_name = feature_totals.feature_name
    where categories.category <> '__missing__'

),

divergences as (

    select
        model_name,
        feature_name,
        max(abs(ref_share - cur_share)) as linf,
        {{ feedback_flywheel.js_distance('ref_share', 'cur_share') }} as js_distance
    from category_shares
    group by model_name, feature_name

),

final as (

    select
        {{ feedback_flywheel.surrogate_key([
            "'" ~ batch_id ~ "'", 'feature_totals.model_name', 'feature_totals.feature_name',
        ]) }} as drift_categorical_summary_id,
        '{{ batch_id }}' as batch_id,
        feature_totals.model_name,
        feature_totals.feature_name,
        feature_totals.feature_kind,
        cast(feature_totals.n_ref as {{ dbt.type_bigint() }}) as n_ref,
        cast(feature_totals.n_cur as {{ dbt.type_bigint() }}) as n_cur,
        cast(feature_totals.missing_ref as {{ dbt.type_bigint() }}) as missing_ref,
        cast(feature_totals.missing_cur as {{ dbt.type_bigint() }}) as missing_cur,
        cast(feature_totals.category_count_ref as {{ dbt.type_bigint() }}) as category_count_ref,
        cast(divergences.linf as double) as linf,
        cast(divergences.js_distance as double) as js_distance,
        cast(feature_totals.unseen_cur as double)
        / cast(nullif(feature_totals.n_cur, 0) as double) as unseen_share_cur,
        feature_totals.reference_start_at,
        feature_totals.reference_end_at,
        feature_totals.current_start_at,
        feature_totals.current_end_at
    from feature_totals
    left join divergences
        on
            feature_totals.model_name = divergences.model_name
            and feature_totals.feature_name = divergences.feature_name

)

select * from final

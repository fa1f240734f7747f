{#-
    The exact two-sample statistics of numeric drift, shared by the drift at the watermark
    (fct_drift_numeric) and the drift timeline (fct_drift_timeline_numeric).
-#}

{#- The join condition of two CTEs on the group keys (a list of column names). -#}
{% macro drift_keys_join(left, right, keys) -%}
    {%- for key in keys -%}
        {{ left }}.{{ key }} = {{ right }}.{{ key }}{% if not loop.last %} and {% endif %}
    {%- endfor -%}
{%- endmacro %}


{#- The CTEs (each followed by a comma) that turn counted values into the moments and exact
    ECDF distances of every group. value_counts: a CTE with the keys, feature_kind, numeric_value
    (null: the missing values), ref_count and cur_count; a value may come in several rows (one
    per day summary, say): they need no merge first. Defines
    feature_counts, feature_scales, feature_sums, feature_means, feature_totals (n_ref, n_cur,
    missing_ref, missing_cur, min/max, ref_mean, cur_mean, n_ref_compared, n_cur_compared) and
    ecdf_distances (ks_d, wasserstein, ref_std), all keyed by keys. How: one window pass gives both
    empirical CDFs after each distinct value (right-continuous, as scipy evaluates them: the
    frame is a range, so every row of a value sees the counts of all its rows) and the gap to the
    next distinct value (lead() is the same value, a gap of 0, on every row of a value but one);
    KS D is the largest |F_ref - F_cur|, maximised in integers (max |c_ref * n_cur - c_cur *
    n_ref| / (n_ref * n_cur), so it is the correctly rounded exact value), W1 the sum of
    |F_ref - F_cur| times the gap. Every floating-point sum is an exact_sum, so a re-run is
    identical bit for bit. -#}
{% macro drift_numeric_distance_ctes(value_counts, keys) -%}
    {%- set key_list = keys | join(', ') -%}

feature_counts as (

    select
        {{ key_list }},
        feature_kind,
        sum(case when numeric_value is not null then ref_count else 0 end) as n_ref,
        sum(case when numeric_value is not null then cur_count else 0 end) as n_cur,
        sum(case when numeric_value is null then ref_count else 0 end) as missing_ref,
        sum(case when numeric_value is null then cur_count else 0 end) as missing_cur,
        min(numeric_value) as min_value,
        max(numeric_value) as max_value
    from {{ value_counts }}
    group by {{ key_list }}, feature_kind

),

feature_scales as (

    -- Bounds of the terms the exact sums add (macro exact_sum), 1 when there is nothing to bound.
    select
        *,
        case
            when greatest(abs(min_value), abs(max_value)) > 0
                then greatest(abs(min_value), abs(max_value))
            else 1.0
        end as value_scale,
        case when max_value > min_value then max_value - min_value else 1.0 end as range_scale
    from feature_counts

),

feature_sums as (

    select
        {%- for key in keys %}
            {{ value_counts }}.{{ key }},
        {%- endfor %}
        {{ feedback_flywheel.exact_sum(
            value_counts ~ '.ref_count * ' ~ value_counts ~ '.numeric_value',
            'feature_scales.value_scale'
        ) }} as ref_sum,
        {{ feedback_flywheel.exact_sum(
            value_counts ~ '.cur_count * ' ~ value_counts ~ '.numeric_value',
            'feature_scales.value_scale'
        ) }} as cur_sum
    from {{ value_counts }}
    inner join feature_scales
        on {{ feedback_flywheel.drift_keys_join(value_counts, 'feature_scales', keys) }}
    where {{ value_counts }}.numeric_value is not null
    group by
        {%- for key in keys %}
            {{ value_counts }}.{{ key }}{% if not loop.last %},{% endif %}
        {%- endfor %}

),

feature_means as (

    select
        feature_scales.*,
        case
            when feature_scales.n_ref > 0 then feature_sums.ref_sum / feature_scales.n_ref
        end as ref_mean,
        case
            when feature_scales.n_cur > 0 then feature_sums.cur_sum / feature_scales.n_cur
        end as cur_mean
    from feature_scales
    left join feature_sums
        on {{ feedback_flywheel.drift_keys_join('feature_scales', 'feature_sums', keys) }}

),

feature_totals as (

    select
        *,
        -- The window sizes the two-sample statistics divide by: null unless both windows have
        -- values, so every distance of a feature with an empty window comes out null.
        case when n_ref > 0 and n_cur > 0 then n_ref end as n_ref_compared,
        case when n_ref > 0 and n_cur > 0 then n_cur end as n_cur_compared,
        case
            when greatest(max_value - ref_mean, ref_mean - min_value) > 0
                then power(greatest(max_value - ref_mean, ref_mean - min_value), 2)
            else 1.0
        end as deviation_scale
    from feature_means

),

value_ecdf as (

    select
        {{ key_list }},
        numeric_value,
        ref_count,
        sum(ref_count) over (
            partition by {{ key_list }}
            order by numeric_value
            range between unbounded preceding and current row
        ) as ref_cumulative,
        sum(cur_count) over (
            partition by {{ key_list }}
            order by numeric_value
            range between unbounded preceding and current row
        ) as cur_cumulative,
        lead(numeric_value) over (
            partition by {{ key_list }}
            order by numeric_value
        ) - numeric_value as gap_to_next
    from {{ value_counts }}
    where numeric_value is not null

),

ecdf_gaps as (

    select
        {%- for key in keys %}
            value_ecdf.{{ key }},
        {%- endfor %}
        value_ecdf.gap_to_next,
        feature_totals.range_scale,
        feature_totals.deviation_scale,
        value_ecdf.ref_count
        * (value_ecdf.numeric_value - feature_totals.ref_mean)
        * (value_ecdf.numeric_value - feature_totals.ref_mean) as ref_squared_deviation,
        abs(
            value_ecdf.ref_cumulative * feature_totals.n_cur_compared
            - value_ecdf.cur_cumulative * feature_totals.n_ref_compared
        ) as ecdf_gap_scaled,
        abs(
            cast(value_ecdf.ref_cumulative as double)
            / cast(feature_totals.n_ref_compared as double)
            - cast(value_ecdf.cur_cumulative as double)
            / cast(feature_totals.n_cur_compared as double)
        ) as ecdf_gap
    from value_ecdf
    inner join feature_totals
        on {{ feedback_flywheel.drift_keys_join('value_ecdf', 'feature_totals', keys) }}

),

ecdf_distances as (

    select
        {%- for key in keys %}
            ecdf_gaps.{{ key }},
        {%- endfor %}
        max(ecdf_gaps.ecdf_gap_scaled)
        / cast(max(feature_totals.n_ref_compared * feature_totals.n_cur_compared) as double)
            as ks_d,
        {{ feedback_flywheel.exact_sum(
            'ecdf_gaps.ecdf_gap * coalesce(ecdf_gaps.gap_to_next, 0)', 'ecdf_gaps.range_scale'
        ) }} as wasserstein,
        sqrt(
            {{ feedback_flywheel.exact_sum(
                'ecdf_gaps.ref_squared_deviation', 'ecdf_gaps.deviation_scale'
            ) }}
            / nullif(max(feature_totals.n_ref) - 1, 0)
        ) as ref_std
    from ecdf_gaps
    inner join feature_totals
        on {{ feedback_flywheel.drift_keys_join('ecdf_gaps', 'feature_totals', keys) }}
    group by
        {%- for key in keys %}
            ecdf_gaps.{{ key }}{% if not loop.last %},{% endif %}
        {%- endfor %}

),
{%- endmacro %}

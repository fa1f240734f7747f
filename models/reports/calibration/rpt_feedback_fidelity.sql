-- How far each feedback signal can be trusted: for every pair of signals received by the same
-- predictions (each implicit signal against the explicit rating and against ground-truth
-- correctness, and the rating against correctness), the overlap, the agreement rate, Cohen's
-- kappa, the signal's precision, recall and false-positive rate as a proxy for the reference,
-- and (where either side is numeric: dwell, rating) Spearman's rank correlation; each with its
-- 95% interval. Per model, over all time and broken down by the ISO week the prediction was
-- served, by model version and by every configured segment attribute. A group with fewer than
-- var fidelity_min_group_count overlapping predictions is suppressed: counts, no statistics.
--
-- A signal is positive when: click / conversion = 1, thumbs up, dwell >= var
-- fidelity_dwell_positive_seconds, rating >= var fidelity_rating_positive_at, correctness = the
-- current label equals the prediction.
-- Intervals: Wilson for the rates; kappa +/- z * sqrt(po (1 - po) / (n (1 - pe)^2)) (Cohen
-- 1960's large-sample standard error); Spearman by Fisher's z, tanh(atanh(r) +/- z / sqrt(n - 3)).

{%- set min_count = feedback_flywheel.setting('fidelity_min_group_count') %}
{%- set attributes = feedback_flywheel.setting('segment_attributes') %}
{%- set z = feedback_flywheel.z95() %}
{%- set group_columns = [
    'model_name', 'signal_name', 'reference_name', 'breakdown', 'breakdown_value'
] %}

with

signals as (

    select * from {{ ref('fct_feedback_signals') }}

),

segments as (

    {{ feedback_flywheel.segment_columns(ref('fct_inference_segments'), attributes) }}

),

paired as (

    {{ feedback_flywheel.fidelity_pairs('signals') }}

),

grouped as (

    select
        paired.*,
        '__overall__' as breakdown,
        '__all__' as breakdown_value
    from paired

    union all

    select
        paired.*,
        'week' as breakdown,
        cast(served_week_start_date as {{ dbt.type_string() }}) as breakdown_value
    from paired

    union all

    select
        paired.*,
        'model_version' as breakdown,
        model_version as breakdown_value
    from paired
    {%- for attribute in attributes %}

        union all

        select
            paired.*,
            {{ feedback_flywheel.sql_string(attribute) }} as breakdown,
            coalesce(segments.{{ attribute }}, '__missing__') as breakdown_value
        from paired
        left join segments on paired.inference_id = segments.inference_id
    {%- endfor %}

),

ranked as (

    -- average ranks (ties share the mean of their positions), as scipy.stats.rankdata
    select
        *,
        {{ feedback_flywheel.average_rank('signal_value', group_columns) }} as signal_rank,
        {{ feedback_flywheel.average_rank('reference_value', group_columns) }} as reference_rank
    from grouped
    where is_ranked

),

counted as (

    select
        model_name,
        signal_name,
        reference_name,
        breakdown,
        breakdown_value,
        max(is_ranked) as is_ranked,
        min(served_week_start_date) as first_week_start_date,
        count(*) as overlap_count,
        sum(signal_positive) as signal_positive_count,
        sum(reference_positive) as reference_positive_count,
        sum(signal_positive * reference_positive) as both_positive_count,
        sum((1 - signal_positive) * (1 - reference_positive)) as both_negative_count
    from grouped
    group by model_name, signal_name, reference_name, breakdown, breakdown_value

),

rank_sums as (

    -- Pearson's r of the ranks is Spearman's rho. Average ranks are whole or half numbers, so
    -- twice a rank is a whole number and these sums are exact (decimal(38, 0)): a re-run gives
    -- the same bits, whatever order the rows are added in (corr() would not).
    select
        model_name,
        signal_name,
        reference_name,
        breakdown,
        breakdown_value,
        cast(count(*) as decimal(38, 0)) as n,
        sum(cast(2 * signal_rank as decimal(38, 0))) as sum_x,
        sum(cast(2 * reference_rank as decimal(38, 0))) as sum_y,
        sum(
            cast(2 * signal_rank as decimal(38, 0)) * cast(2 * reference_rank as decimal(38, 0))
        ) as sum_xy,
        sum(
            cast(2 * signal_rank as decimal(38, 0)) * cast(2 * signal_rank as decimal(38, 0))
        ) as sum_xx,
        sum(
            cast(2 * reference_rank as decimal(38, 0))
            * cast(2 * reference_rank as decimal(38, 0))
        ) as sum_yy
    from ranked
    group by model_name, signal_name, reference_name, breakdown, breakdown_value

),

correlated as (

    select
        model_name,
        signal_name,
        reference_name,
        breakdown,
        breakdown_value,
        case
            when n * sum_xx - sum_x * sum_x > 0 and n * sum_yy - sum_y * sum_y > 0
                then cast(n * sum_xy - sum_x * sum_y as double) / sqrt(
                        cast(n * sum_xx - sum_x * sum_x as double)
                        * cast(n * sum_yy - sum_y * sum_y as double)
                    )
        end as rank_correlation
    from rank_sums

),

proportions as (

    select
        *,
        overlap_count < {{ min_count }} as is_suppressed,
        (both_positive_count + both_negative_count) * 1.0 / overlap_count as observed_agreement,
        (
            signal_positive_count * 1.0 * reference_positive_count
            + (overlap_count - signal_positive_count) * 1.0
            * (overlap_count - reference_positive_count)
        ) / (overlap_count * 1.0 * overlap_count) as chance_agreement,
        signal_positive_count - both_positive_count as signal_only_count,
        overlap_count - reference_positive_count as reference_negative_count
    from counted

),

rates as (

    select
        proportions.*,
        correlated.rank_correlation
    from proportions
    left join correlated
        on
            proportions.model_name = correlated.model_name
            and proportions.signal_name = correlated.signal_name
            and proportions.reference_name = correlated.reference_name
            and proportions.breakdown = correlated.breakdown
            and proportions.breakdown_value = correlated.breakdown_value

),

statistics as (

    select
        *,
        case when chance_agreement < 1 then
                (observed_agreement - chance_agreement) / (1 - chance_agreement)
        end as kappa,
        case when chance_agreement < 1 then
                sqrt(
                    observed_agreement * (1 - observed_agreement)
                    / (overlap_count * (1 - chance_agreement) * (1 - chance_agreement))
                )
        end as kappa_standard_error,
        case when overlap_count > 3 and abs(rank_correlation) < 1 then
                0.5 * ln((1 + rank_correlation) / (1 - rank_correlation))
        end as rank_correlation_z
    from rates

),

final as (

    select
        {{ feedback_flywheel.surrogate_key([
            'model_name', 'signal_name', 'reference_name', 'breakdown', 'breakdown_value',
        ]) }} as fidelity_id,
        model_name,
        signal_name,
        reference_name,
        breakdown,
        breakdown_value,
        case when breakdown = 'week' then first_week_start_date end as week_start_date,
        cast(overlap_count as {{ dbt.type_bigint() }}) as overlap_count,
        cast(signal_positive_count as {{ dbt.type_bigint() }}) as signal_positive_count,
        cast(reference_positive_count as {{ dbt.type_bigint() }}) as reference_positive_count,
        cast(both_positive_count as {{ dbt.type_bigint() }}) as both_positive_count,
        is_suppressed,
        {%- set stats = [
            ('agreement_rate', 'both_positive_count + both_negative_count', 'overlap_count'),
            ('precision_rate', 'both_positive_count', 'signal_positive_count'),
            ('recall_rate', 'both_positive_count', 'reference_positive_count'),
            ('false_positive_rate', 'signal_only_count', 'reference_negative_count'),
        ] %}
        {%- for name, successes, trials in stats %}
            case when not is_suppressed and {{ trials }} > 0 then
                    ({{ successes }}) * 1.0 / {{ trials }}
            end as {{ name }},
            case when not is_suppressed then
                    {{ feedback_flywheel.wilson_lower(successes, trials) }}
            end as {{ name }}_lower,
            case when not is_suppressed then
                    {{ feedback_flywheel.wilson_upper(successes, trials) }}
            end as {{ name }}_upper,
        {%- endfor %}
        case when not is_suppressed then kappa end as cohen_kappa,
        case when not is_suppressed then kappa - {{ z }} * kappa_standard_error end
            as cohen_kappa_lower,
        case when not is_suppressed then kappa + {{ z }} * kappa_standard_error end
            as cohen_kappa_upper,
        case when not is_suppressed and is_ranked then rank_correlation end
            as rank_correlation,
        case when not is_suppressed and is_ranked then
                tanh(rank_correlation_z - {{ z }} / sqrt(overlap_count - 3))
        end as rank_correlation_lower,
        case when not is_suppressed and is_ranked then
                tanh(rank_correlation_z + {{ z }} / sqrt(overlap_count - 3))
        end as rank_correlation_upper
    from statistics

)

select * from final

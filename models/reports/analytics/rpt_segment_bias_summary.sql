-- Fairlearn-style summary measures per segment attribute, model version, time bucket and
-- positive class, over the groups rpt_segment_bias reports (suppressed groups left out):
-- demographic parity difference and ratio (selection rates), equalized odds difference and ratio
-- (the worse of the TPR and FPR gaps), the accuracy gap, and how many comparisons were flagged.
-- With model_version and weekly buckets this is the bias-over-time series: a deployment that
-- widens a gap shows as a step in its version's rows.

with

bias as (

    select * from {{ ref('rpt_segment_bias') }}
    where segment_attribute <> '__overall__'

),

class_measures as (

    select
        model_name,
        model_version,
        time_bucket,
        bucket_start_date,
        segment_attribute,
        class_label,
        count(distinct segment_value) as group_count,
        count(
            distinct case
                when metric = 'selection_rate' and not is_suppressed then segment_value
            end
        ) as selection_group_count,
        min(case when metric = 'selection_rate' then metric_value end) as selection_rate_min,
        max(case when metric = 'selection_rate' then metric_value end) as selection_rate_max,
        min(case when metric = 'tpr' then metric_value end) as tpr_min,
        max(case when metric = 'tpr' then metric_value end) as tpr_max,
        min(case when metric = 'fpr' then metric_value end) as fpr_min,
        max(case when metric = 'fpr' then metric_value end) as fpr_max,
        sum(case when is_flagged then 1 else 0 end) as flagged_count
    from bias
    where class_label is not null
    group by
        model_name, model_version, time_bucket, bucket_start_date, segment_attribute,
        class_label

),

group_measures as (

    select
        model_name,
        model_version,
        time_bucket,
        bucket_start_date,
        segment_attribute,
        count(
            distinct case when metric = 'accuracy' and not is_suppressed then segment_value end
        ) as accuracy_group_count,
        min(case when metric = 'accuracy' then metric_value end) as accuracy_min,
        max(case when metric = 'accuracy' then metric_value end) as accuracy_max,
        sum(case when is_flagged then 1 else 0 end) as flagged_count
    from bias
    where class_label is null
    group by model_name, model_version, time_bucket, bucket_start_date, segment_attribute

),

final as (

    select
        {{ feedback_flywheel.surrogate_key([
            'class_measures.model_name', 'class_measures.model_version',
            'class_measures.time_bucket', 'class_measures.bucket_start_date',
            'class_measures.segment_attribute', 'class_measures.class_label',
        ]) }} as segment_bias_summary_id,
        class_measures.model_name,
        class_measures.model_version,
        class_measures.time_bucket,
        class_measures.segment_attribute,
        class_measures.class_label,
        cast(class_measures.group_count as {{ dbt.type_bigint() }}) as group_count,
        cast(class_measures.selection_group_count as {{ dbt.type_bigint() }})
            as selection_group_count,
        cast(group_measures.accuracy_group_count as {{ dbt.type_bigint() }})
            as accuracy_group_count,
        class_measures.selection_rate_min,
        class_measures.selection_rate_max,
        class_measures.selection_rate_max - class_measures.selection_rate_min
            as demographic_parity_difference,
        case
            when class_measures.selection_rate_max > 0
                then class_measures.selection_rate_min / class_measures.selection_rate_max
        end as demographic_parity_ratio,
        class_measures.tpr_max - class_measures.tpr_min as tpr_difference,
        class_measures.fpr_max - class_measures.fpr_min as fpr_difference,
        greatest(
            class_measures.tpr_max - class_measures.tpr_min,
            class_measures.fpr_max - class_measures.fpr_min
        ) as equalized_odds_difference,
        least(
            case
                when class_measures.tpr_max > 0
                    then class_measures.tpr_min / class_measures.tpr_max
            end,
            case
                when class_measures.fpr_max > 0
                    then class_measures.fpr_min / class_measures.fpr_max
            end
        ) as equalized_odds_ratio,
        group_measures.accuracy_max - group_measures.accuracy_min as accuracy_difference,
        cast(class_measures.flagged_count as {{ dbt.type_bigint() }}) as class_flagged_count,
        cast(group_measures.flagged_count as {{ dbt.type_bigint() }}) as group_flagged_count,
        class_measures.bucket_start_date
    from class_measures
    inner join group_measures
        on
            class_measures.model_name = group_measures.model_name
            and class_measures.model_version = group_measures.model_version
            and class_measures.time_bucket = group_measures.time_bucket
            and coalesce(class_measures.bucket_start_date, cast('1970-01-01' as date))
            = coalesce(group_measures.bucket_start_date, cast('1970-01-01' as date))
            and class_measures.segment_attribute = group_measures.segment_attribute

)

select * from final

-- Feedback skew beside the performance gaps: per segment group, model version and time bucket,
-- the share of predictions that received a (matured) label and the share that received explicit
-- feedback (a rating or thumbs), each against the attribute's reference group, next to the
-- group's accuracy gap. A group that gives far less feedback is under-represented in the next
-- training set; one that gives far more pulls the next model towards itself.

with

bias as (

    select * from {{ ref('rpt_segment_bias') }}
    where
        segment_attribute <> '__overall__'
        and metric in ('label_feedback_rate', 'explicit_feedback_rate', 'accuracy')

),

pivoted as (

    select
        model_name,
        model_version,
        time_bucket,
        bucket_start_date,
        segment_attribute,
        segment_value,
        max(reference_group) as reference_group,
        max(inference_count) as inference_count,
        {%- for metric in ['label_feedback_rate', 'explicit_feedback_rate', 'accuracy'] %}
            max(case when metric = '{{ metric }}' then metric_value end) as {{ metric }},
            max(case when metric = '{{ metric }}' then metric_lower end) as {{ metric }}_lower,
            max(case when metric = '{{ metric }}' then metric_upper end) as {{ metric }}_upper,
            max(case when metric = '{{ metric }}' then difference end)
                as {{ metric }}_difference,
            max(case when metric = '{{ metric }}' then disparity_ratio end)
                as {{ metric }}_ratio,
            max(case when metric = '{{ metric }}' then p_value_adjusted end)
                as {{ metric }}_p_adjusted,
            max(case when metric = '{{ metric }}' and is_flagged then 1 else 0 end)
                as {{ metric }}_flag,
        {%- endfor %}
        max(case when metric = 'accuracy' then trials end) as labelled_count
    from bias
    group by
        model_name, model_version, time_bucket, bucket_start_date, segment_attribute,
        segment_value

),

final as (

    select
        {{ feedback_flywheel.surrogate_key([
            'model_name', 'model_version', 'time_bucket', 'bucket_start_date',
            'segment_attribute', 'segment_value',
        ]) }} as feedback_skew_id,
        model_name,
        model_version,
        time_bucket,
        segment_attribute,
        segment_value,
        reference_group,
        cast(inference_count as {{ dbt.type_bigint() }}) as inference_count,
        cast(labelled_count as {{ dbt.type_bigint() }}) as labelled_count,
        {%- for metric in ['label_feedback_rate', 'explicit_feedback_rate', 'accuracy'] %}
            {{ metric }},
            {{ metric }}_lower,
            {{ metric }}_upper,
            {{ metric }}_difference,
            {{ metric }}_ratio,
            {{ metric }}_p_adjusted,
        {%- endfor %}
        segment_value = reference_group as is_reference,
        label_feedback_rate_flag = 1 as is_label_feedback_skewed,
        explicit_feedback_rate_flag = 1 as is_explicit_feedback_skewed,
        accuracy_flag = 1 as is_accuracy_gap_flagged,
        bucket_start_date
    from pivoted

)

select * from final

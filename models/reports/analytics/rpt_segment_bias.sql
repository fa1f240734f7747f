-- Bias across segments, Fairlearn / Aequitas style, with time and intervals: for every segment
-- attribute and configured intersection, per group, model version (and '__all__' versions) and
-- time bucket (each ISO week, and 'all' time), one row per metric: volume, selection rate, TPR and
-- FPR (one-vs-rest per positive class), accuracy, mean rating and the feedback shares, each with
-- its 95% interval; the disparity (difference and ratio) against the attribute's reference group
-- with the difference's 95% interval, a two-sided z-test p-value, and Benjamini-Hochberg adjusted
-- p-values across every test of the same model version and bucket. A metric whose denominator is
-- below var bias_min_group_count is suppressed (no rate, no test) rather than reported as noise.

{%- set min_count = feedback_flywheel.setting('bias_min_group_count') %}
{%- set alpha = feedback_flywheel.setting('bias_alpha') %}
{%- set band = feedback_flywheel.setting('bias_disparity_band') %}
{%- set reference_groups = feedback_flywheel.setting('bias_reference_groups') %}
{%- set positive_labels = feedback_flywheel.setting('bias_positive_labels') %}
{#- the Benjamini-Hochberg families (every test of one model version and time bucket), and the
    order of equal p-values inside one -#}
{%- set bh_family = ['model_name', 'model_version', 'time_bucket', 'bucket_start_date'] %}
{%- set bh_tiebreak = ['segment_attribute', 'segment_value', 'metric', 'class_label'] %}
{#- configured reference groups first; '__overall__' has one group; otherwise the majority -#}
{%- set reference_case -%}
    case segment_attribute
    {%- for attribute, value in reference_groups.items() %}
        when {{ feedback_flywheel.sql_string(attribute) }}
            then {{ feedback_flywheel.sql_string(value) }}
    {%- endfor %} when '__overall__' then '__all__' else segment_value end
{%- endset %}

with

outcomes as (

    select * from {{ ref('fct_segment_outcomes_daily') }}

),

versioned as (

    select
        model_name,
        model_version,
        served_date,
        segment_attribute,
        segment_value,
        class_label,
        predicted_count,
        labelled_predicted_count,
        labelled_actual_count,
        true_positive_count,
        explicit_feedback_count,
        rating_count,
        rating_sum,
        rating_sum_squares
    from outcomes

    union all

    select
        model_name,
        '__all__' as model_version,
        served_date,
        segment_attribute,
        segment_value,
        class_label,
        predicted_count,
        labelled_predicted_count,
        labelled_actual_count,
        true_positive_count,
        explicit_feedback_count,
        rating_count,
        rating_sum,
        rating_sum_squares
    from outcomes

),

bucketed as (

    select
        *,
        'week' as time_bucket,
        cast({{ dbt.date_trunc('week', 'served_date') }} as date) as bucket_start_date
    from versioned

    union all

    select
        *,
        'all' as time_bucket,
        cast(null as date) as bucket_start_date
    from versioned

),

class_counts as (

    select
        model_name,
        model_version,
        time_bucket,
        bucket_start_date,
        segment_attribute,
        segment_value,
        class_label,
        sum(predicted_count) as predicted_count,
        sum(labelled_predicted_count) as labelled_predicted_count,
        sum(labelled_actual_count) as labelled_actual_count,
        sum(true_positive_count) as true_positive_count
    from bucketed
    group by
        model_name, model_version, time_bucket, bucket_start_date, segment_attribute,
        segment_value, class_label

),

group_counts as (

    select
        model_name,
        model_version,
        time_bucket,
        bucket_start_date,
        segment_attribute,
        segment_value,
        sum(predicted_count) as inference_count,
        sum(labelled_predicted_count) as labelled_count,
        sum(true_positive_count) as correct_count,
        sum(explicit_feedback_count) as explicit_feedback_count,
        sum(rating_count) as rating_count,
        sum(rating_sum) as rating_sum,
        sum(rating_sum_squares) as rating_sum_squares
    from bucketed
    group by
        model_name, model_version, time_bucket, bucket_start_date, segment_attribute,
        segment_value

),

positive_classes as (

    -- The classes whose one-vs-rest selection rate, TPR and FPR are reported: var
    -- bias_positive_labels for a model listed there, otherwise every class the model has.
    select distinct
        model_name,
        class_label
    from outcomes
    where
        class_label is not null
    {%- if positive_labels %}
            and (
                {%- for model, labels in positive_labels.items() %}
                    (model_name = {{ feedback_flywheel.sql_string(model) }}
                    and class_label in {{ feedback_flywheel.string_list(labels) }}) or
                {%- endfor %}
                model_name not in {{ feedback_flywheel.string_list(positive_labels.keys()) }}
            )
        {%- endif %}

),

group_classes as (

    -- Every group x positive class, so a class a group never got is a rate of 0, not a gap.
    select
        group_counts.*,
        positive_classes.class_label,
        coalesce(class_counts.predicted_count, 0) as class_predicted_count,
        coalesce(class_counts.labelled_predicted_count, 0) as class_labelled_predicted_count,
        coalesce(class_counts.labelled_actual_count, 0) as class_labelled_actual_count,
        coalesce(class_counts.true_positive_count, 0) as class_true_positive_count
    from group_counts
    inner join positive_classes
        on group_counts.model_name = positive_classes.model_name
    left join class_counts
        on
            group_counts.model_name = class_counts.model_name
            and group_counts.model_version = class_counts.model_version
            and group_counts.time_bucket = class_counts.time_bucket
            and coalesce(group_counts.bucket_start_date, cast('1970-01-01' as date))
            = coalesce(class_counts.bucket_start_date, cast('1970-01-01' as date))
            and group_counts.segment_attribute = class_counts.segment_attribute
            and group_counts.segment_value = class_counts.segment_value
            and positive_classes.class_label = class_counts.class_label

),

metrics as (

    -- Long format. Proportions: successes / trials. The mean (rating_mean): sum / count, with
    -- its sum of squares for the variance.
    {%- set group_metrics = [
        ('accuracy', 'correct_count', 'labelled_count', true),
        ('label_feedback_rate', 'labelled_count', 'inference_count', none),
        ('explicit_feedback_rate', 'explicit_feedback_count', 'inference_count', none),
    ] %}
    {%- for metric, successes, trials, higher_is_better in group_metrics %}
        select
            model_name,
            model_version,
            time_bucket,
            bucket_start_date,
            segment_attribute,
            segment_value,
            cast(null as {{ dbt.type_string() }}) as class_label,
            '{{ metric }}' as metric,
            'proportion' as metric_kind,
            {{ 'true' if higher_is_better else 'cast(null as boolean)' }} as higher_is_better,
            inference_count,
            {{ trials }} as trials,
            {{ successes }} * 1.0 as successes,
            cast(null as double) as sum_squares
        from group_counts

        union all
    {%- endfor %}

    select
        model_name,
        model_version,
        time_bucket,
        bucket_start_date,
        segment_attribute,
        segment_value,
        cast(null as {{ dbt.type_string() }}) as class_label,
        'rating_mean' as metric,
        'mean' as metric_kind,
        true as higher_is_better,
        inference_count,
        rating_count as trials,
        rating_sum as successes,
        rating_sum_squares as sum_squares
    from group_counts

    {%- set class_metrics = [
        ('selection_rate', 'class_predicted_count', 'inference_count', none),
        ('tpr', 'class_true_positive_count', 'class_labelled_actual_count', true),
        (
            'fpr',
            'class_labelled_predicted_count - class_true_positive_count',
            'labelled_count - class_labelled_actual_count',
            false,
        ),
    ] %}
    {%- for metric, successes, trials, higher_is_better in class_metrics %}

        union all

        select
            model_name,
            model_version,
            time_bucket,
            bucket_start_date,
            segment_attribute,
            segment_value,
            class_label,
            '{{ metric }}' as metric,
            'proportion' as metric_kind,
            {%- if higher_is_better is none %}
                cast(null as boolean) as higher_is_better,
            {%- else %}
                {{ 'true' if higher_is_better else 'false' }} as higher_is_better,
            {%- endif %}
            inference_count,
            {{ trials }} as trials,
            ({{ successes }}) * 1.0 as successes,
            cast(null as double) as sum_squares
        from group_classes
    {%- endfor %}

),

valued as (

    select
        *,
        trials < {{ min_count }} as is_suppressed,
        case when trials > 0 then successes / trials end as metric_value,
        case
            when metric_kind = 'mean' and trials > 1
                then {{ feedback_flywheel.mean_sampling_variance(
                    'successes', 'sum_squares', 'trials'
                ) }}
        end as mean_variance
    from metrics

),

all_time_volume as (

    select
        model_name,
        segment_attribute,
        segment_value,
        inference_count,
        row_number() over (
            partition by model_name, segment_attribute
            order by inference_count desc, segment_value asc
        ) as volume_rank
    from group_counts
    where time_bucket = 'all' and model_version = '__all__'

),

reference_groups as (

    -- var bias_reference_groups[attribute] where set, otherwise the group with the most
    -- predictions over all time and versions (ties: the first value in sort order).
    select
        model_name,
        segment_attribute,
        {{ reference_case }} as reference_value
    from all_time_volume
    where volume_rank = 1

),

with_reference as (

    select
        valued.*,
        reference_groups.reference_value,
        reference.trials as reference_trials,
        reference.successes as reference_successes,
        reference.metric_value as reference_value_metric,
        reference.mean_variance as reference_mean_variance,
        reference.is_suppressed as reference_is_suppressed
    from valued
    inner join reference_groups
        on
            valued.model_name = reference_groups.model_name
            and valued.segment_attribute = reference_groups.segment_attribute
    left join valued as reference
        on
            valued.model_name = reference.model_name
            and valued.model_version = reference.model_version
            and valued.time_bucket = reference.time_bucket
            and coalesce(valued.bucket_start_date, cast('1970-01-01' as date))
            = coalesce(reference.bucket_start_date, cast('1970-01-01' as date))
            and valued.segment_attribute = reference.segment_attribute
            and reference_groups.reference_value = reference.segment_value
            and valued.metric = reference.metric
            and coalesce(valued.class_label, '<none>') = coalesce(reference.class_label, '<none>')

),

compared as (

    -- A comparison needs both groups unsuppressed; the reference group is not compared with
    -- itself.
    select
        *,
        not is_suppressed
        and not coalesce(reference_is_suppressed, true)
        and segment_value <> reference_value as is_compared
    from with_reference

),

proportions_tested as (

    -- Wilson intervals; against the reference, Newcombe's interval and the pooled z.
    select
        *,
        {{ feedback_flywheel.wilson_lower('successes', 'trials') }} as interval_lower,
        {{ feedback_flywheel.wilson_upper('successes', 'trials') }} as interval_upper,
        {{ feedback_flywheel.newcombe_lower(
            'successes', 'trials', 'reference_successes', 'reference_trials'
        ) }} as comparison_lower,
        {{ feedback_flywheel.newcombe_upper(
            'successes', 'trials', 'reference_successes', 'reference_trials'
        ) }} as comparison_upper,
        {{ feedback_flywheel.two_proportion_z(
            'successes', 'trials', 'reference_successes', 'reference_trials'
        ) }} as comparison_z
    from compared
    where metric_kind = 'proportion'

),

means_tested as (

    -- Normal intervals; against the reference, the Welch (unequal variances) interval and z.
    select
        *,
        {{ feedback_flywheel.normal_interval_lower('metric_value', 'mean_variance') }}
            as interval_lower,
        {{ feedback_flywheel.normal_interval_upper('metric_value', 'mean_variance') }}
            as interval_upper,
        {{ feedback_flywheel.welch_difference_lower(
            'metric_value', 'mean_variance', 'reference_value_metric', 'reference_mean_variance'
        ) }} as comparison_lower,
        {{ feedback_flywheel.welch_difference_upper(
            'metric_value', 'mean_variance', 'reference_value_metric', 'reference_mean_variance'
        ) }} as comparison_upper,
        {{ feedback_flywheel.welch_z(
            'metric_value', 'mean_variance', 'reference_value_metric', 'reference_mean_variance'
        ) }} as comparison_z
    from compared
    where metric_kind = 'mean'

),

all_tested as (

    select * from proportions_tested
    union all
    select * from means_tested

),

tested as (

    -- Only rows that are compared keep a comparison.
    select
        *,
        case when is_compared then comparison_z end as z_statistic
    from all_tested

),

with_p as (

    select
        *,
        {{ feedback_flywheel.normal_two_sided_p('z_statistic') }} as p_value
    from tested

),

adjusted as (

    -- Benjamini-Hochberg within a family: every test of one model version and time bucket.
    {{ feedback_flywheel.benjamini_hochberg('with_p', 'p_value', bh_family, bh_tiebreak) }}

),

final as (

    select
        {{ feedback_flywheel.surrogate_key([
            'model_name', 'model_version', 'time_bucket', 'bucket_start_date',
            'segment_attribute', 'segment_value', 'metric', 'class_label',
        ]) }} as segment_bias_id,
        model_name,
        model_version,
        time_bucket,
        segment_attribute,
        segment_value,
        reference_value as reference_group,
        metric,
        metric_kind,
        class_label,
        cast(inference_count as {{ dbt.type_bigint() }}) as inference_count,
        cast(trials as {{ dbt.type_bigint() }}) as trials,
        case when not is_suppressed then successes end as successes,
        case when not is_suppressed then metric_value end as metric_value,
        case when not is_suppressed then interval_lower end as metric_lower,
        case when not is_suppressed then interval_upper end as metric_upper,
        case when is_compared then reference_value_metric end as reference_metric_value,
        case when is_compared then metric_value - reference_value_metric end as difference,
        case when is_compared then comparison_lower end as difference_lower,
        case when is_compared then comparison_upper end as difference_upper,
        case
            when is_compared and reference_value_metric > 0
                then metric_value / reference_value_metric
        end as disparity_ratio,
        z_statistic,
        p_value,
        p_value_adjusted,
        cast(family_test_count as {{ dbt.type_bigint() }}) as family_test_count,
        higher_is_better,
        is_suppressed,
        segment_value = reference_value as is_reference,
        coalesce(p_value_adjusted < {{ alpha }}, false) as is_significant,
        coalesce(
            is_compared and (
                reference_value_metric = 0 and metric_value > 0
                or metric_value < {{ band[0] }} * reference_value_metric
                or metric_value > {{ band[1] }} * reference_value_metric
            ),
            false
        ) as is_outside_band,
        coalesce(
            p_value_adjusted < {{ alpha }}
            and (
                reference_value_metric = 0 and metric_value > 0
                or metric_value < {{ band[0] }} * reference_value_metric
                or metric_value > {{ band[1] }} * reference_value_metric
            ),
            false
        ) as is_flagged,
        bucket_start_date
    from adjusted

)

select * from final

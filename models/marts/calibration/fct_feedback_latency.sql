{{ config(materialized='table') }}

-- How long the feedback loop takes, stage by stage, from a served prediction to the model that
-- learned from its label being deployed:
--   1 served_to_occurred      the prediction was served -> the feedback event occurred
--   2 occurred_to_received    the event occurred -> the warehouse received it
--   3 received_to_dataset     a label was received -> it entered a dataset version (that batch's
--                             watermark; pending: accepted, in no version yet, and no newer
--                             label of its prediction entered instead)
--   4 dataset_to_training     it entered a version -> the first training run of the model on
--                             that version or a later one (the run's version's watermark;
--                             pending: no run yet)
--   5 training_to_deployment  a run that deployed finished -> its deployment was recorded (its
--                             week and window: the watermark of the version it trained on)
-- Stages 1-4 are on the data clock (event times, batch watermarks); stage 5 is on the wall clock
-- (both times are when the trainer ran). Stages 1-2 have a row per event type, and all stages a
-- row for '__labels__' (ground truth: labels and corrections, the path to a model update). Per
-- model over the stage starts of the last var latency_days, and per model and ISO week of the
-- stage's start: completed count, p50 / p90 / p99 in seconds (discrete quantiles), the pending
-- count and share, and the bottleneck (the '__labels__' stage with the largest p50). Training runs
-- are read only on dataset versions before this batch (the runs this batch triggers come after
-- its build), so a re-run rebuilds the same rows.

{%- set batch_id = feedback_flywheel.batch_param('batch_id') %}
{%- set batch_end = feedback_flywheel.var_timestamp('batch_end') %}
{%- set window_start = dbt.dateadd('day', -feedback_flywheel.setting('latency_days'), batch_end) %}
{%- set current_version = feedback_flywheel.sql_string('ds-' ~ batch_id) %}

with

feedback as (

    select
        event_id,
        inference_id,
        model_name,
        event_type,
        is_ground_truth,
        inference_logged_at,
        occurred_at,
        received_at
    from {{ ref('fct_feedback') }}
    where
        not is_retracted
        and event_type <> 'retraction'
        and received_at < {{ batch_end }}

),

examples as (

    select
        training_example_id,
        inference_id,
        label_event_id,
        model_name,
        dataset_version
    from {{ ref('fct_training_examples') }}
    where dataset_version <= {{ current_version }}

),

runs as (

    -- each run's last attempt, on a version before this batch
    select
        training_run_id,
        model_name,
        dataset_version,
        status,
        finished_at
    from (
        select
            *,
            row_number() over (partition by training_run_id order by attempt desc) as recency
        from {{ ref('stg_ml__training_runs') }}
        where dataset_version < {{ current_version }}
    ) as attempts
    where recency = 1

),

deployments as (

    select
        training_run_id,
        min(deployed_at) as deployed_at
    from {{ ref('stg_raw__model_deployments') }}
    where training_run_id is not null
    group by training_run_id

),

event_stages as (

    select
        model_name,
        event_type,
        is_ground_truth,
        1 as stage_order,
        'served_to_occurred' as stage,
        inference_logged_at as started_at,
        {{ dbt.datediff(
            'inference_logged_at', 'occurred_at', 'microsecond'
        ) }} / 1000000.0
            as latency_seconds
    from feedback
    where inference_logged_at is not null and occurred_at is not null

    union all

    select
        model_name,
        event_type,
        is_ground_truth,
        2 as stage_order,
        'occurred_to_received' as stage,
        occurred_at as started_at,
        {{ dbt.datediff(
            'occurred_at', 'received_at', 'microsecond'
        ) }} / 1000000.0 as latency_seconds
    from feedback
    where occurred_at is not null

),

included as (

    -- the dataset version each label first entered
    select
        label_event_id,
        min(dataset_version) as dataset_version
    from examples
    group by label_event_id

),

replaced as (

    -- labels whose prediction has an example from a newer label (the order the dataset takes
    -- the current label by): replaced before they entered, so never pending
    select distinct older.event_id
    from feedback as older
    inner join examples on older.inference_id = examples.inference_id
    inner join feedback as newer on examples.label_event_id = newer.event_id
    where
        older.is_ground_truth
        and (
            newer.occurred_at > older.occurred_at
            or (newer.occurred_at = older.occurred_at and newer.received_at > older.received_at)
            or (
                newer.occurred_at = older.occurred_at
                and newer.received_at = older.received_at
                and newer.event_id > older.event_id
            )
        )

),

label_events as (

    -- a label in no dataset version is pending, unless a newer label of its prediction entered
    select
        feedback.model_name,
        feedback.received_at,
        included.dataset_version,
        included.dataset_version is null and replaced.event_id is not null as was_replaced
    from feedback
    left join included on feedback.event_id = included.label_event_id
    left join replaced on feedback.event_id = replaced.event_id
    where feedback.is_ground_truth

),

dataset_stage as (

    select
        model_name,
        3 as stage_order,
        'received_to_dataset' as stage,
        received_at as started_at,
        {{ dbt.datediff(
            'received_at', 'included_at', 'microsecond'
        ) }} / 1000000.0 as latency_seconds
    from (
        select
            model_name,
            received_at,
            {{ feedback_flywheel.batch_watermark("substr(dataset_version, 4)") }} as included_at
        from label_events
        where not was_replaced
    ) as labels_with_watermark

),

first_examples as (

    -- each example where it first entered
    select
        label_event_id,
        model_name,
        min(dataset_version) as dataset_version
    from examples
    group by label_event_id, model_name

),

first_runs as (

    -- the first run (not failed) of the model on the example's version or a later one
    select
        first_examples.label_event_id,
        min(runs.dataset_version) as trained_version
    from first_examples
    inner join runs
        on
            first_examples.model_name = runs.model_name
            and first_examples.dataset_version <= runs.dataset_version
    where runs.status <> 'failed'
    group by first_examples.label_event_id

),

training_stage as (

    select
        model_name,
        4 as stage_order,
        'dataset_to_training' as stage,
        entered_at as started_at,
        {{ dbt.datediff(
            'entered_at', 'trained_at', 'microsecond'
        ) }} / 1000000.0 as latency_seconds
    from (
        select
            first_examples.model_name,
            {{ feedback_flywheel.batch_watermark("substr(first_examples.dataset_version, 4)") }}
                as entered_at,
            {{ feedback_flywheel.batch_watermark("substr(first_runs.trained_version, 4)") }}
                as trained_at
        from first_examples
        left join first_runs on first_examples.label_event_id = first_runs.label_event_id
    ) as examples_with_watermarks

),

deployment_stage as (

    select
        runs.model_name,
        5 as stage_order,
        'training_to_deployment' as stage,
        {{ feedback_flywheel.batch_watermark("substr(runs.dataset_version, 4)") }} as started_at,
        {{ dbt.datediff(
            'runs.finished_at', 'deployments.deployed_at', 'microsecond'
        ) }} / 1000000.0 as latency_seconds
    from runs
    left join deployments on runs.training_run_id = deployments.training_run_id
    where runs.status = 'deployed'

),

stage_rows as (

    select
        model_name,
        event_type,
        stage_order,
        stage,
        started_at,
        latency_seconds
    from event_stages
    {#- every stage again as the path to a model update: labels and corrections #}
    {%- for stage_cte in ['event_stages', 'dataset_stage', 'training_stage', 'deployment_stage'] %}

        union all

        select
            model_name,
            '__labels__' as event_type,
            stage_order,
            stage,
            started_at,
            latency_seconds
        from {{ stage_cte }}
        {%- if stage_cte == 'event_stages' %}
            where is_ground_truth
        {%- endif %}
    {%- endfor %}

),

windowed as (

    select
        *,
        cast({{ dbt.date_trunc('week', 'started_at') }} as date) as week_start_date
    from stage_rows
    where started_at >= {{ window_start }} and started_at < {{ batch_end }}

),

{%- set aggregates %}
        count(latency_seconds) as completed_count,
        count(*) - count(latency_seconds) as pending_count,
        {{ feedback_flywheel.percentile('latency_seconds', 0.5) }} as p50_seconds,
        {{ feedback_flywheel.percentile('latency_seconds', 0.9) }} as p90_seconds,
        {{ feedback_flywheel.percentile('latency_seconds', 0.99) }} as p99_seconds
{%- endset %}

summarised as (

    select
        model_name,
        stage_order,
        stage,
        event_type,
        'overall' as breakdown,
        cast(null as date) as week_start_date,
        {{ aggregates }}
    from windowed
    group by model_name, stage_order, stage, event_type

    union all

    select
        model_name,
        stage_order,
        stage,
        event_type,
        'week' as breakdown,
        week_start_date,
        {{ aggregates }}
    from windowed
    group by model_name, stage_order, stage, event_type, week_start_date

),

ranked as (

    select
        *,
        row_number() over (
            partition by model_name, breakdown, week_start_date, event_type
            order by p50_seconds desc nulls last, stage_order asc
        ) as slowest_rank
    from summarised

),

final as (

    select
        {{ feedback_flywheel.surrogate_key([
            'model_name', 'stage', 'event_type', 'breakdown', 'week_start_date'
        ]) }} as feedback_latency_id,
        {{ feedback_flywheel.sql_string(batch_id) }} as batch_id,
        model_name,
        cast(stage_order as {{ dbt.type_int() }}) as stage_order,
        stage,
        event_type,
        breakdown,
        week_start_date,
        case when stage = 'training_to_deployment' then 'wall' else 'data' end as clock,
        cast(completed_count as {{ dbt.type_bigint() }}) as completed_count,
        cast(pending_count as {{ dbt.type_bigint() }}) as pending_count,
        cast(pending_count as double) / (completed_count + pending_count) as pending_share,
        cast(p50_seconds as double) as p50_seconds,
        cast(p90_seconds as double) as p90_seconds,
        cast(p99_seconds as double) as p99_seconds,
        coalesce(
            event_type = '__labels__' and p50_seconds is not null and slowest_rank = 1, false
        ) as is_bottleneck
    from ranked

)

select * from final

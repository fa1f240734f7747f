{{
    config(
        materialized='incremental',
        unique_key='batch_id',
        incremental_strategy=feedback_flywheel.flywheel_incremental_strategy(),
        on_schema_change='fail',
    )
}}

-- What each batch did, one row per batch built: the raw feedback and inference rows that arrived
-- in its window, what validation decided for the feedback this batch, the feedback still held at
-- the end of the build, and the training examples the batch added. The end-of-batch record of
-- the batch cycle (ml.batch_runs) takes its counts from here.
-- "New" for this model: the current batch's row; a re-run of the batch replaces it.

{%- set batch_id = feedback_flywheel.batch_param('batch_id') %}
{%- set batch_start = feedback_flywheel.var_timestamp('batch_start') %}
{%- set batch_end = feedback_flywheel.var_timestamp('batch_end') %}

with

raw_feedback as (

    select feedback_row_id
    from {{ ref('stg_raw__feedback_events') }}
    where placed_at >= {{ batch_start }} and placed_at < {{ batch_end }}

),

classified_feedback as (

    select
        feedback_row_id,
        batch_id,
        status
    from {{ ref('int_feedback_events_classified') }}
    where batch_id = {{ feedback_flywheel.sql_string(batch_id) }} or status = 'held'

),

raw_inferences as (

    select inference_row_id
    from {{ ref('stg_raw__inference_logs') }}
    where placed_at >= {{ batch_start }} and placed_at < {{ batch_end }}

),

examples_added as (

    select training_example_id
    from {{ ref('fct_training_examples') }}
    where batch_id = {{ feedback_flywheel.sql_string(batch_id) }}

),

feedback_arrived as (

    select count(*) as feedback_in
    from raw_feedback

),

feedback_decided as (

    select
        count(
            case
                when batch_id = {{ feedback_flywheel.sql_string(batch_id) }} and status = 'accepted'
                    then 1
            end
        ) as feedback_accepted,
        count(
            case
                when
                    batch_id = {{ feedback_flywheel.sql_string(batch_id) }}
                    and status = 'quarantined'
                    then 1
            end
        ) as feedback_quarantined,
        count(case when status = 'held' then 1 end) as feedback_held
    from classified_feedback

),

inferences_arrived as (

    select count(*) as inferences_in
    from raw_inferences

),

examples_counted as (

    select count(*) as training_examples_added
    from examples_added

),

final as (

    select
        {{ feedback_flywheel.sql_string(batch_id) }} as batch_id,
        feedback_arrived.feedback_in,
        feedback_decided.feedback_accepted,
        feedback_decided.feedback_quarantined,
        feedback_decided.feedback_held,
        inferences_arrived.inferences_in,
        examples_counted.training_examples_added,
        {{ batch_start }} as batch_start_at,
        {{ batch_end }} as batch_end_at
    from feedback_arrived
    cross join feedback_decided
    cross join inferences_arrived
    cross join examples_counted

)

select * from final

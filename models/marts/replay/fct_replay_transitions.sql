{{
    config(
        materialized='incremental',
        unique_key='transition_id',
        incremental_strategy=feedback_flywheel.flywheel_incremental_strategy(),
        on_schema_change='fail',
    )
}}

{%- set batch_id = feedback_flywheel.batch_param('batch_id') %}
{%- set batch_end = feedback_flywheel.var_timestamp('batch_end') %}
{%- set scales = feedback_flywheel.setting('replay_reward_scale') %}
{%- set offsets = feedback_flywheel.setting('replay_reward_offset') %}
{%- set n_step = feedback_flywheel.setting('replay_n_step') %}
{%- set gamma = feedback_flywheel.setting('replay_gamma') %}
{%- set window_hours = feedback_flywheel.setting('replay_reward_window_hours') %}
{%- set timeout_minutes = feedback_flywheel.setting('replay_session_timeout_minutes') %}
{%- set expire_to_zero = feedback_flywheel.setting('replay_expired_rewards') == 'zero' %}
{%- if not scales or n_step < 1 %}
    {{ exceptions.raise_compiler_error(
        "fct_replay_transitions: var replay_reward_scale must map at least one event type and "
        ~ "replay_n_step must be >= 1"
    ) }}
{%- endif %}

-- One row per step of an RL-style session (an accepted inference with a session_id and a
-- step_index): state, action, the reward its feedback maps to, the next state, the n-step
-- return, and whether (and why not yet) it enters the replay buffer (entry_status).
-- "New" for this model: the sessions a batch can change. Those with a step not here yet, with
-- feedback accepted in this batch (rewards, retractions), or with a step still pending (its
-- reward window or the session's idle timeout may have passed since). A touched session is
-- recomputed whole (delete+insert on transition_id), so its chain of next states stays whole.

with

steps as (

    select * from {{ ref('int_inferences_validated') }}
    where
        is_accepted
        and session_id is not null
        and step_index is not null
        and logged_at < {{ batch_end }}

),

feedback as (

    select * from {{ ref('fct_feedback') }}
    where session_id is not null

),

{% if is_incremental() %}
    touched_sessions as (

        select steps.session_id from steps
        where steps.inference_id not in (select this_batch.transition_id from {{ this }} as this_batch)

        union

        select feedback.session_id from feedback
        where feedback.batch_id = '{{ batch_id }}'

        union

        select this_batch.session_id from {{ this }} as this_batch
        where this_batch.entry_status in ('pending_reward', 'pending_next_state')

    ),
{% endif %}

session_steps as (

    select
        steps.*,
        row_number() over (
            partition by steps.session_id, steps.step_index
            order by steps.logged_at, steps.inference_id
        ) as copy_rank
    from steps
    {%- if is_incremental() %}
        where steps.session_id in (select touched_sessions.session_id from touched_sessions)
    {%- endif %}

),

mapped_feedback as (

    -- Each feedback event of a mapped type as a reward: value * scale + offset.
    select
        feedback.inference_id,
        feedback.event_type,
        feedback.is_retracted,
        feedback.received_at,
        case feedback.event_type
            {%- for event_type, scale in scales.items() %}
                when {{ feedback_flywheel.sql_string(event_type) }}
                    then feedback.value_numeric * {{ scale }} + {{ offsets.get(event_type, 0) }}
            {%- endfor %}
        end as mapped_reward
    from feedback
    where
        feedback.event_type in ({{ feedback_flywheel.string_list(scales.keys() | list) }})
        and feedback.inference_id in (select session_steps.inference_id from session_steps)

),

reward_sources as (

    select distinct
        inference_id,
        event_type
    from mapped_feedback
    where not is_retracted

),

step_rewards as (

    select
        mapped_feedback.inference_id,
        sum(case when not mapped_feedback.is_retracted then mapped_feedback.mapped_reward end)
            as reward_sum,
        sum(case when not mapped_feedback.is_retracted then 1 else 0 end) as reward_event_count,
        sum(case when mapped_feedback.is_retracted then 1 else 0 end) as retracted_event_count,
        max(mapped_feedback.received_at) as reward_received_at
    from mapped_feedback
    group by mapped_feedback.inference_id

),

step_sources as (

    select
        inference_id,
        {{ dbt.listagg('event_type', "','", 'order by event_type') }} as reward_sources
    from reward_sources
    group by inference_id

),

rewarded as (

    select
        session_steps.*,
        step_rewards.reward_event_count,
        step_rewards.reward_received_at,
        step_sources.reward_sources,
        coalesce(step_rewards.retracted_event_count, 0) > 0 as has_retracted_feedback,
        case
            when coalesce(step_rewards.retracted_event_count, 0) > 0 then 'retracted'
            when coalesce(step_rewards.reward_event_count, 0) > 0 then 'known'
            when
                {{ dbt.dateadd('hour', window_hours, 'session_steps.logged_at') }}
                <= {{ batch_end }}
                then 'expired'
            else 'pending'
        end as reward_status,
        step_rewards.reward_sum
    from session_steps
    left join step_rewards
        on session_steps.inference_id = step_rewards.inference_id
    left join step_sources
        on session_steps.inference_id = step_sources.inference_id

),

valued as (

    select
        rewarded.*,
        case
            when rewarded.reward_status = 'known' then rewarded.reward_sum
            {%- if expire_to_zero %}
                when rewarded.reward_status = 'expired' then 0.0
            {%- endif %}
        end as reward,
        coalesce(
            rewarded.reward_status = 'known'
            {%- if expire_to_zero %} or rewarded.reward_status = 'expired'{% endif %},
            false
        ) as is_reward_usable
    from rewarded

),

chained as (

    -- The session's steps in order (first copy of each step_index): next state, and the rewards
    -- of the next n - 1 steps for the n-step return.
    select
        valued.*,
        lead(valued.inference_id) over session_order as next_transition_id,
        lead(valued.inputs_json) over session_order as next_state_inputs_json,
        lead(valued.context_json) over session_order as next_state_context_json,
        lead(valued.inference_id, {{ n_step }}) over session_order as bootstrap_transition_id,
        valued.reward as reward_0,
        valued.is_reward_usable as usable_0,
        valued.has_retracted_feedback as retracted_0,
        1 as present_0,
        {%- for k in range(1, n_step) %}
            lead(valued.reward, {{ k }}) over session_order as reward_{{ k }},
            lead(valued.is_reward_usable, {{ k }}) over session_order as usable_{{ k }},
            lead(valued.has_retracted_feedback, {{ k }}) over session_order
                as retracted_{{ k }},
            case
                when lead(valued.inference_id, {{ k }}) over session_order is not null then 1
                else 0
            end as present_{{ k }},
        {%- endfor %}
        max(valued.logged_at) over (partition by valued.session_id) as session_last_logged_at
    from valued
    where valued.copy_rank = 1
    window session_order as (partition by valued.session_id order by valued.step_index)

),

returns as (

    select
        chained.*,
        {{ dbt.dateadd('minute', timeout_minutes, 'chained.session_last_logged_at') }}
        <= {{ batch_end }} as is_session_over,
        {%- for k in range(n_step) %}
            {% if not loop.first %}+ {% endif -%}
            {{ gamma ** k }} * coalesce(chained.reward_{{ k }}, 0)
        {%- endfor %} as n_step_return,
        {%- for k in range(n_step) %}
            {% if not loop.first %}+ {% endif -%} chained.present_{{ k }}
        {%- endfor %} as n_step_count,
        (
            {%- for k in range(n_step) %}
                {% if not loop.first %}and {% endif -%}
                (chained.present_{{ k }} = 0 or coalesce(chained.usable_{{ k }}, false))
            {%- endfor %}
        ) as are_rewards_usable,
        (
            {%- for k in range(n_step) %}
                {% if not loop.first %}or {% endif -%} coalesce(chained.retracted_{{ k }}, false)
            {%- endfor %}
        ) as is_return_retracted
    from chained

),

statused as (

    select
        returns.*,
        returns.next_transition_id is null and returns.is_session_over as is_terminal,
        case
            when returns.is_return_retracted then 'feedback_retracted'
            when returns.reward_status = 'expired' and not returns.is_reward_usable
                then 'reward_expired_dropped'
            when not returns.are_rewards_usable then 'pending_reward'
            when returns.next_transition_id is null and not returns.is_session_over
                then 'pending_next_state'
            when returns.n_step_count < {{ n_step }} and not returns.is_session_over
                then 'pending_next_state'
            else 'entered'
        end as entry_status
    from returns

),

duplicates as (

    -- A second copy of a step (same session_id and step_index, another inference_id): never a
    -- transition of its own; the buffer logs it as a duplicate.
    select
        session_steps.*,
        'duplicate_step' as entry_status
    from session_steps
    where session_steps.copy_rank > 1

),

final as (

    select
        statused.inference_id as transition_id,
        statused.session_id,
        statused.model_name,
        statused.model_version as policy_version,
        statused.predicted_label as action_label,
        statused.inputs_json as state_inputs_json,
        statused.context_json as state_context_json,
        statused.next_transition_id,
        statused.next_state_inputs_json,
        statused.next_state_context_json,
        statused.bootstrap_transition_id,
        statused.reward_status,
        statused.reward_sources,
        statused.entry_status,
        '{{ batch_id }}' as batch_id,
        statused.step_index,
        cast(statused.reward_event_count as bigint) as reward_event_count,
        cast(statused.n_step_count as bigint) as n_step_count,
        statused.predicted_score as action_score,
        cast(statused.reward as double) as reward,
        cast(statused.n_step_return as double) as n_step_return,
        cast(
            case
                when statused.bootstrap_transition_id is null then 0.0
                else {{ gamma ** n_step }}
            end as double
        ) as bootstrap_discount,
        statused.is_terminal,
        statused.reward_status = 'expired' and statused.reward is not null as is_reward_expired,
        statused.has_retracted_feedback,
        statused.entry_status = 'entered' as is_entered,
        statused.logged_at,
        statused.reward_received_at
    from statused

    union all

    select
        duplicates.inference_id as transition_id,
        duplicates.session_id,
        duplicates.model_name,
        duplicates.model_version as policy_version,
        duplicates.predicted_label as action_label,
        duplicates.inputs_json as state_inputs_json,
        duplicates.context_json as state_context_json,
        null as next_transition_id,
        null as next_state_inputs_json,
        null as next_state_context_json,
        null as bootstrap_transition_id,
        null as reward_status,
        null as reward_sources,
        duplicates.entry_status,
        '{{ batch_id }}' as batch_id,
        duplicates.step_index,
        null as reward_event_count,
        null as n_step_count,
        duplicates.predicted_score as action_score,
        null as reward,
        null as n_step_return,
        null as bootstrap_discount,
        false as is_terminal,
        false as is_reward_expired,
        false as has_retracted_feedback,
        false as is_entered,
        duplicates.logged_at,
        null as reward_received_at
    from duplicates

)

select * from final

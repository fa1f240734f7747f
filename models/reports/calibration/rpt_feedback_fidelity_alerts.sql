-- Has a signal stopped meaning what it meant? For every pair of signals of the fidelity report
-- (rpt_feedback_fidelity), the agreement on the predictions served in the batch's current window
-- (var fidelity_current_days before the batch end) against its own history (the var
-- fidelity_history_days before that): both rates with their Wilson intervals, the drop and its
-- Newcombe 95% interval, the one-sided z-test of "the current agreement is lower", and the flag.
-- A broken tracking pixel (clicks no longer recorded, a dwell timer stuck) looks exactly like a
-- drop: the signal stops agreeing with the rating and with ground truth. Flagged when the
-- one-sided p-value is below var fidelity_drop_alpha and the drop is at least var
-- fidelity_drop_min_effect; the batch's warnings name every flagged signal.

{%- set batch_end = feedback_flywheel.var_timestamp('batch_end') %}
{%- set current_days = feedback_flywheel.setting('fidelity_current_days') %}
{%- set history_days = feedback_flywheel.setting('fidelity_history_days') %}
{%- set alpha = feedback_flywheel.setting('fidelity_drop_alpha') %}
{%- set min_effect = feedback_flywheel.setting('fidelity_drop_min_effect') %}
{%- set current_start = dbt.dateadd('day', -current_days, batch_end) %}
{%- set history_start = dbt.dateadd('day', -(current_days + history_days), batch_end) %}

with

paired as (

    {{ feedback_flywheel.fidelity_pairs(ref('fct_feedback_signals')) }}

),

windowed as (

    select
        model_name,
        signal_name,
        reference_name,
        sum(case when inference_logged_at >= {{ current_start }} then 1 else 0 end)
            as current_count,
        sum(
            case
                when inference_logged_at >= {{ current_start }}
                    and signal_positive = reference_positive then 1
                else 0
            end
        ) as current_agreeing,
        sum(case when inference_logged_at < {{ current_start }} then 1 else 0 end)
            as history_count,
        sum(
            case
                when inference_logged_at < {{ current_start }}
                    and signal_positive = reference_positive then 1
                else 0
            end
        ) as history_agreeing
    from paired
    where
        inference_logged_at >= {{ history_start }}
        and inference_logged_at < {{ batch_end }}
    group by model_name, signal_name, reference_name

),

tested as (

    select
        *,
        {{ feedback_flywheel.two_proportion_z(
            'current_agreeing', 'current_count', 'history_agreeing', 'history_count'
        ) }} as z_statistic
    from windowed

),

final as (

    select
        {{ feedback_flywheel.surrogate_key(['model_name', 'signal_name', 'reference_name']) }}
            as fidelity_alert_id,
        {{ feedback_flywheel.sql_string(feedback_flywheel.batch_param('batch_id')) }} as batch_id,
        model_name,
        signal_name,
        reference_name,
        cast({{ current_start }} as timestamp) as current_start,
        cast({{ batch_end }} as timestamp) as current_end,
        cast({{ history_start }} as timestamp) as history_start,
        cast(current_count as {{ dbt.type_bigint() }}) as current_count,
        cast(history_count as {{ dbt.type_bigint() }}) as history_count,
        case when current_count > 0 then current_agreeing * 1.0 / current_count end
            as current_agreement_rate,
        {{ feedback_flywheel.wilson_lower('current_agreeing', 'current_count') }}
            as current_agreement_lower,
        {{ feedback_flywheel.wilson_upper('current_agreeing', 'current_count') }}
            as current_agreement_upper,
        case when history_count > 0 then history_agreeing * 1.0 / history_count end
            as history_agreement_rate,
        {{ feedback_flywheel.wilson_lower('history_agreeing', 'history_count') }}
            as history_agreement_lower,
        {{ feedback_flywheel.wilson_upper('history_agreeing', 'history_count') }}
            as history_agreement_upper,
        -- the drop, history minus current (positive when the signal agrees less than it did)
        case when current_count > 0 and history_count > 0 then
                history_agreeing * 1.0 / history_count - current_agreeing * 1.0 / current_count
        end as agreement_drop,
        {{ feedback_flywheel.newcombe_lower(
            'history_agreeing', 'history_count', 'current_agreeing', 'current_count'
        ) }} as agreement_drop_lower,
        {{ feedback_flywheel.newcombe_upper(
            'history_agreeing', 'history_count', 'current_agreeing', 'current_count'
        ) }} as agreement_drop_upper,
        z_statistic,
        -- one-sided: P(Z <= z), the chance of a current agreement this low if nothing changed
        case
            when z_statistic is null then null
            when z_statistic < 0 then {{ feedback_flywheel.normal_two_sided_p('z_statistic') }} / 2
            else 1 - {{ feedback_flywheel.normal_two_sided_p('z_statistic') }} / 2
        end as p_value
    from tested

)

select
    *,
    coalesce(
        p_value < {{ alpha }} and agreement_drop >= {{ min_effect }}, false
    ) as is_flagged
from final

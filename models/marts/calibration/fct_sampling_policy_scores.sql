{{
    config(
        materialized='incremental',
        unique_key='sampling_policy_score_id',
        incremental_strategy=feedback_flywheel.flywheel_incremental_strategy(),
        on_schema_change='fail',
    )
}}

-- The sampling policy of the next training sample, chosen from the offline evaluations of the
-- batches before this one (ml.sampling_policy_scores, with the curves of
-- fct_sampling_policy_curves), by one documented rule:
--   - the candidates are random and every policy whose gain over random (AULC minus random's
--     AULC, seed by seed) has a 95% interval above 0;
--   - the chosen policy is the candidate with the largest mean AULC (ties: the policy name);
--   - its budget is the smallest evaluated budget whose mean accuracy is within var
--     sampling_budget_tolerance of the policy's best.
-- Under var sampling_policy_chooser: exp3 the chosen policy is instead the draw of the Exp3
-- bandit's round that the evaluation played (feedback_flywheel/calibration/bandit.py), at the
-- budget above; an evaluation without a bandit round falls back to the rule.
-- One row per (evaluation batch, model, policy), the chosen one flagged, each with why.
-- fct_training_sample (var sampling_policy: auto) uses the latest chosen row before its batch.
-- Incremental: an evaluation's choice is made once, by the first build after it, and kept (a
-- later change of the tolerance does not rewrite which policy an earlier sample used).

{%- set batch_id = feedback_flywheel.batch_param('batch_id') %}
{%- set tolerance = feedback_flywheel.setting('sampling_budget_tolerance') %}
{%- set exp3 = feedback_flywheel.setting('sampling_policy_chooser') == 'exp3' %}
{%- set by_draw = 'true' if exp3 else 'false' %}
{#- a number as text with three decimals (n/a for null), for choice_reason -#}
{%- set number_text = "coalesce(cast(cast(round(VALUE, 3) as decimal(18, 3)) as "
    ~ dbt.type_string() ~ "), 'n/a')" %}

with

scores as (

    select * from {{ ref('stg_ml__sampling_policy_scores') }}
    where batch_id < {{ feedback_flywheel.sql_string(batch_id) }}
    {%- if is_incremental() %}
        and batch_id not in (select chosen_before.batch_id from {{ this }} as chosen_before)
    {%- endif %}

),

curves as (

    select * from {{ ref('fct_sampling_policy_curves') }}

),

best_accuracy as (

    select
        batch_id,
        model_name,
        policy,
        max(accuracy_mean) as best_accuracy_mean
    from curves
    group by batch_id, model_name, policy

),

budgets as (

    select
        curves.batch_id,
        curves.model_name,
        curves.policy,
        min(curves.budget) as chosen_budget
    from curves
    inner join best_accuracy
        on
            curves.batch_id = best_accuracy.batch_id
            and curves.model_name = best_accuracy.model_name
            and curves.policy = best_accuracy.policy
    where curves.accuracy_mean >= best_accuracy.best_accuracy_mean - {{ tolerance }}
    group by curves.batch_id, curves.model_name, curves.policy

),

judged as (

    select
        scores.*,
        budgets.chosen_budget,
        coalesce(scores.policy <> 'random' and scores.gain_lower > 0, false) as beats_random,
        scores.policy = 'random' or coalesce(scores.gain_lower > 0, false) as is_candidate
    from scores
    inner join budgets
        on
            scores.batch_id = budgets.batch_id
            and scores.model_name = budgets.model_name
            and scores.policy = budgets.policy

),

ranked as (

    select
        *,
        row_number() over (
            partition by batch_id, model_name
            order by
                case when {{ by_draw }} and coalesce(is_exp3_draw, false) then 0 else 1 end asc,
                case when is_candidate then 0 else 1 end asc,
                aulc_mean desc,
                policy asc
        ) as choice_rank,
        sum(case when beats_random then 1 else 0 end) over (
            partition by batch_id, model_name
        ) as policies_beating_random
    from judged

),

chosen as (

    select
        batch_id,
        model_name,
        policy as chosen_policy,
        coalesce(is_exp3_draw, false) as is_drawn
    from ranked
    where choice_rank = 1

),

final as (

    select
        ranked.sampling_policy_score_id,
        ranked.batch_id,
        ranked.model_name,
        ranked.policy,
        ranked.aulc_mean,
        ranked.aulc_lower,
        ranked.aulc_upper,
        ranked.gain_mean,
        ranked.gain_lower,
        ranked.gain_upper,
        ranked.chosen_budget,
        ranked.beats_random,
        ranked.choice_rank = 1 as is_chosen,
        cast(ranked.policies_beating_random as {{ dbt.type_bigint() }}) as policies_beating_random,
        ranked.policy || ': AULC ' || {{ number_text | replace('VALUE', 'ranked.aulc_mean') }}
        || ', gain over random ' || {{ number_text | replace('VALUE', 'ranked.gain_mean') }}
        || ' (95% CI ' || {{ number_text | replace('VALUE', 'ranked.gain_lower') }} || ' to '
        || {{ number_text | replace('VALUE', 'ranked.gain_upper') }} || '); '
        || case
            when {{ by_draw }} and ranked.choice_rank = 1 and chosen.is_drawn
                then 'chosen: drawn by the Exp3 bandit (probability '
                    || {{ number_text | replace('VALUE', 'ranked.exp3_probability') }} || ')'
            when {{ by_draw }} and chosen.is_drawn
                then 'not chosen: the Exp3 bandit drew ' || chosen.chosen_policy
                    || ' (this one''s probability '
                    || {{ number_text | replace('VALUE', 'ranked.exp3_probability') }} || ')'
            when ranked.choice_rank = 1 and ranked.policy = 'random'
                then 'chosen: no policy''s gain interval over random is above 0'
            when ranked.choice_rank = 1
                then 'chosen: the largest AULC of the policies that beat random'
            when ranked.policy = 'random'
                then 'not chosen: ' || chosen.chosen_policy || ' beats random'
            when ranked.beats_random
                then 'not chosen: beats random, but a larger AULC: ' || chosen.chosen_policy
            else 'not chosen: its gain interval over random is not above 0'
        end
        || '; budget ' || cast(ranked.chosen_budget as {{ dbt.type_string() }})
        || ' (the smallest within {{ tolerance }} of its best accuracy)' as choice_reason,
        ranked.first_train_batch_id,
        ranked.last_test_batch_id,
        ranked.pairs,
        ranked.seeds,
        ranked.exp3_log_weight,
        ranked.exp3_probability,
        ranked.exp3_reward,
        ranked.is_exp3_draw,
        ranked.exp3_gamma,
        {{ feedback_flywheel.sql_string('exp3' if exp3 else 'rule') }} as chooser
    from ranked
    inner join chosen
        on ranked.batch_id = chosen.batch_id and ranked.model_name = chosen.model_name

)

select * from final

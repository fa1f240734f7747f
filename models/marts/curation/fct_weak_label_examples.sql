{{
    config(
        materialized='incremental',
        unique_key='weak_label_id',
        incremental_strategy=feedback_flywheel.flywheel_incremental_strategy(),
        on_schema_change='fail',
    )
}}

-- Weak labels: where an implicit signal stands in for a missing label (var weak_label_signals;
-- empty, the default, means none). One row per prediction without a current ground-truth label
-- whose latest signal of a configured type is usable in this batch's fct_weak_label_fidelity:
-- a positive signal gives the predicted label, a negative one (two-class models only) the other
-- label, and the row's sample_weight is the fidelity measured when it formed, the chance that
-- such a weak label is right. Where a prediction has several usable signals, the most faithful
-- wins (then the signal name).
-- Versioned like fct_training_examples: a row is never edited except to mark it superseded, when
-- the prediction gets a matured label, or its signal is retracted or turns to the other polarity
-- (var weak_label_signals no longer naming it supersedes it too). Version V holds the rows with
-- batch_id <= V and (superseded_in_batch_id is null or > V). A weak label keeps the weight it
-- formed with: a signal that breaks later lowers (or stops) only the weak labels formed after.
-- Kept apart from fct_training_examples: performance, fidelity and coverage never see these rows.

{%- set batch_id = feedback_flywheel.batch_param('batch_id') %}
{%- set configured = feedback_flywheel.setting('weak_label_signals') %}
{%- set positive = feedback_flywheel.signal_positive_conditions() %}

with

signals as (

    select * from {{ ref('fct_feedback_signals') }}
    where
        is_correct is null
        and inference_logged_at < {{ feedback_flywheel.var_timestamp('batch_end') }}

),

fidelity as (

    select * from {{ ref('fct_weak_label_fidelity') }}
    where batch_id = '{{ batch_id }}'

),

inferences as (

    select * from {{ ref('int_inferences_validated') }}
    where is_accepted

),

candidates as (

    -- each configured signal an unlabelled prediction holds now, with its polarity
    {%- for signal in configured %}
        select
            inference_id,
            model_name,
            '{{ signal }}' as signal_name,
            case when {{ positive[signal] }} then 'positive' else 'negative' end
                as signal_polarity
        from signals
        where {{ signal }} is not null
        {%- if not loop.last %}

            union all
        {%- endif %}
    {%- else %}
        select
            inference_id,
            model_name,
            cast(null as {{ dbt.type_string() }}) as signal_name,
            cast(null as {{ dbt.type_string() }}) as signal_polarity
        from signals
        where false
    {%- endfor %}

),

{%- if is_incremental() %}

    existing as (

        select * from {{ this }}
        where superseded_in_batch_id is null or superseded_in_batch_id = '{{ batch_id }}'

    ),

    kept as (

        -- a current weak label stays while its prediction holds the same signal and polarity
        select existing.*
        from existing
        inner join candidates
            on
                existing.inference_id = candidates.inference_id
                and existing.signal_name = candidates.signal_name
                and existing.signal_polarity = candidates.signal_polarity

    ),

    superseded as (

        select existing.*
        from existing
        left join kept on existing.weak_label_id = kept.weak_label_id
        where kept.weak_label_id is null

    ),

{%- endif %}

weighed as (

    select
        candidates.inference_id,
        candidates.signal_name,
        candidates.signal_polarity,
        inferences.predicted_label,
        fidelity.weak_label_fidelity_id,
        fidelity.fidelity_rate,
        fidelity.fidelity_rate_lower,
        case
            when candidates.signal_polarity = 'positive' then inferences.predicted_label
            when inferences.predicted_label = fidelity.first_label then fidelity.second_label
            when inferences.predicted_label = fidelity.second_label then fidelity.first_label
        end as label
    from candidates
    inner join fidelity
        on
            candidates.model_name = fidelity.model_name
            and candidates.signal_name = fidelity.signal_name
            and candidates.signal_polarity = fidelity.signal_polarity
    inner join inferences on candidates.inference_id = inferences.inference_id
    where fidelity.is_usable

),

chosen as (

    select
        *,
        row_number() over (
            partition by inference_id order by fidelity_rate desc, signal_name asc
        ) as signal_preference
    from weighed
    where label is not null
    {%- if is_incremental() %}
        and inference_id not in (select kept.inference_id from kept)
    {%- endif %}

),

formed as (

    select
        {{ feedback_flywheel.surrogate_key([
            'chosen.inference_id', 'chosen.signal_name', 'chosen.signal_polarity',
            "'" ~ batch_id ~ "'",
        ]) }} as weak_label_id,
        chosen.inference_id,
        inferences.model_name,
        inferences.model_version,
        inferences.subject_id,
        chosen.signal_name,
        chosen.signal_polarity,
        chosen.label,
        'weak_' || chosen.signal_name as label_source,
        inferences.predicted_label,
        inferences.inputs_json as features_json,
        inferences.probabilities_json,
        inferences.predicted_score,
        inferences.probability_top1,
        inferences.probability_top2,
        inferences.probability_entropy,
        chosen.weak_label_fidelity_id,
        cast(chosen.fidelity_rate as double) as fidelity_rate,
        cast(chosen.fidelity_rate_lower as double) as fidelity_rate_lower,
        cast(chosen.fidelity_rate as double) as sample_weight,
        'ds-{{ batch_id }}' as dataset_version,
        '{{ batch_id }}' as batch_id,
        cast(null as {{ dbt.type_string() }}) as superseded_in_batch_id,
        true as is_current,
        inferences.logged_at as inference_logged_at
    from chosen
    inner join inferences on chosen.inference_id = inferences.inference_id
    where chosen.signal_preference = 1

),

final as (

    select * from formed
    {%- if is_incremental() %}

        union all

        select
            weak_label_id,
            inference_id,
            model_name,
            model_version,
            subject_id,
            signal_name,
            signal_polarity,
            label,
            label_source,
            predicted_label,
            features_json,
            probabilities_json,
            predicted_score,
            probability_top1,
            probability_top2,
            probability_entropy,
            weak_label_fidelity_id,
            fidelity_rate,
            fidelity_rate_lower,
            sample_weight,
            dataset_version,
            batch_id,
            '{{ batch_id }}' as superseded_in_batch_id,
            false as is_current,
            inference_logged_at
        from superseded
    {%- endif %}

)

select * from final

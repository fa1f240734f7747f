-- Weak labels at a glance, for the dashboard and the batch artifact: per model, signal and
-- polarity, the latest batch's measured fidelity and whether it is usable (and why not), with
-- the weak labels that signal holds now and formed in that batch.

with

all_fidelity as (

    select * from {{ ref('fct_weak_label_fidelity') }}

),

latest as (

    select max(all_fidelity.batch_id) as batch_id from all_fidelity

),

fidelity as (

    select all_fidelity.*
    from all_fidelity
    inner join latest on all_fidelity.batch_id = latest.batch_id

),

weak_labels as (

    select
        examples.model_name,
        examples.signal_name,
        examples.signal_polarity,
        sum(case when examples.is_current then 1 else 0 end) as current_count,
        sum(case when examples.batch_id = latest.batch_id then 1 else 0 end) as formed_count
    from {{ ref('fct_weak_label_examples') }} as examples
    cross join latest
    group by examples.model_name, examples.signal_name, examples.signal_polarity

),

final as (

    select
        fidelity.weak_label_fidelity_id,
        fidelity.batch_id,
        fidelity.model_name,
        fidelity.signal_name,
        fidelity.signal_polarity,
        fidelity.weak_label_rule,
        fidelity.overlap_count,
        fidelity.fidelity_rate,
        fidelity.fidelity_rate_lower,
        fidelity.fidelity_rate_upper,
        fidelity.usability,
        fidelity.is_usable,
        cast(coalesce(weak_labels.current_count, 0) as {{ dbt.type_bigint() }})
            as current_weak_labels,
        cast(coalesce(weak_labels.formed_count, 0) as {{ dbt.type_bigint() }})
            as weak_labels_formed
    from fidelity
    left join weak_labels
        on
            fidelity.model_name = weak_labels.model_name
            and fidelity.signal_name = weak_labels.signal_name
            and fidelity.signal_polarity = weak_labels.signal_polarity

)

select * from final

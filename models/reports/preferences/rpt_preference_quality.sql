{%- set batch_id = feedback_flywheel.batch_param('batch_id') %}

-- Data quality of the preference dataset, reported rather than enforced: one row per pair_source
-- and one for all of them together ('all').
--   ties:       share of judgements that are ties (Wilson 95% interval);
--   position:   among decisive judgements whose display order is known, how often the output
--               shown first won (0.5 = no position bias; Wilson 95% interval);
--   agreement:  among pairs judged by several annotators, the share of annotator pairs (two
--               different annotators, same pair) that gave the same outcome (Wilson interval);
--   cycles:     per context, each pair of outputs gets its majority direction (more wins than
--               losses; ties and even splits leave it undecided); among the triples of outputs of
--               a context whose three pairs are all decided, the share that form a cycle
--               (x > y > z > x). Null when no context has three outputs judged pairwise;
--   quarantine: raw preference rows of that source refused (fct_preference_quarantine) or still
--               held (an output not in the log yet), from int_preference_events_counted.

with

pairs as (

    select * from {{ ref('fct_preference_pairs') }}

),

status_counts as (

    select
        preference_source,
        status,
        row_count
    from {{ ref('int_preference_events_counted') }}

),

scoped as (

    select
        *,
        pair_source as scope
    from pairs
    union all
    select
        *,
        'all' as scope
    from pairs

),

counts as (

    select
        scope,
        count(*) as judgements,
        count(distinct pair_key) as distinct_pairs,
        count(distinct context_id) as contexts,
        count(distinct annotator_id) as annotators,
        count(case when is_tie then 1 end) as tied_judgements,
        count(is_first_shown_preferred) as shown_order_decisive,
        count(case when is_first_shown_preferred then 1 end) as first_shown_wins,
        count(distinct case when split = 'validation' then context_id end) as validation_contexts
    from scoped
    group by scope

),

annotator_pairs as (

    -- Two different annotators who judged the same pair (in the same scope).
    select
        first_judge.scope,
        first_judge.pair_key,
        first_judge.preferred_output = second_judge.preferred_output as is_agreement
    from scoped as first_judge
    inner join scoped as second_judge
        on
            first_judge.scope = second_judge.scope
            and first_judge.pair_key = second_judge.pair_key
            and first_judge.annotator_id < second_judge.annotator_id

),

agreement as (

    select
        scope,
        count(distinct pair_key) as multi_judged_pairs,
        count(*) as annotator_comparisons,
        count(case when is_agreement then 1 end) as annotator_agreements
    from annotator_pairs
    group by scope

),

edges as (

    -- Majority direction of each pair: +1 when inference_id_low won more often, -1 when it lost
    -- more often; undecided pairs are left out.
    select
        scope,
        context_id,
        inference_id_low,
        inference_id_high,
        sign(
            sum(case preferred_output when 'low' then 1 when 'high' then -1 else 0 end)
        ) as direction
    from scoped
    group by scope, context_id, inference_id_low, inference_id_high
    having sum(case preferred_output when 'low' then 1 when 'high' then -1 else 0 end) <> 0

),

triads as (

    -- Outputs x < y < z of a context with all three pairs decided. Cyclic when x beats y and y
    -- beats z but z beats x, or the mirror image.
    select
        edge_xy.scope,
        edge_xy.direction = edge_yz.direction
        and edge_xz.direction = -edge_xy.direction as is_cycle
    from edges as edge_xy
    inner join edges as edge_yz
        on
            edge_xy.scope = edge_yz.scope
            and edge_xy.context_id = edge_yz.context_id
            and edge_xy.inference_id_high = edge_yz.inference_id_low
    inner join edges as edge_xz
        on
            edge_xy.scope = edge_xz.scope
            and edge_xy.context_id = edge_xz.context_id
            and edge_xy.inference_id_low = edge_xz.inference_id_low
            and edge_yz.inference_id_high = edge_xz.inference_id_high

),

cycles as (

    select
        scope,
        count(*) as decided_triads,
        count(case when is_cycle then 1 end) as cyclic_triads
    from triads
    group by scope

),

quarantine as (

    select
        preference_source as scope,
        cast(
            sum(case when status = 'quarantined' then row_count else 0 end)
            as {{ dbt.type_bigint() }}
        ) as quarantined_rows,
        cast(
            sum(case when status = 'held' then row_count else 0 end) as {{ dbt.type_bigint() }}
        ) as held_rows
    from status_counts
    group by preference_source
    union all
    select
        'all' as scope,
        cast(
            coalesce(sum(case when status = 'quarantined' then row_count else 0 end), 0)
            as {{ dbt.type_bigint() }}
        ) as quarantined_rows,
        cast(
            coalesce(sum(case when status = 'held' then row_count else 0 end), 0)
            as {{ dbt.type_bigint() }}
        ) as held_rows
    from status_counts

),

scopes as (

    select scope from counts
    union
    select scope from quarantine

),

final as (

    select
        scopes.scope as pair_source,
        '{{ batch_id }}' as batch_id,
        coalesce(counts.judgements, 0) as judgements,
        coalesce(counts.distinct_pairs, 0) as distinct_pairs,
        coalesce(counts.contexts, 0) as contexts,
        coalesce(counts.annotators, 0) as annotators,
        coalesce(counts.validation_contexts, 0) as validation_contexts,
        coalesce(counts.tied_judgements, 0) as tied_judgements,
        counts.tied_judgements * 1.0 / nullif(counts.judgements, 0) as tie_share,
        {{ feedback_flywheel.wilson_lower('counts.tied_judgements', 'counts.judgements') }}
            as tie_share_lower,
        {{ feedback_flywheel.wilson_upper('counts.tied_judgements', 'counts.judgements') }}
            as tie_share_upper,
        coalesce(counts.shown_order_decisive, 0) as shown_order_decisive,
        coalesce(counts.first_shown_wins, 0) as first_shown_wins,
        counts.first_shown_wins * 1.0 / nullif(counts.shown_order_decisive, 0)
            as first_shown_win_rate,
        {{ feedback_flywheel.wilson_lower(
            'counts.first_shown_wins', 'counts.shown_order_decisive'
        ) }} as first_shown_win_rate_lower,
        {{ feedback_flywheel.wilson_upper(
            'counts.first_shown_wins', 'counts.shown_order_decisive'
        ) }} as first_shown_win_rate_upper,
        coalesce(agreement.multi_judged_pairs, 0) as multi_judged_pairs,
        coalesce(agreement.annotator_comparisons, 0) as annotator_comparisons,
        coalesce(agreement.annotator_agreements, 0) as annotator_agreements,
        agreement.annotator_agreements * 1.0 / nullif(agreement.annotator_comparisons, 0)
            as annotator_agreement_rate,
        {{ feedback_flywheel.wilson_lower(
            'agreement.annotator_agreements', 'agreement.annotator_comparisons'
        ) }} as annotator_agreement_rate_lower,
        {{ feedback_flywheel.wilson_upper(
            'agreement.annotator_agreements', 'agreement.annotator_comparisons'
        ) }} as annotator_agreement_rate_upper,
        coalesce(cycles.decided_triads, 0) as decided_triads,
        coalesce(cycles.cyclic_triads, 0) as cyclic_triads,
        cycles.cyclic_triads * 1.0 / nullif(cycles.decided_triads, 0) as cycle_rate,
        coalesce(quarantine.quarantined_rows, 0) as quarantined_rows,
        coalesce(quarantine.held_rows, 0) as held_rows
    from scopes
    left join counts
        on scopes.scope = counts.scope
    left join agreement
        on scopes.scope = agreement.scope
    left join cycles
        on scopes.scope = cycles.scope
    left join quarantine
        on scopes.scope = quarantine.scope

)

select * from final

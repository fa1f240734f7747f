{#-
    The sampled training set of one dataset version, as CTEs: call it inside a `with` after the
    caller's import CTEs of fct_training_examples and fct_inference_segments (their names are the
    first two arguments), and follow it with `select * from final` (the last CTE it emits). Used by fct_training_sample for the current
    batch and by analyses/training_sample_for_version.sql to rebuild any older version and prove it
    is identical.

    Two strategies, each row saying which chose it:
    - stratified: per cell (var stratify_by value x label) take the var stratified_quota_per_cell
      rows with the smallest hash_fraction(inference_id, sampling_seed); a cell with fewer rows
      gives all it has. The stratify_by value comes from the prediction's segments ('__missing__'
      when its context lacks the attribute); with stratify_by unset the cells are the labels.
    - uncertainty: from the rows not chosen above, the var uncertainty_budget most uncertain by
      var uncertainty_method (least_confidence | margin | entropy), ties broken by the same hash.

    Under var sampling_policy: auto, a model with a chosen policy (policy_scores: the
    fct_sampling_policy_scores row with is_chosen of the latest evaluation batch before this one)
    takes instead the chosen budget of its examples by that policy, strategy 'policy_<policy>'
    (the order feedback_flywheel/calibration/policies.py documents and the offline evaluation
    uses, per model); models without a choice yet keep the two strategies above among themselves.

    With var weak_label_signals set, the sample adds, per model, up to var weak_label_budget weak
    labels (weak_examples: fct_weak_label_examples as of the version, smallest hash first),
    strategy 'weak_label', each weighted by its measured fidelity. They stand in for missing
    labels and never displace a ground-truth example.
-#}
{% macro training_sample(
    training_examples, inference_segments, dataset_batch_id, policy_scores=none, weak_examples=none
) -%}

{%- set seed = feedback_flywheel.setting('sampling_seed') %}
{%- set stratify_by = feedback_flywheel.setting('stratify_by') %}
{%- set method = feedback_flywheel.setting('uncertainty_method') %}
{%- if method not in ['least_confidence', 'margin', 'entropy'] %}
    {{ exceptions.raise_compiler_error(
        "var uncertainty_method must be one of least_confidence, margin, entropy; got '"
        ~ method ~ "'"
    ) }}
{%- endif %}
{%- set auto_policy = feedback_flywheel.setting('sampling_policy') == 'auto' %}
{%- if auto_policy and policy_scores is none %}
    {{ exceptions.raise_compiler_error(
        "training_sample under var sampling_policy: auto needs the policy_scores relation"
    ) }}
{%- endif %}
{%- set weak_labels = feedback_flywheel.setting('weak_label_signals') | length > 0 %}
{%- if weak_labels and weak_examples is none %}
    {{ exceptions.raise_compiler_error(
        "training_sample under var weak_label_signals needs the weak_examples relation"
    ) }}
{%- endif %}
{%- if stratify_by and stratify_by not in feedback_flywheel.setting('segment_attributes') %}
    {{ exceptions.raise_compiler_error(
        "var stratify_by must be one of the segment_attributes "
        ~ feedback_flywheel.setting('segment_attributes') | join(', ') ~ "; got '" ~ stratify_by ~ "'"
    ) }}
{%- endif %}

strata as (

    select
        inference_id,
        segment_value as stratify_value
    from {{ inference_segments }}
    {%- if stratify_by %}
        where segment_attribute = {{ feedback_flywheel.sql_string(stratify_by) }}
    {%- else %}
        where false
    {%- endif %}

),

examples_as_of as (

    select
        examples.*,
        strata.stratify_value
    from {{ training_examples }} as examples
    left join strata on examples.inference_id = strata.inference_id
    where {{ feedback_flywheel.in_version_as_of('examples', dataset_batch_id) }}

),

keyed as (

    select
        *,
        coalesce(stratify_value, '{{ "__missing__" if stratify_by else "__all__" }}') || '|' || label
            as stratum,
        {{ feedback_flywheel.hash_fraction('inference_id', seed) }} as sample_key,
        1 - coalesce(probability_top1, predicted_score) as least_confidence_score,
        1 - (probability_top1 - probability_top2) as margin_score,
        probability_entropy as entropy_score
    from examples_as_of

),

{%- if auto_policy %}

    policy_in_force as (

        select
            model_name,
            policy,
            chosen_budget
        from (
            select
                model_name,
                policy,
                chosen_budget,
                row_number() over (partition by model_name order by batch_id desc) as recency
            from {{ policy_scores }}
            where
                is_chosen
                and batch_id < {{ feedback_flywheel.sql_string(dataset_batch_id) }}
        ) as chosen
        where recency = 1

    ),

    policy_keyed as (

        select
            keyed.*,
            policy_in_force.policy,
            policy_in_force.chosen_budget,
            cast(ceil(policy_in_force.chosen_budget / 2.0) as {{ dbt.type_bigint() }}) as half_budget,
            row_number() over (
                partition by keyed.model_name order by keyed.sample_key, keyed.inference_id
            ) as random_rank,
            row_number() over (
                partition by keyed.model_name, keyed.label
                order by keyed.sample_key, keyed.inference_id
            ) as label_rank
        from keyed
        inner join policy_in_force on keyed.model_name = policy_in_force.model_name
        where keyed.label is not null

    ),

    policy_ranked as (

        select
            *,
            row_number() over (
                partition by model_name order by label_rank, sample_key, inference_id
            ) as stratified_rank,
            {%- for method in ['least_confidence', 'margin', 'entropy'] %}
                row_number() over (
                    partition by model_name
                    order by
                        {{ method }}_score is null asc, {{ method }}_score desc,
                        sample_key asc, inference_id asc
                ) as {{ method }}_rank{{ "," if not loop.last }}
            {%- endfor %}
        from policy_keyed

    ),

    mix_rest as (

        -- mix: after its stratified half, the least confident of the rows that half left.
        select
            training_example_id,
            row_number() over (
                partition by model_name
                order by
                    least_confidence_score is null asc, least_confidence_score desc,
                    sample_key asc, inference_id asc
            ) as rest_rank
        from policy_ranked
        where policy = 'mix' and stratified_rank > half_budget

    ),

    by_policy as (

        select
            policy_ranked.*,
            case policy_ranked.policy
                when 'random' then policy_ranked.random_rank
                when 'stratified' then policy_ranked.stratified_rank
                when 'least_confidence' then policy_ranked.least_confidence_rank
                when 'margin' then policy_ranked.margin_rank
                when 'entropy' then policy_ranked.entropy_rank
                when 'mix' then coalesce(
                    policy_ranked.half_budget + mix_rest.rest_rank, policy_ranked.stratified_rank
                )
            end as policy_rank
        from policy_ranked
        left join mix_rest on policy_ranked.training_example_id = mix_rest.training_example_id

    ),

    by_policy_sampled as (

        select
            *,
            'policy_' || policy as sampling_strategy,
            policy_rank as strategy_rank
        from by_policy
        where policy_rank <= chosen_budget

    ),

{%- endif %}

fixed_pool as (

    select * from keyed
    {%- if auto_policy %}
        where model_name not in (select policy_in_force.model_name from policy_in_force)
    {%- endif %}

),

stratified_ranked as (

    select
        *,
        row_number() over (
            partition by stratum order by sample_key, inference_id
        ) as stratum_rank
    from fixed_pool

),

stratified as (

    select
        *,
        'stratified' as sampling_strategy,
        stratum_rank as strategy_rank
    from stratified_ranked
    where stratum_rank <= {{ feedback_flywheel.setting('stratified_quota_per_cell') }}

),

uncertainty_ranked as (

    select
        *,
        row_number() over (
            order by {{ method }}_score desc, sample_key, inference_id
        ) as uncertainty_rank
    from stratified_ranked
    where
        stratum_rank > {{ feedback_flywheel.setting('stratified_quota_per_cell') }}
        and {{ method }}_score is not null

),

uncertainty as (

    select
        *,
        'uncertainty_{{ method }}' as sampling_strategy,
        uncertainty_rank as strategy_rank
    from uncertainty_ranked
    where uncertainty_rank <= {{ feedback_flywheel.setting('uncertainty_budget') }}

),

sampled as (

    select
        training_example_id, inference_id, stratum, sampling_strategy, strategy_rank, sample_key,
        least_confidence_score, margin_score, entropy_score
    from stratified

    union all

    select
        training_example_id, inference_id, stratum, sampling_strategy, strategy_rank, sample_key,
        least_confidence_score, margin_score, entropy_score
    from uncertainty
    {%- if auto_policy %}

        union all

        select
            training_example_id, inference_id, stratum, sampling_strategy, strategy_rank,
            sample_key, least_confidence_score, margin_score, entropy_score
        from by_policy_sampled
    {%- endif %}

),

{%- if weak_labels %}

    weak_ranked as (

        select
            weak.*,
            strata.stratify_value,
            {{ feedback_flywheel.hash_fraction('weak.inference_id', seed) }} as sample_key,
            row_number() over (
                partition by weak.model_name
                order by {{ feedback_flywheel.hash_fraction('weak.inference_id', seed) }},
                    weak.inference_id
            ) as strategy_rank
        from {{ weak_examples }} as weak
        left join strata on weak.inference_id = strata.inference_id
        where {{ feedback_flywheel.in_version_as_of('weak', dataset_batch_id) }}

    ),

    weak_sampled as (

        select
            {{ feedback_flywheel.surrogate_key(["'" ~ dataset_batch_id ~ "'", 'weak_label_id']) }}
                as training_sample_id,
            weak_label_id as training_example_id,
            inference_id,
            model_name,
            model_version,
            'ds-{{ dataset_batch_id }}' as dataset_version,
            '{{ dataset_batch_id }}' as batch_id,
            'weak_label' as sampling_strategy,
            'weak|' || label as stratum,
            stratify_value,
            label,
            label_source,
            predicted_label,
            features_json,
            probabilities_json,
            strategy_rank,
            cast({{ seed }} as {{ dbt.type_bigint() }}) as sampling_seed,
            sample_key,
            predicted_score,
            1 - coalesce(probability_top1, predicted_score) as least_confidence_score,
            1 - (probability_top1 - probability_top2) as margin_score,
            probability_entropy as entropy_score,
            sample_weight,
            inference_logged_at
        from weak_ranked
        where strategy_rank <= {{ feedback_flywheel.setting('weak_label_budget') }}

    ),

{%- endif %}

strong_sampled as (

    select
        {{ feedback_flywheel.surrogate_key(["'" ~ dataset_batch_id ~ "'", 'sampled.training_example_id']) }}
            as training_sample_id,
        sampled.training_example_id,
        sampled.inference_id,
        examples_as_of.model_name,
        examples_as_of.model_version,
        'ds-{{ dataset_batch_id }}' as dataset_version,
        '{{ dataset_batch_id }}' as batch_id,
        sampled.sampling_strategy,
        sampled.stratum,
        examples_as_of.stratify_value,
        examples_as_of.label,
        examples_as_of.label_source,
        examples_as_of.predicted_label,
        examples_as_of.features_json,
        examples_as_of.probabilities_json,
        sampled.strategy_rank,
        cast({{ seed }} as {{ dbt.type_bigint() }}) as sampling_seed,
        sampled.sample_key,
        examples_as_of.predicted_score,
        sampled.least_confidence_score,
        sampled.margin_score,
        sampled.entropy_score,
        examples_as_of.sample_weight,
        examples_as_of.inference_logged_at
    from sampled
    inner join examples_as_of
        on sampled.training_example_id = examples_as_of.training_example_id

),

final as (

    select * from strong_sampled
    {%- if weak_labels %}

        union all

        select * from weak_sampled
    {%- endif %}

)

{%- endmacro %}



{#- Whether a row of a versioned mart (fct_training_examples, fct_weak_label_examples) is in the
    dataset version of a batch: added by then, not superseded by then. -#}
{% macro in_version_as_of(alias, dataset_batch_id) -%}
    {%- set version = feedback_flywheel.sql_string(dataset_batch_id) -%}
    {%- set prefix = alias ~ '.' if alias else '' -%}
    ({{ prefix }}batch_id <= {{ version }} and ({{ prefix }}superseded_in_batch_id is null
        or {{ prefix }}superseded_in_batch_id > {{ version }}))
{%- endmacro %}

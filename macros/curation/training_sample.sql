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
-#}
{% macro training_sample(training_examples, inference_segments, dataset_batch_id) -%}

{%- set seed = feedback_flywheel.setting('sampling_seed') %}
{%- set stratify_by = feedback_flywheel.setting('stratify_by') %}
{%- set method = feedback_flywheel.setting('uncertainty_method') %}
{%- if method not in ['least_confidence', 'margin', 'entropy'] %}
    {{ exceptions.raise_compiler_error(
        "var uncertainty_method must be one of least_confidence, margin, entropy; got '"
        ~ method ~ "'"
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
    where
        examples.batch_id <= {{ feedback_flywheel.sql_string(dataset_batch_id) }}
        and (
            examples.superseded_in_batch_id is null
            or examples.superseded_in_batch_id > {{ feedback_flywheel.sql_string(dataset_batch_id) }}
        )

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

stratified_ranked as (

    select
        *,
        row_number() over (
            partition by stratum order by sample_key, inference_id
        ) as stratum_rank
    from keyed

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

),

final as (

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

)

{%- endmacro %}

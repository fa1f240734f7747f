{{
    config(
        materialized='incremental',
        unique_key='label_maturation_id',
        incremental_strategy=feedback_flywheel.flywheel_incremental_strategy(),
        on_schema_change='fail',
    )
}}

-- The label maturation window of each model, recorded per batch: how many days after serving a
-- prediction's label can be expected. Derived from the overall label-coverage curve of this
-- batch (fct_label_coverage): the plateau is the coverage at the oldest age with at least var
-- fidelity_min_group_count predictions, and the derived window is the first age whose coverage
-- reaches var label_maturation_share of it. The performance windows (performance check and
-- concept drift) end this many days before the watermark, so they compare days whose labels
-- have arrived: the derived window when var label_maturation_days is `auto`, the configured
-- number of days otherwise (0: the windows end at the watermark). With `auto` and no usable
-- curve yet (no labels, or too few predictions old enough) the window is 0, and the row says so.

{%- set batch_id = feedback_flywheel.batch_param('batch_id') %}
{%- set batch_end = feedback_flywheel.var_timestamp('batch_end') %}
{%- set configured = feedback_flywheel.setting('label_maturation_days') %}
{%- set share = feedback_flywheel.setting('label_maturation_share') %}

with

curve as (

    select
        model_name,
        age_days,
        eligible_count,
        labelled_count,
        coverage
    from {{ ref('fct_label_coverage') }}
    where
        breakdown = 'overall'
        and not is_suppressed

),

plateaus as (

    select
        model_name,
        max(age_days) as plateau_age_days
    from curve
    group by model_name

),

plateau_coverage as (

    select
        plateaus.model_name,
        plateaus.plateau_age_days,
        curve.coverage as plateau_coverage,
        curve.eligible_count as plateau_eligible_count
    from plateaus
    inner join curve
        on
            plateaus.model_name = curve.model_name
            and plateaus.plateau_age_days = curve.age_days

),

derived as (

    select
        plateau_coverage.model_name,
        min(curve.age_days) as derived_maturation_days
    from plateau_coverage
    inner join curve
        on
            plateau_coverage.model_name = curve.model_name
            and curve.coverage >= {{ share }} * plateau_coverage.plateau_coverage
    where plateau_coverage.plateau_coverage > 0
    group by plateau_coverage.model_name

),

models as (

    select distinct model_name
    from {{ ref('fct_label_coverage') }}

),

final as (

    select
        {{ feedback_flywheel.surrogate_key([
            feedback_flywheel.sql_string(batch_id), 'models.model_name'
        ]) }} as label_maturation_id,
        {{ feedback_flywheel.sql_string(batch_id) }} as batch_id,
        models.model_name,
        {{ feedback_flywheel.sql_string(configured | string) }} as maturation_setting,
        cast({{ share }} as double) as maturation_share,
        cast(plateau_coverage.plateau_age_days as integer) as plateau_age_days,
        cast(plateau_coverage.plateau_eligible_count as {{ dbt.type_bigint() }})
            as plateau_eligible_count,
        plateau_coverage.plateau_coverage,
        cast(derived.derived_maturation_days as integer) as derived_maturation_days,
        {%- if configured == 'auto' %}
            cast(coalesce(derived.derived_maturation_days, 0) as integer) as maturation_days,
            case
                when derived.derived_maturation_days is not null then 'derived'
                else 'too_few_labels'
            end as maturation_source,
        {%- else %}
            cast({{ configured }} as integer) as maturation_days,
            'configured' as maturation_source,
        {%- endif %}
        cast({{ batch_end }} as {{ dbt.type_timestamp() }}) as watermark_at
    from models
    left join plateau_coverage on models.model_name = plateau_coverage.model_name
    left join derived on models.model_name = derived.model_name

)

select * from final

-- fct_segment_outcomes_daily counts every accepted prediction once per breakdown: for every
-- model version and day, each segment attribute's groups (and the overall row) add up to the
-- predictions rpt_kpi_daily counts, and labelled predictions are the same whether counted by
-- predicted class or by true class. Returns the (version, day, attribute) rows that disagree.

with

segment_outcomes as (

    select
        model_name,
        model_version,
        served_date,
        segment_attribute,
        predicted_count,
        labelled_predicted_count,
        labelled_actual_count
    from {{ ref('fct_segment_outcomes_daily') }}

),

kpi as (

    select
        model_name,
        model_version,
        kpi_date,
        inference_count
    from {{ ref('rpt_kpi_daily') }}

),

outcomes as (

    select
        model_name,
        model_version,
        served_date,
        segment_attribute,
        sum(predicted_count) as predicted_count,
        sum(labelled_predicted_count) as labelled_predicted_count,
        sum(labelled_actual_count) as labelled_actual_count
    from segment_outcomes
    group by model_name, model_version, served_date, segment_attribute

)

select
    outcomes.*,
    kpi.inference_count
from outcomes
full outer join kpi
    on
        outcomes.model_name = kpi.model_name
        and outcomes.model_version = kpi.model_version
        and outcomes.served_date = kpi.kpi_date
where
    kpi.inference_count is null
    or outcomes.predicted_count is null
    or outcomes.predicted_count <> kpi.inference_count
    or outcomes.labelled_predicted_count <> outcomes.labelled_actual_count

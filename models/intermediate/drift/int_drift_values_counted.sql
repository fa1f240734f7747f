{{ config(materialized='table') }}

-- The categorical monitored values of the drift windows counted: one row per (model, feature,
-- value) with how many accepted inferences of each window had that value. Features: the
-- categorical inputs of var drift_features and predicted_label (the current matured label is a
-- mart's concept: fct_drift_categorical adds it). Counting puts the missing values in the null
-- row, so the contingency tables work on this small table. The numeric features are not here:
-- fct_drift_numeric reads the window rows as they are (macro drift_window_values), since its
-- statistics only sum and order them and a merge of every numeric value would cost as much as
-- the statistics. A table: fct_drift_categorical reads it and its tests scan it.
-- The windows are merged from day summaries: every day wholly inside one window is a sum of its
-- rows of int_drift_values_daily (counted once, by the batches that typed its values), and only
-- the part days at the edges, when the batch ends at another time of day than midnight, come
-- counted from their typed values (int_drift_values_edge_counted; empty at a midnight
-- watermark). macro drift_window_day_split says which days are which.

{%- set inputs = feedback_flywheel.drift_input_features() %}
{%- set builtins = feedback_flywheel.drift_builtin_features() %}
{%- set features = (inputs + builtins[:2])
    | selectattr('value_type', 'equalto', 'categorical') | list %}

with

{{ feedback_flywheel.drift_window_values(features) }}

final as (

    select
        model_name,
        feature_name,
        feature_kind,
        value_type,
        string_value,
        numeric_value,
        sum(ref_count) as ref_count,
        sum(cur_count) as cur_count
    from window_values
    group by model_name, feature_name, feature_kind, value_type, string_value, numeric_value

)

select * from final

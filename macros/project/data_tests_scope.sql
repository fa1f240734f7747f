{#-
    Data tests that guard a batch check the batch. A model whose rows a batch writes by time
    declares it in its YAML, `meta: {batch_scope: COLUMN}` (a timestamp column, e.g. the day the
    prediction was served) or `meta: {batch_scope_batch_id: COLUMN}` (the column naming the batch
    that wrote the row); its generic data tests then read only the batch's rows: COLUMN in
    [batch_start - lookback_days, batch_end), or COLUMN = batch_id. The singular tests call
    batch_scope_filter() for the same condition. With var data_tests_scope = 'full' every test
    reads whole tables again: `flywheel check --full` (the on-demand audit, also in `make test`).
-#}

{#- The rows a batch's data tests read of a relation, for generic tests (dbt calls this macro for
    the `model` argument of every generic test; this project's version adds the batch scope of
    the tested model to the test's own `where` config). -#}
{% macro get_where_subquery(relation) -%}
    {%- set conditions = [] -%}
    {%- set where = config.get('where', '') -%}
    {%- if where -%}
        {%- do conditions.append('(' ~ where ~ ')') -%}
    {%- endif -%}
    {%- if execute and model is mapping and model.get('attached_node') -%}
        {%- set tested = graph.nodes.get(model.get('attached_node')) -%}
        {%- if tested -%}
            {%- set meta = (tested.get('config') or {}).get('meta') or tested.get('meta') or {} -%}
            {%- set scope = feedback_flywheel.batch_scope_of(meta) -%}
            {%- if scope -%}
                {%- do conditions.append('(' ~ scope ~ ')') -%}
            {%- endif -%}
        {%- endif -%}
    {%- endif -%}
    {%- if conditions -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ conditions | join(' and ') }}) dbt_subquery
        {%- endset -%}
        {{ return(filtered) }}
    {%- else -%}
        {{ return(relation) }}
    {%- endif -%}
{%- endmacro %}


{#- The batch condition a model's meta declares (empty when it declares none, or in full scope). -#}
{% macro batch_scope_of(meta) -%}
    {%- if feedback_flywheel.setting('data_tests_scope') == 'full' -%}
        {{ return('') }}
    {%- elif meta.get('batch_scope') -%}
        {{ return(feedback_flywheel.batch_scope_filter(meta.get('batch_scope'))) }}
    {%- elif meta.get('batch_scope_batch_id') -%}
        {{ return(feedback_flywheel.batch_scope_filter(
            meta.get('batch_scope_batch_id'), by_batch_id=true
        )) }}
    {%- endif -%}
    {{ return('') }}
{%- endmacro %}


{#- The condition that keeps a batch's rows: `column` (a timestamp) in [batch_start -
    lookback_days, batch_end), or with by_batch_id `column` = the batch's id; 'true' in full scope
    (var data_tests_scope = 'full'). For singular tests. -#}
{% macro batch_scope_filter(column, by_batch_id=false) -%}
    {%- if not feedback_flywheel.is_identifier(column) -%}
        {{ exceptions.raise_compiler_error(
            "batch_scope_filter: the column must be a lower-case identifier; got " ~ tojson(column)
        ) }}
    {%- endif -%}
    {%- if feedback_flywheel.setting('data_tests_scope') == 'full' -%}
        {{ return('true') }}
    {%- endif -%}
    {%- if by_batch_id -%}
        {{ return(column ~ " = '" ~ feedback_flywheel.batch_param('batch_id') ~ "'") }}
    {%- endif -%}
    {%- set batch_start = feedback_flywheel.var_timestamp('batch_start') -%}
    {{ return(
        column ~ ' >= ' ~ dbt.dateadd('day', -feedback_flywheel.setting('lookback_days'), batch_start)
        ~ ' and ' ~ column ~ ' < ' ~ feedback_flywheel.var_timestamp('batch_end')
    ) }}
{%- endmacro %}

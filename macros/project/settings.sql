{#-
    Vars are data, not code. Every var a model or macro reads goes through setting(name), which
    checks its value against the kind declared here and raises a compiler error naming the var,
    what it holds and what is allowed; batch_param() does the same for the batch window. A value
    that passed can still only reach SQL as a number, a validated identifier, or through
    sql_string() / string_list() (quoted). The flywheel validates the same rules in Python before
    dbt runs (feedback_flywheel/config/vars.py); these checks hold for a `dbt build --vars ...`
    typed by hand too. tests/python/config/test_injection.py feeds injection strings through each.
-#}

{#- The declared kind of every var of dbt_project.yml. -#}
{% macro setting_kinds() -%}
    {{ return({
        'segment_attributes': 'identifier_list',
        'lookback_days': 'count',
        'label_settle_hours': 'count',
        'clock_skew_seconds': 'count',
        'supported_schema_versions': 'version_list',
        'warn_quarantine_share': 'number',
        'timestamp_floor': 'timestamp',
        'personal_columns': 'identifier_list',
        'label_weights': 'identifier_number_map',
        'sampling_seed': 'count',
        'stratify_by': 'optional_identifier',
        'stratified_quota_per_cell': 'count',
        'uncertainty_method': 'uncertainty_method',
        'uncertainty_budget': 'count',
        'sampling_policy': 'sampling_policy',
        'sampling_policy_chooser': 'sampling_policy_chooser',
        'sampling_policy_exp3_gamma': 'share',
        'sampling_budget_tolerance': 'share_or_zero',
        'weak_label_signals': 'weak_label_signals',
        'weak_label_min_fidelity': 'share',
        'weak_label_fidelity_days': 'positive_count',
        'weak_label_budget': 'count',
        'drift_current_days': 'count',
        'drift_reference_days': 'count',
        'drift_timeline_days': 'count',
        'performance_fast_days': 'count',
        'drift_features': 'drift_features',
        'drift_top_k': 'count',
        'drift_bins': 'count',
        'discovery_days': 'count',
        'performance_current_days': 'count',
        'performance_reference_days': 'count',
        'calibration_bins': 'count',
        'deployment_impact_days': 'count',
        'bias_intersections': 'identifier_list_list',
        'bias_reference_groups': 'segment_text_map',
        'bias_positive_labels': 'text_list_map',
        'bias_min_group_count': 'count',
        'bias_alpha': 'number',
        'bias_disparity_band': 'number_pair',
        'preference_validation_share': 'number',
        'preference_source_weights': 'identifier_number_map',
        'preference_reward_model_pairs': 'boolean',
        'reward_model_pair_min_margin': 'number',
        'reward_text_keywords': 'identifier_text_map',
        'data_tests_scope': 'data_tests_scope',
        'replay_reward_scale': 'reward_mapping',
        'replay_reward_offset': 'reward_mapping',
        'replay_reward_window_hours': 'count',
        'replay_expired_rewards': 'expired_rewards',
        'replay_session_timeout_minutes': 'count',
        'replay_n_step': 'count',
        'replay_gamma': 'number',
        'fidelity_min_group_count': 'count',
        'fidelity_dwell_positive_seconds': 'number',
        'fidelity_rating_positive_at': 'number',
        'fidelity_current_days': 'count',
        'fidelity_history_days': 'count',
        'fidelity_drop_alpha': 'number',
        'fidelity_drop_min_effect': 'number',
        'label_coverage_days': 'count',
        'label_coverage_max_days': 'positive_count',
        'label_maturation_share': 'share',
        'label_maturation_days': 'count_or_auto',
        'latency_days': 'positive_count',
    }) }}
{%- endmacro %}


{#- Whether a value is a lower-case SQL identifier: ^[a-z_][a-z0-9_]*$ (at most 63 characters). -#}
{% macro is_identifier(value) -%}
    {{ return(
        value is string and value | length <= 63
        and modules.re.match('^[a-z_][a-z0-9_]*$', value) is not none
    ) }}
{%- endmacro %}


{#- Whether a value is a list (not text, not a mapping) of lower-case identifiers. -#}
{% macro _is_identifier_list(value) -%}
    {%- if value is string or value is mapping or value is not iterable -%}
        {{ return(false) }}
    {%- endif -%}
    {%- for entry in value -%}
        {%- if not feedback_flywheel.is_identifier(entry) -%}{{ return(false) }}{%- endif -%}
    {%- endfor -%}
    {{ return(true) }}
{%- endmacro %}


{% macro _is_number(value) -%}
    {{ return(value is number and value is not sameas true and value is not sameas false) }}
{%- endmacro %}


{#- What is wrong with a value of a kind (empty when nothing is). -#}
{% macro setting_problem(kind, value) -%}
    {%- set is_identifier = feedback_flywheel.is_identifier -%}
    {%- set is_number = feedback_flywheel._is_number -%}
    {%- set identifier = "lower-case identifiers (^[a-z_][a-z0-9_]*$)" -%}
    {%- if kind == 'count' -%}
        {%- if not (value is integer and is_number(value) and value >= 0) -%}
            {{ return("a whole number >= 0") }}
        {%- endif -%}
    {%- elif kind == 'positive_count' -%}
        {%- if not (value is integer and is_number(value) and value >= 1) -%}
            {{ return("a whole number >= 1") }}
        {%- endif -%}
    {%- elif kind == 'share' -%}
        {%- if not (is_number(value) and value > 0 and value <= 1) -%}
            {{ return("a number in (0, 1]") }}
        {%- endif -%}
    {%- elif kind == 'count_or_auto' -%}
        {%- if value != 'auto' and not (value is integer and is_number(value) and value >= 0) -%}
            {{ return("auto or a whole number >= 0") }}
        {%- endif -%}
    {%- elif kind == 'number' -%}
        {%- if not is_number(value) -%}{{ return("a number") }}{%- endif -%}
    {%- elif kind == 'boolean' -%}
        {%- if value is not sameas true and value is not sameas false -%}
            {{ return("true or false") }}
        {%- endif -%}
    {%- elif kind == 'timestamp' -%}
        {%- if not (value is string and modules.re.match(
            '^[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}:[0-9]{2})?$', value
        )) -%}
            {{ return("a UTC date or timestamp, YYYY-MM-DD[ HH:MM:SS]") }}
        {%- endif -%}
    {%- elif kind == 'share_or_zero' -%}
        {%- if not (is_number(value) and value >= 0 and value <= 1) -%}
            {{ return("a number in [0, 1]") }}
        {%- endif -%}
    {%- elif kind == 'sampling_policy' -%}
        {%- if value not in ['fixed', 'auto'] -%}
            {{ return("fixed (the configured sample) or auto (the evaluated policy)") }}
        {%- endif -%}
    {%- elif kind == 'sampling_policy_chooser' -%}
        {%- if value not in ['rule', 'exp3'] -%}
            {{ return("rule (the best AULC that beats random) or exp3 (the bandit's draw)") }}
        {%- endif -%}
    {%- elif kind == 'weak_label_signals' -%}
        {%- set implicit = ['click', 'conversion', 'thumbs', 'dwell_seconds'] -%}
        {%- if value is string or value is mapping or value is not iterable
            or value | reject('in', implicit) | list -%}
            {{ return("a list of implicit signals (" ~ implicit | join(', ') ~ "); [] for none") }}
        {%- endif -%}
    {%- elif kind == 'uncertainty_method' -%}
        {%- if value not in ['least_confidence', 'margin', 'entropy'] -%}
            {{ return("one of least_confidence, margin, entropy") }}
        {%- endif -%}
    {%- elif kind == 'data_tests_scope' -%}
        {%- if value not in ['batch', 'full'] -%}
            {{ return("batch (the data tests read the batch's rows) or full (whole tables)") }}
        {%- endif -%}
    {%- elif kind == 'expired_rewards' -%}
        {%- if value not in ['zero', 'drop'] -%}
            {{ return("zero (the step enters with reward 0, flagged) or drop (it never enters)") }}
        {%- endif -%}
    {%- elif kind == 'reward_mapping' -%}
        {%- set types = ['reward', 'rating', 'thumbs', 'click', 'dwell_seconds', 'conversion'] -%}
        {%- if value is not mapping -%}{{ return("a mapping of event type to a number") }}{%- endif -%}
        {%- for key, entry in value.items() -%}
            {%- if key not in types or not is_number(entry) -%}
                {{ return("a mapping of event type (" ~ types | join(', ') ~ ") to a number") }}
            {%- endif -%}
        {%- endfor -%}
    {%- elif kind == 'optional_identifier' -%}
        {%- if value is not none and not is_identifier(value) -%}
            {{ return("null or a lower-case identifier (^[a-z_][a-z0-9_]*$)") }}
        {%- endif -%}
    {%- elif kind == 'identifier_list' -%}
        {%- if not feedback_flywheel._is_identifier_list(value) -%}
            {{ return("a list of " ~ identifier) }}
        {%- endif -%}
    {%- elif kind == 'identifier_list_list' -%}
        {%- if value is string or value is mapping or value is not iterable -%}
            {{ return("a list of lists of " ~ identifier) }}
        {%- endif -%}
        {%- for entry in value -%}
            {%- if feedback_flywheel.setting_problem('identifier_list', entry) -%}
                {{ return("a list of lists of " ~ identifier) }}
            {%- endif -%}
        {%- endfor -%}
    {%- elif kind == 'version_list' -%}
        {%- if value is string or value is mapping or value is not iterable -%}
            {{ return("a list of versions (letters, digits, . _ -)") }}
        {%- endif -%}
        {%- for entry in value -%}
            {%- if not (entry is string and modules.re.match('^[0-9A-Za-z._-]{1,32}$', entry)) -%}
                {{ return("a list of versions (letters, digits, . _ -)") }}
            {%- endif -%}
        {%- endfor -%}
    {%- elif kind in ['identifier_number_map', 'identifier_text_map'] -%}
        {%- if value is not mapping -%}{{ return("a mapping of " ~ identifier ~ " to values") }}{%- endif -%}
        {%- for key, entry in value.items() -%}
            {%- if not is_identifier(key) -%}
                {{ return("a mapping whose keys are " ~ identifier) }}
            {%- endif -%}
            {%- if kind == 'identifier_number_map' and not is_number(entry) -%}
                {{ return("a mapping of names to numbers") }}
            {%- endif -%}
            {%- if kind == 'identifier_text_map' and entry is not string -%}
                {{ return("a mapping of names to text") }}
            {%- endif -%}
        {%- endfor -%}
    {%- elif kind == 'segment_text_map' -%}
        {%- if value is not mapping -%}{{ return("a mapping of attribute to group") }}{%- endif -%}
        {%- for key, entry in value.items() -%}
            {%- if key is not string or entry is not string
                or not feedback_flywheel._is_identifier_list(key.split('|')) -%}
                {{ return("a mapping of attribute ('a' or 'a|b', " ~ identifier ~ ") to group text") }}
            {%- endif -%}
        {%- endfor -%}
    {%- elif kind == 'text_list_map' -%}
        {%- if value is not mapping -%}{{ return("a mapping of model name to a list of labels") }}{%- endif -%}
        {%- for key, entry in value.items() -%}
            {%- if key is not string or entry is string or entry is mapping or entry is not iterable
                or entry | reject('string') | list -%}
                {{ return("a mapping of model name to a list of labels (text)") }}
            {%- endif -%}
        {%- endfor -%}
    {%- elif kind == 'number_pair' -%}
        {%- if value is string or value is mapping or value is not iterable
            or value | length != 2 -%}
            {{ return("two numbers [low, high]") }}
        {%- endif -%}
        {%- for entry in value -%}
            {%- if not is_number(entry) -%}{{ return("two numbers [low, high]") }}{%- endif -%}
        {%- endfor -%}
    {%- elif kind == 'drift_features' -%}
        {%- if value is not mapping or value.keys() | reject('in', ['numeric', 'categorical']) | list -%}
            {{ return("a mapping {numeric: [...], categorical: [...]}") }}
        {%- endif -%}
        {%- for entry in value.values() -%}
            {%- if entry is not none and feedback_flywheel.setting_problem('identifier_list', entry) -%}
                {{ return("a mapping {numeric: [...], categorical: [...]} of " ~ identifier) }}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ return("a known kind (setting_kinds has no kind " ~ kind ~ ")") }}
    {%- endif -%}
    {{ return("") }}
{%- endmacro %}


{#- The value of var `name`, checked against its declared kind (a compiler error otherwise). -#}
{% macro setting(name) -%}
    {%- set kinds = feedback_flywheel.setting_kinds() -%}
    {%- if name not in kinds -%}
        {{ exceptions.raise_compiler_error(
            "setting: unknown var " ~ name ~ "; declare its kind in macros/project/settings.sql"
        ) }}
    {%- endif -%}
    {%- set value = var(name) -%}
    {%- set problem = feedback_flywheel.setting_problem(kinds[name], value) -%}
    {%- if problem -%}
        {{ exceptions.raise_compiler_error(
            "var " ~ name ~ " must be " ~ problem ~ "; got " ~ tojson(value)
            ~ ". Fix it in the warehouse's configuration file or --var (see `flywheel config show`)."
        ) }}
    {%- endif -%}
    {{ return(value) }}
{%- endmacro %}


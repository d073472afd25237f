{#
    Which rows a data test reads. A full refresh, or any run without a partition window, tests
    every row. An incremental run over a partition window (the daily job: one new day) tests
    what that run changed:
      - a relation with refreshed_at (the incremental marts, and the views on them): the rows
        this run derived (refreshed_at is the run's start);
      - a relation with partition_key (the staging views over the feeds): the rows of the
        window's partitions, where everything the run ingested landed (a late record lands in
        the partition of the file that brought it, not of the day it speaks of);
      - anything else (tables rebuilt whole, seeds, sources): every row.
    The rows outside were tested by the run that wrote them. What a filtered test cannot see
    (a duplicate key between a new row and an old one) the weekly full refresh tests
    (lake_full_refresh). ORDERTOWER_TEST_SCOPE=all (DbtBuildConfig.test_scope) tests every row
    in every run. A test's own `where` config still applies, on top.
#}

{% macro get_where_subquery(relation) -%}
    {%- set conditions = [] -%}
    {%- set where = config.get('where', '') -%}
    {%- if where -%}
        {%- do conditions.append('(' ~ where ~ ')') -%}
    {%- endif -%}
    {%- set changed = changed_rows_condition(relation) -%}
    {%- if changed -%}
        {%- do conditions.append(changed) -%}
    {%- endif -%}
    {%- if conditions -%}
        {%- do return('(select * from ' ~ relation ~ ' where ' ~ conditions | join(' and ') ~ ') dbt_subquery') -%}
    {%- endif -%}
    {%- do return(relation) -%}
{%- endmacro %}

{#- The run's partition window: (first, last) partition keys, or none. -#}
{% macro partition_window() -%}
    {%- set first = var('events_from', env_var('ORDERTOWER_EVENTS_FROM', '')) | trim -%}
    {%- set last = var('events_to', env_var('ORDERTOWER_EVENTS_TO', '')) | trim -%}
    {%- if not (first and last) -%}
        {%- do return(none) -%}
    {%- endif -%}
    {%- for key in (first, last) if not modules.re.fullmatch('[0-9]{4}-[0-9]{2}-[0-9]{2}', key) -%}
        {{ exceptions.raise_compiler_error(
            "the partition window's keys must be dates (YYYY-MM-DD), not '" ~ key ~ "'") }}
    {%- endfor -%}
    {%- do return([first, last]) -%}
{%- endmacro %}

{#- The condition that keeps a tested relation's changed rows, or '' for every row. The tested
    model's columns are those its YAML declares (every staging model declares partition_key,
    every incremental mart refreshed_at): no query per test. -#}
{% macro changed_rows_condition(relation) -%}
    {#- nothing to read at parse time: an environment variable read while parsing becomes part
        of dbt's partial-parse check, and each new window would re-parse every tested file -#}
    {%- if not execute -%}
        {%- do return('') -%}
    {%- endif -%}
    {%- set scope = env_var('ORDERTOWER_TEST_SCOPE', 'changed') | trim | lower -%}
    {%- if scope not in ('changed', 'all') -%}
        {{ exceptions.raise_compiler_error(
            "ORDERTOWER_TEST_SCOPE must be 'changed' or 'all', not '" ~ scope ~ "'") }}
    {%- endif -%}
    {%- set window = partition_window() -%}
    {%- if scope == 'all' or flags.FULL_REFRESH or window is none
        or var('as_of', none) -%}
        {%- do return('') -%}
    {%- endif -%}
    {%- set tested = graph.nodes.get(model.attached_node) if model.attached_node else none -%}
    {%- if tested is none or tested.resource_type != 'model' -%}
        {%- do return('') -%}
    {%- endif -%}
    {%- if 'refreshed_at' in tested.columns -%}
        {%- do return('refreshed_at >= ' ~ run_started()) -%}
    {%- elif 'partition_key' in tested.columns -%}
        {%- do return("partition_key between '" ~ window[0] ~ "' and '" ~ window[1] ~ "'") -%}
    {%- endif -%}
    {%- do return('') -%}
{%- endmacro %}

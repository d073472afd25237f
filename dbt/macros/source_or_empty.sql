{#
    A source table that a Python asset creates on its first run (ml.*): select it when it
    exists, otherwise an empty relation with the given columns, so the staging view and every
    model downstream build (empty) before the first run.
    columns: list of [name, type] pairs in the table's order.
#}
{% macro source_or_empty(source_name, table_name, columns) -%}
    {%- set relation = load_relation(source(source_name, table_name)) -%}
    {%- if relation is not none -%}
    select * from {{ source(source_name, table_name) }}
    {%- else -%}
    {%- if execute -%}
    {%- do log("source " ~ source_name ~ "." ~ table_name ~ " does not exist yet: " ~ this
        ~ " is an empty placeholder until the asset that writes it has run and this model is"
        ~ " built again", info=True) -%}
    {%- endif %}
    select
        {%- for name, type in columns %}
        cast(null as {{ type }}) as {{ name }}{{ "," if not loop.last }}
        {%- endfor %}
    where false
    {%- endif -%}
{%- endmacro %}

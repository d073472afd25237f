{#-
    A model's value rules in one scan: dbt's accepted_values for several columns and
    expression_is_true for several expressions. A failure returns one row per broken rule with
    the rows that break it. Null passes both kinds of rule, as it does in dbt's own tests and in
    a CHECK constraint. The reason is the one not_null_columns gives: every data test is a query
    of its own on the lake, with a fixed cost before it reads a row, and one test per rule cost
    most of a build's tests. A rule with its own config (severity: warn, where) or description
    stays a test of its own.

        data_tests:
          - column_rules:
              name: rules_fct_orders
              arguments:
                accepted_values:
                  channel: [web, app]
                  rating: {values: [1, 2, 3], quote: false}
                expressions:
                  - order_total >= 0
-#}
{% test column_rules(model, accepted_values=none, expressions=none) %}

{%- set rules = [] -%}
{%- for column, spec in (accepted_values or {}).items() -%}
    {%- set values = spec['values'] if spec is mapping else spec -%}
    {%- set quote = spec.get('quote', true) if spec is mapping else true -%}
    {%- if not values -%}
        {{ exceptions.raise_compiler_error("column_rules: no accepted values for " ~ column) }}
    {%- endif -%}
    {%- set literals = [] -%}
    {%- for value in values -%}
        {%- do literals.append("'" ~ (value | string | replace("'", "''")) ~ "'" if quote else value | string) -%}
    {%- endfor -%}
    {%- do rules.append((column ~ " in (" ~ literals | join(", ") ~ ")",
                         column ~ " not in (" ~ literals | join(", ") ~ ")")) -%}
{%- endfor -%}
{%- for expression in expressions or [] -%}
    {%- do rules.append((expression, "not (" ~ expression ~ ")")) -%}
{%- endfor -%}
{%- if not rules -%}
    {{ exceptions.raise_compiler_error("column_rules needs accepted_values or expressions") }}
{%- endif %}

with broken as (
    select
    {%- for rule, failing in rules %}
        count(*) filter (where {{ failing }}) as rule_{{ loop.index }}{{ "," if not loop.last }}
    {%- endfor %}
    from {{ model }}
),

rules (rule_index, rule) as (
    values
    {%- for rule, failing in rules %}
        ('rule_{{ loop.index }}', '{{ rule | replace("'", "''") }}'){{ "," if not loop.last }}
    {%- endfor %}
)

select rules.rule, broken_rows.failing_rows
from (
    select rule_index, failing_rows
    from broken
    unpivot (failing_rows for rule_index in (
        {%- for rule, failing in rules %}rule_{{ loop.index }}{{ ", " if not loop.last }}{% endfor -%}
    ))
) as broken_rows
inner join rules using (rule_index)
where broken_rows.failing_rows > 0

{% endtest %}
